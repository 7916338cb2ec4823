// Package bpf loads bwtracker's BPF programs (embedded from ebpf/), picks a
// hook backend, attaches it, and drains the per-CPU flow maps without losing
// increments. It is the only package that talks to libbpf.
//
// A full flows map loses detail, not bytes: see overflow.go (the overflow
// maps and unattributed slots) and sizing.go (how big the per-CPU maps are
// and the kernel memory formula: CPUs x entries).
package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	_ "embed"

	"github.com/aquasecurity/libbpfgo"
	"golang.org/x/sys/unix"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

// bpfObject is ebpf/bwtracker.bpf.c compiled by `make` (CO-RE, BTF inside).
//
//go:embed bwtracker.bpf.o
var bpfObject []byte

// Backend is a set of hooks that count bytes.
type Backend string

// Hook backends. Auto is only a request, never a loaded backend.
const (
	Auto       Backend = "auto"
	Tracepoint Backend = "tracepoint"
	Fentry     Backend = "fentry"
)

// Programs per backend; the others get SetAutoload(false) before load.
var (
	tracepointProgs = []string{"tp_sock_send_length", "tp_sock_recv_length", "tp_tcp_rcv_space_adjust"}
	fentryProgs     = []string{"fexit_tcp_sendmsg", "fexit_tcp_recvmsg", "fentry_tcp_rcv_space_adjust", "fexit_udp_sendmsg", "fexit_udp_recvmsg", "fexit_udpv6_sendmsg", "fexit_udpv6_recvmsg"}
	cgroupProgs     = []string{"cg_sendmsg4", "cg_recvmsg4", "cg_sendmsg6", "cg_recvmsg6"}
	// tp_btf programs of both backends: exec events, the seeding of TCP
	// receive counts, the peers of unconnected ICMP/raw/AF_PACKET sockets.
	commonProgs = []string{"tp_sched_process_exec", "tp_inet_sock_set_state", "tp_fib_table_lookup", "tp_fib6_table_lookup", "tp_skb_copy_datagram_iovec"}
	// dnsProgs capture DNS answers for remote names (dns.go); optional.
	dnsProgs = []string{"cg_dns_ingress"}
)

// BTFPath is where the kernel exposes its own BTF.
const BTFPath = "/sys/kernel/btf/vmlinux"

// Probe is what the running kernel offers.
type Probe struct {
	BTF             bool // /sys/kernel/btf/vmlinux exists
	SockTracepoints bool // sock_send_length/sock_recv_length exist (>= 6.4)
	FentryTargets   bool // tcp_sendmsg etc. and bpf_get_func_ret's kernel (BTF has bpf_trace_run / fexit targets)
	BTFErr          error
}

// ProbeKernel reads the kernel's BTF to see which hooks exist. It does not
// load anything; Load reports whether loading is allowed.
func ProbeKernel() Probe {
	b, err := os.ReadFile(BTFPath)
	if err != nil {
		return Probe{BTFErr: err}
	}
	p := Probe{BTF: true}
	// Tracepoint BTF types are named btf_trace_<event>; names live in the
	// BTF string section, NUL-terminated.
	p.SockTracepoints = bytes.Contains(b, []byte("\x00btf_trace_sock_send_length\x00")) &&
		bytes.Contains(b, []byte("\x00btf_trace_sock_recv_length\x00")) &&
		bytes.Contains(b, []byte("\x00btf_trace_tcp_rcv_space_adjust\x00"))
	// bpf_get_func_arg_cnt arrived in v5.17 together with the helpers the
	// fentry programs use; its enum name is in BTF from then on.
	p.FentryTargets = bytes.Contains(b, []byte("\x00tcp_sendmsg\x00")) &&
		bytes.Contains(b, []byte("\x00tcp_rcv_space_adjust\x00")) &&
		bytes.Contains(b, []byte("\x00udpv6_recvmsg\x00")) &&
		bytes.Contains(b, []byte("BPF_FUNC_get_func_arg_cnt\x00"))
	return p
}

// Select picks the backend for a --hook request given a probe. Auto prefers
// the tracepoints (one hook for every socket family).
func Select(requested Backend, p Probe) (Backend, error) {
	if !p.BTF {
		return "", fmt.Errorf("this kernel exposes no BTF at %s (%v): bwtracker needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, Fedora and RHEL kernels have it)", BTFPath, p.BTFErr)
	}
	switch requested {
	case Auto, "":
		if p.SockTracepoints {
			return Tracepoint, nil
		}
		if p.FentryTargets {
			return Fentry, nil
		}
		return "", errors.New("this kernel has neither the sock_send_length/sock_recv_length tracepoints (Linux >= 6.4) nor the fentry targets and helpers (Linux >= 5.17): upgrade the kernel")
	case Tracepoint:
		if !p.SockTracepoints {
			return "", errors.New("--hook tracepoint: this kernel lacks the sock_send_length/sock_recv_length tracepoints (Linux >= 6.4); use --hook fentry or --hook auto")
		}
		return Tracepoint, nil
	case Fentry:
		if !p.FentryTargets {
			return "", errors.New("--hook fentry: this kernel lacks tcp_sendmsg/udpv6_recvmsg in BTF or bpf_get_func_arg_cnt (Linux >= 5.17); use --hook auto")
		}
		return Fentry, nil
	}
	return "", fmt.Errorf("--hook %q: must be auto, tracepoint or fentry", requested)
}

// Options configure Load.
type Options struct {
	Hook Backend
	// MapEntries is the capacity of each of the two flows maps (0 = sized
	// for this machine's CPUs, see SizeMaps).
	MapEntries uint32
	// SelfTGID is not counted (the daemon's own API traffic).
	SelfTGID uint32
	// CgroupRoot is the cgroup v2 mount for the sock_addr hooks ("" = find it).
	CgroupRoot string
	Log        *slog.Logger
	// NoAttach loads (and verifies) the programs without attaching them:
	// `bwtracker check` uses it.
	NoAttach bool
	// NoDNS leaves out the DNS answer capture (dns.go).
	NoDNS bool
}

// Tracker is a loaded and attached set of programs.
type Tracker struct {
	mod      *libbpfgo.Module
	backend  Backend
	links    []*libbpfgo.BPFLink
	flows    [2]*libbpfgo.BPFMap
	active   *libbpfgo.BPFMap
	caches   [2]*libbpfgo.BPFMap // per-CPU TCP flow caches, swapped with flows
	activeC  *libbpfgo.BPFMap
	cur      int // index into flows of the map the kernel writes
	drops    *libbpfgo.BPFMap
	overflow [2]*libbpfgo.BPFMap // per-process aggregates, one per generation
	unattr   *libbpfgo.BPFMap    // last-resort slots, generation*2+dir
	gen      *libbpfgo.BPFMap    // the generation the kernel writes (== cur)
	memBytes uint64
	capacity int
	rb       *libbpfgo.RingBuffer
	execRaw  chan []byte
	execCh   chan ExecEvent
	mu       sync.Mutex
	detached bool
	log      *slog.Logger
	// leftover counts entries a batched drain left behind (DrainLeftover).
	leftover atomic.Uint64
	dns      dnsCapture // dns.go
}

var loggerOnce sync.Once

func routeLibbpfLog(log *slog.Logger) {
	loggerOnce.Do(func() {
		libbpfgo.SetLoggerCbs(libbpfgo.Callbacks{
			Log: func(level int, msg string) {
				msg = strings.TrimRight(msg, "\n")
				switch level {
				case libbpfgo.LibbpfWarnLevel:
					log.Debug("libbpf", "msg", msg)
				default:
					log.Debug("libbpf", "msg", msg)
				}
			},
			LogFilters: []func(int, string) bool{},
		})
	})
}

// LoadError is a failed load with the next step for the user.
type LoadError struct {
	Backend Backend
	Err     error
	Hint    string
	load    bool // the object failed to load (not to attach)
}

func (e *LoadError) Error() string {
	s := fmt.Sprintf("loading the %s backend: %v", e.Backend, e.Err)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *LoadError) Unwrap() error { return e.Err }

func hintFor(b Backend, err error) string {
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		if os.Geteuid() != 0 {
			return "run as root (sudo) or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"
		}
		if b == Fentry {
			return "this kernel refuses fentry/fexit programs (function tracing is blocked here, e.g. by the hypervisor or lockdown); use --hook tracepoint (Linux >= 6.4) or --hook auto"
		}
		return "the kernel refused the programs even as root (lockdown=confidentiality or a security module?); see `bwtracker check`"
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH):
		return "an attach target is missing in this kernel; try another --hook or `bwtracker check`"
	case errors.Is(err, syscall.EINVAL):
		return "the kernel rejected the program; run with --debug to see the verifier log"
	}
	return ""
}

// Load opens the embedded object, enables the chosen backend's programs,
// loads and (unless NoAttach) attaches them. The DNS answer capture is
// optional: when the object does not load with it, Load loads it again
// without it and says so (DNSCapture); byte counting never depends on it.
func Load(opts Options) (*Tracker, error) {
	if opts.NoDNS {
		return load(opts, false)
	}
	t, err := load(opts, true)
	var le *LoadError
	if err == nil || !errors.As(err, &le) || !le.load {
		return t, err
	}
	t, err2 := load(opts, false)
	if err2 != nil {
		return nil, err2
	}
	t.dns.state = "does not load here (" + le.Err.Error() + "); remote names come from reverse DNS only"
	t.log.Warn("DNS answer capture does not load; remote names come from reverse DNS only (byte counting is not affected)", "err", le.Err)
	return t, nil
}

func load(opts Options, withDNS bool) (_ *Tracker, err error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	routeLibbpfLog(log)
	backend, err := Select(opts.Hook, ProbeKernel())
	if err != nil {
		return nil, err
	}
	// libbpfgo v0.7.0's NewModuleFromBufferArgs always raises RLIMIT_MEMLOCK
	// (and fails without CAP_SYS_RESOURCE); kernels >= 5.11 account BPF
	// memory to the cgroup instead. So hand libbpf the embedded object as an
	// in-memory file and skip the bump.
	fd, err := unix.MemfdCreate("bwtracker.bpf.o", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "bwtracker.bpf.o")
	defer mf.Close()
	if _, err := mf.Write(bpfObject); err != nil {
		return nil, fmt.Errorf("writing BPF object to memfd: %w", err)
	}
	mod, err := libbpfgo.NewModuleFromFileArgs(libbpfgo.NewModuleArgs{
		BPFObjPath:      fmt.Sprintf("/proc/self/fd/%d", fd),
		SkipMemlockBump: true,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the embedded BPF object: %w", err)
	}
	t := &Tracker{mod: mod, backend: backend, log: log}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := mod.InitGlobalVariable("self_tgid", opts.SelfTGID); err != nil {
		return nil, fmt.Errorf("setting self_tgid: %w", err)
	}
	ncpu, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	sizes := SizeMaps(ncpu, opts.MapEntries)
	for _, m := range []struct {
		name string
		n    uint32
	}{{"flows_a", sizes.Flows}, {"flows_b", sizes.Flows}, {"overflow_a", sizes.Overflow}, {"overflow_b", sizes.Overflow}} {
		bm, err := mod.GetMap(m.name)
		if err != nil {
			return nil, err
		}
		if err := bm.SetMaxEntries(m.n); err != nil {
			return nil, fmt.Errorf("sizing %s: %w", m.name, err)
		}
	}
	enabled := map[string]bool{}
	var want []string
	switch backend {
	case Tracepoint:
		want = tracepointProgs
	case Fentry:
		want = fentryProgs
	}
	want = append(append(append([]string{}, want...), cgroupProgs...), commonProgs...)
	if withDNS {
		want = append(want, dnsProgs...)
	}
	for _, n := range want {
		enabled[n] = true
	}
	for _, n := range append(append(append([]string{}, tracepointProgs...), fentryProgs...), dnsProgs...) {
		if enabled[n] {
			continue
		}
		p, err := mod.GetProgram(n)
		if err != nil {
			return nil, err
		}
		if err := p.SetAutoload(false); err != nil {
			return nil, fmt.Errorf("disabling %s: %w", n, err)
		}
	}
	if err := mod.BPFLoadObject(); err != nil {
		return nil, &LoadError{Backend: backend, Err: err, Hint: hintFor(backend, err), load: true}
	}
	for i, name := range []string{"flows_a", "flows_b"} {
		if t.flows[i], err = mod.GetMap(name); err != nil {
			return nil, err
		}
	}
	for i, name := range []string{"cache_a", "cache_b"} {
		if t.caches[i], err = mod.GetMap(name); err != nil {
			return nil, err
		}
	}
	if t.activeC, err = mod.GetMap("active_cache"); err != nil {
		return nil, err
	}
	t.capacity = int(t.flows[0].MaxEntries())
	if t.active, err = mod.GetMap("active_flows"); err != nil {
		return nil, err
	}
	if t.drops, err = mod.GetMap("drops"); err != nil {
		return nil, err
	}
	for i, name := range []string{"overflow_a", "overflow_b"} {
		if t.overflow[i], err = mod.GetMap(name); err != nil {
			return nil, err
		}
	}
	if t.unattr, err = mod.GetMap("unattributed"); err != nil {
		return nil, err
	}
	if t.gen, err = mod.GetMap("generation"); err != nil {
		return nil, err
	}
	t.logMapMemory(ncpu, sizes)
	if err := t.dns.loaded(mod, withDNS); err != nil {
		return nil, err
	}
	if opts.NoAttach {
		return t, nil
	}
	cgRoot := opts.CgroupRoot
	if cgRoot == "" {
		if cgRoot, err = CgroupV2Root(); err != nil {
			return nil, err
		}
	}
	for _, n := range want {
		p, err := mod.GetProgram(n)
		if err != nil {
			return nil, err
		}
		var l *libbpfgo.BPFLink
		if strings.HasPrefix(n, "cg_") {
			l, err = p.AttachCgroup(cgRoot)
		} else {
			l, err = p.AttachGeneric()
		}
		if err != nil && t.dns.optional(n, cgRoot, err, log) {
			continue
		}
		if err != nil {
			return nil, &LoadError{Backend: backend, Err: fmt.Errorf("attaching %s: %w", n, err), Hint: hintFor(backend, err)}
		}
		t.links = append(t.links, l)
	}
	t.execRaw = make(chan []byte, 4096)
	t.execCh = make(chan ExecEvent, 4096)
	if t.rb, err = mod.InitRingBuf("exec_events", t.execRaw); err != nil {
		return nil, fmt.Errorf("exec events ring buffer: %w", err)
	}
	t.rb.Poll(100)
	go func() {
		for raw := range t.execRaw {
			if ev, err := DecodeExecEvent(raw); err == nil {
				t.execCh <- ev
			}
		}
		close(t.execCh)
	}()
	if err := t.dns.start(mod, cgRoot, log); err != nil {
		return nil, err
	}
	return t, nil
}

// CgroupV2Root finds the cgroup v2 mount the UDP peer hooks attach to: the
// host's hierarchy (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified
// on hybrid ones), preferred over a pod's own cgroup namespace mount.
func CgroupV2Root() (string, error) {
	root, err := cgroupinfo.Cgroup2Mount()
	if err != nil {
		return "", fmt.Errorf("%w: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) so the UDP peer hooks can attach", err)
	}
	return root, nil
}

// Backend is the loaded backend.
func (t *Tracker) Backend() Backend { return t.backend }

// Capacity is the number of entries each flows map holds.
func (t *Tracker) Capacity() int { return t.capacity }

// ExecEvents delivers exec events (executable paths of new processes).
func (t *Tracker) ExecEvents() <-chan ExecEvent { return t.execCh }

// Swap points the kernel at the other flows map. The update of the
// map-in-map slot returns only after every BPF program that might still hold
// the old map has finished (the kernel's maybe_wait_bpf_programs()), so the
// old map is quiescent afterwards.
//
// The per-CPU flow caches are swapped the same way. A program may see the
// new cache and the old flows map, or the reverse, in between the two
// updates; every byte is in exactly one cache entry or flows entry at any
// time, and both old maps are drained only after both swaps returned.
func (t *Tracker) swap() error {
	next := 1 - t.cur
	// The overflow generation first: the two map-in-map updates below wait
	// for every program that may still have read the old one.
	if err := t.setGeneration(next); err != nil {
		return err
	}
	key := uint32(0)
	cfd := uint32(t.caches[next].FileDescriptor())
	if err := t.activeC.Update(unsafe.Pointer(&key), unsafe.Pointer(&cfd)); err != nil {
		return fmt.Errorf("swapping flow caches: %w", err)
	}
	fd := uint32(t.flows[next].FileDescriptor())
	if err := t.active.Update(unsafe.Pointer(&key), unsafe.Pointer(&fd)); err != nil {
		return fmt.Errorf("swapping flows maps: %w", err)
	}
	t.cur = next
	return nil
}

// drainCache hands the cached flows of a quiescent cache to fn and clears
// it.
func (t *Tracker) drainCache(m *libbpfgo.BPFMap, fn func(FlowKey, FlowVal)) (int, error) {
	n := 0
	for slot := uint32(0); slot < 2; slot++ {
		raw, err := m.GetValue(unsafe.Pointer(&slot))
		if err != nil {
			return n, fmt.Errorf("reading %s: %w", m.Name(), err)
		}
		entries, err := DecodeCachePerCPU(raw)
		if err != nil {
			return n, err
		}
		dirty := false
		for _, c := range entries {
			if c.Valid == 0 {
				continue
			}
			dirty = true
			if c.Calls > 0 {
				fn(c.Key, FlowVal{Bytes: c.Bytes, Calls: c.Calls})
				n++
			}
		}
		if dirty {
			zero := make([]byte, len(raw))
			if err := m.Update(unsafe.Pointer(&slot), unsafe.Pointer(&zero[0])); err != nil {
				return n, fmt.Errorf("clearing %s: %w", m.Name(), err)
			}
		}
	}
	return n, nil
}

// drainBatch is how many entries one lookup-and-delete batch syscall moves.
const drainBatch = 1024

// DrainLeftover is the anomaly counter (in Drops) of entries that a
// complete batched drain left behind in a quiescent flows map. They are
// recovered key by key, so no bytes are lost, but the counter moving means
// the kernel's batch interface did not behave as documented.
const DrainLeftover = "drain_leftover"

// drainMap reads and empties a quiescent flows map, with batched
// lookup-and-delete syscalls (one per 1024 entries) where the kernel has
// them (v5.6), else key by key. Afterwards it checks that the map really is
// empty and drains (and counts, see DrainLeftover) whatever is left.
func (t *Tracker) drainMap(m *libbpfgo.BPFMap, fn func(FlowKey, FlowVal)) (int, error) {
	n, err := t.drainMapBatch(m, fn)
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.EOPNOTSUPP) {
		return n, err
	}
	if err != nil { // no batch operations on this kernel
		rest, err := t.drainMapKeys(m, fn)
		return n + rest, err
	}
	rest, err := t.drainRest(m, n, fn)
	return n + rest, err
}

// drainRest checks that a map a batched drain emptied (batched entries) is
// really empty (one get-next-key syscall) and drains and counts what is
// left (DrainLeftover).
func (t *Tracker) drainRest(m *libbpfgo.BPFMap, batched int, fn func(FlowKey, FlowVal)) (int, error) {
	rest, err := t.drainMapKeys(m, fn)
	if rest > 0 {
		t.leftover.Add(uint64(rest))
		t.log.Warn("a batched drain left entries in the flows map; drained them key by key", "map", m.Name(), "batched", batched, "left", rest)
	}
	return rest, err
}

// drainMapBatch empties a map with lookup-and-delete batches until the
// kernel says ENOENT. A batch shorter than asked does NOT mean the map is
// empty: for hash maps the kernel (__htab_map_lookup_and_delete_batch)
// copies whole buckets and ends a batch early at a bucket boundary when the
// next bucket does not fit in the space left; only ENOENT means it walked
// past the last bucket. libbpfgo v0.7.0 returns a final batch that came
// with ENOENT as a nil error and its count, so the end is the next call's
// ENOENT with count 0. ENOSPC (one bucket larger than a whole batch) ends
// the batches too; drainMap's emptiness check then takes the rest.
func (t *Tracker) drainMapBatch(m *libbpfgo.BPFMap, fn func(FlowKey, FlowVal)) (int, error) {
	keys := make([]byte, drainBatch*flowKeySize)
	var in, out [flowKeySize]byte
	var start unsafe.Pointer
	total := 0
	// Each call moves at least one bucket; a map has at most max_entries
	// non-empty buckets, so this bound is never reached by a working kernel.
	for calls := 0; calls <= t.capacity+1; calls++ {
		vals, cnt, err := m.GetValueAndDeleteBatch(unsafe.Pointer(&keys[0]), start, unsafe.Pointer(&out[0]), drainBatch)
		if err != nil {
			if errors.Is(err, syscall.ENOENT) {
				return total, nil // walked past the last bucket
			}
			if errors.Is(err, syscall.ENOSPC) {
				return total, nil
			}
			return total, err
		}
		for i := 0; i < int(cnt); i++ {
			k, err := DecodeFlowKey(keys[i*flowKeySize : (i+1)*flowKeySize])
			if err != nil {
				return total, err
			}
			v, err := DecodePerCPU(vals[i])
			if err != nil {
				return total, err
			}
			fn(k, v)
		}
		total += int(cnt)
		in = out
		start = unsafe.Pointer(&in[0])
	}
	return total, nil
}

// drainMapKeys drains a map key by key (kernels without batch operations,
// and whatever a batched drain left behind). On an empty map it costs one
// get-next-key syscall.
func (t *Tracker) drainMapKeys(m *libbpfgo.BPFMap, fn func(FlowKey, FlowVal)) (int, error) {
	var keys [][]byte
	it := m.Iterator()
	for it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("iterating %s: %w", m.Name(), err)
	}
	for _, kb := range keys {
		raw, err := m.GetValueAndDeleteKey(unsafe.Pointer(&kb[0]))
		if err != nil {
			// lookup_and_delete on per-CPU hashes needs v5.14; fall back.
			if raw, err = m.GetValue(unsafe.Pointer(&kb[0])); err != nil {
				return 0, fmt.Errorf("reading %s: %w", m.Name(), err)
			}
			if err := m.DeleteKey(unsafe.Pointer(&kb[0])); err != nil {
				return 0, fmt.Errorf("deleting from %s: %w", m.Name(), err)
			}
		}
		k, err := DecodeFlowKey(kb)
		if err != nil {
			return 0, err
		}
		v, err := DecodePerCPU(raw)
		if err != nil {
			return 0, err
		}
		fn(k, v)
	}
	return len(keys), nil
}

// Drain swaps the maps and hands every entry of the now-quiescent one to fn
// (summed over CPUs), emptying it. It returns the number of entries.
func (t *Tracker) Drain(fn func(FlowKey, FlowVal)) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.cur
	old, oldC := t.flows[g], t.caches[g]
	if err := t.swap(); err != nil {
		return 0, err
	}
	n, err := t.drainMap(old, fn)
	if err != nil {
		return n, err
	}
	m, err := t.drainCache(oldC, fn)
	n += m
	if err != nil {
		return n, err
	}
	// After the cache: flushing a cached flow into a full flows map (only
	// the kernel does that) lands here too, in the same generation.
	m, err = t.drainOverflow(g, fn)
	return n + m, err
}

// Detach stops counting (closes all links), then drains both maps: after it
// returns every byte counted is in fn's hands. Used on shutdown.
func (t *Tracker) Detach(fn func(FlowKey, FlowVal)) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.detached {
		return 0, nil
	}
	t.detached = true
	for _, l := range t.links {
		l.Destroy()
	}
	t.links = nil
	// A swap waits for programs that were running when the links went.
	if err := t.swap(); err != nil {
		return 0, err
	}
	total := 0
	for i := 0; i < 2; i++ {
		n, err := t.drainMap(t.flows[i], fn)
		total += n
		if err != nil {
			return total, err
		}
		n, err = t.drainCache(t.caches[i], fn)
		total += n
		if err != nil {
			return total, err
		}
		n, err = t.drainOverflow(i, fn)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Drops returns the kernel's drop counters per cause, summed over CPUs.
func (t *Tracker) Drops() (map[string]uint64, error) {
	out := make(map[string]uint64, len(dropCauses))
	for i, name := range dropCauses {
		k := uint32(i)
		raw, err := t.drops.GetValue(unsafe.Pointer(&k))
		if err != nil {
			return nil, fmt.Errorf("reading drops: %w", err)
		}
		var sum uint64
		for off := 0; off+8 <= len(raw); off += 8 {
			sum += *(*uint64)(unsafe.Pointer(&raw[off]))
		}
		out[name] = sum
	}
	out[DrainLeftover] = t.leftover.Load()
	return out, nil
}

// Close detaches (without draining) and frees everything.
func (t *Tracker) Close() {
	if t == nil {
		return
	}
	for _, l := range t.links {
		l.Destroy()
	}
	t.links = nil
	if t.rb != nil {
		t.rb.Stop()
		t.rb.Close()
		t.rb = nil
	}
	t.dns.close()
	if t.mod != nil {
		t.mod.Close()
		t.mod = nil
	}
}
