package bpf

// The DNS answer capture (ebpf/dns.bpf.h): an optional cgroup_skb ingress
// program at the cgroup v2 root copying answers from port 53 into the
// dns_events ring buffer. Optional all the way: when it does not load, Load
// loads the object without it; when it does not attach, the rest attaches;
// either way the daemon warns once, counts bytes as before and
// DNSCapture says why names come from reverse DNS only.

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"unsafe"

	"github.com/aquasecurity/libbpfgo"

	"github.com/bwtracker/bwtracker/internal/bpf/abi"
)

// DNSEvent is one captured answer (abi.DNSEvent).
type DNSEvent = abi.DNSEvent

type dnsCapture struct {
	prog   string // program name when loaded
	state  string // why it is not capturing ("" while it is, or before attach)
	on     bool   // attached and draining
	stats  *libbpfgo.BPFMap
	rb     *libbpfgo.RingBuffer
	raw    chan []byte
	ch     chan DNSEvent
	queued atomic.Uint64 // events dropped because the consumer lagged
}

// loaded remembers the program and counters after a successful load.
func (d *dnsCapture) loaded(mod *libbpfgo.Module, with bool) error {
	if !with {
		if d.state == "" {
			d.state = "disabled"
		}
		return nil
	}
	m, err := mod.GetMap("dns_stats")
	if err != nil {
		return err
	}
	d.stats, d.prog = m, dnsProgs[0]
	d.state = "loads (not attached)"
	return nil
}

// optional tells whether a failed attach of program n is the DNS capture's
// (then it is logged and skipped, not fatal).
func (d *dnsCapture) optional(n, cgRoot string, err error, log *slog.Logger) bool {
	if n != d.prog || d.prog == "" {
		return false
	}
	d.state = fmt.Sprintf("does not attach at %s (%v); remote names come from reverse DNS only", cgRoot, err)
	d.prog = ""
	log.Warn("DNS answer capture does not attach; remote names come from reverse DNS only (byte counting is not affected)", "cgroup", cgRoot, "err", err)
	return true
}

// start opens the ring buffer of an attached capture.
func (d *dnsCapture) start(mod *libbpfgo.Module, cgRoot string, log *slog.Logger) error {
	if d.prog == "" {
		return nil
	}
	d.raw = make(chan []byte, 1024)
	d.ch = make(chan DNSEvent, 1024)
	rb, err := mod.InitRingBuf("dns_events", d.raw)
	if err != nil {
		return fmt.Errorf("dns events ring buffer: %w", err)
	}
	d.rb = rb
	rb.Poll(100)
	go func() {
		for raw := range d.raw {
			ev, err := abi.DecodeDNSEvent(raw)
			if err != nil {
				continue
			}
			select {
			case d.ch <- ev:
			default:
				d.queued.Add(1)
			}
		}
		close(d.ch)
	}()
	d.on = true
	d.state = ""
	log.Debug("DNS answer capture attached", "program", d.prog, "cgroup", cgRoot)
	return nil
}

func (d *dnsCapture) close() {
	if d.rb != nil {
		d.rb.Stop()
		d.rb.Close()
		d.rb = nil
	}
}

// DNSCapture says whether DNS answers are captured, and if not, why
// ("disabled", "does not load here (...)", ...). After a NoAttach load it
// is false with "loads (not attached)".
func (t *Tracker) DNSCapture() (bool, string) {
	if t.dns.on {
		return true, "cgroup_skb ingress at the cgroup v2 root"
	}
	return false, t.dns.state
}

// DNSEvents delivers captured DNS answers; nil when the capture is off.
func (t *Tracker) DNSEvents() <-chan DNSEvent {
	if !t.dns.on {
		return nil
	}
	return t.dns.ch
}

// DNSStats are the capture's counters: answers copied by the kernel,
// answers lost because its ring buffer was full, and answers dropped in
// user space because the consumer lagged.
func (t *Tracker) DNSStats() (events, ringFull, queueFull uint64, err error) {
	if t.dns.stats == nil {
		return 0, 0, 0, nil
	}
	var sums [abi.DNSStatMax]uint64
	for i := range sums {
		k := uint32(i)
		raw, err := t.dns.stats.GetValue(unsafe.Pointer(&k))
		if err != nil {
			return 0, 0, 0, fmt.Errorf("reading dns_stats: %w", err)
		}
		for off := 0; off+8 <= len(raw); off += 8 {
			sums[i] += *(*uint64)(unsafe.Pointer(&raw[off]))
		}
	}
	return sums[abi.DNSStatEvents], sums[abi.DNSStatRBFull], t.dns.queued.Load(), nil
}

// DNSTCP marks a DNSEvent whose payload is TCP (abi.DNSTCP).
const DNSTCP = abi.DNSTCP
