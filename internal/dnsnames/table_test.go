package dnsnames

import (
	"net/netip"
	"testing"
	"time"
)

var testTime = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func ans(name, addr string, ttl uint32) Answer {
	return Answer{Name: name, Addr: netip.MustParseAddr(addr), TTL: ttl}
}

func TestTablePerNamespace(t *testing.T) {
	tb := NewTable()
	tb.Observe(1, []Answer{ans("db.internal", "10.0.0.5", 30)}, testTime)
	tb.Observe(2, []Answer{ans("cache.internal", "10.0.0.5", 30)}, testTime)
	a := netip.MustParseAddr("10.0.0.5")
	if r, ok := tb.Lookup(1, a); !ok || r.Name != "db.internal" {
		t.Fatalf("netns 1: %+v %v", r, ok)
	}
	if r, ok := tb.Lookup(2, netip.MustParseAddr("::ffff:10.0.0.5")); !ok || r.Name != "cache.internal" {
		t.Fatalf("netns 2 (mapped address): %+v %v", r, ok)
	}
	if _, ok := tb.Lookup(3, a); ok {
		t.Fatal("netns 3 got a name it never resolved")
	}
	tb.Observe(0, []Answer{ans("any.example", "192.0.2.1", 30)}, testTime)
	if r, ok := tb.Lookup(3, netip.MustParseAddr("192.0.2.1")); !ok || r.Name != "any.example" {
		t.Fatal("an answer of unknown namespace does not stand for the others")
	}
}

func TestTableTTLAndSeen(t *testing.T) {
	tb := NewTable()
	a := netip.MustParseAddr("192.0.2.9")
	tb.Observe(1, []Answer{ans("x.example", "192.0.2.9", 300)}, testTime)
	later := testTime.Add(10 * time.Minute)
	tb.Observe(1, []Answer{ans("x.example", "192.0.2.9", 60)}, later)
	r, _ := tb.Lookup(1, a)
	if !r.FirstSeen.Equal(testTime) || !r.LastSeen.Equal(later) || !r.Expires.Equal(later.Add(time.Minute)) {
		t.Fatalf("%+v", r)
	}
	if r.Domain != "x.example" {
		t.Fatalf("domain %q", r.Domain)
	}
	// A newer answer with another name replaces it; first seen restarts.
	tb.Observe(1, []Answer{ans("y.example", "192.0.2.9", 60)}, later.Add(time.Second))
	r, _ = tb.Lookup(1, a)
	if r.Name != "y.example" || !r.FirstSeen.Equal(later.Add(time.Second)) {
		t.Fatalf("%+v", r)
	}
	// Both names were pending for the store, each with its own times.
	p := tb.Pending()
	if len(p) != 2 || p[0].Name != "x.example" || p[1].Name != "y.example" || !p[0].FirstSeen.Equal(testTime) {
		t.Fatalf("pending %+v", p)
	}
	if len(tb.Pending()) != 0 {
		t.Fatal("pending not cleared")
	}
	tb.Requeue(p[:1])
	if got := tb.Pending(); len(got) != 1 || got[0].Name != "x.example" {
		t.Fatalf("requeued %+v", got)
	}
}

func TestTableBounded(t *testing.T) {
	tb := &Table{MaxEntries: 3, MaxPending: 2}
	for i := 1; i <= 5; i++ {
		tb.Observe(1, []Answer{{Name: "h.example", Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), TTL: 1}}, testTime)
	}
	st := tb.Stats()
	if st.Entries != 3 || st.Evicted != 2 || st.PendingDropped != 3 {
		t.Fatalf("%+v", st)
	}
	if _, ok := tb.Lookup(1, netip.MustParseAddr("192.0.2.1")); ok {
		t.Fatal("the least recently answered address was kept")
	}
	if _, ok := tb.Lookup(1, netip.MustParseAddr("192.0.2.5")); !ok {
		t.Fatal("the newest address was dropped")
	}
	if p := tb.Pending(); len(p) != 2 || p[1].Addr != netip.MustParseAddr("192.0.2.5") {
		t.Fatalf("pending %+v", p)
	}
}

func TestTableLoadAndMalformed(t *testing.T) {
	tb := NewTable()
	tb.Load([]Record{
		{NetNS: 1, Addr: netip.MustParseAddr("192.0.2.1"), Name: "old.example", LastSeen: testTime},
		{NetNS: 1, Addr: netip.MustParseAddr("192.0.2.1"), Name: "new.example", LastSeen: testTime.Add(time.Hour)},
		{NetNS: 1, Addr: netip.MustParseAddr("127.0.0.1"), Name: "evil.example", LastSeen: testTime},
	})
	if r, ok := tb.Lookup(1, netip.MustParseAddr("192.0.2.1")); !ok || r.Name != "new.example" {
		t.Fatalf("%+v", r)
	}
	if _, ok := tb.Lookup(1, netip.MustParseAddr("127.0.0.1")); ok {
		t.Fatal("a loopback name was loaded")
	}
	if len(tb.Pending()) != 0 {
		t.Fatal("loaded records are pending")
	}
	if n := tb.ObservePayload(1, []byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c}, false, testTime); n != 0 {
		t.Fatal(n)
	}
	if st := tb.Stats(); st.Packets != 1 || st.Malformed != 1 {
		t.Fatalf("%+v", st)
	}
}
