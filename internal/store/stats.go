package store

import (
	"context"
	"database/sql"
	"time"
)

// TierStats describes one tier's rows.
type TierStats struct {
	Name      string        `json:"tier"`
	Table     string        `json:"table"`
	Bucket    time.Duration `json:"-"`
	BucketSec int64         `json:"bucket_seconds"` // 0 = one row per interval
	Rows      int64         `json:"rows"`
	Bytes     int64         `json:"bytes"`            // table + its indexes; -1 if unknown
	Oldest    *time.Time    `json:"oldest,omitempty"` // first sample or bucket start
	Newest    *time.Time    `json:"newest,omitempty"`
	AvailFrom *time.Time    `json:"complete_from,omitempty"` // pruned before this
}

// DBStats is what `bwtracker db stats` prints.
type DBStats struct {
	Path          string      `json:"path"`
	FileBytes     int64       `json:"file_bytes"` // database + WAL
	PageSize      int64       `json:"page_size"`
	Pages         int64       `json:"pages"`
	FreePages     int64       `json:"free_pages"`
	AutoVacuum    string      `json:"auto_vacuum"` // none, full, incremental
	Processes     int64       `json:"processes"`
	ProcessBytes  int64       `json:"processes_bytes"`
	NotRolledUp   int64       `json:"samples_not_rolled_up"`
	Tiers         []TierStats `json:"tiers"`
	SchemaVersion string      `json:"schema_version"`
}

// Stats reads the database's size, rows per tier and the oldest sample per
// tier. It counts rows, so it takes a moment on big files.
func (s *Store) Stats(ctx context.Context) (DBStats, error) {
	d := DBStats{Path: s.path, FileBytes: s.Size()}
	err := s.readTx(ctx, func(db querier) error {
		for _, p := range []struct {
			q    string
			dest *int64
		}{{"PRAGMA page_size", &d.PageSize}, {"PRAGMA page_count", &d.Pages}, {"PRAGMA freelist_count", &d.FreePages}} {
			if err := db.QueryRowContext(ctx, p.q).Scan(p.dest); err != nil {
				return s.classify("stats", err)
			}
		}
		var av int
		if err := db.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&av); err != nil {
			return s.classify("stats", err)
		}
		d.AutoVacuum = [...]string{"none", "full", "incremental"}[min(max(av, 0), 2)]
		var ver sql.NullString
		db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'schema_version'").Scan(&ver)
		d.SchemaVersion = ver.String
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM processes").Scan(&d.Processes); err != nil {
			return s.classify("stats", err)
		}
		st, err := readTierState(ctx, db)
		if err != nil {
			return s.classify("stats", err)
		}
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM samples WHERE id > ?", st.rolledID).Scan(&d.NotRolledUp); err != nil {
			return s.classify("stats", err)
		}
		sizes := tableBytes(ctx, db)
		d.ProcessBytes = sizeOr(sizes, "processes")
		for i, t := range Tiers {
			ts := TierStats{Name: t.Name, Table: t.Table, Bucket: t.Size, BucketSec: int64(t.Size / time.Second), Bytes: sizeOr(sizes, t.Table)}
			if !st.exists[i] {
				ts.Bytes = 0
				d.Tiers = append(d.Tiers, ts)
				continue
			}
			q := "SELECT count(*), min(bucket_ms), max(bucket_ms) FROM " + t.Table
			if i == 0 {
				q = "SELECT (SELECT count(*) FROM samples), min(ts_ms), max(ts_ms) FROM flushes"
				ts.Bytes += sizeOr(sizes, "flushes")
			}
			var lo, hi sql.NullInt64
			if err := db.QueryRowContext(ctx, q).Scan(&ts.Rows, &lo, &hi); err != nil {
				return s.classify("stats", err)
			}
			if lo.Valid {
				a, b := time.UnixMilli(lo.Int64), time.UnixMilli(hi.Int64)
				ts.Oldest, ts.Newest = &a, &b
			}
			if st.avail[i] > 0 {
				a := time.UnixMilli(st.avail[i])
				ts.AvailFrom = &a
			}
			d.Tiers = append(d.Tiers, ts)
		}
		clampAvail(d.Tiers)
		return nil
	})
	return d, err
}

// clampAvail: a tier's availability mark can lie before the history began
// (pruning moves it to now - retention, e.g. two years back on a file made
// minutes ago); nothing was missed before the oldest data of any tier, so a
// tier is complete from no earlier than that.
func clampAvail(tiers []TierStats) {
	var start *time.Time
	for _, t := range tiers {
		if t.Oldest != nil && (start == nil || t.Oldest.Before(*start)) {
			start = t.Oldest
		}
	}
	for i := range tiers {
		if a := tiers[i].AvailFrom; a != nil && start != nil && a.Before(*start) {
			s := *start
			tiers[i].AvailFrom = &s
		}
	}
}

func sizeOr(m map[string]int64, k string) int64 {
	if m == nil {
		return -1
	}
	return m[k]
}

// tableBytes sums page bytes per table including its indexes, from the
// dbstat virtual table; nil when this SQLite build lacks it.
func tableBytes(ctx context.Context, db querier) map[string]int64 {
	rows, err := db.QueryContext(ctx, `SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize)
FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var b int64
		if rows.Scan(&n, &b) == nil {
			out[n] += b
		}
	}
	if rows.Err() != nil {
		return nil
	}
	return out
}
