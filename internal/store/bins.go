package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Binned sums each group's bytes (tx + rx) per bin between consecutive
// edges (ascending, at least two): out[key][i] is the group's traffic in
// [edges[i], edges[i+1]). The key is the group's Row with its sums and
// calls zeroed, so a Totals row of the same dimensions finds its bins
// after zeroing the same fields. It reads the tiers as Periods does;
// edges on 5-minute boundaries keep it cheap. q.Since/Until/Top are
// ignored: the edges are the window. Used for per-row sparklines.
func (s *Store) Binned(ctx context.Context, q Query, edges []time.Time) (map[Row][]uint64, error) {
	if len(edges) < 2 {
		return nil, fmt.Errorf("bins need at least two edges")
	}
	ems := make([]int64, len(edges))
	for i, e := range edges {
		ems[i] = e.UnixMilli()
		if i > 0 && ems[i] <= ems[i-1] {
			return nil, fmt.Errorf("bin edges must ascend")
		}
	}
	by, err := ValidateDims(q.By)
	if err != nil {
		return nil, err
	}
	out := map[Row][]uint64{}
	n := len(edges) - 1
	err = s.selectRows(ctx, q, selection{edges: ems, maxTier: len(Tiers) - 1, by: by, bucket: edgeGrain(ems)}, func(tb int64, r Row) {
		k := sort.Search(len(ems), func(i int) bool { return ems[i] > tb }) - 1
		if k < 0 || k >= n {
			return // a coarse bucket that starts outside the edges
		}
		total := r.Total()
		r.TxBytes, r.RxBytes, r.TxCalls, r.RxCalls = 0, 0, 0, 0
		bins := out[r]
		if bins == nil {
			bins = make([]uint64, n)
			out[r] = bins
		}
		bins[k] += total
	})
	return out, err
}
