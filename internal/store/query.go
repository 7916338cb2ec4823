package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Dimension names accepted by Query.By. Each maps to the columns it groups by.
const (
	DimProcess  = "process"
	DimRemote   = "remote"
	DimProtocol = "protocol"
	DimExe      = "exe"  // executable path
	DimUser     = "user" // uid (the report layer names it)
	// DimService and DimContainer name the process's cgroup (cgroups table):
	// the systemd unit, and "runtime:shortid" of a container.
	DimService   = "service"
	DimContainer = "container"
)

type dimension struct {
	// group is the GROUP BY expression list; sel the selected columns, in
	// the order scanRow expects them.
	group string
	sel   string
}

// dimensions is the one table of what --by (and the API) can group by.
var dimensions = map[string]dimension{
	DimProcess:   {group: "p.id", sel: "p.pid, p.start_ns, p.comm, p.exe, p.uid"},
	DimRemote:    {group: "e.ip", sel: "e.ip"},
	DimProtocol:  {group: "e.protocol", sel: "e.protocol"},
	DimExe:       {group: "p.exe", sel: "p.exe"},
	DimUser:      {group: "p.uid", sel: "p.uid"},
	DimService:   {group: "coalesce(c.service, '')", sel: "coalesce(c.service, '')"},
	DimContainer: {group: "coalesce(c.container, '')", sel: "coalesce(c.container, '')"},
}

// Dimensions lists the valid --by values, sorted.
func Dimensions() []string {
	out := make([]string, 0, len(dimensions))
	for k := range dimensions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ValidateDims checks a --by list and returns it de-duplicated, in a fixed
// order (process, remote, protocol, ...).
func ValidateDims(by []string) ([]string, error) {
	seen := map[string]bool{}
	for _, d := range by {
		d = strings.TrimSpace(strings.ToLower(d))
		if d == "" {
			continue
		}
		if _, ok := dimensions[d]; !ok {
			return nil, fmt.Errorf("unknown dimension %q: valid are %s", d, strings.Join(Dimensions(), ", "))
		}
		seen[d] = true
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("no dimension given: valid are %s", strings.Join(Dimensions(), ", "))
	}
	var out []string
	for _, d := range dimOrder {
		if seen[d] {
			out = append(out, d)
		}
	}
	return out, nil
}

var dimOrder = []string{DimProcess, DimExe, DimUser, DimService, DimContainer, DimRemote, DimProtocol}

// Query selects a time window and a grouping.
type Query struct {
	Since time.Time // inclusive; zero = beginning
	Until time.Time // exclusive; zero = now and later
	By    []string  // validated dimensions (ValidateDims)
	PID   uint32    // 0 = any
	Comm  string    // "" = any; exact match
	Top   int       // 0 = no limit
	// Service and Container filter on the cgroup's names ("" = any).
	Service   string
	Container string
}

// Row is one group of a Query's result. Only the fields of the query's
// dimensions are set.
type Row struct {
	PID       uint32
	StartNS   uint64
	Comm      string
	Exe       string
	UID       uint32
	RemoteIP  string
	Protocol  string
	Service   string
	Container string
	TxBytes   uint64
	RxBytes   uint64
	TxCalls   uint64
	RxCalls   uint64
}

// Total is tx + rx.
func (r Row) Total() uint64 { return r.TxBytes + r.RxBytes }

// procFilter is the PID/Comm condition on a segment's proc_id.
func (q Query) procFilter() (string, []any) {
	var conds []string
	var args []any
	if q.PID != 0 {
		conds = append(conds, "pid = ?")
		args = append(args, q.PID)
	}
	if q.Comm != "" {
		conds = append(conds, "comm = ?")
		args = append(args, q.Comm)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return "proc_id IN (SELECT id FROM processes WHERE " + strings.Join(conds, " AND ") + ")", args
}

// source plans the periods between consecutive edges (Unix ms, ascending;
// a plain window is two edges) over the tiers up to maxTier: the UNION of
// the segments' rows (with q's process filter), the WHERE clause on the
// joined cgroups c, and their arguments in order. ok is false when nothing
// is kept for that time. Every query reads its rows through here, so the
// process and cgroup filters mean the same in Totals, Series and Periods.
func (st tierState) source(q Query, edges []int64, maxTier int) (union, cgroupWhere string, args []any, ok bool) {
	var segs []segment
	for i := 0; i+1 < len(edges); i++ {
		segs = append(segs, st.plan(edges[i], edges[i+1], maxTier)...)
	}
	segs = mergeSegments(segs)
	if len(segs) == 0 {
		return "", "", nil, false
	}
	pf, pargs := q.procFilter()
	union, args = st.unionSQL(segs, pf, pargs)
	cgroupWhere, cargs := q.cgroupFilter()
	return union, cgroupWhere, append(args, cargs...), true
}

// cgroupFilter is the Service/Container condition on the joined cgroups c.
func (q Query) cgroupFilter() (string, []any) {
	var conds []string
	var args []any
	if q.Service != "" {
		conds = append(conds, "coalesce(c.service, '') = ?")
		args = append(args, q.Service)
	}
	if q.Container != "" {
		conds = append(conds, "(coalesce(c.container, '') = ? OR coalesce(c.container_id, '') = ?)")
		args = append(args, q.Container, q.Container)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// window is the query's [since, until) in Unix ms, as edges for source.
func (q Query) window() []int64 {
	s, u := int64(0), int64(1)<<62
	if !q.Since.IsZero() {
		s = q.Since.UnixMilli()
	}
	if !q.Until.IsZero() {
		u = q.Until.UnixMilli()
	}
	return []int64{s, u}
}

func scanDest(by []string, r *Row) []any {
	var dest []any
	for _, d := range by {
		switch d {
		case DimProcess:
			dest = append(dest, &r.PID, &r.StartNS, &r.Comm, &r.Exe, &r.UID)
		case DimExe:
			dest = append(dest, &r.Exe)
		case DimUser:
			dest = append(dest, &r.UID)
		case DimRemote:
			dest = append(dest, &r.RemoteIP)
		case DimProtocol:
			dest = append(dest, &r.Protocol)
		case DimService:
			dest = append(dest, &r.Service)
		case DimContainer:
			dest = append(dest, &r.Container)
		}
	}
	return dest
}

// preAggregate sums the union's rows per (t, proc_id, endpoint_id,
// cgroup_id), t being the expression tExpr of the row's t ("" = no t), so
// the joins and the grouping by text columns see a few thousand rows
// instead of every bucket.
func preAggregate(tExpr, union string) string {
	t, g := "", "1, 2, 3"
	if tExpr != "" {
		t, g = tExpr+" AS t, ", "1, 2, 3, 4"
	}
	return "SELECT " + t + "proc_id, endpoint_id, cgroup_id, sum(tx_bytes) AS tx_bytes, sum(rx_bytes) AS rx_bytes," +
		" sum(tx_calls) AS tx_calls, sum(rx_calls) AS rx_calls FROM (" + union + ") GROUP BY " + g
}

// The union is always the outer loop of the joins (CROSS JOIN): otherwise
// SQLite may scan processes and build an automatic index on the union's
// rows, which doubled a month's --period day.

// endpointJoin joins the endpoints table as e when a dimension needs it.
func endpointJoin(by []string) string {
	for _, d := range by {
		if d == DimRemote || d == DimProtocol {
			return " JOIN endpoints e ON e.id = s.endpoint_id"
		}
	}
	return ""
}

func groupSQL(by []string) (groups, sels []string) {
	for _, d := range by {
		groups = append(groups, dimensions[d].group)
		sels = append(sels, dimensions[d].sel)
	}
	return groups, sels
}

// Totals sums bytes and calls over the window per group, sorted by total
// bytes descending (ties broken by the group's fields so output is stable).
// It reads the coarsest rollup tier that fits each stretch of the window
// (see plan), so a month-long window costs a few thousand rows.
func (s *Store) Totals(ctx context.Context, q Query) ([]Row, error) {
	by, err := ValidateDims(q.By)
	if err != nil {
		return nil, err
	}
	groups, sels := groupSQL(by)
	var out []Row
	err = s.readTx(ctx, func(db querier) error {
		st, err := readTierState(ctx, db)
		if err != nil {
			return s.classify("query", err)
		}
		union, cf, args, ok := st.source(q, q.window(), len(Tiers)-1)
		if !ok {
			return nil
		}
		sqlq := "SELECT " + strings.Join(sels, ", ") +
			", sum(s.tx_bytes), sum(s.rx_bytes), sum(s.tx_calls), sum(s.rx_calls)" +
			" FROM (" + preAggregate("", union) + ") s CROSS JOIN processes p ON p.id = s.proc_id" +
			endpointJoin(by) +
			" LEFT JOIN cgroups c ON c.id = s.cgroup_id" + cf +
			" GROUP BY " + strings.Join(groups, ", ") +
			" ORDER BY sum(s.tx_bytes) + sum(s.rx_bytes) DESC, " + strings.Join(groups, ", ")
		if q.Top > 0 {
			sqlq += fmt.Sprintf(" LIMIT %d", q.Top)
		}
		rows, err := db.QueryContext(ctx, sqlq, args...)
		if err != nil {
			return s.classify("query", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r Row
			dest := append(scanDest(by, &r), &r.TxBytes, &r.RxBytes, &r.TxCalls, &r.RxCalls)
			if err := rows.Scan(dest...); err != nil {
				return s.classify("query", err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return s.classify("query", err)
		}
		return nil
	})
	return out, err
}

// Point is one step of a time series.
type Point struct {
	TsMs    int64 // start of the step, Unix ms
	TxBytes uint64
	RxBytes uint64
}

// Series returns tx/rx bytes per step over [since, until), for all processes
// or those matching pid/comm. Steps without traffic are omitted. Steps are
// multiples of step since the Unix epoch. It reads the coarsest tier whose
// buckets divide step; where only coarser data is left, each bucket lands
// in the step it starts in.
func (s *Store) Series(ctx context.Context, q Query, step time.Duration) ([]Point, error) {
	if step <= 0 {
		return nil, fmt.Errorf("step must be positive")
	}
	stepMs := step.Milliseconds()
	if stepMs <= 0 {
		stepMs = 1
	}
	maxTier := 0
	for i := 1; i < len(Tiers); i++ {
		if stepMs%sizeMs(i) == 0 {
			maxTier = i
		}
	}
	var out []Point
	err := s.readTx(ctx, func(db querier) error {
		st, err := readTierState(ctx, db)
		if err != nil {
			return s.classify("query", err)
		}
		union, cf, args, ok := st.source(q, q.window(), maxTier)
		if !ok {
			return nil
		}
		sqlq := fmt.Sprintf("SELECT (s.t / %d) * %d AS b, sum(s.tx_bytes), sum(s.rx_bytes) FROM (%s) s LEFT JOIN cgroups c ON c.id = s.cgroup_id%s GROUP BY b ORDER BY b", stepMs, stepMs, union, cf)
		rows, err := db.QueryContext(ctx, sqlq, args...)
		if err != nil {
			return s.classify("query", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p Point
			if err := rows.Scan(&p.TsMs, &p.TxBytes, &p.RxBytes); err != nil {
				return s.classify("query", err)
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	return out, err
}
