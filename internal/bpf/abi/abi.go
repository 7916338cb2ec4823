// Package abi is the Go mirror of ebpf/bwtracker.h: the structs the BPF
// programs write into maps and ring buffers, their sizes, the direction,
// protocol and drop-cause constants, and their decoders. It is cgo-free so
// that anything decoding or naming kernel records builds without libbpf;
// only the loader (internal/bpf) links libbpf.
package abi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Keep in step with ebpf/bwtracker.h (abi_test.go checks sizes and a
// round trip).

// Directions (BWT_DIR_*).
const (
	DirTX = 0
	DirRX = 1
)

// Protocols (BWT_PROTO_*).
const (
	ProtoOther  = 0
	ProtoTCP    = 1
	ProtoUDP    = 2
	ProtoICMP   = 3
	ProtoRaw    = 4
	ProtoPacket = 5
	ProtoMPTCP  = 6
)

// ProtoOverflow is set by the loader (never by the kernel) in FlowKey.Proto
// of entries drained from the overflow map or the unattributed slots: their
// remote address is unknown because the flows map had no room (see
// ebpf/bwtracker.h). An unattributed entry also has no process (TGID 0).
const ProtoOverflow = 0x80

// Overflow tells whether the entry is a coarse aggregate: a process's bytes
// without remote detail, or (TGID 0) bytes of no known process.
func (k *FlowKey) Overflow() bool { return k.Proto&ProtoOverflow != 0 }

// ProtoName maps BWT_PROTO_* to the names the CLI and JSON use.
func ProtoName(p uint8) string {
	switch p &^ ProtoOverflow {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoRaw:
		return "raw"
	case ProtoPacket:
		return "packet"
	case ProtoMPTCP:
		return "mptcp"
	}
	return "other"
}

// Event counters (BWT_DROP_*), indexes of the drops array.
var dropCauses = []string{
	"flows_map_full",
	"flows_map_update",
	"no_active_map",
	"peer_stash",
	"exec_event_ringbuf_full",
	"overflow_map_full",
	"unattributed_slot",
}

// bytesLostCauses are the counters whose events lost their bytes; every
// other counter lost only detail (the bytes were counted, coarser).
var bytesLostCauses = map[string]bool{"no_active_map": true, "unattributed_slot": true}

// DropCauses names the kernel-side counters in index order.
func DropCauses() []string { return append([]string(nil), dropCauses...) }

// LosesBytes tells whether a kernel counter (a DropCauses name) counts
// events whose bytes were lost, rather than only their detail.
func LosesBytes(cause string) bool { return bytesLostCauses[cause] }

// DetailOnly tells whether a counter is one of the kernel's causes that
// lost only detail (false for byte losses and for names it does not know,
// such as the loader's drain_leftover).
func DetailOnly(cause string) bool {
	if bytesLostCauses[cause] {
		return false
	}
	for _, c := range dropCauses {
		if c == cause {
			return true
		}
	}
	return false
}

// FlowKey mirrors struct flow_key (64 bytes).
type FlowKey struct {
	TGID     uint32
	UID      uint32
	StartNS  uint64
	CgroupID uint64
	RAddr    [16]byte
	RPort    uint16
	Proto    uint8
	Dir      uint8
	NetNS    uint32
	Comm     [16]byte
}

// FlowVal mirrors struct flow_val (24 bytes).
type FlowVal struct {
	Bytes uint64
	Calls uint64
	// FirstNS is the first call this interval (per CPU; DecodePerCPU keeps
	// the earliest). Nothing downstream reads it: a sample is stamped with
	// its flush's time, which the interval bounds. It stays in the layout
	// (the C struct owns it); use it before adding another timestamp.
	FirstNS uint64
}

// FlowCache mirrors struct flow_cache (136 bytes): a per-CPU cached TCP flow.
type FlowCache struct {
	Key     FlowKey
	Sk      uint64
	PIDTGID uint64
	Bytes   uint64
	Calls   uint64
	Busy    uint64
	Valid   uint64
	// Kernel addresses of the identity the key was made from (the kernel
	// compares them; Go does not read them).
	Leader  uint64
	Cred    uint64
	Cgroups uint64
}

// ExecEvent mirrors struct exec_event (288 bytes). The collector keys the
// executable path (Filename) by process (TGID, StartNS); UID and Comm are
// not read: every flow key carries both already, and a flow's Comm is the
// name at the time of the traffic, which is the one reports show.
type ExecEvent struct {
	TGID     uint32
	UID      uint32 // unused by Go (see above)
	StartNS  uint64
	Comm     [16]byte // unused by Go (see above)
	Filename [256]byte
}

const (
	FlowKeySize   = 64
	FlowValSize   = 24
	FlowCacheSize = 136
	ExecEventSize = 288
)

// CString returns a NUL-terminated kernel string as Go string.
func CString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Remote returns the remote address (IPv4 unmapped), invalid when unknown.
func (k *FlowKey) Remote() netip.Addr {
	var zero [16]byte
	if k.RAddr == zero {
		return netip.Addr{}
	}
	return netip.AddrFrom16(k.RAddr).Unmap()
}

// DecodeFlowKey decodes a raw map key. Field by field (no reflection): the
// drain decodes every map entry, and binary.Decode's reflection was a
// visible share of the daemon's CPU at tens of thousands of flows.
func DecodeFlowKey(b []byte) (FlowKey, error) {
	var k FlowKey
	if len(b) != FlowKeySize {
		return k, fmt.Errorf("flow key: %d bytes, want %d", len(b), FlowKeySize)
	}
	ne := binary.NativeEndian
	k.TGID = ne.Uint32(b[0:])
	k.UID = ne.Uint32(b[4:])
	k.StartNS = ne.Uint64(b[8:])
	k.CgroupID = ne.Uint64(b[16:])
	copy(k.RAddr[:], b[24:40])
	k.RPort = ne.Uint16(b[40:])
	k.Proto = b[42]
	k.Dir = b[43]
	k.NetNS = ne.Uint32(b[44:])
	copy(k.Comm[:], b[48:64])
	return k, nil
}

// DecodePerCPU sums a per-CPU flow_val array.
func DecodePerCPU(b []byte) (FlowVal, error) {
	var sum FlowVal
	if len(b)%FlowValSize != 0 {
		return sum, fmt.Errorf("per-CPU flow value: %d bytes is not a multiple of %d", len(b), FlowValSize)
	}
	ne := binary.NativeEndian
	for off := 0; off < len(b); off += FlowValSize {
		sum.Bytes += ne.Uint64(b[off:])
		sum.Calls += ne.Uint64(b[off+8:])
		if first := ne.Uint64(b[off+16:]); first != 0 && (sum.FirstNS == 0 || first < sum.FirstNS) {
			sum.FirstNS = first
		}
	}
	return sum, nil
}

// DecodeCachePerCPU decodes the per-CPU flow_cache values of one slot.
func DecodeCachePerCPU(b []byte) ([]FlowCache, error) {
	if len(b)%FlowCacheSize != 0 {
		return nil, fmt.Errorf("per-CPU flow cache: %d bytes is not a multiple of %d", len(b), FlowCacheSize)
	}
	out := make([]FlowCache, 0, len(b)/FlowCacheSize)
	for off := 0; off < len(b); off += FlowCacheSize {
		var c FlowCache
		if _, err := binary.Decode(b[off:off+FlowCacheSize], binary.NativeEndian, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// DecodeExecEvent decodes a ring buffer record.
func DecodeExecEvent(b []byte) (ExecEvent, error) {
	var e ExecEvent
	if len(b) < ExecEventSize {
		return e, fmt.Errorf("exec event: %d bytes, want %d", len(b), ExecEventSize)
	}
	_, err := binary.Decode(b[:ExecEventSize], binary.NativeEndian, &e)
	return e, err
}
