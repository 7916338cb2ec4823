package store

// Remote names: the DNS answers local processes received (dns_names, fed
// by the collector from internal/dnsnames) and the reverse-DNS results
// `report` found (rdns_cache), so history keeps its names after a restart
// and a report does not ask the network again for names it already knows.
//
//	dns_names   one row per (netns, ip, name) answered: the name the process
//	            asked for (CNAMEs followed), its registrable domain, first
//	            and last seen, and when the last answer's TTL ran out (Unix
//	            ms). Bounded to NamesCap rows: the least recently seen go.
//	rdns_cache  one row per ip `report` reverse-resolved: the name ("" when
//	            it had none), its domain and when it was asked.
//
// Queries name an endpoint by its ip: the dns_names row seen last in any
// namespace (rollup rows keep no netns). Dimension "domain" is that name's
// domain, else the cached reverse-DNS name's, else "".

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NamesCap bounds the dns_names table (about 100 bytes a row).
const NamesCap = 200_000

// namesCap is NamesCap (tests lower it).
var namesCap = NamesCap

const namesDDL = `CREATE TABLE IF NOT EXISTS dns_names (
  netns         INTEGER NOT NULL,
  ip            TEXT    NOT NULL,
  name          TEXT    NOT NULL,
  domain        TEXT    NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms  INTEGER NOT NULL,
  expires_ms    INTEGER NOT NULL,
  PRIMARY KEY (netns, ip, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_dns_names_ip ON dns_names (ip, last_seen_ms);
CREATE INDEX IF NOT EXISTS idx_dns_names_seen ON dns_names (last_seen_ms)`

const rdnsDDL = `CREATE TABLE IF NOT EXISTS rdns_cache (
  ip          TEXT PRIMARY KEY,
  name        TEXT    NOT NULL,
  domain      TEXT    NOT NULL,
  resolved_ms INTEGER NOT NULL
) WITHOUT ROWID`

// SQL naming an endpoint e: its latest DNS name, and its domain.
const (
	nameSQL   = "coalesce((SELECT d.name FROM dns_names d WHERE d.ip = e.ip ORDER BY d.last_seen_ms DESC LIMIT 1), '')"
	domainSQL = "coalesce((SELECT d.domain FROM dns_names d WHERE d.ip = e.ip ORDER BY d.last_seen_ms DESC LIMIT 1)," +
		" (SELECT r.domain FROM rdns_cache r WHERE r.ip = e.ip AND r.name != ''), '')"
)

func (s *Store) migrateNames(ctx context.Context) error {
	for _, ddl := range []string{namesDDL, rdnsDDL} {
		if _, err := s.sql.ExecContext(ctx, ddl); err != nil {
			return s.classify("migrate schema", err)
		}
	}
	return nil
}

// detectNames notes whether the file has the name tables (a file last
// written by an older daemon has not): queries leave names out then.
func (s *Store) detectNames(ctx context.Context) {
	var n int
	err := s.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('dns_names','rdns_cache')").Scan(&n)
	s.hasNames.Store(err == nil && n == 2)
}

// NameRecord is one dns_names row.
type NameRecord struct {
	NetNS     uint32
	IP        string
	Name      string
	Domain    string
	FirstSeen time.Time
	LastSeen  time.Time
	Expires   time.Time
}

// PutNames records DNS names (upsert: first seen kept, last seen and
// expiry advanced) and keeps the table within NamesCap.
func (s *Store) PutNames(ctx context.Context, recs []NameRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if s.sql == nil {
		return &Error{Path: s.path, Op: "write names", Err: errors.New("database not open")}
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	for _, r := range recs {
		_, err := tx.ExecContext(ctx, `INSERT INTO dns_names (netns, ip, name, domain, first_seen_ms, last_seen_ms, expires_ms)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (netns, ip, name) DO UPDATE SET domain = excluded.domain,
  first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
  last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
  expires_ms = max(expires_ms, excluded.expires_ms)`,
			int64(r.NetNS), r.IP, r.Name, r.Domain, r.FirstSeen.UnixMilli(), r.LastSeen.UnixMilli(), r.Expires.UnixMilli())
		if err != nil {
			tx.Rollback()
			return s.classify("write names", err)
		}
	}
	if s.namePuts++; s.namePuts%64 == 1 {
		// Beyond the cap, the least recently seen rows go.
		if _, err := tx.ExecContext(ctx, `DELETE FROM dns_names WHERE last_seen_ms <
  (SELECT last_seen_ms FROM dns_names ORDER BY last_seen_ms DESC LIMIT 1 OFFSET ?)`, namesCap-1); err != nil {
			tx.Rollback()
			return s.classify("prune names", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	return nil
}

// LoadNames returns the newest limit dns_names rows, oldest first (to warm
// up the daemon's in-memory table after a restart).
func (s *Store) LoadNames(ctx context.Context, limit int) ([]NameRecord, error) {
	if !s.hasNames.Load() {
		return nil, nil
	}
	var out []NameRecord
	err := s.readTx(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, `SELECT netns, ip, name, domain, first_seen_ms, last_seen_ms, expires_ms FROM
  (SELECT * FROM dns_names ORDER BY last_seen_ms DESC LIMIT ?) ORDER BY last_seen_ms`, limit)
		if err != nil {
			return s.classify("read names", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r NameRecord
			var ns, f, l, e int64
			if err := rows.Scan(&ns, &r.IP, &r.Name, &r.Domain, &f, &l, &e); err != nil {
				return s.classify("read names", err)
			}
			r.NetNS = uint32(ns)
			r.FirstSeen, r.LastSeen, r.Expires = time.UnixMilli(f), time.UnixMilli(l), time.UnixMilli(e)
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// ReverseName is a cached reverse-DNS result.
type ReverseName struct {
	Name     string // "" when the address had no name
	Resolved time.Time
}

// ReverseNames returns the cached reverse-DNS results for ips.
func (s *Store) ReverseNames(ctx context.Context, ips []string) (map[string]ReverseName, error) {
	out := map[string]ReverseName{}
	if !s.hasNames.Load() || len(ips) == 0 {
		return out, nil
	}
	err := s.readTx(ctx, func(q querier) error {
		for start := 0; start < len(ips); start += 500 {
			chunk := ips[start:min(start+500, len(ips))]
			args := make([]any, len(chunk))
			for i, ip := range chunk {
				args[i] = ip
			}
			rows, err := q.QueryContext(ctx, "SELECT ip, name, resolved_ms FROM rdns_cache WHERE ip IN (?"+strings.Repeat(",?", len(chunk)-1)+")", args...)
			if err != nil {
				return s.classify("read reverse names", err)
			}
			for rows.Next() {
				var ip string
				var r ReverseName
				var ms int64
				if err := rows.Scan(&ip, &r.Name, &ms); err != nil {
					rows.Close()
					return s.classify("read reverse names", err)
				}
				r.Resolved = time.UnixMilli(ms)
				out[ip] = r
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return s.classify("read reverse names", err)
			}
		}
		return nil
	})
	return out, err
}

// SaveReverseNames caches reverse-DNS results (ip -> name, "" for none;
// domain computes a name's domain). A read-only Store (report) writes
// through a short-lived connection of its own when the file is writable
// by this user; SQLite's own locking orders it with the daemon's writes.
func (s *Store) SaveReverseNames(ctx context.Context, names map[string]string, domain func(string) string) error {
	if len(names) == 0 {
		return nil
	}
	db := s.sql
	if s.readOnly {
		if err := unix.Access(s.path, unix.W_OK); err != nil {
			return &Error{Path: s.path, Op: "cache reverse names", Err: err, Hint: "not writable by this user: names are looked up again next time"}
		}
		q := "file:" + s.path + fmt.Sprintf("?_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())
		rw, err := sql.Open("sqlite", q)
		if err != nil {
			return s.classify("cache reverse names", err)
		}
		defer rw.Close()
		rw.SetMaxOpenConns(1)
		db = rw
	}
	if db == nil {
		return &Error{Path: s.path, Op: "cache reverse names", Err: errors.New("database not open")}
	}
	if _, err := db.ExecContext(ctx, rdnsDDL); err != nil {
		return s.classify("cache reverse names", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("cache reverse names", err)
	}
	now := time.Now().UnixMilli()
	for ip, n := range names {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rdns_cache (ip, name, domain, resolved_ms) VALUES (?, ?, ?, ?)
ON CONFLICT (ip) DO UPDATE SET name = excluded.name, domain = excluded.domain, resolved_ms = excluded.resolved_ms`,
			ip, n, domainOf(n, domain), now); err != nil {
			tx.Rollback()
			return s.classify("cache reverse names", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.classify("cache reverse names", err)
	}
	return nil
}

func domainOf(name string, domain func(string) string) string {
	if name == "" || domain == nil {
		return ""
	}
	return domain(name)
}
