package store

import (
	"context"
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
		q := fmt.Sprintf(`INSERT INTO %s (bucket_ms, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls)
SELECT f.ts_ms - f.ts_ms %% %d, fl.proc_id, fl.endpoint_id, fl.cgroup_id, sum(s.tx_bytes), sum(s.rx_bytes), sum(s.tx_calls), sum(s.rx_calls)
FROM flushes f CROSS JOIN samples s ON s.id BETWEEN f.first_id AND f.last_id JOIN flows fl ON fl.id = s.flow_id
WHERE f.last_id > ?1 AND f.last_id <= ?3 AND s.id > ?1 AND s.id <= ?2 GROUP BY 1, 2, 3, 4
ON CONFLICT (bucket_ms, proc_id, endpoint_id, cgroup_id) DO UPDATE SET
  tx_bytes = tx_bytes + excluded.tx_bytes, rx_bytes = rx_bytes + excluded.rx_bytes,
  tx_calls = tx_calls + excluded.tx_calls, rx_calls = rx_calls + excluded.rx_calls`, t.Table, size)
		if _, err := tx.ExecContext(ctx, q, w, w2, hi); err != nil {
			return 0, s.classify("rollup "+t.Name, err)
		}
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

// pruneProcesses deletes flow, process and endpoint rows that no tier can
// refer to any more: last seen before the oldest retained bucket of every tier,
// and without raw samples. Nothing is deleted while any tier keeps data
// forever. It returns the larger of the two batches' row counts.
func (s *Store) pruneProcesses(ctx context.Context, now time.Time, ret Retention) (int64, error) {
	oldest := int64(-1)
	for i := range Tiers {
		c := cutoff(i, now, ret.Of(i))
		if c <= 0 {
			return 0, nil
		}
		if oldest < 0 || c < oldest {
			oldest = c
		}
	}
	// Write caches process ids of the rows it wrote through this Store, and
	// every such row has last_seen_ms >= the time the Store was opened:
	// older rows are safe to delete, newer ones wait for a restart.
	if t := s.openedMs.Load(); t != 0 {
		oldest = min(oldest, t)
	}
	// Raw rows at or below the watermark that could still name such a
	// process are older than the raw cutoff: never read again, and pruned.
	// Rows above it (a late flush) keep their process.
	w, _, err := metaInt(ctx, s.sql, metaRolledID)
	if err != nil {
		return 0, s.classify("prune processes", err)
	}
	var n int64
	for _, t := range []struct{ table, col string }{{"flows", "id"}, {"processes", "proc_id"}, {"endpoints", "endpoint_id"}} {
		r, err := s.sql.ExecContext(ctx, `DELETE FROM `+t.table+` WHERE id IN (
  SELECT id FROM `+t.table+` WHERE last_seen_ms < ?
    AND id NOT IN (SELECT fl.`+t.col+` FROM samples s JOIN flows fl ON fl.id = s.flow_id WHERE s.id > ?)
  LIMIT ?)`, oldest, w, PruneBatch)
		if err != nil {
			return 0, s.classify("prune "+t.table, err)
		}
		k, _ := r.RowsAffected()
		n = max(n, k)
	}
	return n, nil
}
