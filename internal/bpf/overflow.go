package bpf

import (
	"fmt"
	"unsafe"

	"github.com/aquasecurity/libbpfgo"
)

// Overflow: a flows map with no room for a new flow loses detail, not
// bytes. The kernel adds such bytes to the process's entry of the overflow
// map of the current generation (remote address and port zeroed), or when
// that is full too, to the per-CPU unattributed slot of the generation and
// direction (see ebpf/bwtracker.bpf.c). User space flips the generation
// before it swaps the flows maps: the swap waits for running programs, so
// afterwards the old generation's overflow map and slots are as quiescent
// as the old flows map, and drained the same way. Drained entries carry
// ProtoOverflow; unattributed ones have no process (TGID 0).

// setGeneration points the kernel's overflow path at generation g (0/1).
func (t *Tracker) setGeneration(g int) error {
	key, val := uint32(0), uint32(g)
	if err := t.gen.Update(unsafe.Pointer(&key), unsafe.Pointer(&val)); err != nil {
		return fmt.Errorf("flipping the overflow generation: %w", err)
	}
	return nil
}

// drainOverflow empties generation g's overflow map and unattributed slots
// (quiescent: the generation was flipped and the maps swapped since).
func (t *Tracker) drainOverflow(g int, fn func(FlowKey, FlowVal)) (int, error) {
	tag := func(k FlowKey, v FlowVal) {
		k.Proto |= ProtoOverflow
		fn(k, v)
	}
	n, err := t.drainMap(t.overflow[g], tag)
	if err != nil {
		return n, err
	}
	for dir := uint32(0); dir < 2; dir++ {
		slot := uint32(g)*2 + dir
		raw, err := t.unattr.GetValue(unsafe.Pointer(&slot))
		if err != nil {
			return n, fmt.Errorf("reading the unattributed slot: %w", err)
		}
		v, err := DecodePerCPU(raw)
		if err != nil {
			return n, err
		}
		if v.Calls == 0 && v.Bytes == 0 {
			continue
		}
		zero := make([]byte, len(raw))
		if err := t.unattr.Update(unsafe.Pointer(&slot), unsafe.Pointer(&zero[0])); err != nil {
			return n, fmt.Errorf("clearing the unattributed slot: %w", err)
		}
		fn(FlowKey{Proto: ProtoOverflow, Dir: uint8(dir)}, v)
		n++
	}
	return n, nil
}

// logMapMemory logs the kernel memory the maps take, the kernel's own
// figure beside the package formula's estimate.
func (t *Tracker) logMapMemory(ncpu int, sizes MapSizes) {
	var total uint64
	for _, m := range []*libbpfgo.BPFMap{t.flows[0], t.flows[1], t.overflow[0], t.overflow[1], t.caches[0], t.caches[1], t.unattr, t.drops} {
		b, err := mapMemlock(m)
		if err != nil {
			t.log.Debug("map memory", "map", m.Name(), "err", err)
			continue
		}
		total += b
	}
	t.memBytes = total
	t.log.Info("kernel maps", "flows_entries", sizes.Flows, "overflow_entries", sizes.Overflow, "possible_cpus", ncpu,
		"kernel_memory_bytes", total, "estimate_bytes", sizes.TotalBytes(ncpu))
}

// MapMemory is the kernel memory of the flow maps as the kernel reports it
// (0 when it could not be read).
func (t *Tracker) MapMemory() uint64 { return t.memBytes }
