package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// The runs table says when a daemon was counting, so a reader can tell
// downtime (no data because nothing was counted) from idle time (counted,
// nothing sent):
//
//	runs  one row per `bwtracker run`: started_ms (primary key),
//	      alive_ms, the last time it said it was running (MarkRun, every
//	      RunHeartbeat), and stopped (1 once it stopped cleanly: alive_ms
//	      is then its exact end). Bounded: MarkRun keeps the newest
//	      MaxRuns rows.
//
// A database written by an older binary has no rows before its first run
// by this one; Runs then simply returns fewer runs (readers must treat the
// time before the first run as unknown, not as downtime).
const runsDDL = `CREATE TABLE IF NOT EXISTS runs (
  started_ms INTEGER PRIMARY KEY,
  alive_ms   INTEGER NOT NULL,
  stopped    INTEGER NOT NULL DEFAULT 0
)`

// RunHeartbeat is how often the daemon calls MarkRun: a run that ended
// without a clean stop (kill -9, power loss) is known alive up to this much
// before its end.
const RunHeartbeat = 10 * time.Second

// MaxRuns bounds the runs table (a daemon restarted every minute for a
// year still fits).
const MaxRuns = 1 << 20

// Run is one daemon run: [Started, Alive]; Stopped when it ended cleanly
// at Alive (else it was last known alive then).
type Run struct {
	Started time.Time
	Alive   time.Time
	Stopped bool
}

// migrateRuns creates the runs table.
func (s *Store) migrateRuns(ctx context.Context) error {
	if _, err := s.sql.ExecContext(ctx, runsDDL); err != nil {
		return s.classify("migrate schema", err)
	}
	return nil
}

// MarkRun records that the run started at started was alive at alive, and
// with stopped that it ended there (its last mark, on a clean stop).
func (s *Store) MarkRun(ctx context.Context, started, alive time.Time, stopped bool) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.sql == nil {
		return &Error{Path: s.path, Op: "write", Err: errors.New("database not open (a recovery failed; retried every interval)")}
	}
	st, al := started.UnixMilli(), max(alive.UnixMilli(), started.UnixMilli())
	if _, err := s.sql.ExecContext(ctx, `INSERT INTO runs (started_ms, alive_ms, stopped) VALUES (?, ?, ?)
ON CONFLICT (started_ms) DO UPDATE SET alive_ms = max(alive_ms, excluded.alive_ms), stopped = max(stopped, excluded.stopped)`, st, al, stopped); err != nil {
		return s.classify("write", err)
	}
	if _, err := s.sql.ExecContext(ctx, `DELETE FROM runs WHERE started_ms < (
  SELECT started_ms FROM runs ORDER BY started_ms DESC LIMIT 1 OFFSET ?)`, MaxRuns); err != nil {
		return s.classify("write", err)
	}
	return nil
}

// Runs lists the runs that overlap [since, until), oldest first, plus the
// latest run that started before since (so a reader knows whether the
// window's start was covered). A database without the table (an older
// writer, opened read-only) has no runs.
func (s *Store) Runs(ctx context.Context, since, until time.Time) ([]Run, error) {
	var out []Run
	err := s.readTx(ctx, func(db querier) error {
		rows, err := db.QueryContext(ctx, `SELECT started_ms, alive_ms, stopped FROM runs
WHERE started_ms < ?2 AND started_ms >= coalesce((SELECT max(started_ms) FROM runs WHERE started_ms <= ?1), ?1)
ORDER BY started_ms`, since.UnixMilli(), until.UnixMilli())
		if err != nil {
			if strings.Contains(err.Error(), "no such table") {
				return nil
			}
			return s.classify("query", err)
		}
		defer rows.Close()
		for rows.Next() {
			var st, al int64
			var stopped bool
			if err := rows.Scan(&st, &al, &stopped); err != nil {
				return s.classify("query", err)
			}
			out = append(out, Run{Started: time.UnixMilli(st), Alive: time.UnixMilli(al), Stopped: stopped})
		}
		if err := rows.Err(); err != nil {
			return s.classify("query", err)
		}
		return nil
	})
	return out, err
}
