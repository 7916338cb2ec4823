package store

// The tiers of stored history and their tables: the raw samples table and
// the rollup tables fed from it, how long each keeps its rows, the meta
// bookkeeping of rollups, and the DDL and migration of the rollup tables.
// (The tables written per flush are created in store.go and migrate.go.)

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Tier is one level of stored history: the raw samples table or one of the
// rollup tables fed from it.
type Tier struct {
	Name  string        // "raw", "1m", "1h", "1d"
	Table string        // samples, rollup_1m, ...
	Size  time.Duration // bucket width; 0 for raw (one row per interval)
	// Keep > 0 folds the tier (fold.go): per bucket and process only the
	// Keep remotes with the most bytes keep their own row; the others are
	// summed into one "(other remotes)" row per protocol and cgroup.
	Keep int
}

// Tiers lists the tiers finest first. Index 0 is the raw samples table.
var Tiers = []Tier{
	{Name: "raw", Table: "samples"},
	{Name: "1m", Table: "rollup_1m", Size: time.Minute},
	{Name: "1h", Table: "rollup_1h", Size: time.Hour, Keep: 25},
	{Name: "1d", Table: "rollup_1d", Size: 24 * time.Hour, Keep: 100},
}

// sizeMs is tier i's bucket width in ms (1 for raw: any ms is a boundary).
func sizeMs(i int) int64 {
	if Tiers[i].Size == 0 {
		return 1
	}
	return Tiers[i].Size.Milliseconds()
}

// Retention says how long each tier keeps its rows; 0 keeps them forever.
type Retention struct {
	Raw    time.Duration
	Minute time.Duration
	Hour   time.Duration
	Day    time.Duration
}

// DefaultRetention is vnStat-like: per-interval samples for a day, minutes
// for a week, hours for 90 days, days for two years.
func DefaultRetention() Retention {
	return Retention{Raw: 24 * time.Hour, Minute: 7 * 24 * time.Hour, Hour: 90 * 24 * time.Hour, Day: 2 * 365 * 24 * time.Hour}
}

// Of returns the retention of tier i (index into Tiers).
func (r Retention) Of(i int) time.Duration {
	return [...]time.Duration{r.Raw, r.Minute, r.Hour, r.Day}[i]
}

// Validate refuses negative retentions.
func (r Retention) Validate() error {
	for i := range Tiers {
		if r.Of(i) < 0 {
			return fmt.Errorf("retention of tier %s is negative", Tiers[i].Name)
		}
	}
	return nil
}

// Meta keys of the rollup bookkeeping.
const (
	// metaRolledID: every samples row with id <= this value has been added
	// to every rollup table. Advanced in the same transaction as the adds.
	metaRolledID = "rollup.raw_id"
	// metaAvailPrefix + tier name: the tier holds complete data from this
	// Unix ms on (its prune cutoff). Absent = complete since the start.
	metaAvailPrefix = "avail."
	// metaFoldPrefix + tier name (folded tiers): every bucket of the tier
	// that starts before this Unix ms is folded and its endpoints marked
	// kept (fold.go). Absent = nothing folded yet.
	metaFoldPrefix = "fold."
)

func rollupDDL(t Tier) string {
	return `CREATE TABLE IF NOT EXISTS ` + t.Table + ` (
  bucket_ms INTEGER NOT NULL,
  proc_id     INTEGER NOT NULL,
  endpoint_id INTEGER NOT NULL,
  cgroup_id   INTEGER NOT NULL,
  tx_bytes    INTEGER NOT NULL,
  rx_bytes    INTEGER NOT NULL,
  tx_calls    INTEGER NOT NULL,
  rx_calls    INTEGER NOT NULL,
  remote_port INTEGER NOT NULL DEFAULT 0,
  netns       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket_ms, proc_id, endpoint_id, cgroup_id)
) WITHOUT ROWID`
}

// addedColumns are columns added to existing tables after they were first
// created (schema 3): ALTER TABLE ADD COLUMN with a default, so old rows
// read as "port and netns unknown or mixed" (0) and "not kept by a folded
// tier" (0) without rewriting the table.
var addedColumns = []struct{ table, column, decl string }{
	{"rollup_1m", "remote_port", "INTEGER NOT NULL DEFAULT 0"},
	{"rollup_1m", "netns", "INTEGER NOT NULL DEFAULT 0"},
	{"rollup_1h", "remote_port", "INTEGER NOT NULL DEFAULT 0"},
	{"rollup_1h", "netns", "INTEGER NOT NULL DEFAULT 0"},
	{"rollup_1d", "remote_port", "INTEGER NOT NULL DEFAULT 0"},
	{"rollup_1d", "netns", "INTEGER NOT NULL DEFAULT 0"},
	{"endpoints", "kept_1h_ms", "INTEGER NOT NULL DEFAULT 0"},
	{"endpoints", "kept_1d_ms", "INTEGER NOT NULL DEFAULT 0"},
}

// hasColumn says whether table has column (false when the table is missing).
func hasColumn(ctx context.Context, q querier, table, column string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", table, column).Scan(&n)
	return n > 0, err
}

// migrateTiers creates the rollup tables. A brand-new file is switched to
// incremental auto-vacuum first (the DSN pragma comes too late once WAL
// mode has written the header), so pruning gives pages back to the OS.
func (s *Store) migrateTiers(ctx context.Context) error {
	// Statement journals (every multi-row INSERT in a transaction writes
	// one) in memory instead of a temp file: a third of Write's time.
	// and a 16 MiB page cache (default 2 MiB) keeps the samples indexes'
	// hot pages in memory as the file grows.
	for _, p := range []string{"PRAGMA temp_store = MEMORY", "PRAGMA cache_size = -16384"} {
		if _, err := s.sql.ExecContext(ctx, p); err != nil {
			return s.classify("open", err)
		}
	}
	var av int
	if err := s.sql.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&av); err != nil {
		return s.classify("read", err)
	}
	if av != 2 {
		var n int64
		if err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM samples LIMIT 1)").Scan(&n); err != nil {
			return s.classify("read", err)
		}
		if n == 0 {
			// Cheap on an empty file; big files need `bwtracker db vacuum`.
			if _, err := s.sql.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
				return s.classify("migrate schema", err)
			}
			if _, err := s.sql.ExecContext(ctx, "VACUUM"); err != nil {
				return s.classify("migrate schema", err)
			}
		}
	}
	for _, t := range Tiers[1:] {
		if _, err := s.sql.ExecContext(ctx, rollupDDL(t)); err != nil {
			return s.classify("migrate schema", err)
		}
	}
	for _, c := range addedColumns {
		ok, err := hasColumn(ctx, s.sql, c.table, c.column)
		if err != nil {
			return s.classify("read", err)
		}
		if !ok {
			if _, err := s.sql.ExecContext(ctx, "ALTER TABLE "+c.table+" ADD COLUMN "+c.column+" "+c.decl); err != nil {
				return s.classify("migrate schema", err)
			}
		}
	}
	return nil
}

// Vacuum rewrites the whole file compactly with incremental auto-vacuum
// switched on (needed once for databases created before rollups existed)
// and checkpoints the result into the main file. It needs the writer lock
// (Open refuses while a daemon holds it) and takes as long as copying the
// file.
func (s *Store) Vacuum(ctx context.Context) error {
	if s.readOnly {
		return &Error{Path: s.path, Op: "vacuum", Err: errors.New("opened read-only")}
	}
	if _, err := s.sql.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		return s.classify("vacuum", err)
	}
	if _, err := s.sql.ExecContext(ctx, "VACUUM"); err != nil {
		return s.classify("vacuum", err)
	}
	// In WAL mode VACUUM writes the new pages to the WAL; copy them back
	// and truncate both, or the "compacted" file is the old one plus a
	// WAL of the new one.
	if _, err := s.sql.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return s.classify("vacuum", err)
	}
	return nil
}

// querier is what both *sql.DB, *sql.Conn and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func metaInt(ctx context.Context, q querier, key string) (int64, bool, error) {
	var v string
	err := q.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("meta %s: %q is not a number", key, v)
	}
	return n, true, nil
}

func setMetaInt(ctx context.Context, q querier, key string, v int64) error {
	_, err := q.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, strconv.FormatInt(v, 10))
	return err
}
