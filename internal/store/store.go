// Package store owns bwtracker's SQLite database: its schema, the writes the
// collector makes once per interval, and every query the CLI and the API run.
//
// Schema (version 3; migrate.go converts version 1 files, migrateTiers
// adds version 3's columns to version 2 files in place):
//
//	processes  one row per process identity (pid, start_ns, comm). start_ns is
//	           the kernel's task start time (CLOCK_MONOTONIC ns, the same clock
//	           as /proc/PID/stat field 22), so a reused PID is a new row; comm
//	           is part of the identity because exec() changes it (bash forking
//	           curl is two rows with one pid). exe and cmdline come from /proc
//	           when the process still existed at the first flush that saw it.
//	endpoints  one row per (remote ip, protocol), both text; flows and
//	           rollup rows refer to it by id, so an address is stored once.
//	           kept_1h_ms/kept_1d_ms: the newest folded bucket naming it.
//	           scope (internal/netscope) is set when the row is interned.
//	flows      one row per (process, endpoint, cgroup, netns) seen.
//	samples    one row per (interval, flow, remote port): payload bytes and
//	           call counts per direction. No time column: each Write's rows
//	           get consecutive ids. Endpoints and flows have last_seen_ms
//	           (lagging by up to a minute) and are pruned like processes.
//	flushes    one row per Write: its samples ids first_id..last_id (last_id
//	           is the primary key) and ts_ms, the end of the interval in Unix
//	           milliseconds.
//	meta       key/value: schema version; rollup watermark "rollup.raw_id";
//	           per tier "avail.<tier>", the Unix ms its data is complete from.
//	known_apps, alert_history (alerts.go): internal/alerts' state, the
//	           programs new-app has seen and the bounded alert history.
//	runs       (runs.go) one row per daemon run: started_ms, alive_ms, so
//	           readers tell downtime from idle time.
//	rollup_1m, rollup_1h, rollup_1d  (schema.go; WITHOUT ROWID)
//	           one row per (bucket_ms, proc_id, endpoint_id, cgroup_id) with
//	           summed tx/rx bytes and calls. bucket_ms is the bucket start
//	           (UTC multiples of 1m/1h/1d); a sample lands in the bucket its
//	           flush's ts_ms falls in. remote_port and netns (not in the
//	           key) are the one value all the row's samples had, 0 when
//	           they mixed (or the row is folded, or predates schema 3).
//
// Indexes: flushes(ts_ms) for time windows: a window's samples are the id
// ranges of its flushes (rowid range scans); rollup and pruning walk id
// ranges too, so samples rows carry no index at all. The database runs in
// WAL mode with a busy timeout, so `report` reads while `run` writes; each
// flush is one transaction.
//
// One writer (lock.go): a writer Open takes flock on PATH.lock before it
// touches the file and holds it until Close; a second writer gets a
// *LockedError naming the holder's pid. The lock file also keeps a
// last-flush marker, so committed flushes that SQLite dropped at open (a
// damaged WAL) are reported (WALLoss). Readers inside the writer's process
// come from Reader and never open+close the file outside SQLite (that
// would drop the writer's POSIX locks and let the next process delete the
// WAL). The files (guard.go): paths SQLite cannot use, files owned by
// another user and immutable files are refused; files of ours readable by
// others are made 0600; Guard, called before each flush, rebuilds a deleted
// file from the open connection, saves the history of a replaced one aside
// and reopens after an unlinked WAL; Checkpoint runs every CheckpointEvery.
//
// History tiers (rollup.go): Maintain adds samples rows to all three rollup
// tables at once, taking them by id above the watermark and committing the
// additive upserts with the new watermark in one transaction (a killed
// rollup is redone whole, never twice; late writes are rolled up too). Each
// tier is then pruned to its Retention (defaults: raw 24h, 1m 7d, 1h 90d,
// 1d 2y; raw rows only once rolled up) and freed pages are returned with
// incremental_vacuum. Queries (query.go, periods.go) split the window into
// stretches served by the coarsest tier that fits, plus raw rows above the
// watermark, so totals equal the raw sums wherever a kept tier resolves the
// window's edges.
//
// Bounded history for huge cardinality (fold.go): the raw and 1m tiers
// keep every remote; the 1h and 1d tiers keep, per bucket and process, the
// Tier.Keep remotes with the most bytes (25 per hour, 100 per day, so a
// `--top 20` of one hour or day is exact; ties by endpoint id) and sum the
// rest into one row per (bucket, process, protocol, cgroup) whose endpoint
// is OtherRemotes, "(other remotes)". A bucket is folded once it is
// complete (it ends before the oldest flush not rolled up yet), in one
// transaction with the "fold.<tier>" watermark; a late flush moves the
// watermark back and its bucket is folded again. Folding moves bytes and
// calls between rows of one bucket and process, so every total over any
// window is unchanged, and `--by remote` shows the exact remainder as
// "(other remotes)" (report says so; JSON rows get "folded": true). A
// server with 10,000 new clients an hour then costs ~26 rows per hour and
// ~101 per day instead of 10,000 and 240,000, and endpoints rows live only
// as long as the raw and 1m tiers need them (pruneProcesses) unless a kept
// folded row names them (kept_1h_ms, kept_1d_ms, set by the fold).
//
// Floor plan: store.go opens and classifies errors; schema.go holds the
// tiers, their retention and rollup DDL (migrate.go the version upgrades);
// plan.go decides which tier serves which stretch of a window; sqlgen.go is
// the one SQL assembler (selectSQL: segments, joins, filters, dimensions)
// that Totals, Series and Periods (query.go, periods.go) all go through;
// write.go is the per-flush write path; rollup.go rolls up and prunes;
// fold.go folds the 1h and 1d tiers;
// lock.go and guard.go protect the file; stats.go and alerts.go serve
// `db stats` and internal/alerts.
//
// Size: about 26 bytes per samples row (flows active per interval x
// intervals in --keep-raw) plus about 37 bytes per rollup row (distinct
// flows per bucket x buckets kept) and ~40 bytes per flush. With 50 flows
// active per second out of 150 per minute: 4.3M raw rows/day (~105 MiB at
// the default 24h raw retention), 1.7M 1m rows/week (~60 MiB); hour and
// day tiers are small (the 30-day benchmark file is ~182 MiB, see
// scripts/bench-history.sh). A server with 10,000 new clients an hour
// (scripts/bench-scale.sh) is dominated by the tiers that keep every
// remote: 7 days of 1m rows and their endpoints (1.7M each) plus a day of
// raw rows and flows (0.26M each): 258 MiB after 10 days and 307 MiB
// after 15 (measured; folded hours and days add only ~0.7k rows a day, so
// the remaining ~10 MiB/day is free pages or pruning lag, not yet
// explained; unfolded, the same 30 days took 2.48 GiB). `bwtracker db
// stats` shows the real numbers.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"

	"github.com/bwtracker/bwtracker/internal/netscope"
	"golang.org/x/sys/unix"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// DefaultPath is where `run` keeps the database unless --db says otherwise.
const DefaultPath = "/var/lib/bwtracker/bwtracker.db"

// SchemaVersion is bumped whenever the schema below changes incompatibly.
// Version 1 stored remote_ip and protocol as text in every samples and
// rollup row; version 2 interns them in the endpoints table. A writer
// converts a version 1 file on open (migrate.go).
// Version 3 adds remote_port and netns to rollup rows and the kept marks
// to endpoints (ALTER TABLE ADD COLUMN; readers of older files read 0).
const SchemaVersion = 3

// BusyTimeout is how long a reader or writer waits for a lock before failing.
const BusyTimeout = 5 * time.Second

// Process is the processes table.
type Process struct {
	ID        int64  `gorm:"primaryKey"`
	PID       uint32 `gorm:"column:pid;not null;uniqueIndex:idx_proc_identity,priority:1"`
	StartNS   uint64 `gorm:"column:start_ns;not null;uniqueIndex:idx_proc_identity,priority:2"`
	Comm      string `gorm:"column:comm;not null;uniqueIndex:idx_proc_identity,priority:3"`
	Exe       string `gorm:"column:exe;not null;default:''"`
	Cmdline   string `gorm:"column:cmdline;not null;default:''"`
	App       string `gorm:"column:app;not null;default:''"` // procinfo's app rule, folded at collection time
	UID       uint32 `gorm:"column:uid;not null;default:0"`
	FirstSeen int64  `gorm:"column:first_seen_ms;not null"`
	LastSeen  int64  `gorm:"column:last_seen_ms;not null;index"`
}

// TableName pins the table name.
func (Process) TableName() string { return "processes" }

// samplesDDL creates the samples table. AUTOINCREMENT: ids are never
// reused, even when pruning empties the table, so the rollup watermark
// stays valid. No time column and no index: each Write's rows get
// consecutive ids, and the flushes table maps that id range to its time.
const samplesDDL = `CREATE TABLE IF NOT EXISTS samples (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  flow_id     INTEGER NOT NULL,
  remote_port INTEGER NOT NULL DEFAULT 0,
  tx_bytes    INTEGER NOT NULL DEFAULT 0,
  rx_bytes    INTEGER NOT NULL DEFAULT 0,
  tx_calls    INTEGER NOT NULL DEFAULT 0,
  rx_calls    INTEGER NOT NULL DEFAULT 0
)`

// flowsDDL creates the flows table: one row per (process, endpoint,
// cgroup, netns) seen in samples. last_seen_ms as in endpoints.
const flowsDDL = `CREATE TABLE IF NOT EXISTS flows (
  id           INTEGER PRIMARY KEY,
  proc_id      INTEGER NOT NULL,
  endpoint_id  INTEGER NOT NULL,
  cgroup_id    INTEGER NOT NULL,
  netns        INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  UNIQUE (proc_id, endpoint_id, cgroup_id, netns)
);
CREATE INDEX IF NOT EXISTS idx_flows_last_seen ON flows (last_seen_ms)`

// flushesDDL creates the flushes table: one row per Write, whose samples
// are the ids first_id..last_id, all at ts_ms.
const flushesDDL = `CREATE TABLE IF NOT EXISTS flushes (
  last_id  INTEGER PRIMARY KEY,
  first_id INTEGER NOT NULL,
  ts_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_flushes_ts ON flushes (ts_ms)`

// endpointsDDL creates the endpoints table: one row per (remote ip,
// protocol) ever seen, referenced by samples and rollup rows. scope is
// internal/netscope's class of the address when it was first interned.
// last_seen_ms (Unix ms, may lag the truth by up to seenLagMs) lets
// pruning drop endpoints no tier can refer to any more; kept_1h_ms and
// kept_1d_ms are the newest folded 1h/1d bucket that still refers to the
// endpoint (fold.go), 0 for none.
const endpointsDDL = `CREATE TABLE IF NOT EXISTS endpoints (
  id           INTEGER PRIMARY KEY,
  ip           TEXT    NOT NULL,
  protocol     TEXT    NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  kept_1h_ms   INTEGER NOT NULL DEFAULT 0,
  kept_1d_ms   INTEGER NOT NULL DEFAULT 0,
  scope        TEXT    NOT NULL DEFAULT '',
  UNIQUE (ip, protocol)
);
CREATE INDEX IF NOT EXISTS idx_endpoints_last_seen ON endpoints (last_seen_ms)`

type metaRow struct {
	Key   string `gorm:"primaryKey;column:key"`
	Value string `gorm:"column:value;not null"`
}

func (metaRow) TableName() string { return "meta" }

// Store is an open database.
type Store struct {
	db       *gorm.DB
	sql      *sql.DB
	path     string
	readOnly bool
	// procIDs caches process identity -> row id for the writer, and
	// endpointIDs (remote ip, protocol) -> endpoints row id, flowIDs
	// likewise for flows; the *Seen maps hold
	// the last_seen_ms last written for those rows (see seenLagMs).
	procIDs     map[ProcessKey]int64
	endpointIDs map[endpointKey]int64
	flowIDs     map[flowKey]int64
	procSeen    map[int64]int64
	epSeen      map[int64]int64
	flowSeen    map[int64]int64
	// scope classifies a new endpoint's address (Options.Scope).
	scope func(ip string) string

	// gate is held shared by queries and maintenance and exclusively by
	// Guard while it swaps the connections (guard.go).
	gate    sync.RWMutex
	lock    *writerLock // writers only (lock.go)
	id      fileID      // the file opened (writers)
	readers []*Store    // opened with Reader; reopened by Guard
	walLoss *WALLoss
	// pruneGen counts pruning passes that delete process, endpoint or flow
	// rows (incremented before they go); Write resets its id caches when
	// it differs from cacheGen, so no cached id can outlive its row.
	pruneGen atomic.Int64
	cacheGen int64
	repairs  []string
	fdScan   time.Time
	closed   bool // Close was called: Guard must not reopen it
	// hasNames: the file has the name tables (names.go); namePuts counts
	// PutNames calls (pruning runs every 64th).
	hasNames atomic.Bool
	namePuts int
}

// Options tune Open.
type Options struct {
	// ReadOnly opens an existing database for queries only; it is never
	// created and the schema is not migrated.
	ReadOnly bool
	// Scope classifies the address of each endpoint the writer interns,
	// and of old endpoints without a scope when the file is migrated
	// (`run --lan-cidr`); nil = netscope.Default().Classify.
	Scope func(ip string) string
}

// Error is a database error that names the file and says what to do next.
type Error struct {
	Path string
	Op   string
	Hint string
	Err  error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("database %s: %s: %v", e.Path, e.Op, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotFound is wrapped when a read-only open finds no database file.
var ErrNotFound = errors.New("no such database")

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	if readOnly {
		q.Add("mode", "ro")
	} else {
		// auto_vacuum must come before journal_mode: it only takes on a
		// file that has no tables yet.
		q.Add("_pragma", "auto_vacuum(INCREMENTAL)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	q.Add("_pragma", "foreign_keys(1)")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (and for writers creates, with mode 0600 and a 0700 parent
// directory) the database at path. A writer first takes the writer lock
// (lock.go) and checks the files it is about to use (guard.go); a second
// writer gets a *LockedError naming the process that holds the lock.
func Open(path string, opts Options) (*Store, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	s := &Store{path: path, readOnly: opts.ReadOnly, scope: opts.Scope}
	if s.scope == nil {
		s.scope = netscope.Default().Classify
	}
	s.resetCaches()
	if opts.ReadOnly {
		fi, err := os.Stat(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, &Error{Path: path, Op: "open", Err: ErrNotFound,
					Hint: "start the daemon with `sudo bwtracker run` to create it, or point --db at an existing file"}
			}
			return nil, &Error{Path: path, Op: "open", Err: err, Hint: permHint(err)}
		}
		if fi.IsDir() {
			return nil, &Error{Path: path, Op: "open", Err: errors.New("is a directory"), Hint: "--db takes a file path"}
		}
		// access(2), not open+close: closing a descriptor of the live file
		// would drop the process's SQLite locks (guard.go).
		if err := unix.Access(path, unix.R_OK); err != nil {
			return nil, &Error{Path: path, Op: "open", Err: err, Hint: permHint(err)}
		}
		if err := s.openHandle(); err != nil {
			return nil, err
		}
		return s, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, &Error{Path: path, Op: "open", Err: errors.New("is a directory"), Hint: "--db takes a file path, e.g. " + filepath.Join(path, "bwtracker.db")}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, &Error{Path: path, Op: "create directory", Err: err, Hint: permHint(err)}
	}
	lk, err := acquireLock(path)
	if err != nil {
		return nil, err
	}
	s.lock = lk
	fail := func(err error) (*Store, error) {
		lk.release()
		return nil, err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		repaired, err := checkFile(p)
		if err != nil {
			return fail(err)
		}
		if repaired {
			s.repairs = append(s.repairs, p)
		}
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail(&Error{Path: path, Op: "open", Err: err, Hint: permHint(err)})
	}
	f.Close()
	if err := s.openHandle(); err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(path) // created just now: leave nothing behind
		}
		return fail(err)
	}
	return s, nil
}

// openHandle opens the SQLite connections, checks the file and (writers)
// records its identity and compares the lock file's flush marker.
func (s *Store) openHandle() error {
	db, err := gorm.Open(sqlite.Open(dsn(s.path, s.readOnly)), &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
	})
	if err != nil {
		return &Error{Path: s.path, Op: "open", Err: err, Hint: "check the file is a bwtracker database"}
	}
	sqlDB, err := db.DB()
	if err != nil {
		return &Error{Path: s.path, Op: "open", Err: err}
	}
	if !s.readOnly {
		// One writer connection: SQLite serialises writers anyway, and a
		// single connection keeps the WAL pragmas and the process cache
		// consistent.
		sqlDB.SetMaxOpenConns(1)
	}
	s.db, s.sql = db, sqlDB
	if err := s.check(s.readOnly); err != nil {
		sqlDB.Close()
		s.db, s.sql = nil, nil
		return err
	}
	s.detectNames(context.Background())
	if !s.readOnly {
		id, err := statID(s.path)
		if err != nil {
			sqlDB.Close()
			s.db, s.sql = nil, nil
			return &Error{Path: s.path, Op: "stat", Err: err}
		}
		s.id = id
		ctx, cancel := context.WithTimeout(context.Background(), BusyTimeout)
		defer cancel()
		if err := s.checkMarker(ctx); err != nil {
			sqlDB.Close()
			s.db, s.sql = nil, nil
			return err
		}
	}
	return nil
}

func permHint(err error) string {
	switch {
	case errors.Is(err, unix.EROFS):
		return "the file system is mounted read-only: choose a --db on a writable file system"
	case errors.Is(err, unix.ENOSPC):
		return "the file system is full: free some space or choose another --db"
	case errors.Is(err, unix.ENAMETOOLONG):
		return "choose a shorter --db path"
	case errors.Is(err, os.ErrPermission):
		return "the database holds who talked to whom and is readable by root only: run with sudo, or pass --db with a file you can read"
	}
	return ""
}

// check verifies the file is a SQLite database of ours and migrates it.
func (s *Store) check(readOnly bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), BusyTimeout+time.Second)
	defer cancel()
	if readOnly {
		// No quick_check here: it reads the whole file (~2 s for 500 MB)
		// on every `report`. A damaged file still fails with a clear error
		// on the first query (classify).
		var n int
		if err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('samples','processes')").Scan(&n); err != nil {
			return s.classify("read", err)
		}
		if n != 2 {
			return &Error{Path: s.path, Op: "open", Err: errors.New("not a bwtracker database (tables missing)"),
				Hint: "point --db at the file `bwtracker run` writes"}
		}
		if err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name = 'endpoints'").Scan(&n); err != nil {
			return s.classify("read", err)
		}
		if n != 1 {
			return &Error{Path: s.path, Op: "open", Err: fmt.Errorf("old database format (schema 1, this bwtracker reads schema %d)", SchemaVersion),
				Hint: "restart `bwtracker run` once with this version: it converts the file on start"}
		}
		return nil
	}
	// The writer checks the file once at daemon start.
	var res string
	if err := s.sql.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return s.classify("read", err)
	}
	if res != "ok" {
		return &Error{Path: s.path, Op: "integrity check", Err: errors.New(res),
			Hint: "the file is corrupt: move it aside and restart `bwtracker run` to start a new one"}
	}
	// Schema 1 files are converted first (without the open timeout: it
	// rewrites every row, seconds per million).
	if err := s.migrateV1(context.Background()); err != nil {
		return err
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), BusyTimeout+time.Second)
	defer cancel2()
	if err := s.db.WithContext(ctx).AutoMigrate(&Process{}, &metaRow{}, &Cgroup{}); err != nil {
		return s.classify("migrate schema", err)
	}
	for _, ddl := range []string{samplesDDL, flushesDDL, endpointsDDL, flowsDDL} {
		if _, err := s.sql.ExecContext(ctx, ddl); err != nil {
			return s.classify("migrate schema", err)
		}
	}
	if err := s.migrateAppsScopes(ctx); err != nil { // processes.app, endpoints.scope (migrate.go)
		return err
	}
	if err := s.migrateTiers(ctx); err != nil { // rollup_1m, rollup_1h, rollup_1d (schema.go)
		return err
	}
	if err := s.migrateAlerts(ctx); err != nil { // known_apps, alert_history (alerts.go)
		return err
	}
	if err := s.migrateRuns(ctx); err != nil { // runs (runs.go)
		return err
	}
	if err := s.migrateNames(ctx); err != nil { // dns_names, rdns_cache (names.go)
		return err
	}
	if err := s.db.WithContext(ctx).Save(&metaRow{Key: "schema_version", Value: fmt.Sprint(SchemaVersion)}).Error; err != nil {
		return s.classify("write", err)
	}
	return nil
}

// classify turns a driver error into an Error with a next step.
func (s *Store) classify(op string, err error) error {
	msg := err.Error()
	e := &Error{Path: s.path, Op: op, Err: err}
	switch {
	case strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked"):
		e.Hint = "another process holds a lock on it; wait for it to finish or stop the other `bwtracker run`"
	case strings.Contains(msg, "file is not a database") || strings.Contains(msg, "SQLITE_NOTADB") || strings.Contains(msg, "malformed") || strings.Contains(msg, "SQLITE_CORRUPT"):
		e.Hint = "the file is corrupt or not a SQLite database: move it aside and restart `bwtracker run` to start a new one"
	case strings.Contains(msg, "readonly") || strings.Contains(msg, "SQLITE_READONLY"):
		e.Hint = "the file or its directory is not writable: run as root or choose another --db"
	case strings.Contains(msg, "unable to open") || strings.Contains(msg, "SQLITE_CANTOPEN"):
		e.Hint = "check the path and its permissions (the database is readable by root only)"
	}
	return e
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Size returns the database file size in bytes, including its WAL.
func (s *Store) Size() int64 {
	var n int64
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Close checkpoints (for writers), closes the database and releases the
// writer lock.
func (s *Store) Close() error {
	s.gate.Lock()
	defer s.gate.Unlock()
	defer s.lock.release()
	s.closed = true
	if s.sql == nil {
		return nil
	}
	if !s.readOnly {
		s.sql.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	err := s.sql.Close()
	s.sql, s.db = nil, nil
	return err
}
