package store

import (
	"context"
	"fmt"

	"github.com/bwtracker/bwtracker/internal/procinfo"
)

// migrateV1 converts a schema 1 file (remote_ip and protocol as text in
// every samples and rollup row, ts_ms, proc_id, cgroup_id and netns in
// every samples row) to schema 2 (endpoint ids; samples refer to a flow;
// times per flush in the flushes table) in one
// transaction: endpoints are collected from every table, then each table
// is copied over with ids and sums unchanged, so the rollup watermark and
// the tiers' availability marks stay valid. A kill mid-way leaves the file
// as it was. Takes seconds per million rows; freed pages are given back
// by the incremental vacuum afterwards.
func (s *Store) migrateV1(ctx context.Context) error {
	var n int
	if err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('samples') WHERE name = 'remote_ip'").Scan(&n); err != nil {
		return s.classify("read", err)
	}
	if n == 0 {
		return nil // new file, or already converted
	}
	fail := func(err error) error {
		return &Error{Path: s.path, Op: "convert schema 1 to 2", Err: err,
			Hint: "the file is unchanged; to start afresh instead, move it aside and restart `bwtracker run`"}
	}
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fail(err)
	}
	stmts := []string{endpointsDDL}
	// Endpoints from every table that exists; last seen = newest use.
	src := "SELECT remote_ip AS ip, protocol, max(ts_ms) AS t FROM samples GROUP BY 1, 2"
	var tiers []Tier
	for _, t := range Tiers[1:] {
		var k int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", t.Table).Scan(&k); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return fail(err)
		}
		if k == 1 {
			tiers = append(tiers, t)
			src += " UNION ALL SELECT remote_ip, protocol, max(bucket_ms) FROM " + t.Table + " GROUP BY 1, 2"
		}
	}
	stmts = append(stmts,
		"INSERT INTO endpoints (ip, protocol, last_seen_ms) SELECT ip, protocol, max(t) FROM ("+src+") GROUP BY 1, 2",
		"DROP INDEX IF EXISTS idx_samples_ts",
		"DROP INDEX IF EXISTS idx_samples_proc_ts",
		"ALTER TABLE samples RENAME TO samples_v1",
		samplesDDL,
		flowsDDL,
		`INSERT INTO flows (proc_id, endpoint_id, cgroup_id, netns, last_seen_ms)
SELECT s.proc_id, e.id, s.cgroup_id, s.netns, max(s.ts_ms)
FROM samples_v1 s JOIN endpoints e ON e.ip = s.remote_ip AND e.protocol = s.protocol GROUP BY 1, 2, 3, 4`,
		`INSERT INTO samples (id, flow_id, remote_port, tx_bytes, rx_bytes, tx_calls, rx_calls)
SELECT s.id, fl.id, s.remote_port, s.tx_bytes, s.rx_bytes, s.tx_calls, s.rx_calls
FROM samples_v1 s JOIN endpoints e ON e.ip = s.remote_ip AND e.protocol = s.protocol
JOIN flows fl ON fl.proc_id = s.proc_id AND fl.endpoint_id = e.id AND fl.cgroup_id = s.cgroup_id AND fl.netns = s.netns ORDER BY s.id`,
		// Ids must keep growing past the old sequence (the watermark).
		"UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'samples_v1')) WHERE name = 'samples'",
		`INSERT INTO sqlite_sequence (name, seq) SELECT 'samples', seq FROM sqlite_sequence
WHERE name = 'samples_v1' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'samples')`,
		flushesDDL,
		// One flush per run of consecutive ids with the same time.
		`INSERT INTO flushes (last_id, first_id, ts_ms)
SELECT max(id), min(id), ts_ms FROM (
  SELECT id, ts_ms, sum(brk) OVER (ORDER BY id) AS g FROM (
    SELECT id, ts_ms, ts_ms IS NOT lag(ts_ms) OVER (ORDER BY id) AS brk FROM samples_v1))
GROUP BY g`,
		"DROP TABLE samples_v1",
	)
	for _, t := range tiers {
		stmts = append(stmts,
			"ALTER TABLE "+t.Table+" RENAME TO "+t.Table+"_v1",
			rollupDDL(t),
			fmt.Sprintf(`INSERT INTO %s (bucket_ms, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls)
SELECT r.bucket_ms, r.proc_id, e.id, r.cgroup_id, r.tx_bytes, r.rx_bytes, r.tx_calls, r.rx_calls
FROM %s_v1 r JOIN endpoints e ON e.ip = r.remote_ip AND e.protocol = r.protocol ORDER BY 1, 2, 3, 4`, t.Table, t.Table),
			"DROP TABLE "+t.Table+"_v1",
		)
	}
	stmts = append(stmts, fmt.Sprintf("INSERT INTO meta (key, value) VALUES ('schema_version', '%d') ON CONFLICT (key) DO UPDATE SET value = excluded.value", SchemaVersion))
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return fail(err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		conn.ExecContext(context.Background(), "ROLLBACK")
		return fail(err)
	}
	// Give the old tables' pages back (a no-op without auto-vacuum).
	// The pragma frees one page per step: read it to the end.
	if rows, err := conn.QueryContext(ctx, "PRAGMA incremental_vacuum"); err == nil {
		for rows.Next() {
		}
		rows.Close()
	}
	return nil
}

// migrateAppsScopes adds processes.app and endpoints.scope to files made
// before they existed (AutoMigrate adds the app column; the scope column is
// added here) and fills them for rows that have none: the app from the
// stored exe, command line (split on spaces) and comm, without folding
// (parents are long gone); the scope with the store's classifier, i.e. this
// host's networks now. One transaction per 1000 rows; cheap when nothing
// is empty.
func (s *Store) migrateAppsScopes(ctx context.Context) error {
	var n int
	if err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('endpoints') WHERE name = 'scope'").Scan(&n); err != nil {
		return s.classify("read", err)
	}
	if n == 0 {
		if _, err := s.sql.ExecContext(ctx, "ALTER TABLE endpoints ADD COLUMN scope TEXT NOT NULL DEFAULT ''"); err != nil {
			return s.classify("migrate schema", err)
		}
	}
	type fix struct {
		id  int64
		val string
	}
	fill := func(sel, upd string, name func(a, b, c string) string) error {
		for {
			rows, err := s.sql.QueryContext(ctx, sel)
			if err != nil {
				return s.classify("migrate schema", err)
			}
			var fixes []fix
			for rows.Next() {
				var f fix
				var a, b, c string
				if err := rows.Scan(&f.id, &a, &b, &c); err != nil {
					rows.Close()
					return s.classify("migrate schema", err)
				}
				if f.val = name(a, b, c); f.val == "" {
					f.val = "?" // never selected again
				}
				fixes = append(fixes, f)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return s.classify("migrate schema", err)
			}
			if len(fixes) == 0 {
				return nil
			}
			tx, err := s.sql.BeginTx(ctx, nil)
			if err != nil {
				return s.classify("migrate schema", err)
			}
			for _, f := range fixes {
				if _, err := tx.ExecContext(ctx, upd, f.val, f.id); err != nil {
					tx.Rollback()
					return s.classify("migrate schema", err)
				}
			}
			if err := tx.Commit(); err != nil {
				return s.classify("migrate schema", err)
			}
		}
	}
	if err := fill("SELECT id, exe, cmdline, comm FROM processes WHERE app = '' LIMIT 1000",
		"UPDATE processes SET app = ? WHERE id = ?",
		func(exe, cmdline, comm string) string {
			return procinfo.AppName(exe, procinfo.SplitCmdline(cmdline), comm)
		}); err != nil {
		return err
	}
	return fill("SELECT id, ip, '', '' FROM endpoints WHERE scope = '' LIMIT 1000",
		"UPDATE endpoints SET scope = ? WHERE id = ?",
		func(ip, _, _ string) string { return s.scope(ip) })
}
