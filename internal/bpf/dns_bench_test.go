package bpf

import (
	"encoding/binary"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// progTestRun runs a loaded program repeat times on data in the kernel
// (BPF_PROG_TEST_RUN) and returns its return value and the kernel's mean
// duration per run in ns.
func progTestRun(fd int, data []byte, repeat uint32) (uint32, uint32, error) {
	// union bpf_attr, test member (include/uapi/linux/bpf.h).
	var attr struct {
		progFD, retval, sizeIn, sizeOut uint32
		dataIn, dataOut                 uint64
		repeat, duration                uint32
		ctxSizeIn, ctxSizeOut           uint32
		ctxIn, ctxOut                   uint64
		flags, cpu, batch               uint32
		_                               uint32
	}
	attr.progFD = uint32(fd)
	attr.sizeIn = uint32(len(data))
	attr.dataIn = uint64(uintptr(unsafe.Pointer(&data[0])))
	attr.repeat = repeat
	const bpfProgTestRun = 10
	_, _, e := unix.Syscall(unix.SYS_BPF, bpfProgTestRun, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if e != 0 {
		return 0, 0, e
	}
	return attr.retval, attr.duration, nil
}

// packet is an Ethernet + IPv4 + UDP/TCP frame from sport with payload.
func packet(proto byte, sport uint16, payload []byte) []byte {
	l4 := 8
	if proto == 6 {
		l4 = 20
	}
	b := make([]byte, 14+20+l4+len(payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4+len(payload)))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], []byte{127, 0, 0, 53})
	copy(ip[16:], []byte{127, 0, 0, 1})
	t := ip[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], 40000)
	if proto == 6 {
		t[12] = 5 << 4
		t[13] = 0x18
	} else {
		binary.BigEndian.PutUint16(t[4:], uint16(8+len(payload)))
	}
	copy(t[l4:], payload)
	return b
}

// BenchmarkDNSIngress prints the kernel's own time per run of the DNS
// capture program (BPF_PROG_TEST_RUN, 1e5 runs per sample) for the packets
// it sees: most are not DNS (the header check only), a few are answers
// (copied to the ring buffer; without a reader it fills, so after the
// first ~500 runs this is the full-buffer path). Needs root.
func BenchmarkDNSIngress(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIPPED: needs root to load BPF programs")
	}
	t, err := Load(Options{Hook: Auto, NoAttach: true})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	p, err := t.mod.GetProgram(dnsProgs[0])
	if err != nil || t.dns.prog == "" {
		b.Fatalf("DNS program not loaded: %v (%s)", err, t.dns.state)
	}
	answer := make([]byte, 120)
	answer[2] = 0x81
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"tcp-1400B-not-dns", packet(6, 443, make([]byte, 1400))},
		{"udp-64B-not-dns", packet(17, 5000, make([]byte, 64))},
		{"udp-dns-answer-120B", packet(17, 53, answer)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var total, runs uint64
			for i := 0; i < b.N; i++ {
				ret, ns, err := progTestRun(p.FileDescriptor(), c.pkt, 100_000)
				if err != nil {
					b.Fatal(err)
				}
				if ret != 1 {
					b.Fatalf("program returned %d: it must always allow", ret)
				}
				total += uint64(ns)
				runs++
			}
			b.ReportMetric(float64(total)/float64(runs), "kernel-ns/packet")
		})
	}
}
