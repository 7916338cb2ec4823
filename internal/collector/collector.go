// Package collector drains the kernel's flow counters every interval,
// attaches process details, writes one transaction per flush to the store
// and keeps the live snapshot the API and metrics serve. It also feeds the
// DNS answers the kernel captured into Config.Names and persists the names
// after each write (names.go).
//
// No loss: the kernel side swaps its two flows maps on every drain (see
// internal/bpf), so increments that land while we read go to the other map
// and are picked up next time. On shutdown the programs are detached first,
// then both maps are drained and written: zero bytes lost on SIGTERM. A
// kill -9 loses at most what was drained but not yet committed (one
// interval) and never writes anything twice: a flush is one transaction,
// taken off the backlog only after its commit.
//
// When the database refuses writes (disk full, file made read-only, ...)
// the rows stay in a bounded in-memory backlog (Config.MaxBacklog samples);
// the oldest flushes beyond the bound are dropped and counted as lost
// samples and lost payload bytes (Status.DB). Writes go on at the drain
// cadence: while failing, each interval makes one attempt with one piece of
// the backlog (at most PieceSamples rows), bounded by max(interval/2, 1s);
// once writes work again the backlog is written oldest first, as much per
// interval as fits in that time. The same holds when the database is merely
// slower than the traffic (a burst of tens of thousands of new remotes a
// second): writes go in pieces of at most PieceSamples rows, each its own
// transaction, and stop for the interval once its budget is spent, so a
// big flush never stalls the next drain into a full kernel map; the excess
// waits in the backlog and is written after the burst. One log line when writes start failing,
// one when they resume; Status.LastFlush is the last successful write.
// SIGTERM writes what fits within ShutdownBudget while writes fail (twice
// that while they succeed, e.g. a huge last flush) and says exactly what was
// lost. Before each flush the store's Guard notices the file deleted or
// replaced (store/guard.go), and the WAL is checkpointed every
// store.CheckpointEvery.
//
// A full kernel map loses detail, not bytes: entries the kernel kept in its
// overflow map (bpf.FlowKey.Overflow) become samples of their process with
// the remote OverflowRemote, and bytes of no known process samples of the
// pseudo-process UnattributedComm (pid 0). Counters come in two kinds:
// Drops (events whose bytes were lost: the DB backlog bound, kernel causes
// bpf.LosesBytes says so for; and the loader's anomaly counters such as
// drain_leftover) and DetailLost (the bytes were counted, with
// less detail: kernel events plus DetailLostBytes* byte totals).
package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/dnsnames"
	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/procinfo"
	"github.com/bwtracker/bwtracker/internal/store"
)

// Source is the kernel side (internal/bpf.Tracker).
type Source interface {
	Drain(fn func(bpf.FlowKey, bpf.FlowVal)) (int, error)
	Detach(fn func(bpf.FlowKey, bpf.FlowVal)) (int, error)
	Drops() (map[string]uint64, error)
	ExecEvents() <-chan bpf.ExecEvent
	Capacity() int
	Backend() bpf.Backend
}

// Sink is the store.
type Sink interface {
	Write(ctx context.Context, ts time.Time, samples []store.Sample) error
	Size() int64
	Path() string
}

// Cgroups names the cgroups of the processes (internal/cgroupinfo.Resolver).
type Cgroups interface {
	ResolveMany(ids []uint64) map[uint64]cgroupinfo.Info
}

// Guarder is implemented by a store that can notice its file deleted or
// replaced and recover (internal/store.Store.Guard).
type Guarder interface {
	Guard(ctx context.Context) (*store.GuardEvent, error)
}

// Checkpointer is implemented by a store with a WAL to checkpoint.
type Checkpointer interface {
	Checkpoint(ctx context.Context) error
}

// PieceSamples is the most rows one write transaction takes, so a retry
// stays short and a big flush cannot hold up the drain loop.
const PieceSamples = 2000

// ShutdownBudget bounds the final write on SIGTERM while the database fails
// (twice this while writes succeed; the systemd unit's stop timeout is
// 30 s): what is not written by then is reported lost.
const ShutdownBudget = 10 * time.Second

// CgroupSink is implemented by a store that keeps cgroup names.
type CgroupSink interface {
	PutCgroups(ctx context.Context, infos []cgroupinfo.Info) error
}

// Flush is what one interval produced, for observers such as metrics.
type Flush struct {
	// Cgroups names the cgroup ids of Samples (when a resolver is set).
	Cgroups       map[uint64]cgroupinfo.Info
	Time          time.Time
	Elapsed       time.Duration // since the previous drain
	Samples       []store.Sample
	Entries       int // map entries drained
	DrainDuration time.Duration
	WriteDuration time.Duration
	WriteErr      error
	Drops         map[string]uint64 // cumulative, kernel and user space: bytes lost
	// DetailLost is cumulative too: events whose bytes were kept with less
	// detail, and the DetailLostBytes* byte totals.
	DetailLost map[string]uint64
}

// Observer is called after every flush, from the collector's goroutine.
type Observer func(Flush)

// Config configures a Collector.
type Config struct {
	Interval time.Duration
	Version  string
	Kernel   string
	Log      *slog.Logger
	// MaxBacklog bounds the samples kept in memory while the DB refuses
	// writes (0 = 1,000,000).
	MaxBacklog int
	// LiveIdle is how long a process stays in the live snapshot after its
	// last traffic (0 = 10 minutes).
	LiveIdle time.Duration
	// Cgroups, when set, names each sample's cgroup (service, container).
	Cgroups Cgroups
	// ShutdownBudget bounds the final write (0 = ShutdownBudget).
	ShutdownBudget time.Duration
	// Names, when set, receives the DNS answers a DNSSource captures and
	// its changes go to a NameSink after each write (names.go).
	Names *dnsnames.Table
}

// OverflowRemote is the remote address of bytes whose remote the kernel had
// no room to keep.
const OverflowRemote = "(overflow)"

// UnattributedComm names bytes the kernel could not attribute to a process
// (both its flows and overflow maps were full).
const UnattributedComm = "(unattributed)"

// Byte totals of DetailLost: bytes kept without their remote, and bytes
// kept without their process.
const (
	DetailLostBytesRemote  = "remote_overflow_bytes"
	DetailLostBytesProcess = "unattributed_bytes"
)

type aggKey struct {
	tgid     uint32
	startNS  uint64
	comm     string
	uid      uint32
	cgroupID uint64
	netns    uint32
	raddr    netip.Addr
	proto    uint8
	overflow bool
}

type liveKey struct {
	pid     uint32
	startNS uint64
	comm    string
}

type liveProc struct {
	ProcRate
	remotes map[netip.Addr]struct{}
	conns   map[connKey]*liveConn // bounded by maxLiveConns
	lastTx  uint64
	lastRx  uint64
}

// connKey is one connection row of the live view (live.ConnRate).
type connKey struct {
	ip    string
	port  uint16
	proto string
}

type liveConn struct {
	live.ConnRate
	lastTx, lastRx uint64
}

// maxLiveConns bounds the connections remembered per live process (the
// snapshot shows live.MaxConns of them); past it new ones are not listed.
const maxLiveConns = 256

type pending struct {
	ts      time.Time
	samples []store.Sample
	bytes   uint64 // tx + rx payload of samples
}

func sampleBytes(ss []store.Sample) uint64 {
	var n uint64
	for i := range ss {
		n += ss[i].TxBytes + ss[i].RxBytes
	}
	return n
}

// Collector is the drain loop.
type Collector struct {
	cfg   Config
	src   Source
	sink  Sink
	procs *procinfo.Resolver
	log   *slog.Logger

	observers []Observer
	backlog   []pending
	backlogN  int
	backlogB  uint64
	failing   bool      // the last write attempt failed
	lastWrite time.Time // last successful write (or nothing to write)
	lastCkpt  time.Time
	kick      chan struct{}
	// lostLogged: the backlog overflowed during this outage (logged once).
	lostLogged bool
	lastDrain  time.Time
	lastDrops  map[string]uint64
	// cgStored are cgroup ids already written to the store, with the names
	// written (names learned later, such as a pod's from internal/k8s, are
	// written again).
	cgStored map[uint64]cgroupinfo.Info

	mu        sync.Mutex
	live      map[liveKey]*liveProc
	snap      Snapshot
	status    Status
	userDrops map[string]uint64
	// detailBytes are the DetailLostBytes* totals (collector goroutine).
	detailBytes    map[string]uint64
	lastDetailLost map[string]uint64
	subs           map[chan Snapshot]struct{}
}

// New makes a collector; Run starts it.
func New(cfg Config, src Source, sink Sink, procs *procinfo.Resolver) *Collector {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 1_000_000
	}
	if cfg.ShutdownBudget <= 0 {
		cfg.ShutdownBudget = ShutdownBudget
	}
	if cfg.LiveIdle <= 0 {
		cfg.LiveIdle = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if procs == nil {
		procs = procinfo.New("")
	}
	now := time.Now()
	c := &Collector{
		cfg: cfg, src: src, sink: sink, procs: procs, log: cfg.Log,
		lastDrain:   now,
		cgStored:    map[uint64]cgroupinfo.Info{},
		live:        map[liveKey]*liveProc{},
		userDrops:   map[string]uint64{"db_backlog_overflow": 0},
		detailBytes: map[string]uint64{DetailLostBytesRemote: 0, DetailLostBytesProcess: 0},
		subs:        map[chan Snapshot]struct{}{},
		kick:        make(chan struct{}, 1),
		lastCkpt:    now,
	}
	c.snap = Snapshot{Time: now, Interval: cfg.Interval, Processes: []ProcRate{}}
	c.status = Status{
		Version: cfg.Version, Hook: string(src.Backend()), Kernel: cfg.Kernel,
		Started: now, Interval: cfg.Interval, DBPath: sink.Path(),
		MapCap: src.Capacity(), Drops: map[string]uint64{}, DetailLost: map[string]uint64{},
		DB: DBState{State: "ok"},
	}
	return c
}

// AddObserver registers a callback run after every flush. Call before Run.
func (c *Collector) AddObserver(o Observer) { c.observers = append(c.observers, o) }

// Run drains every interval until ctx is done, then detaches the programs,
// drains what is left and writes it. It returns nil after a clean stop.
func (c *Collector) Run(ctx context.Context) error {
	go func() {
		for ev := range c.src.ExecEvents() {
			c.procs.Remember(procinfo.Key{PID: ev.TGID, StartNS: ev.StartNS}, bpf.CString(ev.Filename[:]))
		}
	}()
	c.consumeDNS()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return c.final()
		case <-t.C:
			c.flush(context.Background(), false, time.Time{})
		case <-c.kick:
			c.flush(context.Background(), false, time.Time{})
			c.log.Info("flushed on request (SIGHUP); still running", "held_samples", c.backlogN)
		}
	}
}

// FlushNow asks Run to drain and write at once (SIGHUP).
func (c *Collector) FlushNow() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// final detaches, drains and writes everything, retrying a failing write
// until ShutdownBudget is spent; what is still unwritten then is lost and
// reported exactly.
func (c *Collector) final() error {
	// While writes fail, give up after ShutdownBudget; while they succeed
	// (a big last flush on a slow disk), keep writing up to twice that,
	// still inside the unit's 30 s stop timeout.
	start := time.Now()
	hard, soft := start.Add(c.cfg.ShutdownBudget), start.Add(2*c.cfg.ShutdownBudget)
	err := c.flush(context.Background(), true, hard)
	for c.backlogN > 0 {
		limit := soft
		if c.failing {
			limit = hard
		}
		if !time.Now().Before(limit) {
			break
		}
		if c.failing {
			time.Sleep(min(200*time.Millisecond, time.Until(limit)))
			if !time.Now().Before(limit) {
				break
			}
		}
		err = c.writeBacklog(context.Background(), limit)
	}
	if c.backlogN > 0 {
		var tx, rx uint64
		for _, p := range c.backlog {
			for i := range p.samples {
				tx += p.samples[i].TxBytes
				rx += p.samples[i].RxBytes
			}
		}
		c.mu.Lock()
		c.status.DB.LostSamples += uint64(c.backlogN)
		c.status.DB.LostBytes += tx + rx
		c.status.DB.HeldSamples, c.status.DB.HeldBytes = 0, 0
		c.mu.Unlock()
		c.log.Error("could not write the last counted traffic to the database before stopping; it is lost",
			"samples", c.backlogN, "tx_bytes", tx, "rx_bytes", rx, "tried_for", time.Since(start).Round(time.Millisecond), "err", err)
		if err == nil {
			err = fmt.Errorf("the database was too slow: stopped writing after %s", time.Since(start).Round(time.Millisecond))
		}
		return fmt.Errorf("%d bytes of counted traffic (tx %d, rx %d; %d samples) could not be written: %w", tx+rx, tx, rx, c.backlogN, err)
	}
	return nil
}

// writeBudget bounds one interval's writes while the database fails.
func (c *Collector) writeBudget() time.Duration {
	return max(c.cfg.Interval/2, time.Second)
}

// flush drains once (or detaches and drains everything when last) and
// writes what it can before deadline (zero: now + writeBudget).
func (c *Collector) flush(ctx context.Context, last bool, deadline time.Time) error {
	start := time.Now()
	if deadline.IsZero() {
		deadline = start.Add(c.writeBudget())
	}
	// Rows are per remote address: per-port rows would multiply the
	// database by the number of ports a process talks to. The port is kept
	// when it is the only one.
	agg := map[aggKey]*store.Sample{}
	ports := map[aggKey]uint16{}
	add := func(k bpf.FlowKey, v bpf.FlowVal) {
		ak := aggKey{tgid: k.TGID, startNS: k.StartNS, comm: bpf.CString(k.Comm[:]), uid: k.UID,
			cgroupID: k.CgroupID, netns: k.NetNS, raddr: k.Remote(), proto: k.Proto &^ bpf.ProtoOverflow, overflow: k.Overflow()}
		if ak.overflow {
			if k.TGID == 0 && ak.comm == "" {
				ak.comm = UnattributedComm
				c.detailBytes[DetailLostBytesProcess] += v.Bytes
			} else {
				c.detailBytes[DetailLostBytesRemote] += v.Bytes
			}
		}
		s := agg[ak]
		if s == nil {
			s = &store.Sample{
				ProcessKey: store.ProcessKey{PID: k.TGID, StartNS: k.StartNS, Comm: ak.comm},
				UID:        k.UID, CgroupID: k.CgroupID, NetNS: k.NetNS,
				RemotePort: k.RPort, Protocol: bpf.ProtoName(k.Proto),
			}
			ports[ak] = k.RPort
			if ak.overflow {
				s.RemoteIP = OverflowRemote
			} else if ak.raddr.IsValid() {
				s.RemoteIP = ak.raddr.String()
			}
			agg[ak] = s
		}
		if ports[ak] != k.RPort {
			// Many ports to one address (a scan, a DNS resolver, P2P):
			// one row per address, the port left out.
			s.RemotePort = 0
		}
		if k.Dir == bpf.DirTX {
			s.TxBytes += v.Bytes
			s.TxCalls += v.Calls
		} else {
			s.RxBytes += v.Bytes
			s.RxCalls += v.Calls
		}
	}
	var n int
	var err error
	if last {
		n, err = c.src.Detach(add)
	} else {
		n, err = c.src.Drain(add)
	}
	if err != nil {
		c.log.Error("draining the kernel maps", "err", err)
	}
	now := time.Now()
	elapsed := now.Sub(c.lastDrain)
	c.lastDrain = now
	drainDur := now.Sub(start)

	samples := make([]store.Sample, 0, len(agg))
	for _, s := range agg {
		in := c.procs.Lookup(procinfo.Key{PID: s.PID, StartNS: s.StartNS})
		s.Exe = in.Exe
		s.App = in.App
		if s.App == "" {
			s.App = s.Comm
		}
		if in.Cmdline != " " {
			s.Cmdline = in.Cmdline
		}
		samples = append(samples, *s)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].PID < samples[j].PID })
	cgs := c.resolveCgroups(ctx, samples)

	if len(samples) > 0 {
		p := pending{ts: now, samples: samples, bytes: sampleBytes(samples)}
		c.backlog = append(c.backlog, p)
		c.backlogN += len(samples)
		c.backlogB += p.bytes
	}
	c.trimBacklog()
	wstart := time.Now()
	werr := c.guard(ctx)
	if werr == nil {
		werr = c.writeBacklog(ctx, deadline)
	}
	if werr == nil && len(c.backlog) == 0 {
		c.lastWrite = now
	}
	if werr == nil {
		c.persistNames(ctx)
	}
	if werr == nil && !last && now.Sub(c.lastCkpt) >= store.CheckpointEvery {
		c.lastCkpt = now
		if cp, ok := c.sink.(Checkpointer); ok {
			if err := cp.Checkpoint(ctx); err != nil {
				c.log.Warn("checkpointing the WAL into the database", "err", err)
			}
		}
	}
	wdur := time.Since(wstart)
	c.mu.Lock()
	c.status.DB.HeldSamples, c.status.DB.HeldBytes = c.backlogN, c.backlogB
	c.mu.Unlock()

	drops, detail := c.drops()
	c.updateLive(now, elapsed, samples, cgs, n, werr, drops, detail)
	for _, o := range c.observers {
		o(Flush{Time: now, Elapsed: elapsed, Samples: samples, Cgroups: cgs, Entries: n,
			DrainDuration: drainDur, WriteDuration: wdur, WriteErr: werr, Drops: drops, DetailLost: detail})
	}
	return werr
}

// resolveCgroups names the cgroups seen in this flush and records new ones
// in the store (so `report --by service|container` can name them later,
// even after the cgroup is gone).
func (c *Collector) resolveCgroups(ctx context.Context, samples []store.Sample) map[uint64]cgroupinfo.Info {
	if c.cfg.Cgroups == nil || len(samples) == 0 {
		return nil
	}
	seen := map[uint64]bool{}
	var ids []uint64
	for i := range samples {
		if id := samples[i].CgroupID; id != 0 && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	infos := c.cfg.Cgroups.ResolveMany(ids)
	cs, ok := c.sink.(CgroupSink)
	if !ok {
		return infos
	}
	var fresh []cgroupinfo.Info
	for id, in := range infos {
		in.ID = id
		old, ok := c.cgStored[id]
		if ok && in.PodUID != "" && in.PodUID == old.PodUID && in.Pod == "" && old.Pod != "" {
			// The pod's names were known and are not now (forgotten
			// by a bounded cache): keep them.
			in.Namespace, in.Pod, in.ContainerName = old.Namespace, old.Pod, old.ContainerName
			in.WorkloadKind, in.WorkloadName = old.WorkloadKind, old.WorkloadName
			infos[id] = in
		}
		if !ok || old != in {
			fresh = append(fresh, in)
		}
	}
	if len(fresh) > 0 {
		if err := cs.PutCgroups(ctx, fresh); err != nil {
			c.log.Warn("recording cgroup names", "err", err)
		} else {
			for _, in := range fresh {
				c.cgStored[in.ID] = in
			}
		}
	}
	return infos
}

// trimBacklog drops the oldest pending flushes beyond MaxBacklog and
// counts them as lost (samples and payload bytes).
func (c *Collector) trimBacklog() {
	for c.backlogN > c.cfg.MaxBacklog && len(c.backlog) > 1 {
		p := c.backlog[0]
		c.backlog = c.backlog[1:]
		c.backlogN -= len(p.samples)
		c.backlogB -= p.bytes
		c.mu.Lock()
		first := !c.lostLogged
		c.lostLogged = true
		c.userDrops["db_backlog_overflow"] += uint64(len(p.samples))
		c.status.DB.LostSamples += uint64(len(p.samples))
		c.status.DB.LostBytes += p.bytes
		lost := c.status.DB.LostBytes
		c.mu.Unlock()
		if first {
			c.log.Error("database backlog full: dropping the oldest counted traffic (db.lost_bytes in /api/status counts it)",
				"bound_samples", c.cfg.MaxBacklog, "lost_bytes", lost)
		}
	}
}

// guard lets the store check its file (deleted, replaced, WAL unlinked).
func (c *Collector) guard(ctx context.Context) error {
	g, ok := c.sink.(Guarder)
	if !ok {
		return nil
	}
	ev, err := g.Guard(ctx)
	if ev != nil {
		c.mu.Lock()
		c.status.DB.FileEvents++
		c.mu.Unlock()
		c.cgStored = map[uint64]cgroupinfo.Info{} // the file may not have them
		c.log.Error("DATABASE FILE "+strings.ToUpper(ev.What)+" WHILE RUNNING", "db", c.sink.Path(), "action", ev.Msg, "err", err)
	}
	if err != nil {
		c.setFailing(err)
	}
	return err
}

// writeBacklog writes pending flushes oldest first, each in its own
// transaction, until deadline; it stops at the first failure and keeps the
// rest. Each write takes at most PieceSamples rows; while failing it makes
// one attempt, bounded by deadline.
func (c *Collector) writeBacklog(ctx context.Context, deadline time.Time) error {
	for len(c.backlog) > 0 {
		if len(c.backlog[0].samples) > PieceSamples {
			p := c.backlog[0]
			head := pending{ts: p.ts, samples: p.samples[:PieceSamples:PieceSamples]}
			tail := pending{ts: p.ts, samples: p.samples[PieceSamples:]}
			head.bytes, tail.bytes = sampleBytes(head.samples), sampleBytes(tail.samples)
			c.backlog = append([]pending{head, tail}, c.backlog[1:]...)
		}
		p := c.backlog[0]
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if c.failing {
			wctx, cancel = context.WithDeadline(ctx, deadline)
		}
		err := c.sink.Write(wctx, p.ts, p.samples)
		cancel()
		if err != nil {
			c.setFailing(err)
			return err
		}
		c.backlog = c.backlog[1:]
		c.backlogN -= len(p.samples)
		c.backlogB -= p.bytes
		c.lastWrite = time.Now()
		c.setOK()
		if time.Now().After(deadline) {
			return nil // the rest next interval: keep the drain cadence
		}
	}
	return nil
}

// setFailing records a failed write; it logs only when writes start failing.
func (c *Collector) setFailing(err error) {
	c.mu.Lock()
	c.status.FlushErrs++
	c.status.DB.State = "failing"
	c.status.DB.Error = err.Error()
	if !c.failing {
		c.status.DB.FailingSince = time.Now()
	}
	c.mu.Unlock()
	if !c.failing {
		c.failing = true
		c.log.Error("database writes failing; holding counted traffic in memory and retrying every interval",
			"db", c.sink.Path(), "held_samples", c.backlogN, "held_bytes", c.backlogB, "bound_samples", c.cfg.MaxBacklog, "err", err)
	}
}

// setOK records a successful write; it logs when writes resume.
func (c *Collector) setOK() {
	if !c.failing {
		return
	}
	c.failing = false
	c.lostLogged = false
	c.mu.Lock()
	since := c.status.DB.FailingSince
	c.status.DB.State, c.status.DB.Error, c.status.DB.FailingSince = "ok", "", time.Time{}
	lost := c.status.DB.LostBytes
	c.mu.Unlock()
	c.log.Info("database writes resumed; writing the held traffic", "db", c.sink.Path(), "failed_for", time.Since(since).Round(time.Millisecond),
		"held_samples", c.backlogN, "held_bytes", c.backlogB, "lost_bytes_so_far", lost)
}

// drops merges kernel and user-space counters, sorts them into bytes lost
// and detail lost, and logs growth once per interval.
func (c *Collector) drops() (lost, detail map[string]uint64) {
	lost, detail = map[string]uint64{}, map[string]uint64{}
	kd, err := c.src.Drops()
	if err != nil {
		c.log.Warn("reading drop counters", "err", err)
	}
	for k, v := range kd {
		if bpf.DetailOnly(k) {
			detail[k] = v
		} else {
			lost[k] = v // byte losses, and the loader's anomaly counters
		}
	}
	c.mu.Lock()
	for k, v := range c.userDrops {
		lost[k] = v
	}
	c.mu.Unlock()
	for k, v := range c.detailBytes {
		detail[k] = v
	}
	for k, v := range lost {
		if k == "db_backlog_overflow" || k == bpf.DrainLeftover {
			continue // logged by trimBacklog, once per outage; by the loader
		}
		if v > c.lastDrops[k] {
			c.log.Warn("increments dropped", "cause", k, "new", v-c.lastDrops[k], "total", v)
		}
	}
	for k, v := range detail {
		if v > c.lastDetailLost[k] {
			c.log.Warn("detail lost, bytes kept", "cause", k, "new", v-c.lastDetailLost[k], "total", v,
				"hint", "the kernel maps were full: raise --map-entries or shorten --interval for the full remote breakdown")
		}
	}
	c.lastDrops, c.lastDetailLost = lost, detail
	return lost, detail
}

func (c *Collector) updateLive(now time.Time, elapsed time.Duration, samples []store.Sample, cgs map[uint64]cgroupinfo.Info, entries int, werr error, drops, detail map[string]uint64) {
	secs := elapsed.Seconds()
	if secs <= 0 {
		secs = c.cfg.Interval.Seconds()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lp := range c.live {
		lp.lastTx, lp.lastRx = 0, 0
		for _, lc := range lp.conns {
			lc.lastTx, lc.lastRx = 0, 0
		}
	}
	var totTx, totRx uint64
	for i := range samples {
		s := &samples[i]
		k := liveKey{s.PID, s.StartNS, s.Comm}
		lp := c.live[k]
		if lp == nil {
			lp = &liveProc{ProcRate: ProcRate{PID: s.PID, StartNS: s.StartNS, Comm: s.Comm, UID: s.UID}, remotes: map[netip.Addr]struct{}{},
				conns: map[connKey]*liveConn{}}
			c.live[k] = lp
		}
		if s.Exe != "" {
			lp.Exe = s.Exe
		}
		lp.App = s.App
		lp.CgroupID = s.CgroupID
		lp.NetNS = s.NetNS
		if in, ok := cgs[s.CgroupID]; ok {
			lp.Service = in.Service
			lp.Container = in.ContainerLabel()
			lp.Namespace, lp.Pod, lp.Workload = in.Namespace, in.Pod, in.Workload()
		}
		lp.TxBytes += s.TxBytes
		lp.RxBytes += s.RxBytes
		lp.lastTx += s.TxBytes
		lp.lastRx += s.RxBytes
		lp.LastSeen = now
		if a, err := netip.ParseAddr(s.RemoteIP); err == nil && len(lp.remotes) < 4096 {
			lp.remotes[a] = struct{}{}
		}
		ck := connKey{s.RemoteIP, s.RemotePort, s.Protocol}
		lc := lp.conns[ck]
		if lc == nil && len(lp.conns) < maxLiveConns {
			lc = &liveConn{ConnRate: live.ConnRate{RemoteIP: s.RemoteIP, Port: s.RemotePort, Protocol: s.Protocol}}
			lp.conns[ck] = lc
		}
		if lc != nil && lc.RemoteName == "" {
			lc.RemoteName = c.remoteName(s.NetNS, s.RemoteIP) // names.go
		}
		if lc != nil {
			lc.TxBytes += s.TxBytes
			lc.RxBytes += s.RxBytes
			lc.lastTx += s.TxBytes
			lc.lastRx += s.RxBytes
			lc.LastSeen = now
		}
		totTx += s.TxBytes
		totRx += s.RxBytes
	}
	snap := Snapshot{Time: now, Interval: c.cfg.Interval,
		TxRate: float64(totTx) / secs, RxRate: float64(totRx) / secs,
		TxBytes: c.snap.TxBytes + totTx, RxBytes: c.snap.RxBytes + totRx}
	procs := make([]ProcRate, 0, len(c.live))
	for k, lp := range c.live {
		if now.Sub(lp.LastSeen) > c.cfg.LiveIdle {
			delete(c.live, k)
			continue
		}
		lp.TxRate = float64(lp.lastTx) / secs
		lp.RxRate = float64(lp.lastRx) / secs
		lp.Remotes = len(lp.remotes)
		lp.Conns = topConns(lp, now, secs, c.cfg.LiveIdle)
		procs = append(procs, lp.ProcRate)
	}
	sort.Slice(procs, func(i, j int) bool {
		a, b := procs[i], procs[j]
		if ra, rb := a.TxRate+a.RxRate, b.TxRate+b.RxRate; ra != rb {
			return ra > rb
		}
		if ta, tb := a.TxBytes+a.RxBytes, b.TxBytes+b.RxBytes; ta != tb {
			return ta > tb
		}
		return a.PID < b.PID
	})
	snap.Processes = procs
	c.snap = snap
	c.status.LastFlush = c.lastWrite
	c.status.MapPeak = entries
	c.status.Drops = drops
	c.status.DetailLost = detail
	for ch := range c.subs {
		select {
		case ch <- snap:
		default: // a slow subscriber misses a snapshot, never blocks us
		}
	}
}

// topConns drops lp's connections idle for longer than idle and returns
// the live.MaxConns busiest (rate, then bytes since start) with this
// interval's rates.
func topConns(lp *liveProc, now time.Time, secs float64, idle time.Duration) []live.ConnRate {
	var all []live.ConnRate
	for k, lc := range lp.conns {
		if now.Sub(lc.LastSeen) > idle {
			delete(lp.conns, k)
			continue
		}
		lc.TxRate = float64(lc.lastTx) / secs
		lc.RxRate = float64(lc.lastRx) / secs
		all = append(all, lc.ConnRate)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if ra, rb := a.TxRate+a.RxRate, b.TxRate+b.RxRate; ra != rb {
			return ra > rb
		}
		if ta, tb := a.TxBytes+a.RxBytes, b.TxBytes+b.RxBytes; ta != tb {
			return ta > tb
		}
		if a.RemoteIP != b.RemoteIP {
			return a.RemoteIP < b.RemoteIP
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Protocol < b.Protocol
	})
	if len(all) == 0 {
		return nil
	}
	return all[:min(len(all), live.MaxConns)]
}

// Snapshot is the latest live picture.
func (c *Collector) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// Subscribe delivers every new snapshot until cancel is called.
func (c *Collector) Subscribe() (<-chan Snapshot, func()) {
	ch := make(chan Snapshot, 4)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.subs, ch)
			c.mu.Unlock()
		})
	}
}

// Status describes the daemon.
func (c *Collector) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	st.Drops = map[string]uint64{}
	for k, v := range c.status.Drops {
		st.Drops[k] = v
	}
	st.DetailLost = map[string]uint64{}
	for k, v := range c.status.DetailLost {
		st.DetailLost[k] = v
	}
	st.DBSize = c.sink.Size()
	return st
}
