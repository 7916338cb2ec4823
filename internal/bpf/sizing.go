package bpf

import (
	"bufio"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"

	"github.com/aquasecurity/libbpfgo"
)

// Map sizing. A per-CPU hash keeps one value per possible CPU for every
// entry, preallocated when it is created, so its kernel memory grows with
// CPUs x entries (kernel/bpf/hashtab.c, htab_map_mem_usage):
//
//	bytes ≈ E × (ncpu × round8(V) + round8(K) + 56) + roundpow2(E) × 16
//
// E max_entries, ncpu possible CPUs, K/V key/value size (64/24 for the
// flows and overflow maps), 56 the element header and per-CPU pointer, 16 a
// bucket. A 32768-entry flows map is ~6 MiB with 2 CPUs but ~104 MiB with
// 128, and there are two of them (plus two overflow maps). So the default
// (--map-entries 0) is the largest power of two <= 32768 that keeps the two
// flows maps within FlowsMemBudget, and the overflow maps get an eighth of
// that (256 to 4096 entries): ~56 MiB for everything on 128 CPUs, ~13 MiB on
// 2. An explicit --map-entries is honoured as given. The loader logs the
// kernel's own figure (memlock in /proc/self/fdinfo) at start.

// DefaultFlowEntries is the flows map capacity on small machines.
const DefaultFlowEntries = 32768

// FlowsMemBudget bounds the kernel memory of the two flows maps when their
// size is chosen automatically.
const FlowsMemBudget = 64 << 20

// htabEntryBytes is the formula above for one entry of a per-CPU hash.
func htabEntryBytes(ncpu, key, val int) uint64 {
	round8 := func(n int) uint64 { return uint64(n+7) &^ 7 }
	return uint64(ncpu)*round8(val) + round8(key) + 56
}

// PercpuHashBytes estimates the kernel memory of a per-CPU hash map.
func PercpuHashBytes(ncpu int, entries uint32, key, val int) uint64 {
	buckets := uint64(1)
	if entries > 1 {
		buckets = 1 << bits.Len32(entries-1)
	}
	return uint64(entries)*htabEntryBytes(ncpu, key, val) + buckets*16
}

// MapSizes is the capacity of the flows and overflow maps.
type MapSizes struct {
	Flows    uint32
	Overflow uint32
}

// SizeMaps picks the map capacities for ncpu possible CPUs; requested > 0
// fixes the flows maps' size (the overflow maps still follow it).
func SizeMaps(ncpu int, requested uint32) MapSizes {
	if ncpu < 1 {
		ncpu = 1
	}
	s := MapSizes{Flows: requested}
	if s.Flows == 0 {
		s.Flows = DefaultFlowEntries
		for s.Flows > 1024 && 2*PercpuHashBytes(ncpu, s.Flows, flowKeySize, flowValSize) > FlowsMemBudget {
			s.Flows /= 2
		}
	}
	s.Overflow = min(max(s.Flows/8, 256), 4096)
	return s
}

// TotalBytes estimates the kernel memory of both generations of flows and
// overflow maps.
func (s MapSizes) TotalBytes(ncpu int) uint64 {
	return 2*PercpuHashBytes(ncpu, s.Flows, flowKeySize, flowValSize) +
		2*PercpuHashBytes(ncpu, s.Overflow, flowKeySize, flowValSize)
}

// possibleCPUs is the number of CPUs per-CPU maps allocate for.
func possibleCPUs() (int, error) {
	n, err := libbpfgo.NumPossibleCPUs()
	if err != nil {
		return 0, fmt.Errorf("counting possible CPUs: %w", err)
	}
	return n, nil
}

// mapMemlock reads the kernel's own account of a map's memory
// (/proc/self/fdinfo/FD "memlock:", exact since Linux 6.4).
func mapMemlock(m *libbpfgo.BPFMap) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", m.FileDescriptor()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "memlock:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no memlock line in fdinfo of %s", m.Name())
}
