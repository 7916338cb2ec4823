package dnsnames

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// rr is one answer record for build.
type rr struct {
	owner  string
	cname  string // CNAME target, or
	addr   string // A/AAAA address
	ttl    uint32
	txtRec bool // a TXT record (to be skipped)
}

// build makes a DNS response to a question for q with the answers given.
func build(t testing.TB, q string, rcode dnsmessage.RCode, answers ...rr) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, Response: true, RCode: rcode})
	b.EnableCompression()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.StartQuestions())
	must(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	must(b.StartAnswers())
	for _, a := range answers {
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(a.owner), Class: dnsmessage.ClassINET, TTL: a.ttl}
		switch {
		case a.txtRec:
			must(b.TXTResource(h, dnsmessage.TXTResource{TXT: []string{"v=spf1"}}))
		case a.cname != "":
			must(b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(a.cname)}))
		default:
			ip := netip.MustParseAddr(a.addr)
			if ip.Is4() {
				must(b.AResource(h, dnsmessage.AResource{A: ip.As4()}))
			} else {
				must(b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: ip.As16()}))
			}
		}
	}
	msg, err := b.Finish()
	must(err)
	return msg
}

func TestParseCNAMEChainKeepsTheAskedName(t *testing.T) {
	msg := build(t, "WWW.Example.COM.", dnsmessage.RCodeSuccess,
		rr{owner: "www.example.com.", cname: "edge.example.net.", ttl: 300},
		rr{owner: "edge.example.net.", cname: "e1.cdn.example.org.", ttl: 60},
		rr{owner: "e1.cdn.example.org.", txtRec: true, ttl: 5},
		rr{owner: "e1.cdn.example.org.", addr: "192.0.2.7", ttl: 120},
		rr{owner: "e1.cdn.example.org.", addr: "2001:db8::7", ttl: 30},
		rr{owner: "unrelated.example.", addr: "192.0.2.99", ttl: 30},
	)
	got, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Answer{
		{Name: "www.example.com", Addr: netip.MustParseAddr("192.0.2.7"), TTL: 60},
		{Name: "www.example.com", Addr: netip.MustParseAddr("2001:db8::7"), TTL: 30},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answer %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseIgnoresLoopbackAndFailures(t *testing.T) {
	msg := build(t, "blocked.example.", dnsmessage.RCodeSuccess,
		rr{owner: "blocked.example.", addr: "127.0.0.1", ttl: 10},
		rr{owner: "blocked.example.", addr: "0.0.0.0", ttl: 10},
		rr{owner: "blocked.example.", addr: "::1", ttl: 10},
		rr{owner: "blocked.example.", addr: "::", ttl: 10},
		rr{owner: "blocked.example.", addr: "224.0.0.1", ttl: 10},
	)
	if got, err := Parse(msg); err != nil || len(got) != 0 {
		t.Fatalf("loopback answers named something: %+v %v", got, err)
	}
	nx := build(t, "nx.example.", dnsmessage.RCodeNameError)
	if got, err := Parse(nx); !errors.Is(err, ErrNotAnswer) || len(got) != 0 {
		t.Fatalf("NXDOMAIN: %+v %v", got, err)
	}
	// A query (not a response) names nothing.
	q := append([]byte(nil), msg...)
	q[2] &^= 0x80
	if _, err := Parse(q); !errors.Is(err, ErrNotAnswer) {
		t.Fatalf("query: %v", err)
	}
}

func TestParseTruncatedKeepsEarlierAnswers(t *testing.T) {
	msg := build(t, "multi.example.", dnsmessage.RCodeSuccess,
		rr{owner: "multi.example.", addr: "192.0.2.1", ttl: 10},
		rr{owner: "multi.example.", addr: "192.0.2.2", ttl: 10},
		rr{owner: "multi.example.", addr: "192.0.2.3", ttl: 10},
	)
	cut := msg[:len(msg)-3] // the kernel's copy ended inside the last record
	got, err := Parse(cut)
	if err == nil {
		t.Fatal("no error for a cut message")
	}
	if len(got) != 2 || got[1].Addr != netip.MustParseAddr("192.0.2.2") {
		t.Fatalf("got %+v", got)
	}
	for n := 0; n < len(msg); n++ {
		Parse(msg[:n]) // must not panic at any cut
	}
}

func TestParseCompressionPointerLoop(t *testing.T) {
	msg := build(t, "loop.example.", dnsmessage.RCodeSuccess, rr{owner: "loop.example.", addr: "192.0.2.1", ttl: 10})
	// The question name starts at offset 12; make it a pointer to itself.
	loop := append([]byte(nil), msg...)
	loop[12], loop[13] = 0xc0, 12
	if got, err := Parse(loop); err == nil || len(got) != 0 {
		t.Fatalf("self-pointer: %+v %v", got, err)
	}
	// Two pointers at each other in the answer's owner name.
	loop2 := append([]byte(nil), msg...)
	qEnd := 12 + len("\x04loop\x07example\x00") + 4
	loop2[qEnd], loop2[qEnd+1] = 0xc0, byte(qEnd+2)
	loop2 = append(loop2[:qEnd+2], append([]byte{0xc0, byte(qEnd)}, loop2[qEnd+2:]...)...)
	if got, _ := Parse(loop2); len(got) != 0 {
		t.Fatalf("pointer loop named %+v", got)
	}
}

func TestParseCNAMELoopEnds(t *testing.T) {
	msg := build(t, "a.example.", dnsmessage.RCodeSuccess,
		rr{owner: "a.example.", cname: "b.example.", ttl: 10},
		rr{owner: "b.example.", cname: "a.example.", ttl: 10},
		rr{owner: "b.example.", addr: "192.0.2.5", ttl: 10},
	)
	got, err := Parse(msg)
	if err != nil || len(got) != 1 || got[0].Name != "a.example" {
		t.Fatalf("got %+v %v", got, err)
	}
}

func TestParsePayloadTCP(t *testing.T) {
	msg := build(t, "tcp.example.", dnsmessage.RCodeSuccess, rr{owner: "tcp.example.", addr: "198.51.100.4", ttl: 10})
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	framed = append(framed, msg...)
	framed = append(framed, 0xde, 0xad) // the next message's first bytes
	got, err := ParsePayload(framed, true)
	if err != nil || len(got) != 1 || got[0].Addr != netip.MustParseAddr("198.51.100.4") {
		t.Fatalf("got %+v %v", got, err)
	}
	if _, err := ParsePayload([]byte{1}, true); err == nil {
		t.Fatal("1-byte tcp payload parsed")
	}
}

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{
		"www.google.co.uk":   "google.co.uk",
		"a.b.github.io":      "b.github.io",
		"WWW.Example.COM.":   "example.com",
		"example.com":        "example.com",
		"localhost":          "localhost",
		"co.uk":              "co.uk",
		"svc.bwt-test.local": "bwt-test.local",
		"192.0.2.1":          "192.0.2.1",
		"":                   "",
	} {
		if got := Domain(in); got != want {
			t.Errorf("Domain(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse: no input may crash or stall the parser, and whatever it
// returns names a real, nameable address with a host name.
func FuzzParse(f *testing.F) {
	ok := build(f, "www.example.com.", dnsmessage.RCodeSuccess,
		rr{owner: "www.example.com.", cname: "cdn.example.net.", ttl: 300},
		rr{owner: "cdn.example.net.", addr: "192.0.2.7", ttl: 60},
		rr{owner: "cdn.example.net.", addr: "2001:db8::1", ttl: 60})
	f.Add(ok, false)
	f.Add(ok[:len(ok)/2], false)
	loop := append([]byte(nil), ok...)
	loop[12], loop[13] = 0xc0, 12
	f.Add(loop, false)
	framed := append(binary.BigEndian.AppendUint16(nil, uint16(len(ok))), ok...)
	f.Add(framed, true)
	f.Add([]byte{}, false)
	f.Add(make([]byte, 12), false)
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		got, _ := ParsePayload(data, tcp)
		if len(got) > maxAnswers {
			t.Fatalf("%d answers", len(got))
		}
		for _, a := range got {
			if a.Name == "" || !Nameable(a.Addr) {
				t.Fatalf("bad answer %+v", a)
			}
		}
		tb := NewTable()
		tb.ObservePayload(1, data, tcp, testTime)
	})
}
