package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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
	App        string // procinfo's app rule; "" = Comm
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
	if s.sql == nil {
		return &Error{Path: s.path, Op: "write", Err: errors.New("database not open (a recovery failed; retried every interval)")}
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	// Pruning may have deleted cached rows: it bumps pruneGen before its
	// deletes, which wait for this transaction's connection.
	if g := s.pruneGen.Load(); g != s.cacheGen {
		s.resetCaches()
		s.cacheGen = g
	}
	newProcs := map[ProcessKey]int64{}
	newEps := map[endpointKey]int64{}
	newFlows := map[flowKey]int64{}
	procs, eps, flows := newSeenRows("processes", s.procSeen), newSeenRows("endpoints", s.epSeen), newSeenRows("flows", s.flowSeen)
	fail := func(op string, err error) error {
		tx.Rollback()
		return s.classify(op, err)
	}
	// Processes are few per flush: one upsert each. Endpoints and flows
	// can be new by the thousand (a scanner, a DNS or game server): they
	// are interned with one statement per table per flush (internBulk),
	// since the driver parses every statement it runs.
	pids := make([]int64, len(samples))
	var epNew []endpointKey
	for i := range samples {
		sm := &samples[i]
		pid, ok := s.procIDs[sm.ProcessKey]
		if !ok {
			pid, ok = newProcs[sm.ProcessKey]
		}
		if !ok {
			app := sm.App
			if app == "" {
				app = sm.Comm
			}
			err := tx.QueryRowContext(ctx, `INSERT INTO processes (pid, start_ns, comm, exe, cmdline, app, uid, first_seen_ms, last_seen_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pid, start_ns, comm) DO UPDATE SET
  last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
  exe = CASE WHEN exe = '' THEN excluded.exe ELSE exe END,
  cmdline = CASE WHEN cmdline = '' THEN excluded.cmdline ELSE cmdline END,
  app = CASE WHEN app = '' THEN excluded.app ELSE app END
RETURNING id`, sm.PID, int64(sm.StartNS), sm.Comm, sm.Exe, sm.Cmdline, app, sm.UID, tsMs, tsMs).Scan(&pid)
			if err != nil {
				return fail("write process", err)
			}
			newProcs[sm.ProcessKey] = pid
			procs.done[pid] = true
		} else {
			procs.use(pid, tsMs)
		}
		pids[i] = pid
		ek := endpointKey{sm.RemoteIP, sm.Protocol}
		if eid, ok := s.endpointIDs[ek]; ok {
			eps.use(eid, tsMs)
		} else if _, ok := newEps[ek]; !ok {
			newEps[ek] = 0
			epNew = append(epNew, ek)
		}
	}
	if err := internEndpoints(ctx, tx, tsMs, epNew, newEps, s.scope); err != nil {
		return fail("write endpoints", err)
	}
	for _, ek := range epNew {
		eps.done[newEps[ek]] = true
	}
	fks := make([]flowKey, len(samples))
	var flNew []flowKey
	for i := range samples {
		sm := &samples[i]
		ek := endpointKey{sm.RemoteIP, sm.Protocol}
		eid, ok := s.endpointIDs[ek]
		if !ok {
			eid = newEps[ek]
		}
		fk := flowKey{pids[i], eid, sm.CgroupID, sm.NetNS}
		fks[i] = fk
		if fid, ok := s.flowIDs[fk]; ok {
			flows.use(fid, tsMs)
		} else if _, ok := newFlows[fk]; !ok {
			newFlows[fk] = 0
			flNew = append(flNew, fk)
		}
	}
	if err := internFlows(ctx, tx, tsMs, flNew, newFlows); err != nil {
		return fail("write flows", err)
	}
	for _, fk := range flNew {
		flows.done[newFlows[fk]] = true
	}
	ids := make([]int64, len(samples)) // flow id per sample
	for i, fk := range fks {
		fid, ok := s.flowIDs[fk]
		if !ok {
			fid = newFlows[fk]
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
	s.markFlushed(tsMs)
	return nil
}

// internChunk bounds the keys one interning statement carries: bigger JSON
// parameters cost the SQLite allocator an mmap/munmap pair each.
const internChunk = 1000

// internEndpoints inserts (or finds) the endpoints keys, one statement per
// protocol and chunk whose parameter is a JSON array of [address, scope]
// pairs (scope from classify, kept from the first time the address was
// interned), and records their ids in out.
func internEndpoints(ctx context.Context, tx *sql.Tx, tsMs int64, keys []endpointKey, out map[endpointKey]int64, classify func(string) string) error {
	byProto := map[string][][2]string{}
	for _, k := range keys {
		byProto[k.Protocol] = append(byProto[k.Protocol], [2]string{k.IP, classify(k.IP)})
	}
	for proto, ips := range byProto {
		for len(ips) > 0 {
			chunk := ips[:min(len(ips), internChunk)]
			ips = ips[len(chunk):]
			b, err := json.Marshal(chunk)
			if err != nil {
				return err
			}
			// "WHERE true" keeps SQLite's parser from reading ON CONFLICT
			// as a join constraint of the SELECT.
			rows, err := tx.QueryContext(ctx, `INSERT INTO endpoints (ip, protocol, last_seen_ms, scope)
SELECT value->>0, ?, ?, value->>1 FROM json_each(?) WHERE true
ON CONFLICT (ip, protocol) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
  scope = CASE WHEN scope = '' THEN excluded.scope ELSE scope END
RETURNING id, ip`, proto, tsMs, string(b))
			if err != nil {
				return err
			}
			key := func(ip string) endpointKey { return endpointKey{IP: ip, Protocol: proto} }
			if err := collectIDs(rows, len(chunk), "endpoints", key, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectIDs reads the (id, value) rows an interning statement RETURNs into
// out under key(value), and checks that all want keys came back.
func collectIDs[V any, K comparable](rows *sql.Rows, want int, what string, key func(V) K, out map[K]int64) error {
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		var v V
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		out[key(v)] = id
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("interned %d of %d %s", n, want, what)
	}
	return nil
}

// flowGroup is what the new flows of one process, cgroup and netns share.
type flowGroup struct {
	ProcID   int64
	CgroupID uint64
	NetNS    uint32
}

// internFlows is internEndpoints for flows: one statement per (process,
// cgroup, netns) and chunk, its parameter the endpoint ids.
func internFlows(ctx context.Context, tx *sql.Tx, tsMs int64, keys []flowKey, out map[flowKey]int64) error {
	groups := map[flowGroup][]int64{}
	for _, k := range keys {
		g := flowGroup{k.ProcID, k.CgroupID, k.NetNS}
		groups[g] = append(groups[g], k.EndpointID)
	}
	for g, eps := range groups {
		for len(eps) > 0 {
			chunk := eps[:min(len(eps), internChunk)]
			eps = eps[len(chunk):]
			b := make([]byte, 0, 8*len(chunk)+2)
			b = append(b, '[')
			for i, e := range chunk {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, e, 10)
			}
			b = append(b, ']')
			rows, err := tx.QueryContext(ctx, `INSERT INTO flows (proc_id, endpoint_id, cgroup_id, netns, last_seen_ms)
SELECT ?, value, ?, ?, ? FROM json_each(?) WHERE true
ON CONFLICT (proc_id, endpoint_id, cgroup_id, netns) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)
RETURNING id, endpoint_id`, g.ProcID, int64(g.CgroupID), int64(g.NetNS), tsMs, string(b))
			if err != nil {
				return err
			}
			key := func(ep int64) flowKey {
				return flowKey{ProcID: g.ProcID, EndpointID: ep, CgroupID: g.CgroupID, NetNS: g.NetNS}
			}
			if err := collectIDs(rows, len(chunk), "flows", key, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertJSON inserts rows of one flush from a single JSON array parameter,
// one [flow_id, remote_port, tx_bytes, rx_bytes, tx_calls, rx_calls] array
// per row. The SQLite driver parses
// every statement on every execution (no prepared-statement reuse), so one
// short constant statement beats multi-row VALUES lists, whose parsing
// was a third of Write's time.
const insertJSON = `INSERT INTO samples (flow_id, remote_port, tx_bytes, rx_bytes, tx_calls, rx_calls)
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?)`

// insertSamples writes the flush's rows, internChunk rows per statement
// (their ids are consecutive: one transaction, one writer), and its flushes
// row.
func (s *Store) insertSamples(ctx context.Context, tx *sql.Tx, tsMs int64, samples []Sample, ids []int64) error {
	var first, last int64
	b := make([]byte, 0, 48*min(len(samples), internChunk))
	for lo := 0; lo < len(samples); lo += internChunk {
		hi := min(lo+internChunk, len(samples))
		b = append(b[:0], '[')
		for i := lo; i < hi; i++ {
			sm := &samples[i]
			if i > lo {
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
		if last, err = r.LastInsertId(); err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil || n != int64(hi-lo) {
			return fmt.Errorf("inserted %d of %d rows (%v)", n, hi-lo, err)
		}
		if lo == 0 {
			first = last - int64(hi-lo) + 1
		}
	}
	if last-first+1 != int64(len(samples)) {
		return fmt.Errorf("sample ids %d..%d are not consecutive for %d rows", first, last, len(samples))
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO flushes (last_id, first_id, ts_ms) VALUES (?, ?, ?)", last, first, tsMs)
	return err
}
