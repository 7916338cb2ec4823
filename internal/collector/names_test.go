package collector

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/dnsnames"
	"github.com/bwtracker/bwtracker/internal/procinfo"
	"github.com/bwtracker/bwtracker/internal/store"
)

// dnsSource is a fakeSource that also delivers captured DNS answers.
type dnsSource struct {
	*fakeSource
	dns chan bpf.DNSEvent
}

func (d *dnsSource) DNSEvents() <-chan bpf.DNSEvent { return d.dns }

// nameSink is a fakeSink that keeps names and can refuse them.
type nameSink struct {
	*fakeSink
	mu    sync.Mutex
	fail  bool
	names []store.NameRecord
}

func (s *nameSink) PutNames(_ context.Context, recs []store.NameRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("database is locked")
	}
	s.names = append(s.names, recs...)
	return nil
}

func answer(t *testing.T, name, cname, addr string) bpf.DNSEvent {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	b.StartAnswers()
	b.CNAMEResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(cname)})
	var a [4]byte
	copy(a[:], []byte{198, 18, 0, addr[0] - '0'})
	b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(cname), Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	ev := bpf.DNSEvent{NetNS: 0, Len: uint16(len(msg))}
	copy(ev.Data[:], msg)
	return ev
}

// Captured answers name the live connections and go to the store after a
// write; a refused write keeps them for the next flush.
func TestNamesFromCapturedAnswers(t *testing.T) {
	src := &dnsSource{fakeSource: &fakeSource{drops: map[string]uint64{}, execs: make(chan bpf.ExecEvent)}, dns: make(chan bpf.DNSEvent, 4)}
	sink := &nameSink{fakeSink: &fakeSink{}, fail: true}
	names := dnsnames.NewTable()
	c := New(Config{Interval: time.Second, Names: names}, src, sink, procinfo.New(t0Dir))
	c.consumeDNS()
	src.dns <- answer(t, "www.example.com.", "edge.cdn.example.net.", "1")
	for names.Stats().Answers == 0 {
		time.Sleep(time.Millisecond) // the consumer goroutine; no timed assertion
	}
	src.add(10, "curl", "198.18.0.1", 443, bpf.DirTX, 100)
	src.add(10, "curl", "198.18.0.2", 443, bpf.DirTX, 7)
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	cn := c.Snapshot().Processes[0].Conns
	if len(cn) != 2 || cn[0].RemoteName != "www.example.com" || cn[1].RemoteName != "" {
		t.Fatalf("connections %+v", cn)
	}
	if len(sink.names) != 0 {
		t.Fatal("names written though the sink refused")
	}
	sink.fail = false
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if len(sink.names) != 1 || sink.names[0].IP != "198.18.0.1" || sink.names[0].Name != "www.example.com" || sink.names[0].Domain != "example.com" {
		t.Fatalf("names %+v", sink.names)
	}
	close(src.dns)
}
