package bpf

import "testing"

// The automatic size keeps the per-CPU maps bounded on big machines and
// leaves small ones at the full 32768 flows.
func TestSizeMapsBounded(t *testing.T) {
	for _, c := range []struct {
		ncpu      int
		wantFlows uint32
	}{{1, 32768}, {2, 32768}, {16, 32768}, {64, 16384}, {128, 8192}, {512, 2048}} {
		s := SizeMaps(c.ncpu, 0)
		total := s.TotalBytes(c.ncpu)
		t.Logf("%3d CPUs: flows %5d, overflow %4d entries, %6.1f MiB", c.ncpu, s.Flows, s.Overflow, float64(total)/(1<<20))
		if s.Flows != c.wantFlows {
			t.Errorf("%d CPUs: flows %d, want %d", c.ncpu, s.Flows, c.wantFlows)
		}
		if c.ncpu <= 128 && total > 80<<20 {
			t.Errorf("%d CPUs: %d bytes of kernel maps, want <= 80 MiB", c.ncpu, total)
		}
		if s.Overflow < 256 || s.Overflow > 4096 {
			t.Errorf("%d CPUs: overflow %d entries", c.ncpu, s.Overflow)
		}
	}
	// An explicit size is honoured.
	if s := SizeMaps(128, 64); s.Flows != 64 || s.Overflow != 256 {
		t.Errorf("explicit 64: %+v", s)
	}
}

// The formula is the kernel's (htab_map_mem_usage): a 1000-entry per-CPU
// hash with 64-byte keys and 24-byte values on 2 CPUs.
func TestPercpuHashBytes(t *testing.T) {
	if got, want := PercpuHashBytes(2, 1000, 64, 24), uint64(1000*(2*24+64+56)+1024*16); got != want {
		t.Fatalf("got %d want %d", got, want)
	}
}
