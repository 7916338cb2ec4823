package store

import (
	"context"
	"database/sql"
	"fmt"
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

// insertChunk is how many sample rows go into one INSERT statement.
const insertChunk = 64

const sampleCols = 11

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
	newIDs := map[ProcessKey]int64{}
	fail := func(op string, err error) error {
		tx.Rollback()
		return s.classify(op, err)
	}
	ids := make([]int64, len(samples))
	seen := map[int64]bool{}
	for i := range samples {
		sm := &samples[i]
		id, ok := s.procIDs[sm.ProcessKey]
		if !ok {
			id, ok = newIDs[sm.ProcessKey]
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
			newIDs[sm.ProcessKey] = id
			seen[id] = true
		}
		ids[i] = id
	}
	// Bump last_seen of cached processes seen in this flush.
	var stale []any
	for i := range samples {
		if !seen[ids[i]] {
			seen[ids[i]] = true
			stale = append(stale, ids[i])
		}
	}
	for len(stale) > 0 {
		n := min(len(stale), 500)
		q := "UPDATE processes SET last_seen_ms = ? WHERE id IN (?" + strings.Repeat(",?", n-1) + ")"
		args := append([]any{tsMs}, stale[:n]...)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fail("write process", err)
		}
		stale = stale[n:]
	}
	if err := insertSamples(ctx, tx, "samples", tsMs, samples, ids); err != nil {
		return fail("write samples", err)
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	for k, v := range newIDs {
		s.procIDs[k] = v
	}
	// Keep the cache bounded: processes come and go for months.
	if len(s.procIDs) > 100000 {
		s.procIDs = map[ProcessKey]int64{}
	}
	return nil
}

func insertSamples(ctx context.Context, tx *sql.Tx, table string, tsMs int64, samples []Sample, ids []int64) error {
	row := "(?" + strings.Repeat(",?", sampleCols-1) + ")"
	var full *sql.Stmt
	for start := 0; start < len(samples); start += insertChunk {
		end := min(start+insertChunk, len(samples))
		n := end - start
		args := make([]any, 0, n*sampleCols)
		for i := start; i < end; i++ {
			sm := &samples[i]
			args = append(args, tsMs, ids[i], int64(sm.CgroupID), sm.NetNS, sm.RemoteIP, sm.RemotePort, sm.Protocol,
				int64(sm.TxBytes), int64(sm.RxBytes), int64(sm.TxCalls), int64(sm.RxCalls))
		}
		q := fmt.Sprintf(`INSERT INTO %s (ts_ms, proc_id, cgroup_id, netns, remote_ip, remote_port, protocol, tx_bytes, rx_bytes, tx_calls, rx_calls) VALUES %s`,
			table, row+strings.Repeat(","+row, n-1))
		if n == insertChunk {
			if full == nil {
				var err error
				if full, err = tx.PrepareContext(ctx, q); err != nil {
					return err
				}
				defer full.Close()
			}
			if _, err := full.ExecContext(ctx, args...); err != nil {
				return err
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}
