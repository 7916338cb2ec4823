package collector

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
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
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
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
	if err := c.flush(context.Background(), false, time.Time{}); err == nil {
		t.Fatal("expected a write error")
	}
	src.add(1, "a", "::1", 1, bpf.DirTX, 8)
	c.flush(context.Background(), false, time.Time{})
	if tx, _, _ := sink.totals(); tx != 0 {
		t.Fatalf("written while failing: %d", tx)
	}
	if c.Status().FlushErrs != 2 {
		t.Errorf("flush errors %d", c.Status().FlushErrs)
	}
	sink.fail = false
	src.add(1, "a", "::1", 1, bpf.DirTX, 9)
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
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
		c.flush(context.Background(), false, time.Time{})
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
	c.flush(context.Background(), false, time.Time{})
	select {
	case s := <-ch:
		if len(s.Processes) != 1 {
			t.Fatalf("snapshot %+v", s)
		}
	case <-time.After(time.Second):
		t.Fatal("no snapshot delivered")
	}
}

// logBuf collects log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// A database that refuses writes for many intervals: rows are held, one log
// line when writes fail and one when they resume, last_flush stays at the
// last successful write, then every held byte is written; only the
// overflow beyond the bound is lost, counted in bytes.
func TestDiskFullHoldsThenWritesEverything(t *testing.T) {
	src := &fakeSource{drops: map[string]uint64{}, execs: make(chan bpf.ExecEvent)}
	sink := &fakeSink{}
	var logs logBuf
	c := New(Config{Interval: time.Second, MaxBacklog: 10 * PieceSamples, Log: slog.New(slog.NewTextHandler(&logs, nil))}, src, sink, procinfo.New(t0Dir))
	src.add(1, "a", "::1", 1, bpf.DirTX, 5)
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	okFlush := c.Status().LastFlush
	sink.fail = true
	var want uint64 = 5
	for i := 0; i < 20; i++ {
		for j := 0; j < 3*PieceSamples/2; j++ { // 1.5 pieces per interval
			src.add(uint32(100+j), "b", "198.18.0.1", uint16(i), bpf.DirTX, 3)
		}
		c.flush(context.Background(), false, time.Time{})
	}
	st := c.Status()
	if st.DB.State != "failing" || st.DB.Error == "" || !st.LastFlush.Equal(okFlush) {
		t.Fatalf("status while failing: %+v last_flush %v (ok flush %v)", st.DB, st.LastFlush, okFlush)
	}
	// 20 intervals x 3000 rows, bound 20000: the 13 oldest are dropped whole.
	if st.DB.HeldSamples > 10*PieceSamples || st.DB.HeldSamples+int(st.DB.LostSamples) != 20*3*PieceSamples/2 {
		t.Fatalf("held %d + lost %d samples", st.DB.HeldSamples, st.DB.LostSamples)
	}
	if st.DB.LostBytes != 3*st.DB.LostSamples || st.DB.HeldBytes != 3*uint64(st.DB.HeldSamples) {
		t.Fatalf("bytes: held %d lost %d", st.DB.HeldBytes, st.DB.LostBytes)
	}
	want += st.DB.HeldBytes
	if n := logs.count("database writes failing"); n != 1 {
		t.Errorf("%d 'failing' log lines for one outage, want 1:\n%s", n, logs.b.String())
	}
	if n := logs.count("database backlog full"); n != 1 {
		t.Errorf("%d 'backlog full' lines, want 1", n)
	}
	sink.fail = false
	for i := 0; i < 20 && c.Status().DB.HeldSamples > 0; i++ {
		c.flush(context.Background(), false, time.Time{})
	}
	st = c.Status()
	if tx, _, _ := sink.totals(); tx != want || st.DB.State != "ok" || st.DB.HeldBytes != 0 {
		t.Fatalf("after recovery wrote %d, want %d; %+v", tx, want, st.DB)
	}
	if logs.count("database writes resumed") != 1 || !st.LastFlush.After(okFlush) {
		t.Errorf("resume not logged once or last_flush not advanced:\n%s", logs.b.String())
	}
}

// While failing, each interval tries one piece of at most PieceSamples rows.
func TestFailingRetriesInPieces(t *testing.T) {
	c, src, sink := newTest()
	sink.fail = true
	for j := 0; j < 5*PieceSamples; j++ {
		src.add(uint32(j+1), "b", "::1", 1, bpf.DirTX, 1)
	}
	c.flush(context.Background(), false, time.Time{})
	sink.fail = false
	c.flush(context.Background(), false, time.Time{})
	if len(sink.writes) == 0 || len(sink.writes[0]) != PieceSamples {
		t.Fatalf("first write after failing: %d writes, first %d rows", len(sink.writes), len(sink.writes[0]))
	}
	if tx, _, _ := sink.totals(); tx != 5*PieceSamples {
		t.Fatalf("wrote %d", tx)
	}
}

// SIGTERM with the database refusing writes: final gives up after its
// budget and says exactly what was lost.
func TestFinalWithDiskFullIsBoundedAndExact(t *testing.T) {
	src := &fakeSource{drops: map[string]uint64{}, execs: make(chan bpf.ExecEvent)}
	sink := &fakeSink{fail: true}
	c := New(Config{Interval: time.Second, ShutdownBudget: 50 * time.Millisecond}, src, sink, procinfo.New(t0Dir))
	src.add(1, "a", "::1", 1, bpf.DirTX, 1000)
	src.add(1, "a", "::1", 1, bpf.DirRX, 234)
	err := c.final()
	if err == nil || !strings.Contains(err.Error(), "1234 bytes") || !strings.Contains(err.Error(), "tx 1000, rx 234") {
		t.Fatalf("final: %v", err)
	}
	if st := c.Status(); st.DB.LostBytes != 1234 || st.DB.HeldBytes != 0 {
		t.Fatalf("status %+v", st.DB)
	}
}

// Overflow entries are samples of their process with remote "(overflow)";
// unattributed ones of the "(unattributed)" pseudo-process; their bytes are
// counted as detail lost, and kernel causes are sorted into bytes lost and
// detail lost.
func TestOverflowKeepsBytes(t *testing.T) {
	c, src, sink := newTest()
	src.drops = map[string]uint64{"flows_map_full": 3, "overflow_map_full": 1, "no_active_map": 0}
	src.add(10, "dig", "198.18.0.1", 53, bpf.DirTX, 100)
	k := bpf.FlowKey{TGID: 10, StartNS: 10000, Proto: bpf.ProtoUDP | bpf.ProtoOverflow, Dir: bpf.DirTX, CgroupID: 1}
	copy(k.Comm[:], "dig")
	un := bpf.FlowKey{Proto: bpf.ProtoOverflow, Dir: bpf.DirRX}
	src.mu.Lock()
	src.pending = append(src.pending, flow{k, bpf.FlowVal{Bytes: 700, Calls: 7}}, flow{un, bpf.FlowVal{Bytes: 50, Calls: 1}})
	src.mu.Unlock()
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	tx, rx, rows := sink.totals()
	if tx != 800 || rx != 50 || rows != 3 {
		t.Fatalf("tx %d rx %d rows %d", tx, rx, rows)
	}
	var sawOverflow, sawUnattr bool
	for _, s := range sink.writes[0] {
		switch {
		case s.RemoteIP == OverflowRemote && s.PID == 10:
			sawOverflow = s.TxBytes == 700 && s.Protocol == "udp" && s.Comm == "dig"
		case s.Comm == UnattributedComm:
			sawUnattr = s.PID == 0 && s.RxBytes == 50 && s.RemoteIP == OverflowRemote
		}
	}
	if !sawOverflow || !sawUnattr {
		t.Fatalf("rows %+v", sink.writes[0])
	}
	st := c.Status()
	if st.DetailLost["flows_map_full"] != 3 || st.DetailLost["overflow_map_full"] != 1 ||
		st.DetailLost[DetailLostBytesRemote] != 700 || st.DetailLost[DetailLostBytesProcess] != 50 {
		t.Errorf("detail lost %v", st.DetailLost)
	}
	if _, ok := st.Drops["flows_map_full"]; ok {
		t.Errorf("flows_map_full is not a byte loss: drops %v", st.Drops)
	}
	if _, ok := st.Drops["no_active_map"]; !ok {
		t.Errorf("no_active_map loses bytes: drops %v", st.Drops)
	}
	snap := c.Snapshot()
	for _, p := range snap.Processes {
		if p.PID == 10 && (p.TxBytes != 800 || p.Remotes != 1) {
			t.Errorf("live row %+v: want tx 800, one real remote", p)
		}
	}
}

// The live snapshot lists each process's connections (remote, port,
// protocol) with the interval's rates and totals since start, busiest
// first; a second interval adds to the totals and resets the rates.
func TestLiveConnections(t *testing.T) {
	c, src, _ := newTest()
	src.add(10, "curl", "198.18.0.1", 443, bpf.DirTX, 100)
	src.add(10, "curl", "198.18.0.1", 443, bpf.DirRX, 5000)
	src.add(10, "curl", "198.18.0.3", 80, bpf.DirTX, 7)
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	snap := c.Snapshot()
	if len(snap.Processes) != 1 || len(snap.Processes[0].Conns) != 2 {
		t.Fatalf("snapshot %+v", snap.Processes)
	}
	cn := snap.Processes[0].Conns
	if cn[0].RemoteIP != "198.18.0.1" || cn[0].Port != 443 || cn[0].Protocol != "tcp" || cn[0].TxBytes != 100 || cn[0].RxBytes != 5000 ||
		cn[0].RxRate <= 0 || cn[1].RemoteIP != "198.18.0.3" || cn[1].TxBytes != 7 {
		t.Fatalf("connections %+v", cn)
	}
	src.add(10, "curl", "198.18.0.3", 80, bpf.DirTX, 9)
	if err := c.flush(context.Background(), false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	cn = c.Snapshot().Processes[0].Conns
	if len(cn) != 2 || cn[0].RemoteIP != "198.18.0.3" || cn[0].TxBytes != 16 || cn[0].TxRate <= 0 || cn[1].TxRate != 0 || cn[1].RxBytes != 5000 {
		t.Fatalf("second interval %+v", cn)
	}
}

// cgSink is a fakeSink that keeps cgroup names.
type cgSink struct {
	fakeSink
	puts [][]cgroupinfo.Info
}

func (s *cgSink) PutCgroups(_ context.Context, infos []cgroupinfo.Info) error {
	s.puts = append(s.puts, append([]cgroupinfo.Info(nil), infos...))
	return nil
}

// fakeCgroups answers with whatever info holds now.
type fakeCgroups struct{ info cgroupinfo.Info }

func (f *fakeCgroups) ResolveMany(ids []uint64) map[uint64]cgroupinfo.Info {
	out := map[uint64]cgroupinfo.Info{}
	for _, id := range ids {
		if id == f.info.ID {
			out[id] = f.info
		}
	}
	return out
}

// A cgroup's names are written once, again when they change (a pod's
// Kubernetes names learned after its first bytes), and not lost when a
// bounded cache forgets them later.
func TestCgroupNamesRewrittenWhenLearned(t *testing.T) {
	const uid = "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b"
	bare := cgroupinfo.Info{ID: 1, Path: "/kubepods/pod" + uid, PodUID: uid}
	named := bare
	named.Namespace, named.Pod, named.WorkloadKind, named.WorkloadName = "shop", "web-0", "statefulset", "web"
	cg := &fakeCgroups{info: bare}
	src := &fakeSource{drops: map[string]uint64{}, execs: make(chan bpf.ExecEvent)}
	sink := &cgSink{}
	c := New(Config{Interval: time.Second, Cgroups: cg}, src, sink, procinfo.New(t0Dir))
	var seen []cgroupinfo.Info
	c.AddObserver(func(f Flush) { seen = append(seen, f.Cgroups[1]) })
	step := func(info cgroupinfo.Info) {
		t.Helper()
		cg.info = info
		src.add(10, "app", "198.18.0.1", 443, bpf.DirTX, 100)
		if err := c.flush(context.Background(), false, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	step(bare)
	step(bare)
	step(named)
	step(bare) // forgotten by the resolver: the stored names stay
	if len(sink.puts) != 2 || sink.puts[0][0] != bare || sink.puts[1][0] != named {
		t.Fatalf("PutCgroups calls %+v, want [bare] then [named]", sink.puts)
	}
	if len(seen) != 4 || seen[3].Pod != "web-0" || seen[3].Workload() != "statefulset/web" || seen[1].Pod != "" {
		t.Errorf("observers saw %+v", seen)
	}
}
