package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tier is one level of stored history: the raw samples table or one of the
// rollup tables fed from it.
type Tier struct {
	Name  string        // "raw", "1m", "1h", "1d"
	Table string        // samples, rollup_1m, ...
	Size  time.Duration // bucket width; 0 for raw (one row per interval)
}

// Tiers lists the tiers finest first. Index 0 is the raw samples table.
var Tiers = []Tier{
	{Name: "raw", Table: "samples"},
	{Name: "1m", Table: "rollup_1m", Size: time.Minute},
	{Name: "1h", Table: "rollup_1h", Size: time.Hour},
	{Name: "1d", Table: "rollup_1d", Size: 24 * time.Hour},
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
  PRIMARY KEY (bucket_ms, proc_id, endpoint_id, cgroup_id)
) WITHOUT ROWID`
}

// migrateTiers creates the rollup tables. A brand-new file is switched to
// incremental auto-vacuum first (the DSN pragma comes too late once WAL
// mode has written the header), so pruning gives pages back to the OS.
func (s *Store) migrateTiers(ctx context.Context) error {
	s.openedMs.Store(time.Now().UnixMilli())
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

// tierState is what a query needs to know about the tiers, read in the
// same transaction as the data.
type tierState struct {
	exists   []bool  // rollup table present (old read-only files lack them)
	avail    []int64 // complete from this ms on
	rolledID int64   // samples rows with id > rolledID are not in any rollup
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

// segmentSQL is a SELECT of (t, proc_id, endpoint_id, cgroup_id,
// tx_bytes, rx_bytes, tx_calls, rx_calls) for one segment, t being the
// sample's ts_ms or the bucket start. procFilter, when not empty, is an
// extra condition on proc_id. Rollup segments add the samples not rolled
// up yet that belong to their buckets.
func (st tierState) segmentSQL(sg segment, procFilter string, procArgs []any) (string, []any) {
	const cols = "proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls"
	// Raw rows: time from the flush, process/endpoint/cgroup from the flow.
	const rawCols = "fl.proc_id AS proc_id, fl.endpoint_id AS endpoint_id, fl.cgroup_id AS cgroup_id," +
		" s.tx_bytes AS tx_bytes, s.rx_bytes AS rx_bytes, s.tx_calls AS tx_calls, s.rx_calls AS rx_calls"
	const rawFrom = " FROM flushes f CROSS JOIN samples s ON s.id BETWEEN f.first_id AND f.last_id JOIN flows fl ON fl.id = s.flow_id"
	pf := ""
	if procFilter != "" {
		pf = " AND " + procFilter
	}
	if sg.tier == 0 {
		args := append([]any{sg.a, sg.b}, procArgs...)
		return "SELECT f.ts_ms AS t, " + rawCols + rawFrom + " WHERE f.ts_ms >= ? AND f.ts_ms < ?" + pf, args
	}
	size := sizeMs(sg.tier)
	args := append([]any{sg.a, sg.b}, procArgs...)
	q := "SELECT bucket_ms AS t, " + cols + " FROM " + Tiers[sg.tier].Table + " WHERE bucket_ms >= ? AND bucket_ms < ?" + pf
	// A sample belongs to the bucket its ts_ms falls in; a bucket starts in
	// [a, b) iff the sample's ts_ms is in [roundUp(a), roundUp(b)).
	// "+ts_ms" keeps SQLite on the flushes' rowid range (the few flushes
	// above the watermark) instead of a day of flushes by the ts_ms index.
	q += fmt.Sprintf(" UNION ALL SELECT f.ts_ms - f.ts_ms %% %d AS t, ", size) + rawCols + rawFrom +
		" WHERE f.last_id > ? AND s.id > ? AND +f.ts_ms >= ? AND +f.ts_ms < ?" + pf
	args = append(args, st.rolledID, st.rolledID, roundUp(sg.a, size), roundUp(sg.b, size))
	args = append(args, procArgs...)
	return q, args
}

// unionSQL joins the segments' SELECTs.
func (st tierState) unionSQL(segs []segment, procFilter string, procArgs []any) (string, []any) {
	var parts []string
	var args []any
	for _, sg := range segs {
		q, a := st.segmentSQL(sg, procFilter, procArgs)
		parts = append(parts, q)
		args = append(args, a...)
	}
	return strings.Join(parts, " UNION ALL "), args
}

// readTx runs fn on one connection inside a read transaction, so the tier
// bookkeeping and the rows come from the same snapshot while the daemon
// keeps rolling up.
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.sql == nil {
		return &Error{Path: s.path, Op: "query", Err: errors.New("database closed (being reopened)"), Hint: "try again in a moment"}
	}
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return s.classify("query", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return s.classify("query", err)
	}
	err = fn(conn)
	if _, cerr := conn.ExecContext(context.Background(), "COMMIT"); cerr != nil && err == nil {
		err = s.classify("query", cerr)
	}
	return err
}
