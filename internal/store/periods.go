package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Period is one row of a vnStat-style period table.
type Period struct {
	Start   time.Time
	End     time.Time
	TxBytes uint64
	RxBytes uint64
	TxCalls uint64
	RxCalls uint64
	// Top is the largest group of the query's dimensions (default: process)
	// in this period; zero when the period had no traffic.
	Top Row
}

// Total is tx + rx.
func (p Period) Total() uint64 { return p.TxBytes + p.RxBytes }

// Periods sums traffic per period between consecutive edges (ascending,
// at least two; typically local midnights or month starts) and names the
// top group in each. q.Since/Until/Top are ignored: the edges are the
// window. Each period reads the coarsest tier that fits it, so a 30-day
// daily table costs one day-tier bucket per process and day.
func (s *Store) Periods(ctx context.Context, q Query, edges []time.Time) ([]Period, error) {
	if len(edges) < 2 {
		return nil, fmt.Errorf("periods need at least two edges")
	}
	ems := make([]int64, len(edges))
	for i, e := range edges {
		ems[i] = e.UnixMilli()
		if i > 0 && ems[i] <= ems[i-1] {
			return nil, fmt.Errorf("period edges must ascend")
		}
	}
	if len(q.By) == 0 {
		q.By = []string{DimProcess}
	}
	by, err := ValidateDims(q.By)
	if err != nil {
		return nil, err
	}
	grain := edgeGrain(ems)
	out := make([]Period, len(edges)-1)
	for i := range out {
		out[i] = Period{Start: edges[i], End: edges[i+1]}
	}
	tops := make([]map[Row]*Row, len(out)) // key: row with zeroed sums
	err = s.selectRows(ctx, q, selection{edges: ems, maxTier: len(Tiers) - 1, by: by, bucket: grain}, func(tb int64, r Row) {
		k := sort.Search(len(ems), func(i int) bool { return ems[i] > tb }) - 1
		if k < 0 || k >= len(out) {
			return // a coarse bucket that starts outside the edges
		}
		p := &out[k]
		p.TxBytes += r.TxBytes
		p.RxBytes += r.RxBytes
		p.TxCalls += r.TxCalls
		p.RxCalls += r.RxCalls
		tops[k] = addGrouped(tops[k], r)
	})
	if err != nil {
		return nil, err
	}
	for k, m := range tops {
		var best *Row
		for _, g := range m {
			if best == nil || g.Total() > best.Total() || (g.Total() == best.Total() && rowLess(*g, *best)) {
				best = g
			}
		}
		if best != nil {
			out[k].Top = *best
		}
	}
	return out, nil
}

// edgeGrain is the time grain rows are grouped by before binning into
// periods: as coarse as every edge allows, so a 5-minute table over raw
// samples is still few rows.
func edgeGrain(ems []int64) int64 {
	for _, g := range []time.Duration{5 * time.Minute, time.Minute, time.Second} {
		ok := true
		for _, e := range ems {
			if e%g.Milliseconds() != 0 {
				ok = false
				break
			}
		}
		if ok {
			return g.Milliseconds()
		}
	}
	return 1
}

func rowLess(a, b Row) bool {
	if a.PID != b.PID {
		return a.PID < b.PID
	}
	if a.Comm != b.Comm {
		return a.Comm < b.Comm
	}
	if a.Exe != b.Exe {
		return a.Exe < b.Exe
	}
	if a.UID != b.UID {
		return a.UID < b.UID
	}
	if a.RemoteIP != b.RemoteIP {
		return a.RemoteIP < b.RemoteIP
	}
	if a.Protocol != b.Protocol {
		return a.Protocol < b.Protocol
	}
	if a.Service != b.Service {
		return a.Service < b.Service
	}
	if a.RemotePort != b.RemotePort {
		return a.RemotePort < b.RemotePort
	}
	if a.NetNS != b.NetNS {
		return a.NetNS < b.NetNS
	}
	if a.Container != b.Container {
		return a.Container < b.Container
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Pod != b.Pod {
		return a.Pod < b.Pod
	}
	return a.Workload < b.Workload
}

// add sums o's bytes and calls into r.
func (r *Row) add(o Row) {
	r.TxBytes += o.TxBytes
	r.RxBytes += o.RxBytes
	r.TxCalls += o.TxCalls
	r.RxCalls += o.RxCalls
}

// addGrouped adds r to its group in m, the group keyed by r with its sums
// zeroed; m is made when nil.
func addGrouped(m map[Row]*Row, r Row) map[Row]*Row {
	if m == nil {
		m = map[Row]*Row{}
	}
	key := r
	key.TxBytes, key.RxBytes, key.TxCalls, key.RxCalls = 0, 0, 0, 0
	g := m[key]
	if g == nil {
		g = &key
		m[key] = g
	}
	g.add(r)
	return m
}
