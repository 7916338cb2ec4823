package store

// Folding: bounded history for huge cardinality. The raw and 1m tiers keep
// every remote; the 1h and 1d tiers (Tier.Keep > 0) keep, per bucket and
// process, the Keep remotes with the most bytes (tx+rx; ties by endpoint id)
// and sum the rest into one row per (bucket, process, protocol, cgroup)
// whose endpoint is OtherRemotes. Bytes and calls move, never change, so
// every total over any window and any dimension other than remote (and
// port) is what it was before the fold.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// OtherRemotes is the remote address of a folded row: the sum of the
// remotes a coarse tier did not keep for that process and bucket. It is
// never an address, so reports can tell (and say) that a window's remote
// breakdown was folded.
const OtherRemotes = "(other remotes)"

// FoldBatch bounds the rows one MaintainStep ranks in each folded tier
// (whole buckets: a bucket is folded in one transaction).
const FoldBatch = 50000

// foldKey is the meta key of folded tier i's watermark: its buckets that
// start before it are folded.
func foldKey(i int) string { return metaFoldPrefix + Tiers[i].Name }

// keptColumn is the endpoints column that marks references of tier i.
func keptColumn(i int) string { return "kept_" + Tiers[i].Name + "_ms" }

// foldTiers folds the complete buckets of every folded tier that are not
// folded yet, oldest first, up to about FoldBatch rows per tier. A bucket
// is complete when it ends at or before the oldest flush not rolled up yet
// (or now when all are): later rows can still arrive (a late flush), and
// rollupBatch then moves the fold watermark back so the bucket is folded
// again. It returns the rows ranked and whether more work is left.
func (s *Store) foldTiers(ctx context.Context, now time.Time) (int64, bool, error) {
	var total int64
	more := false
	for i, t := range Tiers {
		if t.Keep <= 0 {
			continue
		}
		var rows int64
		for n := 0; rows < FoldBatch; n++ {
			k, ok, err := s.foldBucket(ctx, i, now)
			if err != nil {
				return total, false, err
			}
			if !ok {
				break
			}
			rows += k + 1
			if rows >= FoldBatch {
				more = true
			}
		}
		total += rows
	}
	return total, more, nil
}

// foldBucket folds the next complete unfolded bucket of tier i and marks
// the endpoints its rows still refer to, in one transaction with the fold
// watermark. ok is false when there was no such bucket.
func (s *Store) foldBucket(ctx context.Context, i int, now time.Time) (ranked int64, ok bool, err error) {
	t := Tiers[i]
	size := t.Size.Milliseconds()
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, s.classify("begin fold", err)
	}
	defer tx.Rollback()
	fail := func(err error) (int64, bool, error) { return 0, false, s.classify("fold "+t.Name, err) }
	next, _, err := metaInt(ctx, tx, foldKey(i))
	if err != nil {
		return fail(err)
	}
	w, _, err := metaInt(ctx, tx, metaRolledID)
	if err != nil {
		return fail(err)
	}
	var complete int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(min(ts_ms), ?) FROM flushes WHERE last_id > ?", now.UnixMilli(), w).Scan(&complete); err != nil {
		return fail(err)
	}
	complete = min(complete, now.UnixMilli())
	var b sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT min(bucket_ms) FROM "+t.Table+" WHERE bucket_ms >= ?", next).Scan(&b); err != nil {
		return fail(err)
	}
	if !b.Valid || b.Int64+size > complete {
		return 0, false, nil
	}
	bucket := b.Int64
	others, err := otherIDs(ctx, tx)
	if err != nil {
		return fail(err)
	}
	// Does any process have more than Keep remotes in this bucket?
	var over, n int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(sum(c), 0), coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM "+t.Table+
		" WHERE bucket_ms = ? AND endpoint_id NOT IN (SELECT value FROM json_each(?)) GROUP BY proc_id)", bucket, others).Scan(&n, &over); err != nil {
		return fail(err)
	}
	if over > int64(t.Keep) {
		// Rebuild the bucket: its kept rows and the per-protocol sums of
		// the others into a temp table, the bucket's range deleted in key
		// order, the temp rows written back. (Deleting the folded rows one
		// by one probes the tier's B-tree per row and cost twice as much.)
		stmts := []struct {
			q    string
			args []any
		}{
			{`CREATE TEMP TABLE IF NOT EXISTS fold_rows (proc_id INTEGER, endpoint_id INTEGER, cgroup_id INTEGER, protocol TEXT,
  tx_bytes INTEGER, rx_bytes INTEGER, tx_calls INTEGER, rx_calls INTEGER, remote_port INTEGER, netns INTEGER, rn INTEGER)`, nil},
			{"DELETE FROM temp.fold_rows", nil},
			{`INSERT INTO temp.fold_rows
SELECT r.proc_id, r.endpoint_id, r.cgroup_id, e.protocol, r.tx_bytes, r.rx_bytes, r.tx_calls, r.rx_calls, r.remote_port, r.netns,
  CASE WHEN e.ip = ?3 THEN ?2 + 1 ELSE row_number() OVER (PARTITION BY r.proc_id, e.ip = ?3 ORDER BY r.tx_bytes + r.rx_bytes DESC, r.endpoint_id, r.cgroup_id) END
FROM ` + t.Table + ` r JOIN endpoints e ON e.id = r.endpoint_id WHERE r.bucket_ms = ?1`, []any{bucket, t.Keep, OtherRemotes}},
			// Folded remotes mix scopes: "unknown" (netscope.Unknown).
			{`INSERT INTO endpoints (ip, protocol, last_seen_ms, scope)
SELECT DISTINCT ?, protocol, ?, 'unknown' FROM temp.fold_rows WHERE rn > ? ON CONFLICT (ip, protocol) DO NOTHING`, []any{OtherRemotes, bucket, t.Keep}},
			{"DELETE FROM " + t.Table + " WHERE bucket_ms = ?", []any{bucket}},
			{`INSERT INTO ` + t.Table + ` (bucket_ms, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls, remote_port, netns)
SELECT ?1, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls, remote_port, netns FROM temp.fold_rows WHERE rn <= ?2
UNION ALL
SELECT ?1, v.proc_id, o.id, v.cgroup_id, sum(v.tx_bytes), sum(v.rx_bytes), sum(v.tx_calls), sum(v.rx_calls), 0,
  CASE WHEN min(v.netns) = max(v.netns) THEN min(v.netns) ELSE 0 END
FROM temp.fold_rows v JOIN endpoints o ON o.ip = ?3 AND o.protocol = v.protocol
WHERE v.rn > ?2 GROUP BY v.proc_id, o.id, v.cgroup_id
ORDER BY 2, 3, 4`, []any{bucket, t.Keep, OtherRemotes}},
			{"DELETE FROM temp.fold_rows", nil},
		}
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return fail(err)
			}
		}
	}
	// Mark what the bucket still refers to: pruning keeps these endpoints
	// as long as the bucket is kept.
	col := keptColumn(i)
	if _, err := tx.ExecContext(ctx, "UPDATE endpoints SET "+col+" = max("+col+", ?1) WHERE id IN (SELECT endpoint_id FROM "+t.Table+" WHERE bucket_ms = ?1)", bucket); err != nil {
		return fail(err)
	}
	if err := setMetaInt(ctx, tx, foldKey(i), bucket+size); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, s.classify("commit fold "+t.Name, err)
	}
	return n, true, nil
}

// otherIDs is the JSON array of the OtherRemotes endpoints' ids.
func otherIDs(ctx context.Context, q querier) (string, error) {
	rows, err := q.QueryContext(ctx, "SELECT id FROM endpoints WHERE ip = ?", OtherRemotes)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	b, err := json.Marshal(ids)
	return string(b), err
}

// unfoldLate moves the fold watermarks back to the bucket of the oldest
// flush a rollup batch adds (flushes with last_id in (w, hi]), so buckets
// that got rows after they were folded are folded (and marked) again.
func unfoldLate(ctx context.Context, tx querier, w, hi int64) error {
	var ts sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT min(ts_ms) FROM flushes WHERE last_id > ? AND last_id <= ?", w, hi).Scan(&ts); err != nil {
		return err
	}
	if !ts.Valid {
		return nil
	}
	for i, t := range Tiers {
		if t.Keep <= 0 {
			continue
		}
		done, ok, err := metaInt(ctx, tx, foldKey(i))
		if err != nil {
			return err
		}
		if b := roundDown(ts.Int64, t.Size.Milliseconds()); ok && b < done {
			if err := setMetaInt(ctx, tx, foldKey(i), b); err != nil {
				return fmt.Errorf("fold watermark: %w", err)
			}
		}
	}
	return nil
}
