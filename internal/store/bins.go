package store

import (
	"context"
	"time"
)

// Binned is PeriodGroups keyed by group: out[key][i] is the group's
// traffic (tx + rx) in [edges[i], edges[i+1]). The key is the group's Row
// with its sums and calls zeroed, so a Totals row of the same dimensions
// finds its bins after zeroing the same fields. Edges on 5-minute
// boundaries keep it cheap. Used for per-row sparklines (report --graph).
func (s *Store) Binned(ctx context.Context, q Query, edges []time.Time) (map[Row][]uint64, error) {
	groups, err := s.PeriodGroups(ctx, q, edges)
	if err != nil {
		return nil, err
	}
	out := map[Row][]uint64{}
	for i, rows := range groups {
		for _, r := range rows {
			total := r.Total()
			r.TxBytes, r.RxBytes, r.TxCalls, r.RxCalls = 0, 0, 0, 0
			bins := out[r]
			if bins == nil {
				bins = make([]uint64, len(groups))
				out[r] = bins
			}
			bins[i] += total
		}
	}
	return out, nil
}
