package store

// SQL generation: the one assembler every read goes through (selectSQL),
// from the planned segments to the grouped, filtered SELECT. Totals, Series
// and Periods differ only in the selection they ask for; the joins, the
// process and cgroup filters and the dimension columns are defined here
// once.

import (
	"fmt"
	"strings"
	"time"
)

// segmentSQL is a SELECT of (t, proc_id, endpoint_id, cgroup_id,
// remote_port, netns, tx_bytes, rx_bytes, tx_calls, rx_calls) for one
// segment, t being the sample's ts_ms or the bucket start. procFilter, when
// not empty, is an extra condition on proc_id, remote_port and netns (the
// same column names in samples+flows and in rollup rows). Rollup segments
// add the samples not rolled up yet that belong to their buckets.
func (st tierState) segmentSQL(sg segment, procFilter string, procArgs []any) (string, []any) {
	cols := "proc_id, endpoint_id, cgroup_id, remote_port, netns, tx_bytes, rx_bytes, tx_calls, rx_calls"
	if !st.portCols {
		cols = "proc_id, endpoint_id, cgroup_id, 0 AS remote_port, 0 AS netns, tx_bytes, rx_bytes, tx_calls, rx_calls"
	}
	// Raw rows: time from the flush, process/endpoint/cgroup/netns from the
	// flow, remote port from the sample.
	const rawCols = "fl.proc_id AS proc_id, fl.endpoint_id AS endpoint_id, fl.cgroup_id AS cgroup_id," +
		" s.remote_port AS remote_port, fl.netns AS netns," +
		" s.tx_bytes AS tx_bytes, s.rx_bytes AS rx_bytes, s.tx_calls AS tx_calls, s.rx_calls AS rx_calls"
	const rawFrom = " FROM flushes f CROSS JOIN samples s ON s.id BETWEEN f.first_id AND f.last_id JOIN flows fl ON fl.id = s.flow_id"
	pf := ""
	if procFilter != "" {
		pf = " AND " + procFilter
	}
	if sg.tier == 0 {
		args := append([]any{sg.a, sg.b}, procArgs...)
		return "SELECT f.ts_ms AS t, " + rawCols + rawFrom + " WHERE f.ts_ms >= ? AND f.ts_ms < ?" + pf, args
	}
	size := sizeMs(sg.tier)
	args := append([]any{sg.a, sg.b}, procArgs...)
	q := "SELECT bucket_ms AS t, " + cols + " FROM " + Tiers[sg.tier].Table + " WHERE bucket_ms >= ? AND bucket_ms < ?" + pf
	// A sample belongs to the bucket its ts_ms falls in; a bucket starts in
	// [a, b) iff the sample's ts_ms is in [roundUp(a), roundUp(b)).
	// "+ts_ms" keeps SQLite on the flushes' rowid range (the few flushes
	// above the watermark) instead of a day of flushes by the ts_ms index.
	q += fmt.Sprintf(" UNION ALL SELECT f.ts_ms - f.ts_ms %% %d AS t, ", size) + rawCols + rawFrom +
		" WHERE f.last_id > ? AND s.id > ? AND +f.ts_ms >= ? AND +f.ts_ms < ?" + pf
	args = append(args, st.rolledID, st.rolledID, roundUp(sg.a, size), roundUp(sg.b, size))
	args = append(args, procArgs...)
	return q, args
}

// unionSQL joins the segments' SELECTs.
func (st tierState) unionSQL(segs []segment, procFilter string, procArgs []any) (string, []any) {
	var parts []string
	var args []any
	for _, sg := range segs {
		q, a := st.segmentSQL(sg, procFilter, procArgs)
		parts = append(parts, q)
		args = append(args, a...)
	}
	return strings.Join(parts, " UNION ALL "), args
}

type dimension struct {
	// group is the GROUP BY expression list; sel the selected columns, in
	// the order scanRow expects them.
	group string
	sel   string
	// needs names a column ("table.column") that files from older
	// versions lack; a read-only open of such a file groups by old
	// instead (until `run` migrates the file).
	needs, old string
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
	DimPort:      {group: "s.remote_port", sel: "s.remote_port"},
	DimNetNS:     {group: "s.netns", sel: "s.netns"},
	DimNamespace: {group: "coalesce(c.namespace, '')", sel: "coalesce(c.namespace, '')"},
	DimPod:       {group: "coalesce(c.pod, '')", sel: "coalesce(c.pod, '')"},
	DimWorkload:  {group: "coalesce(c.workload, '')", sel: "coalesce(c.workload, '')"},
	DimDomain:    {group: domainSQL, sel: domainSQL}, // names.go
	DimApp:       {group: "p.app", sel: "p.app", needs: "processes.app", old: "p.comm"},
	DimComm:      {group: "p.comm", sel: "p.comm"},
	DimCgroup:    {group: "coalesce(c.path, '')", sel: "coalesce(c.path, '')"},
	DimScope:     {group: "e.scope", sel: "e.scope", needs: "endpoints.scope", old: "''"},
}

// procFilter is the PID/Comm/App condition on a segment's proc_id, the
// Port/NetNS conditions on its remote_port and netns, and the Scope
// condition on its endpoint_id. lacks: see tierState.
func (q Query) procFilter(lacks map[string]bool) (string, []any) {
	var conds, rowConds []string
	var args []any
	if q.PID != 0 {
		conds = append(conds, "pid = ?")
		args = append(args, q.PID)
	}
	if q.Comm != "" {
		conds = append(conds, "comm = ?")
		args = append(args, q.Comm)
	}
	if q.App != "" {
		if lacks["processes.app"] {
			conds = append(conds, "comm = ?") // as DimApp groups such files
		} else {
			conds = append(conds, "app = ?")
		}
		args = append(args, q.App)
	}
	if len(conds) > 0 {
		rowConds = append(rowConds, "proc_id IN (SELECT id FROM processes WHERE "+strings.Join(conds, " AND ")+")")
	}
	if q.Port != 0 {
		rowConds = append(rowConds, "remote_port = ?")
		args = append(args, q.Port)
	}
	if q.NetNS != 0 {
		rowConds = append(rowConds, "netns = ?")
		args = append(args, q.NetNS)
	}
	if q.Scope != "" {
		if lacks["endpoints.scope"] {
			rowConds = append(rowConds, "0") // no scopes in such files: nothing matches
		} else {
			rowConds = append(rowConds, "endpoint_id IN (SELECT id FROM endpoints WHERE scope = ?)")
			args = append(args, q.Scope)
		}
	}
	return strings.Join(rowConds, " AND "), args
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
	pf, pargs := q.procFilter(st.lacks)
	union, args = st.unionSQL(segs, pf, pargs)
	cgroupWhere, cargs := q.cgroupFilter()
	return union, cgroupWhere, append(args, cargs...), true
}

// cgroupFilter is the Service/Container/Namespace/Pod condition on the
// joined cgroups c.
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
	if q.Namespace != "" {
		conds = append(conds, "coalesce(c.namespace, '') = ?")
		args = append(args, q.Namespace)
	}
	if q.Pod != "" {
		conds = append(conds, "(coalesce(c.pod, '') = ? OR coalesce(c.pod_uid, '') = ?)")
		args = append(args, q.Pod, q.Pod)
	}
	if q.Cgroup != "" {
		conds = append(conds, "coalesce(c.path, '') = ?")
		args = append(args, q.Cgroup)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// window is the query's [since, until) in Unix ms, as edges for source.
// An open end is a minute from now (flushes are stamped with the end of
// their interval, never later than the clock): today's day bucket and this
// hour's bucket are still open (not folded), so they are read from the
// finer tiers instead of whole.
func (q Query) window() []int64 {
	s, u := int64(0), roundUp(time.Now().Add(time.Minute).UnixMilli(), time.Minute.Milliseconds())
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
			dest = append(dest, &r.RemoteIP, &r.RemoteName)
		case DimDomain:
			dest = append(dest, &r.Domain)
		case DimProtocol:
			dest = append(dest, &r.Protocol)
		case DimService:
			dest = append(dest, &r.Service)
		case DimContainer:
			dest = append(dest, &r.Container)
		case DimPort:
			dest = append(dest, &r.RemotePort)
		case DimNetNS:
			dest = append(dest, &r.NetNS)
		case DimNamespace:
			dest = append(dest, &r.Namespace)
		case DimPod:
			dest = append(dest, &r.Pod)
		case DimWorkload:
			dest = append(dest, &r.Workload)
		case DimApp:
			dest = append(dest, &r.App)
		case DimComm:
			dest = append(dest, &r.Comm)
		case DimCgroup:
			dest = append(dest, &r.Cgroup)
		case DimScope:
			dest = append(dest, &r.Scope)
		}
	}
	return dest
}

// preAggregate sums the union's rows per (proc_id, endpoint_id,
// cgroup_id), and remote_port and netns when by groups by them, so the
// joins and the grouping by text columns see a few thousand rows instead
// of every bucket.
func preAggregate(union string, by []string) string {
	keys := "proc_id, endpoint_id, cgroup_id"
	for _, d := range by {
		switch d {
		case DimPort:
			keys += ", remote_port"
		case DimNetNS:
			keys += ", netns"
		}
	}
	return "SELECT " + keys + ", sum(tx_bytes) AS tx_bytes, sum(rx_bytes) AS rx_bytes," +
		" sum(tx_calls) AS tx_calls, sum(rx_calls) AS rx_calls FROM (" + union + ") GROUP BY " + keys
}

// endpointJoin joins the endpoints table as e when a dimension needs it.
func endpointJoin(by []string) string {
	for _, d := range by {
		if d == DimRemote || d == DimProtocol || d == DimDomain || d == DimScope {
			return " JOIN endpoints e ON e.id = s.endpoint_id"
		}
	}
	return ""
}

// groupSQL lists the dimensions' GROUP BY and SELECT expressions. names
// says whether the file has the name tables (names.go): without them a
// remote's name and its domain are ”. lacks holds the columns this file
// does not have (dimension.needs).
func groupSQL(by []string, names bool, lacks map[string]bool) (groups, sels []string) {
	for _, d := range by {
		dim := dimensions[d]
		switch {
		case d == DimRemote && names:
			dim.sel += ", " + nameSQL
		case d == DimRemote:
			dim.sel += ", ''"
		case d == DimDomain && !names:
			dim.group, dim.sel = "''", "''"
		case dim.needs != "" && lacks[dim.needs]:
			dim.group, dim.sel = dim.old, dim.old
		}
		groups = append(groups, dim.group)
		sels = append(sels, dim.sel)
	}
	return groups, sels
}

// selection is what one read asks of the assembler.
type selection struct {
	edges   []int64  // the window, or period edges (Unix ms, ascending)
	maxTier int      // the coarsest tier that may serve it
	by      []string // validated dimensions to group by (none: buckets only)
	// bucket > 0 also groups by the row's time rounded down to that many
	// ms, selected first as tb and ordered by; otherwise rows are ordered
	// by total bytes, largest first, ties by the groups.
	bucket int64
	// preAgg sums the union per (proc_id, endpoint_id, cgroup_id) before
	// the joins (Totals: a month of buckets becomes a few thousand rows).
	preAgg bool
	limit  int // 0 = all rows
	// names: the name tables exist (set by selectRows; names.go).
	names bool
}

// selectSQL assembles the one SELECT every read runs: the union of the
// planned segments with q's process filter (source), joined to processes
// when grouping by anything, to endpoints when a dimension needs them, and
// to cgroups always (q's service/container filter and dimensions), grouped
// by the bucket and the dimensions. Columns: [tb,] the dimensions' columns
// (scanDest order), then sums of tx_bytes, rx_bytes, tx_calls, rx_calls.
// ok is false when nothing is kept for the window.
//
// The union is always the outer loop of the joins (CROSS JOIN): otherwise
// SQLite may scan processes and build an automatic index on the union's
// rows, which doubled a month's --period day.
func (st tierState) selectSQL(q Query, sel selection) (string, []any, bool) {
	union, cf, args, ok := st.source(q, sel.edges, sel.maxTier)
	if !ok {
		return "", nil, false
	}
	groups, sels := groupSQL(sel.by, sel.names, st.lacks)
	if sel.bucket > 0 {
		tb := fmt.Sprintf("s.t - s.t %% %d", sel.bucket)
		sels = append([]string{tb + " AS tb"}, sels...)
		groups = append([]string{"tb"}, groups...)
	}
	from := union
	if sel.preAgg {
		from = preAggregate(union, sel.by)
	}
	sqlq := "SELECT " + strings.Join(append(sels, "sum(s.tx_bytes), sum(s.rx_bytes), sum(s.tx_calls), sum(s.rx_calls)"), ", ") +
		" FROM (" + from + ") s"
	if len(sel.by) > 0 {
		sqlq += " CROSS JOIN processes p ON p.id = s.proc_id" + endpointJoin(sel.by)
	}
	sqlq += " LEFT JOIN cgroups c ON c.id = s.cgroup_id" + cf
	if len(groups) > 0 {
		sqlq += " GROUP BY " + strings.Join(groups, ", ")
	}
	if sel.bucket > 0 {
		sqlq += " ORDER BY tb"
	} else {
		sqlq += " ORDER BY sum(s.tx_bytes) + sum(s.rx_bytes) DESC"
		if len(groups) > 0 {
			sqlq += ", " + strings.Join(groups, ", ")
		}
	}
	if sel.limit > 0 {
		sqlq += fmt.Sprintf(" LIMIT %d", sel.limit)
	}
	return sqlq, args, true
}
