package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaintainBudget bounds how long one Maintain call keeps the (single)
// writer connection busy in total; each step is its own short transaction,
// so a flush waiting for the connection gets it between steps.
const MaintainBudget = 250 * time.Millisecond

// RollupBatch is how many samples rows one rollup transaction takes, and
// PruneBatch how many rows one delete removes. Both keep a step well under
// 100 ms on ordinary disks.
const (
	RollupBatch = 20000
	PruneBatch  = 20000
)

// VacuumPages is how many free pages one step gives back to the OS.
const VacuumPages = 2048

// MaintainResult says what one MaintainStep did.
type MaintainResult struct {
	Rolled    int64   // samples rows added to the rollup tiers
	Folded    int64   // rollup rows ranked by folding (fold.go)
	Pruned    []int64 // rows deleted per tier (index into Tiers)
	Processes int64   // process (or flow or endpoint, whichever is more) rows deleted
	Done      bool    // nothing more to roll up or prune as of now
}

// Maintain rolls raw samples up into the 1m/1h/1d tiers and prunes every
// tier to its retention, in small steps, for at most MaintainBudget. Call
// it periodically from the daemon (every 10-60 s); it catches up over
// several calls after downtime. Safe to interrupt at any point: each step
// commits its rollup rows together with the watermark that says they are
// done, so a killed or cancelled step is redone in full, never twice.
func (s *Store) Maintain(ctx context.Context, now time.Time, ret Retention) error {
	deadline := time.Now().Add(MaintainBudget)
	for {
		r, err := s.MaintainStep(ctx, now, ret, RollupBatch)
		if err != nil {
			return err
		}
		if r.Done || time.Now().After(deadline) {
			return nil
		}
	}
}

// MaintainStep does one rollup batch of up to batch rows, one prune batch
// per tier and one incremental-vacuum batch.
func (s *Store) MaintainStep(ctx context.Context, now time.Time, ret Retention, batch int) (MaintainResult, error) {
	res := MaintainResult{Pruned: make([]int64, len(Tiers))}
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.sql == nil {
		return res, &Error{Path: s.path, Op: "maintain", Err: errors.New("database closed (being reopened)")}
	}
	if s.readOnly {
		return res, &Error{Path: s.path, Op: "maintain", Err: fmt.Errorf("opened read-only")}
	}
	if err := ret.Validate(); err != nil {
		return res, err
	}
	if batch <= 0 {
		batch = RollupBatch
	}
	n, err := s.rollupBatch(ctx, int64(batch))
	if err != nil {
		return res, err
	}
	res.Rolled = n
	more := n >= int64(batch)
	f, fmore, err := s.foldTiers(ctx, now)
	if err != nil {
		return res, err
	}
	res.Folded = f
	more = more || fmore
	var pruned int64
	for i := range Tiers {
		p, err := s.pruneTier(ctx, i, now, ret.Of(i))
		if err != nil {
			return res, err
		}
		res.Pruned[i] = p
		pruned += p
		more = more || p >= PruneBatch
	}
	p, err := s.pruneProcesses(ctx, now, ret)
	if err != nil {
		return res, err
	}
	res.Processes = p
	more = more || p >= PruneBatch
	if pruned+p > 0 {
		// A no-op unless the file uses incremental auto-vacuum.
		if _, err := s.sql.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", VacuumPages)); err != nil {
			return res, s.classify("vacuum", err)
		}
	}
	res.Done = !more
	return res, nil
}

// rollupBatch adds the next samples rows (by id) to every rollup tier and
// advances the watermark, all in one transaction. Rows are taken by id, not
// by time, so samples written late (a flush retried after a DB error) are
// rolled up too; an open bucket simply gets added to again later.
func (s *Store) rollupBatch(ctx context.Context, batch int64) (int64, error) {
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.classify("begin rollup", err)
	}
	defer tx.Rollback()
	w, _, err := metaInt(ctx, tx, metaRolledID)
	if err != nil {
		return 0, s.classify("rollup", err)
	}
	var maxID int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM samples").Scan(&maxID); err != nil {
		return 0, s.classify("rollup", err)
	}
	if maxID <= w {
		return 0, nil
	}
	w2 := min(w+batch, maxID)
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM samples WHERE id > ? AND id <= ?", w, w2).Scan(&n); err != nil {
		return 0, s.classify("rollup", err)
	}
	// The flushes holding ids w+1..w2 have last_id in (w, hi].
	var hi int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(min(last_id), ?) FROM flushes WHERE last_id >= ?", maxID, w2).Scan(&hi); err != nil {
		return 0, s.classify("rollup", err)
	}
	for _, t := range Tiers[1:] {
		size := t.Size.Milliseconds()
		// remote_port and netns: the one value every sample of the row
		// had, 0 when they differ.
		q := fmt.Sprintf(`INSERT INTO %s (bucket_ms, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls, remote_port, netns)
SELECT f.ts_ms - f.ts_ms %% %d, fl.proc_id, fl.endpoint_id, fl.cgroup_id, sum(s.tx_bytes), sum(s.rx_bytes), sum(s.tx_calls), sum(s.rx_calls),
  CASE WHEN min(s.remote_port) = max(s.remote_port) THEN min(s.remote_port) ELSE 0 END,
  CASE WHEN min(fl.netns) = max(fl.netns) THEN min(fl.netns) ELSE 0 END
FROM flushes f CROSS JOIN samples s ON s.id BETWEEN f.first_id AND f.last_id JOIN flows fl ON fl.id = s.flow_id
WHERE f.last_id > ?1 AND f.last_id <= ?3 AND s.id > ?1 AND s.id <= ?2 GROUP BY 1, 2, 3, 4
ON CONFLICT (bucket_ms, proc_id, endpoint_id, cgroup_id) DO UPDATE SET
  tx_bytes = tx_bytes + excluded.tx_bytes, rx_bytes = rx_bytes + excluded.rx_bytes,
  tx_calls = tx_calls + excluded.tx_calls, rx_calls = rx_calls + excluded.rx_calls,
  remote_port = CASE WHEN remote_port = excluded.remote_port THEN remote_port ELSE 0 END,
  netns = CASE WHEN netns = excluded.netns THEN netns ELSE 0 END`, t.Table, size)
		if _, err := tx.ExecContext(ctx, q, w, w2, hi); err != nil {
			return 0, s.classify("rollup "+t.Name, err)
		}
	}
	if err := unfoldLate(ctx, tx, w, hi); err != nil {
		return 0, s.classify("rollup", err)
	}
	if err := setMetaInt(ctx, tx, metaRolledID, w2); err != nil {
		return 0, s.classify("rollup", err)
	}
	if err := rollupHook(ctx); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, s.classify("commit rollup", err)
	}
	return n, nil
}

// rollupHook runs just before a rollup commits; tests use it to be killed
// or cancelled at the worst moment.
var rollupHook = func(ctx context.Context) error { return ctx.Err() }

// cutoff is the prune boundary of tier i at now: rows (buckets) that start
// before it are deleted. Aligned to the tier's buckets (raw: to minutes) so
// no bucket younger than the retention is touched. 0 = keep forever.
func cutoff(i int, now time.Time, keep time.Duration) int64 {
	if keep <= 0 {
		return 0
	}
	size := sizeMs(i)
	if i == 0 {
		size = time.Minute.Milliseconds()
	}
	return roundDown(now.Add(-keep).UnixMilli(), size)
}

// pruneTier deletes one batch of tier i's rows older than its retention.
// The tier's availability mark moves first, so readers never use a
// half-pruned stretch. Raw rows go only once they are rolled up.
func (s *Store) pruneTier(ctx context.Context, i int, now time.Time, keep time.Duration) (int64, error) {
	c := cutoff(i, now, keep)
	if c <= 0 {
		return 0, nil
	}
	key := metaAvailPrefix + Tiers[i].Name
	old, _, err := metaInt(ctx, s.sql, key)
	if err != nil {
		return 0, s.classify("prune", err)
	}
	if c > old {
		if err := setMetaInt(ctx, s.sql, key, c); err != nil {
			return 0, s.classify("prune", err)
		}
	} else {
		c = old
	}
	var r interface{ RowsAffected() (int64, error) }
	if i == 0 {
		w, _, err := metaInt(ctx, s.sql, metaRolledID)
		if err != nil {
			return 0, s.classify("prune", err)
		}
		// Raw rows go as a prefix of ids: up to the first flush at or
		// after the cutoff, the watermark, and one batch. (A flush
		// written late, with an old time after newer ones, waits for
		// them; rows below avail.raw are never read from raw.)
		var b int64
		err = s.sql.QueryRowContext(ctx, `SELECT min(?2, coalesce((SELECT first_id - 1 FROM flushes WHERE ts_ms >= ?1 ORDER BY last_id LIMIT 1), ?2),
  coalesce((SELECT min(id) FROM samples), 0) + ?3 - 1)`, c, w, PruneBatch).Scan(&b)
		if err != nil {
			return 0, s.classify("prune raw", err)
		}
		r, err = s.sql.ExecContext(ctx, "DELETE FROM samples WHERE id <= ?", b)
		if err != nil {
			return 0, s.classify("prune raw", err)
		}
		// Flushes whose rows are all gone.
		if _, err := s.sql.ExecContext(ctx, "DELETE FROM flushes WHERE last_id <= ?", b); err != nil {
			return 0, s.classify("prune raw", err)
		}
	} else {
		t := Tiers[i].Table
		var b int64
		err := s.sql.QueryRowContext(ctx, "SELECT coalesce((SELECT bucket_ms FROM "+t+" WHERE bucket_ms < ? ORDER BY bucket_ms LIMIT 1 OFFSET ?), ?)", c, PruneBatch, c).Scan(&b)
		if err != nil {
			return 0, s.classify("prune "+Tiers[i].Name, err)
		}
		op := "<="
		if b >= c {
			op = "<"
			b = c
		}
		r, err = s.sql.ExecContext(ctx, "DELETE FROM "+t+" WHERE bucket_ms "+op+" ?", b)
		if err != nil {
			return 0, s.classify("prune "+Tiers[i].Name, err)
		}
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// pruneMarginMs is how far before a tier's cutoff a row must have been
// last seen to be pruned: last_seen_ms lags its newest use by up to
// seenLagMs, and a minute-aligned cutoff may fall inside that lag.
const pruneMarginMs = 10 * 60_000

// pruneProcesses deletes flow, endpoint and process rows that no tier can
// refer to any more, one batch each:
//   - flows are referred to by raw samples only: last seen before the raw
//     cutoff;
//   - endpoints by raw samples (through flows) and 1m rows, which both keep
//     every remote: last seen before the older of those cutoffs (and
//     before the folded tiers' fold watermarks: an unfolded bucket's rows
//     are newer than their endpoint's last_seen_ms); and by folded 1h/1d
//     rows only through the kept_*_ms marks folding sets: none, or older
//     than that tier's cutoff;
//   - processes by every tier: last seen before the oldest retained bucket
//     of every tier.
//
// A table whose tiers keep data forever is not pruned. Rows that samples
// not rolled up yet refer to are kept. Write's id caches are reset (by
// pruneGen) before anything is deleted. It returns the largest batch.
func (s *Store) pruneProcesses(ctx context.Context, now time.Time, ret Retention) (int64, error) {
	cut := make([]int64, len(Tiers))
	for i := range Tiers {
		cut[i] = cutoff(i, now, ret.Of(i))
	}
	w, _, err := metaInt(ctx, s.sql, metaRolledID)
	if err != nil {
		return 0, s.classify("prune processes", err)
	}
	// oldestOf is the oldest cutoff of the tiers, false if one keeps forever.
	oldestOf := func(tiers ...int) (int64, bool) {
		o := int64(-1)
		for _, i := range tiers {
			if cut[i] <= 0 {
				return 0, false
			}
			if o < 0 || cut[i] < o {
				o = cut[i]
			}
		}
		return o, true
	}
	type prune struct {
		table, col string // col: what samples' flows refer to it by
		cond       string
		args       []any
	}
	var todo []prune
	if c, ok := oldestOf(0); ok {
		todo = append(todo, prune{"flows", "id", "last_seen_ms < ?", []any{c - pruneMarginMs}})
	}
	var fine, coarse []int
	for i, t := range Tiers {
		if t.Keep > 0 {
			coarse = append(coarse, i)
		} else {
			fine = append(fine, i)
		}
	}
	if c, ok := oldestOf(fine...); ok {
		cond, args := "last_seen_ms < ?", []any{c - pruneMarginMs}
		for _, i := range coarse {
			f, _, err := metaInt(ctx, s.sql, foldKey(i))
			if err != nil {
				return 0, s.classify("prune endpoints", err)
			}
			args[0] = min(args[0].(int64), f-pruneMarginMs)
			if cut[i] > 0 {
				cond += " AND " + keptColumn(i) + " < ?"
				args = append(args, cut[i])
			} else {
				cond += " AND " + keptColumn(i) + " = 0"
			}
		}
		todo = append(todo, prune{"endpoints", "endpoint_id", cond, args})
	}
	all := make([]int, len(Tiers))
	for i := range all {
		all[i] = i
	}
	if c, ok := oldestOf(all...); ok {
		todo = append(todo, prune{"processes", "proc_id", "last_seen_ms < ?", []any{c - pruneMarginMs}})
	}
	var n int64
	for _, p := range todo {
		// Raw rows above the watermark (a late flush) keep what they name.
		where := p.cond + " AND id NOT IN (SELECT fl." + p.col + " FROM samples s JOIN flows fl ON fl.id = s.flow_id WHERE s.id > ?)"
		args := append(append([]any{}, p.args...), w)
		var ids []int64
		rows, err := s.sql.QueryContext(ctx, "SELECT id FROM "+p.table+" WHERE "+where+" LIMIT ?", append(args, PruneBatch)...)
		if err != nil {
			return 0, s.classify("prune "+p.table, err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, s.classify("prune "+p.table, err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, s.classify("prune "+p.table, err)
		}
		if len(ids) == 0 {
			continue
		}
		b, _ := json.Marshal(ids)
		// The writer drops its cached ids before any of them can go.
		s.pruneGen.Add(1)
		r, err := s.sql.ExecContext(ctx, "DELETE FROM "+p.table+" WHERE id IN (SELECT value FROM json_each(?)) AND "+where, append([]any{string(b)}, args...)...)
		if err != nil {
			return 0, s.classify("prune "+p.table, err)
		}
		k, _ := r.RowsAffected()
		n = max(n, k)
	}
	return n, nil
}
