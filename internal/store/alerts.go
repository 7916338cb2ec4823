package store

import (
	"context"
	"encoding/json"
	"time"
)

// Alerting tables (internal/alerts keeps its state here; created by the
// writer's open like every table, see the package doc):
//
//	known_apps     one row per program ever seen on the network (its
//	               executable path, or "comm:NAME" when the path is
//	               unknown), so the new-app rule fires once per program,
//	               also across restarts. Seeded from processes when the
//	               table is created, so upgrading does not flag every old
//	               program as new.
//	alert_history  one row per alert instance: rule, labels (JSON), value,
//	               threshold, started_ms, ended_ms (0 while firing).
//	               Bounded: SaveAlerts keeps the newest MaxAlertHistory.
const alertsDDL = `CREATE TABLE IF NOT EXISTS alert_history (
  id         TEXT PRIMARY KEY,
  rule       TEXT NOT NULL,
  kind       TEXT NOT NULL,
  labels     TEXT NOT NULL,
  value      REAL NOT NULL,
  threshold  REAL NOT NULL,
  unit       TEXT NOT NULL DEFAULT '',
  win        TEXT NOT NULL DEFAULT '',
  direction  TEXT NOT NULL DEFAULT '',
  summary    TEXT NOT NULL DEFAULT '',
  started_ms INTEGER NOT NULL,
  ended_ms   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_alert_history_started ON alert_history (started_ms)`

const knownAppsDDL = `CREATE TABLE known_apps (
  key           TEXT PRIMARY KEY,
  first_seen_ms INTEGER NOT NULL
) WITHOUT ROWID`

// MaxAlertHistory bounds alert_history.
const MaxAlertHistory = 10000

// migrateAlerts creates the alerting tables (seeding known_apps once).
func (s *Store) migrateAlerts(ctx context.Context) error {
	if _, err := s.sql.ExecContext(ctx, alertsDDL); err != nil {
		return s.classify("migrate schema", err)
	}
	var n int
	if err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='known_apps'").Scan(&n); err != nil {
		return s.classify("read", err)
	}
	if n == 1 {
		return nil
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, knownAppsDDL); err != nil {
		return s.classify("migrate schema", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO known_apps (key, first_seen_ms)
SELECT CASE WHEN exe != '' THEN exe ELSE 'comm:' || comm END, min(first_seen_ms) FROM processes GROUP BY 1`); err != nil {
		return s.classify("migrate schema", err)
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	return nil
}

// KnownApps lists the new-app keys seen so far.
func (s *Store) KnownApps(ctx context.Context) ([]string, error) {
	s.gate.RLock() // Guard may swap the connections (guard.go)
	defer s.gate.RUnlock()
	rows, err := s.sql.QueryContext(ctx, "SELECT key FROM known_apps")
	if err != nil {
		return nil, s.classify("read known apps", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, s.classify("read known apps", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// AddKnownApps records new-app keys (existing ones are kept as they are).
func (s *Store) AddKnownApps(ctx context.Context, keys []string, seenMs int64) error {
	s.gate.RLock() // Guard may swap the connections (guard.go)
	defer s.gate.RUnlock()
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	defer tx.Rollback()
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO known_apps (key, first_seen_ms) VALUES (?, ?)", k, seenMs); err != nil {
			return s.classify("write known apps", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	return nil
}

// AlertRecord is one alert_history row.
type AlertRecord struct {
	ID        string
	Rule      string
	Kind      string
	Labels    map[string]string
	Value     float64
	Threshold float64
	Unit      string
	Window    string
	Direction string
	Summary   string
	StartedMs int64
	EndedMs   int64 // 0 while firing
}

// SaveAlerts upserts alert records and trims the history to
// MaxAlertHistory rows.
func (s *Store) SaveAlerts(ctx context.Context, recs []AlertRecord) error {
	s.gate.RLock() // Guard may swap the connections (guard.go)
	defer s.gate.RUnlock()
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	defer tx.Rollback()
	for _, r := range recs {
		lb, _ := json.Marshal(r.Labels)
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_history (id, rule, kind, labels, value, threshold, unit, win, direction, summary, started_ms, ended_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET value = excluded.value, threshold = excluded.threshold, summary = excluded.summary, ended_ms = excluded.ended_ms`,
			r.ID, r.Rule, r.Kind, string(lb), r.Value, r.Threshold, r.Unit, r.Window, r.Direction, r.Summary, r.StartedMs, r.EndedMs); err != nil {
			return s.classify("write alert history", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_history WHERE id IN (
  SELECT id FROM alert_history ORDER BY started_ms DESC LIMIT -1 OFFSET ?)`, MaxAlertHistory); err != nil {
		return s.classify("trim alert history", err)
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	return nil
}

// RecentAlerts returns up to n alert records, oldest first.
func (s *Store) RecentAlerts(ctx context.Context, n int) ([]AlertRecord, error) {
	s.gate.RLock() // Guard may swap the connections (guard.go)
	defer s.gate.RUnlock()
	rows, err := s.sql.QueryContext(ctx, `SELECT id, rule, kind, labels, value, threshold, unit, win, direction, summary, started_ms, ended_ms
FROM (SELECT * FROM alert_history ORDER BY started_ms DESC LIMIT ?) ORDER BY started_ms`, n)
	if err != nil {
		return nil, s.classify("read alert history", err)
	}
	defer rows.Close()
	var out []AlertRecord
	for rows.Next() {
		var r AlertRecord
		var lb string
		if err := rows.Scan(&r.ID, &r.Rule, &r.Kind, &lb, &r.Value, &r.Threshold, &r.Unit, &r.Window, &r.Direction, &r.Summary, &r.StartedMs, &r.EndedMs); err != nil {
			return nil, s.classify("read alert history", err)
		}
		json.Unmarshal([]byte(lb), &r.Labels)
		out = append(out, r)
	}
	return out, rows.Err()
}

// AppHour is one (hour, executable, comm) of the hour tier.
type AppHour struct {
	BucketMs  int64
	Exe, Comm string
	TxBytes   uint64
	RxBytes   uint64
}

// AppHours reads the hour tier (rollup_1h) between since and until, summed
// per hour bucket and (exe, comm) — what anomaly baselines learn from. Only
// rolled-up hours are there: the current hour is not.
func (s *Store) AppHours(ctx context.Context, since, until time.Time) ([]AppHour, error) {
	var out []AppHour
	err := s.readTx(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, `SELECT r.bucket_ms, p.exe, p.comm, sum(r.tx_bytes), sum(r.rx_bytes)
FROM rollup_1h r CROSS JOIN processes p ON p.id = r.proc_id
WHERE r.bucket_ms >= ? AND r.bucket_ms < ?
GROUP BY r.bucket_ms, p.exe, p.comm`, since.UnixMilli(), until.UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a AppHour
			if err := rows.Scan(&a.BucketMs, &a.Exe, &a.Comm, &a.TxBytes, &a.RxBytes); err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.classify("read hour tier", err)
	}
	return out, nil
}
