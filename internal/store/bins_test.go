package store

import (
	"path/filepath"
	"testing"
	"time"
)

// Binned puts each group's bytes in the bin its samples fall in, exactly.
func TestBinnedSumsPerGroupAndBin(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "b.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now().Add(-time.Hour).Truncate(5 * time.Minute)
	a := Sample{ProcessKey: ProcessKey{PID: 1, StartNS: 1, Comm: "a"}, Exe: "/bin/a", Protocol: "tcp"}
	b := Sample{ProcessKey: ProcessKey{PID: 2, StartNS: 1, Comm: "b"}, Exe: "/bin/b", Protocol: "udp"}
	put := func(off time.Duration, sm Sample, tx, rx uint64) {
		sm.TxBytes, sm.RxBytes = tx, rx
		if err := s.Write(t.Context(), start.Add(off), []Sample{sm}); err != nil {
			t.Fatal(err)
		}
	}
	put(time.Minute, a, 10, 1)         // bin 0
	put(4*time.Minute, a, 5, 0)        // bin 0
	put(11*time.Minute, b, 100, 23)    // bin 1
	put(25*time.Minute, a, 7, 0)       // bin 2
	put(31*time.Minute, a, 1000, 1000) // after the last edge: not counted
	edges := []time.Time{start, start.Add(10 * time.Minute), start.Add(20 * time.Minute), start.Add(30 * time.Minute)}
	got, err := s.Binned(t.Context(), Query{By: []string{DimExe}}, edges)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]uint64{"/bin/a": {16, 0, 7}, "/bin/b": {0, 123, 0}}
	if len(got) != len(want) {
		t.Fatalf("groups %v", got)
	}
	for k, bins := range got {
		w := want[k.Exe]
		if len(bins) != 3 || bins[0] != w[0] || bins[1] != w[1] || bins[2] != w[2] {
			t.Errorf("%s: %v, want %v", k.Exe, bins, w)
		}
		if k.TxBytes != 0 || k.RxBytes != 0 {
			t.Errorf("key carries sums: %+v", k)
		}
	}
	if _, err := s.Binned(t.Context(), Query{By: []string{DimExe}}, edges[:1]); err == nil {
		t.Error("one edge accepted")
	}
}
