package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// PeriodGroups sums traffic per period between consecutive edges (as
// Periods) and per group of q.By, in one read: out[i] are period i's
// groups, largest first. The dashboard's day/month bar chart per app
// (/api/periods) reads it; 30 days of day-tier rows cost one query, not
// one per day.
func (s *Store) PeriodGroups(ctx context.Context, q Query, edges []time.Time) ([][]Row, error) {
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
	by, err := ValidateDims(q.By)
	if err != nil {
		return nil, err
	}
	grain := edgeGrain(ems)                      // as Periods
	groups := make([]map[Row]*Row, len(edges)-1) // key: row with zeroed sums
	err = s.selectRows(ctx, q, selection{edges: ems, maxTier: len(Tiers) - 1, by: by, bucket: grain}, func(tb int64, r Row) {
		k := sort.Search(len(ems), func(i int) bool { return ems[i] > tb }) - 1
		if k < 0 || k >= len(groups) {
			return
		}
		groups[k] = addGrouped(groups[k], r)
	})
	if err != nil {
		return nil, err
	}
	out := make([][]Row, len(groups))
	for k, m := range groups {
		for _, g := range m {
			out[k] = append(out[k], *g)
		}
		sort.Slice(out[k], func(i, j int) bool {
			a, b := out[k][i], out[k][j]
			if a.Total() != b.Total() {
				return a.Total() > b.Total()
			}
			return rowLess(a, b)
		})
	}
	return out, nil
}
