// Package collector drains the kernel's flow counters every interval,
// attaches process details, writes one transaction per flush to the store
// and keeps the live snapshot the API and metrics serve.
//
// No loss: the kernel side swaps its two flows maps on every drain (see
// internal/bpf), so increments that land while we read go to the other map
// and are picked up next time. A failed DB write keeps its rows in memory
// and retries them on the next flush (bounded; overflow is counted as a
// drop). On shutdown the programs are detached first, then both maps are
// drained and written: zero bytes lost on SIGTERM.
package collector

import (
	"context"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
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
	Drops         map[string]uint64 // cumulative, kernel and user space
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
}

type aggKey struct {
	tgid     uint32
	startNS  uint64
	comm     string
	uid      uint32
	cgroupID uint64
	netns    uint32
	raddr    netip.Addr
	proto    uint8
}

type liveKey struct {
	pid     uint32
	startNS uint64
	comm    string
}

type liveProc struct {
	ProcRate
	remotes map[netip.Addr]struct{}
	lastTx  uint64
	lastRx  uint64
}

type pending struct {
	ts      time.Time
	samples []store.Sample
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
	lastDrain time.Time
	lastDrops map[string]uint64
	// cgStored are cgroup ids already written to the store.
	cgStored map[uint64]bool

	mu        sync.Mutex
	live      map[liveKey]*liveProc
	snap      Snapshot
	status    Status
	userDrops map[string]uint64
	subs      map[chan Snapshot]struct{}
}

// New makes a collector; Run starts it.
func New(cfg Config, src Source, sink Sink, procs *procinfo.Resolver) *Collector {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 1_000_000
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
		lastDrain: now,
		cgStored:  map[uint64]bool{},
		live:      map[liveKey]*liveProc{},
		userDrops: map[string]uint64{"db_backlog_overflow": 0},
		subs:      map[chan Snapshot]struct{}{},
	}
	c.snap = Snapshot{Time: now, Interval: cfg.Interval, Processes: []ProcRate{}}
	c.status = Status{
		Version: cfg.Version, Hook: string(src.Backend()), Kernel: cfg.Kernel,
		Started: now, Interval: cfg.Interval, DBPath: sink.Path(),
		MapCap: src.Capacity(), Drops: map[string]uint64{},
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
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return c.final()
		case <-t.C:
			c.flush(context.Background(), false)
		}
	}
}

func (c *Collector) final() error {
	err := c.flush(context.Background(), true)
	// Retry a failing final write a few times: this is the last chance.
	for i := 0; i < 5 && c.backlogN > 0; i++ {
		time.Sleep(store.BusyTimeout / 5)
		err = c.writeBacklog(context.Background())
	}
	if c.backlogN > 0 {
		c.log.Error("could not write the last samples to the database; they are lost", "samples", c.backlogN, "err", err)
		return err
	}
	return nil
}

// flush drains once (or detaches and drains everything when last).
func (c *Collector) flush(ctx context.Context, last bool) error {
	start := time.Now()
	// Rows are per remote address: per-port rows would multiply the
	// database by the number of ports a process talks to. The port is kept
	// when it is the only one.
	agg := map[aggKey]*store.Sample{}
	ports := map[aggKey]uint16{}
	add := func(k bpf.FlowKey, v bpf.FlowVal) {
		ak := aggKey{tgid: k.TGID, startNS: k.StartNS, comm: bpf.CString(k.Comm[:]), uid: k.UID,
			cgroupID: k.CgroupID, netns: k.NetNS, raddr: k.Remote(), proto: k.Proto}
		s := agg[ak]
		if s == nil {
			s = &store.Sample{
				ProcessKey: store.ProcessKey{PID: k.TGID, StartNS: k.StartNS, Comm: ak.comm},
				UID:        k.UID, CgroupID: k.CgroupID, NetNS: k.NetNS,
				RemotePort: k.RPort, Protocol: bpf.ProtoName(k.Proto),
			}
			ports[ak] = k.RPort
			if ak.raddr.IsValid() {
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
		if in.Cmdline != " " {
			s.Cmdline = in.Cmdline
		}
		samples = append(samples, *s)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].PID < samples[j].PID })
	cgs := c.resolveCgroups(ctx, samples)

	if len(samples) > 0 {
		c.backlog = append(c.backlog, pending{ts: now, samples: samples})
		c.backlogN += len(samples)
	}
	for c.backlogN > c.cfg.MaxBacklog && len(c.backlog) > 1 {
		c.backlogN -= len(c.backlog[0].samples)
		c.mu.Lock()
		c.userDrops["db_backlog_overflow"] += uint64(len(c.backlog[0].samples))
		c.mu.Unlock()
		c.backlog = c.backlog[1:]
	}
	wstart := time.Now()
	werr := c.writeBacklog(ctx)
	wdur := time.Since(wstart)

	drops := c.drops()
	c.updateLive(now, elapsed, samples, cgs, n, werr, drops)
	for _, o := range c.observers {
		o(Flush{Time: now, Elapsed: elapsed, Samples: samples, Cgroups: cgs, Entries: n,
			DrainDuration: drainDur, WriteDuration: wdur, WriteErr: werr, Drops: drops})
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
		if !c.cgStored[id] {
			in.ID = id
			fresh = append(fresh, in)
		}
	}
	if len(fresh) > 0 {
		if err := cs.PutCgroups(ctx, fresh); err != nil {
			c.log.Warn("recording cgroup names", "err", err)
		} else {
			for _, in := range fresh {
				c.cgStored[in.ID] = true
			}
		}
	}
	return infos
}

// writeBacklog writes pending flushes oldest first, each in its own
// transaction; it stops at the first failure and keeps the rest.
func (c *Collector) writeBacklog(ctx context.Context) error {
	for len(c.backlog) > 0 {
		p := c.backlog[0]
		if err := c.sink.Write(ctx, p.ts, p.samples); err != nil {
			c.mu.Lock()
			c.status.FlushErrs++
			c.mu.Unlock()
			c.log.Warn("database write failed; keeping the samples to retry next interval", "pending", c.backlogN, "err", err)
			return err
		}
		c.backlog = c.backlog[1:]
		c.backlogN -= len(p.samples)
	}
	return nil
}

// drops merges kernel and user-space drop counters and logs growth once
// per interval.
func (c *Collector) drops() map[string]uint64 {
	out := map[string]uint64{}
	kd, err := c.src.Drops()
	if err != nil {
		c.log.Warn("reading drop counters", "err", err)
	}
	for k, v := range kd {
		out[k] = v
	}
	c.mu.Lock()
	for k, v := range c.userDrops {
		out[k] = v
	}
	c.mu.Unlock()
	for k, v := range out {
		if v > c.lastDrops[k] {
			c.log.Warn("increments dropped", "cause", k, "new", v-c.lastDrops[k], "total", v)
		}
	}
	c.lastDrops = out
	return out
}

func (c *Collector) updateLive(now time.Time, elapsed time.Duration, samples []store.Sample, cgs map[uint64]cgroupinfo.Info, entries int, werr error, drops map[string]uint64) {
	secs := elapsed.Seconds()
	if secs <= 0 {
		secs = c.cfg.Interval.Seconds()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lp := range c.live {
		lp.lastTx, lp.lastRx = 0, 0
	}
	var totTx, totRx uint64
	for i := range samples {
		s := &samples[i]
		k := liveKey{s.PID, s.StartNS, s.Comm}
		lp := c.live[k]
		if lp == nil {
			lp = &liveProc{ProcRate: ProcRate{PID: s.PID, StartNS: s.StartNS, Comm: s.Comm, UID: s.UID}, remotes: map[netip.Addr]struct{}{}}
			c.live[k] = lp
		}
		if s.Exe != "" {
			lp.Exe = s.Exe
		}
		lp.CgroupID = s.CgroupID
		lp.NetNS = s.NetNS
		if in, ok := cgs[s.CgroupID]; ok {
			lp.Service = in.Service
			lp.Container = in.ContainerLabel()
		}
		lp.TxBytes += s.TxBytes
		lp.RxBytes += s.RxBytes
		lp.lastTx += s.TxBytes
		lp.lastRx += s.RxBytes
		lp.LastSeen = now
		if a, err := netip.ParseAddr(s.RemoteIP); err == nil && len(lp.remotes) < 4096 {
			lp.remotes[a] = struct{}{}
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
	c.status.LastFlush = now
	c.status.MapPeak = entries
	c.status.Drops = drops
	for ch := range c.subs {
		select {
		case ch <- snap:
		default: // a slow subscriber misses a snapshot, never blocks us
		}
	}
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
	st.DBSize = c.sink.Size()
	return st
}
