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

// flowKey is a flows row's identity.
type flowKey struct {
	ProcID, EndpointID int64
	CgroupID           uint64
	NetNS              uint32
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
	s.flowIDs = map[flowKey]int64{}
	s.procSeen = map[int64]int64{}
	s.epSeen = map[int64]int64{}
	s.flowSeen = map[int64]int64{}
}

// seenRows tracks, for one table, the rows a flush inserted or whose
// last_seen_ms it must bump.
type seenRows struct {
	table  string
	cached map[int64]int64 // last_seen_ms written, from the Store
	done   map[int64]bool  // set by this flush (inserted or bumped)
	stale  []any           // cached rows to bump
}

func newSeenRows(table string, cached map[int64]int64) *seenRows {
	return &seenRows{table: table, cached: cached, done: map[int64]bool{}}
}

// use notes that the flush at tsMs uses cached row id.
func (r *seenRows) use(id, tsMs int64) {
	if !r.done[id] && r.cached[id] < tsMs-seenLagMs {
		r.done[id] = true
		r.stale = append(r.stale, id)
	}
}

// bump writes the stale rows' last_seen_ms.
func (r *seenRows) bump(ctx context.Context, tx *sql.Tx, tsMs int64) error {
	for ids := r.stale; len(ids) > 0; {
		n := min(len(ids), 500)
		q := "UPDATE " + r.table + " SET last_seen_ms = max(last_seen_ms, ?) WHERE id IN (?" + strings.Repeat(",?", n-1) + ")"
		if _, err := tx.ExecContext(ctx, q, append([]any{tsMs}, ids[:n]...)...); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// commit records what the flush wrote in the Store's cache.
func (r *seenRows) commit(tsMs int64) {
	for id := range r.done {
		r.cached[id] = max(r.cached[id], tsMs)
	}
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
	newFlows := map[flowKey]int64{}
	procs, eps, flows := newSeenRows("processes", s.procSeen), newSeenRows("endpoints", s.epSeen), newSeenRows("flows", s.flowSeen)
	fail := func(op string, err error) error {
		tx.Rollback()
		return s.classify(op, err)
	}
	ids := make([]int64, len(samples)) // flow id per sample
	for i := range samples {
		sm := &samples[i]
		pid, ok := s.procIDs[sm.ProcessKey]
		if !ok {
			pid, ok = newProcs[sm.ProcessKey]
		}
		if !ok {
			err := tx.QueryRowContext(ctx, `INSERT INTO processes (pid, start_ns, comm, exe, cmdline, uid, first_seen_ms, last_seen_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pid, start_ns, comm) DO UPDATE SET
  last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
  exe = CASE WHEN exe = '' THEN excluded.exe ELSE exe END,
  cmdline = CASE WHEN cmdline = '' THEN excluded.cmdline ELSE cmdline END
RETURNING id`, sm.PID, int64(sm.StartNS), sm.Comm, sm.Exe, sm.Cmdline, sm.UID, tsMs, tsMs).Scan(&pid)
			if err != nil {
				return fail("write process", err)
			}
			newProcs[sm.ProcessKey] = pid
			procs.done[pid] = true
		} else {
			procs.use(pid, tsMs)
		}
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
			eps.done[eid] = true
		} else {
			eps.use(eid, tsMs)
		}
		fk := flowKey{pid, eid, sm.CgroupID, sm.NetNS}
		fid, ok := s.flowIDs[fk]
		if !ok {
			fid, ok = newFlows[fk]
		}
		if !ok {
			err := tx.QueryRowContext(ctx, `INSERT INTO flows (proc_id, endpoint_id, cgroup_id, netns, last_seen_ms) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (proc_id, endpoint_id, cgroup_id, netns) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)
RETURNING id`, pid, eid, int64(sm.CgroupID), int64(sm.NetNS), tsMs).Scan(&fid)
			if err != nil {
				return fail("write flow", err)
			}
			newFlows[fk] = fid
			flows.done[fid] = true
		} else {
			flows.use(fid, tsMs)
		}
		ids[i] = fid
	}
	// Bump last_seen of cached rows whose stored value is out of date.
	for _, r := range []*seenRows{procs, eps, flows} {
		if err := r.bump(ctx, tx, tsMs); err != nil {
			return fail("write "+r.table, err)
		}
	}
	if err := s.insertSamples(ctx, tx, tsMs, samples, ids); err != nil {
		return fail("write samples", err)
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	// Keep the caches bounded.
	if len(s.procIDs)+len(newProcs) > maxCached || len(s.endpointIDs)+len(newEps) > maxCached || len(s.flowIDs)+len(newFlows) > maxCached {
		s.resetCaches()
		procs.cached, eps.cached, flows.cached = s.procSeen, s.epSeen, s.flowSeen
	}
	for k, v := range newProcs {
		s.procIDs[k] = v
	}
	for k, v := range newEps {
		s.endpointIDs[k] = v
	}
	for k, v := range newFlows {
		s.flowIDs[k] = v
	}
	for _, r := range []*seenRows{procs, eps, flows} {
		r.commit(tsMs)
	}
	return nil
}

// insertJSON inserts one flush's rows from a single JSON array parameter,
// one [flow_id, remote_port, tx_bytes, rx_bytes, tx_calls, rx_calls] array
// per row. The SQLite driver parses
// every statement on every execution (no prepared-statement reuse), so one
// short constant statement beats multi-row VALUES lists, whose parsing
// was a third of Write's time.
const insertJSON = `INSERT INTO samples (flow_id, remote_port, tx_bytes, rx_bytes, tx_calls, rx_calls)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?)`

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
		for k, v := range [...]int64{ids[i], int64(sm.RemotePort), int64(sm.TxBytes), int64(sm.RxBytes), int64(sm.TxCalls), int64(sm.RxCalls)} {
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
