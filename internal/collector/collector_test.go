package collector

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/procinfo"
	"github.com/bwtracker/bwtracker/internal/store"
)

// fakeSource hands out queued flows on each drain, like the kernel maps.
type fakeSource struct {
	mu      sync.Mutex
	pending []flow
	drops   map[string]uint64
	execs   chan bpf.ExecEvent
}

type flow struct {
	k bpf.FlowKey
	v bpf.FlowVal
}

func (f *fakeSource) add(pid uint32, comm, remote string, port uint16, dir uint8, bytes uint64) {
	k := bpf.FlowKey{TGID: pid, StartNS: uint64(pid) * 1000, Proto: bpf.ProtoTCP, Dir: dir, RPort: port, CgroupID: 1}
	copy(k.Comm[:], comm)
	k.RAddr = netip.MustParseAddr(remote).As16()
	f.mu.Lock()
	f.pending = append(f.pending, flow{k, bpf.FlowVal{Bytes: bytes, Calls: 1}})
	f.mu.Unlock()
}

func (f *fakeSource) Drain(fn func(bpf.FlowKey, bpf.FlowVal)) (int, error) {
	f.mu.Lock()
	p := f.pending
	f.pending = nil
	f.mu.Unlock()
	for _, x := range p {
		fn(x.k, x.v)
	}
	return len(p), nil
}
func (f *fakeSource) Detach(fn func(bpf.FlowKey, bpf.FlowVal)) (int, error) { return f.Drain(fn) }
func (f *fakeSource) Drops() (map[string]uint64, error)                     { return f.drops, nil }
func (f *fakeSource) ExecEvents() <-chan bpf.ExecEvent                      { return f.execs }
func (f *fakeSource) Capacity() int                                         { return 100 }
func (f *fakeSource) Backend() bpf.Backend                                  { return bpf.Tracepoint }

// fakeSink records writes and can be told to fail.
type fakeSink struct {
	mu     sync.Mutex
	fail   bool
	writes [][]store.Sample
}

func (s *fakeSink) Write(_ context.Context, _ time.Time, samples []store.Sample) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("database is locked")
	}
	s.writes = append(s.writes, append([]store.Sample(nil), samples...))
	return nil
}
func (s *fakeSink) Size() int64  { return 0 }
func (s *fakeSink) Path() string { return "/fake.db" }

func (s *fakeSink) totals() (tx, rx uint64, rows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.writes {
		for _, x := range w {
			tx += x.TxBytes
			rx += x.RxBytes
			rows++
		}
	}
	return
}

func newTest() (*Collector, *fakeSource, *fakeSink) {
	src := &fakeSource{drops: map[string]uint64{"flows_map_full": 0}, execs: make(chan bpf.ExecEvent)}
	sink := &fakeSink{}
	c := New(Config{Interval: time.Second}, src, sink, procinfo.New(t0Dir))
	return c, src, sink
}

const t0Dir = "/nonexistent-proc"

func TestAggregatesDirectionsAndPorts(t *testing.T) {
	c, src, sink := newTest()
	src.add(10, "curl", "198.18.0.1", 443, bpf.DirTX, 100)
	src.add(10, "curl", "198.18.0.1", 443, bpf.DirRX, 5000)
	src.add(10, "curl", "198.18.0.2", 53, bpf.DirTX, 40)
	src.add(10, "curl", "198.18.0.2", 5353, bpf.DirTX, 60)
	if err := c.flush(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if len(sink.writes) != 1 || len(sink.writes[0]) != 2 {
		t.Fatalf("writes %+v", sink.writes)
	}
	for _, s := range sink.writes[0] {
		switch s.RemoteIP {
		case "198.18.0.1":
			if s.TxBytes != 100 || s.RxBytes != 5000 || s.RemotePort != 443 || s.Comm != "curl" {
				t.Errorf("row %+v", s)
			}
		case "198.18.0.2":
			if s.TxBytes != 100 || s.RemotePort != 0 {
				t.Errorf("two ports to one address should be one row without port: %+v", s)
			}
		default:
			t.Errorf("unexpected %+v", s)
		}
	}
	snap := c.Snapshot()
	if len(snap.Processes) != 1 || snap.Processes[0].TxBytes != 200 || snap.Processes[0].RxBytes != 5000 || snap.Processes[0].Remotes != 2 {
		t.Fatalf("snapshot %+v", snap.Processes)
	}
}

// A DB that refuses writes loses nothing: the rows wait and land later.
func TestWriteFailureKeepsRows(t *testing.T) {
	c, src, sink := newTest()
	sink.fail = true
	src.add(1, "a", "::1", 1, bpf.DirTX, 7)
	if err := c.flush(context.Background(), false); err == nil {
		t.Fatal("expected a write error")
	}
	src.add(1, "a", "::1", 1, bpf.DirTX, 8)
	c.flush(context.Background(), false)
	if tx, _, _ := sink.totals(); tx != 0 {
		t.Fatalf("written while failing: %d", tx)
	}
	if c.Status().FlushErrs != 2 {
		t.Errorf("flush errors %d", c.Status().FlushErrs)
	}
	sink.fail = false
	src.add(1, "a", "::1", 1, bpf.DirTX, 9)
	if err := c.flush(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if tx, _, _ := sink.totals(); tx != 24 {
		t.Fatalf("after recovery tx=%d, want 24", tx)
	}
	if len(sink.writes) != 3 {
		t.Fatalf("each flush keeps its own transaction/timestamp: %d writes", len(sink.writes))
	}
}

func TestBacklogOverflowIsCounted(t *testing.T) {
	src := &fakeSource{drops: map[string]uint64{}, execs: make(chan bpf.ExecEvent)}
	sink := &fakeSink{fail: true}
	c := New(Config{Interval: time.Second, MaxBacklog: 2}, src, sink, procinfo.New(t0Dir))
	for i := 0; i < 4; i++ {
		src.add(uint32(i+1), "x", "::1", 1, bpf.DirTX, 1)
		c.flush(context.Background(), false)
	}
	if got := c.Status().Drops["db_backlog_overflow"]; got != 2 {
		t.Fatalf("overflow drops %d, want 2", got)
	}
}

func TestRunFlushesOnCancel(t *testing.T) {
	c, src, sink := newTest()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	src.add(3, "late", "::1", 1, bpf.DirRX, 12345)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, rx, _ := sink.totals(); rx != 12345 {
		t.Fatalf("final flush rx=%d", rx)
	}
}

func TestSubscribe(t *testing.T) {
	c, src, _ := newTest()
	ch, cancel := c.Subscribe()
	defer cancel()
	src.add(1, "a", "::1", 1, bpf.DirTX, 1)
	c.flush(context.Background(), false)
	select {
	case s := <-ch:
		if len(s.Processes) != 1 {
			t.Fatalf("snapshot %+v", s)
		}
	case <-time.After(time.Second):
		t.Fatal("no snapshot delivered")
	}
}
