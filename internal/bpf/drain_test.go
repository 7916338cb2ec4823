package bpf

import (
	"encoding/binary"
	"fmt"
	"testing"
	"unsafe"

	"github.com/aquasecurity/libbpfgo"

	"github.com/bwtracker/bwtracker/internal/bpf/abi"
)

// fillFlows puts n distinct flows (one per remote address, 200 bytes each on
// CPU 0) into the quiescent flows map m.
func fillFlows(t *testing.T, m *libbpfgo.BPFMap, n int) {
	t.Helper()
	ncpu, err := libbpfgo.NumPossibleCPUs()
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, abi.FlowValSize*ncpu)
	binary.NativeEndian.PutUint64(val[0:], 200) // bytes
	binary.NativeEndian.PutUint64(val[8:], 1)   // calls
	for i := 0; i < n; i++ {
		k := FlowKey{TGID: 4242, StartNS: 1, Proto: abi.ProtoUDP, Dir: DirTX}
		k.RAddr[10], k.RAddr[11] = 0xff, 0xff
		k.RAddr[12], k.RAddr[13], k.RAddr[14], k.RAddr[15] = 127, 100+byte(i>>16), byte(i>>8), byte(i)
		kb, err := binary.Append(nil, binary.NativeEndian, &k)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Update(unsafe.Pointer(&kb[0]), unsafe.Pointer(&val[0])); err != nil {
			t.Fatalf("filling entry %d of %s: %v", i, m.Name(), err)
		}
	}
}

func mapEmpty(t *testing.T, m *libbpfgo.BPFMap) bool {
	t.Helper()
	it := m.Iterator()
	return !it.Next() && it.Err() == nil
}

// A quiescent flows map with far more entries than one batch (1024) is
// emptied completely: a batch shorter than asked ends at a bucket boundary,
// not at the end of the map. The old loop stopped at the first short batch.
func TestDrainMapReadsUntilENOENT(t *testing.T) {
	requireRoot(t)
	for _, n := range []int{1000, 20_000, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			tr, err := Load(Options{Hook: Auto, NoAttach: true, MapEntries: 131072})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			m := tr.flows[1] // not the one active_flows points at
			fillFlows(t, m, n)
			seen := map[[16]byte]uint64{}
			var bytes uint64
			got, err := tr.drainMapBatch(m, func(k FlowKey, v FlowVal) {
				seen[k.RAddr] += v.Bytes
				bytes += v.Bytes
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != n || len(seen) != n || bytes != uint64(n)*200 {
				t.Fatalf("batched drain: %d entries, %d remotes, %d bytes; want %d, %d, %d", got, len(seen), bytes, n, n, n*200)
			}
			if !mapEmpty(t, m) {
				t.Fatal("map not empty after the batched drain")
			}
			if d, _ := tr.Drops(); d[DrainLeftover] != 0 {
				t.Fatalf("%s = %d", DrainLeftover, d[DrainLeftover])
			}
		})
	}
}

// Whatever a drain finds left after the batches is drained key by key and
// counted: drainMap's emptiness check, exercised on its own.
func TestDrainLeftoverIsRecoveredAndCounted(t *testing.T) {
	requireRoot(t)
	tr, err := Load(Options{Hook: Auto, NoAttach: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	m := tr.flows[1]
	fillFlows(t, m, 3000)
	var bytes uint64
	n, err := tr.drainRest(m, 0, func(_ FlowKey, v FlowVal) { bytes += v.Bytes })
	if err != nil {
		t.Fatal(err)
	}
	if n != 3000 || bytes != 3000*200 || !mapEmpty(t, m) {
		t.Fatalf("recovered %d entries, %d bytes (map empty: %v); want 3000, %d", n, bytes, mapEmpty(t, m), 3000*200)
	}
	d, err := tr.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if d[DrainLeftover] != 3000 {
		t.Fatalf("%s = %d, want 3000", DrainLeftover, d[DrainLeftover])
	}
	// An empty map costs one look and counts nothing.
	if n, err := tr.drainRest(m, 0, func(FlowKey, FlowVal) {}); n != 0 || err != nil {
		t.Fatalf("empty map: %d, %v", n, err)
	}
	if d, _ := tr.Drops(); d[DrainLeftover] != 3000 {
		t.Fatalf("%s moved on an empty map: %d", DrainLeftover, d[DrainLeftover])
	}
}
