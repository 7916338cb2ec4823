package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProcessKey is a process identity: a reused PID has another StartNS, and an
// exec() another Comm.
type ProcessKey struct {
	PID     uint32
	StartNS uint64
	Comm    string
}

// endpointKey is an endpoints row's identity.
type endpointKey struct {
	IP       string
	Protocol string
}

// Sample is one interval's traffic of one process to one remote endpoint over
// one protocol, as the collector hands it to Write.
type Sample struct {
	ProcessKey
	Exe        string
	Cmdline    string
	UID        uint32
	CgroupID   uint64
	NetNS      uint32
	RemoteIP   string // text form, "" when unknown
	RemotePort uint16
	Protocol   string
	TxBytes    uint64
	RxBytes    uint64
	TxCalls    uint64
	RxCalls    uint64
}

// seenLagMs bounds how far processes.last_seen_ms and
// endpoints.last_seen_ms may lag behind the newest flush that used them:
// Write rewrites them only when they are this much out of date, instead of
// on every flush. They only steer pruning, whose cutoffs are hours to
// years back, and rows written through an open Store are never pruned.
const seenLagMs = 60_000

// maxCached bounds the writer's id caches: processes and remotes come and
// go for months.
const maxCached = 100_000

func (s *Store) resetCaches() {
	s.procIDs = map[ProcessKey]int64{}
	s.endpointIDs = map[endpointKey]int64{}
	s.procSeen = map[int64]int64{}
	s.epSeen = map[int64]int64{}
}

// Write stores one flush in a single transaction: every sample gets ts as
// its interval end. Either all rows land or none do.
func (s *Store) Write(ctx context.Context, ts time.Time, samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	tsMs := ts.UnixMilli()
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	newProcs := map[ProcessKey]int64{}
	newEps := map[endpointKey]int64{}
	bumped := map[int64]bool{}   // process ids whose last_seen this flush sets
	epBumped := map[int64]bool{} // same for endpoints
	fail := func(op string, err error) error {
		tx.Rollback()
		return s.classify(op, err)
	}
	ids := make([]int64, 2*len(samples)) // proc id, endpoint id per sample
	var staleProcs, staleEps []any
	for i := range samples {
		sm := &samples[i]
		id, ok := s.procIDs[sm.ProcessKey]
		if !ok {
			id, ok = newProcs[sm.ProcessKey]
		}
		if !ok {
			err := tx.QueryRowContext(ctx, `INSERT INTO processes (pid, start_ns, comm, exe, cmdline, uid, first_seen_ms, last_seen_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pid, start_ns, comm) DO UPDATE SET
  last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
  exe = CASE WHEN exe = '' THEN excluded.exe ELSE exe END,
  cmdline = CASE WHEN cmdline = '' THEN excluded.cmdline ELSE cmdline END
RETURNING id`, sm.PID, int64(sm.StartNS), sm.Comm, sm.Exe, sm.Cmdline, sm.UID, tsMs, tsMs).Scan(&id)
			if err != nil {
				return fail("write process", err)
			}
			newProcs[sm.ProcessKey] = id
			bumped[id] = true
		} else if !bumped[id] && s.procSeen[id] < tsMs-seenLagMs {
			bumped[id] = true
			staleProcs = append(staleProcs, id)
		}
		ids[2*i] = id
		ek := endpointKey{sm.RemoteIP, sm.Protocol}
		eid, ok := s.endpointIDs[ek]
		if !ok {
			eid, ok = newEps[ek]
		}
		if !ok {
			err := tx.QueryRowContext(ctx, `INSERT INTO endpoints (ip, protocol, last_seen_ms) VALUES (?, ?, ?)
ON CONFLICT (ip, protocol) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)
RETURNING id`, sm.RemoteIP, sm.Protocol, tsMs).Scan(&eid)
			if err != nil {
				return fail("write endpoint", err)
			}
			newEps[ek] = eid
			epBumped[eid] = true
		} else if !epBumped[eid] && s.epSeen[eid] < tsMs-seenLagMs {
			epBumped[eid] = true
			staleEps = append(staleEps, eid)
		}
		ids[2*i+1] = eid
	}
	// Bump last_seen of cached rows whose stored value is out of date.
	for _, u := range []struct {
		table string
		ids   []any
	}{{"processes", staleProcs}, {"endpoints", staleEps}} {
		for len(u.ids) > 0 {
			n := min(len(u.ids), 500)
			q := "UPDATE " + u.table + " SET last_seen_ms = max(last_seen_ms, ?) WHERE id IN (?" + strings.Repeat(",?", n-1) + ")"
			args := append([]any{tsMs}, u.ids[:n]...)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fail("write "+u.table, err)
			}
			u.ids = u.ids[n:]
		}
	}
	if err := s.insertSamples(ctx, tx, tsMs, samples, ids); err != nil {
		return fail("write samples", err)
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	// Keep the caches bounded.
	if len(s.procIDs)+len(newProcs) > maxCached || len(s.endpointIDs)+len(newEps) > maxCached {
		s.resetCaches()
	}
	for k, v := range newProcs {
		s.procIDs[k] = v
	}
	for k, v := range newEps {
		s.endpointIDs[k] = v
	}
	for id := range bumped {
		s.procSeen[id] = max(s.procSeen[id], tsMs)
	}
	for id := range epBumped {
		s.epSeen[id] = max(s.epSeen[id], tsMs)
	}
	return nil
}

// insertJSON inserts one flush's rows from a single JSON array parameter,
// one [proc_id, endpoint_id, cgroup_id, netns, remote_port, tx_bytes,
// rx_bytes, tx_calls, rx_calls] array per row. The SQLite driver parses
// every statement on every execution (no prepared-statement reuse), so one
// short constant statement beats multi-row VALUES lists, whose parsing
// was a third of Write's time.
const insertJSON = `INSERT INTO samples (proc_id, endpoint_id, cgroup_id, netns, remote_port, tx_bytes, rx_bytes, tx_calls, rx_calls)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8 FROM json_each(?)`

// insertSamples writes the flush's rows with one statement (their ids are
// consecutive: one statement, one writer) and its flushes row.
func (s *Store) insertSamples(ctx context.Context, tx *sql.Tx, tsMs int64, samples []Sample, ids []int64) error {
	b := make([]byte, 0, 64*len(samples))
	b = append(b, '[')
	for i := range samples {
		sm := &samples[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for k, v := range [...]int64{ids[2*i], ids[2*i+1], int64(sm.CgroupID), int64(sm.NetNS), int64(sm.RemotePort),
			int64(sm.TxBytes), int64(sm.RxBytes), int64(sm.TxCalls), int64(sm.RxCalls)} {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ']')
	}
	b = append(b, ']')
	r, err := tx.ExecContext(ctx, insertJSON, string(b))
	if err != nil {
		return err
	}
	last, err := r.LastInsertId()
	if err != nil {
		return err
	}
	if n, err := r.RowsAffected(); err != nil || n != int64(len(samples)) {
		return fmt.Errorf("inserted %d of %d rows (%v)", n, len(samples), err)
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO flushes (last_id, first_id, ts_ms) VALUES (?, ?, ?)", last, last-int64(len(samples))+1, tsMs)
	return err
}
