package store

// Planning: which tier serves which stretch of a query's window, so that
// every sample is counted exactly once whatever has been rolled up or
// pruned. The plan is pure (tierState in, segments out); sqlgen.go turns
// it into SQL.

import (
	"context"
)

// tierState is what a query needs to know about the tiers, read in the
// same transaction as the data.
type tierState struct {
	exists   []bool  // rollup table present (old read-only files lack them)
	avail    []int64 // complete from this ms on
	rolledID int64   // samples rows with id > rolledID are not in any rollup
	// portCols: the rollup tables have remote_port and netns (schema 3; a
	// read-only open of an older file reads them as 0).
	portCols bool
	// lacks holds "table.column" of columns newer than the file
	// (dimension.needs): processes.app, endpoints.scope.
	lacks map[string]bool
}

func readTierState(ctx context.Context, q querier) (tierState, error) {
	st := tierState{exists: make([]bool, len(Tiers)), avail: make([]int64, len(Tiers))}
	st.exists[0] = true
	rows, err := q.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rollup_%'")
	if err != nil {
		return st, err
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return st, err
		}
		have[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	for i, t := range Tiers[1:] {
		st.exists[i+1] = have[t.Table]
	}
	for i, t := range Tiers {
		v, _, err := metaInt(ctx, q, metaAvailPrefix+t.Name)
		if err != nil {
			return st, err
		}
		st.avail[i] = v
	}
	if st.rolledID, _, err = metaInt(ctx, q, metaRolledID); err != nil {
		return st, err
	}
	st.portCols = true
	for i, t := range Tiers[1:] {
		if !st.exists[i+1] {
			continue
		}
		ok, err := hasColumn(ctx, q, t.Table, "netns")
		if err != nil {
			return st, err
		}
		st.portCols = st.portCols && ok
	}
	for _, tc := range [][2]string{{"processes", "app"}, {"endpoints", "scope"}} {
		ok, err := hasColumn(ctx, q, tc[0], tc[1])
		if err != nil {
			return st, err
		}
		if !ok {
			if st.lacks == nil {
				st.lacks = map[string]bool{}
			}
			st.lacks[tc[0]+"."+tc[1]] = true
		}
	}
	return st, nil
}

func roundDown(t, size int64) int64 {
	if size <= 1 {
		return t
	}
	r := t % size
	if r < 0 {
		r += size
	}
	return t - r
}

func roundUp(t, size int64) int64 {
	d := roundDown(t, size)
	if d == t {
		return t
	}
	return d + size
}

// segment is a piece of a query window served by one tier: raw rows with
// ts_ms in [a, b), or rollup rows whose bucket starts in [a, b).
type segment struct {
	tier int
	a, b int64
}

// plan splits [s, u) into segments: in every stretch of time, the coarsest
// tier whose buckets fit inside the window (and, for a Series, no coarser
// than maxTier) serves the middle, finer tiers the edges, down to the finest
// tier that still has data there. Where only a coarse tier is left (the
// finer ones were pruned), an edge is rounded to its buckets: a bucket
// counts when it starts inside the window. Every sample is counted once:
// where a finer tier's data begins inside a coarse bucket, the coarse
// bucket is used whole and the finer tier takes over at its end.
func (st tierState) plan(s, u int64, maxTier int) []segment {
	var out []segment
	pos := s
	for pos < u {
		var usable []int
		for i := range Tiers {
			if st.exists[i] && st.avail[i] <= pos {
				usable = append(usable, i)
			}
		}
		f := len(Tiers)
		if len(usable) > 0 {
			f = usable[0]
		}
		// The zone ends where a finer tier than f begins.
		next := u
		for i := 0; i < f; i++ {
			if st.exists[i] && st.avail[i] > pos && st.avail[i] < next {
				next = st.avail[i]
			}
		}
		if len(usable) == 0 {
			pos = next // nothing kept from that far back
			continue
		}
		if next < u {
			next = min(roundUp(next, sizeMs(f)), u)
		}
		var use []int
		for _, i := range usable {
			if i <= maxTier {
				use = append(use, i)
			}
		}
		if len(use) == 0 {
			use = usable[:1]
		}
		out = append(out, coverZone(pos, next, use)...)
		pos = next
	}
	return mergeSegments(out)
}

func coverZone(a, b int64, tiers []int) []segment {
	if a >= b {
		return nil
	}
	top := tiers[len(tiers)-1]
	if len(tiers) == 1 {
		return []segment{{top, a, b}}
	}
	size := sizeMs(top)
	ia, ib := roundUp(a, size), roundDown(b, size)
	if ia >= ib {
		return coverZone(a, b, tiers[:len(tiers)-1])
	}
	out := coverZone(a, ia, tiers[:len(tiers)-1])
	out = append(out, segment{top, ia, ib})
	return append(out, coverZone(ib, b, tiers[:len(tiers)-1])...)
}

func mergeSegments(in []segment) []segment {
	var out []segment
	for _, sg := range in {
		if n := len(out); n > 0 && out[n-1].tier == sg.tier && out[n-1].b == sg.a {
			out[n-1].b = sg.b
			continue
		}
		out = append(out, sg)
	}
	return out
}
