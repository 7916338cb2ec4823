package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bwtracker/bwtracker/internal/api/wire"
	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/report"
	"github.com/bwtracker/bwtracker/internal/store"
)

// The response bodies are defined once, in internal/api/wire (the client
// in internal/apiclient decodes the same types).
type (
	CurrentResponse   = wire.CurrentResponse
	HistoryPoint      = wire.HistoryPoint
	HistoryResponse   = wire.HistoryResponse
	ProcessTotal      = wire.ProcessTotal
	ProcessRow        = wire.ProcessRow
	ProcessesResponse = wire.ProcessesResponse
	RemoteTotal       = wire.RemoteTotal
	RemotesResponse   = wire.RemotesResponse
	SummaryResponse   = wire.SummaryResponse
	PeriodRow         = wire.PeriodRow
	PeriodGroup       = wire.PeriodGroup
	PeriodsResponse   = wire.PeriodsResponse
	ScopeTotal        = wire.ScopeTotal
	StatusResponse    = wire.StatusResponse
)

// badRequest answers 400 for a ParamError (and anything else the parsers
// return).
func badRequest(c *gin.Context, err error) {
	fail(c, http.StatusBadRequest, err.Error())
}

func (s *server) needLive(c *gin.Context) bool {
	if s.live == nil {
		fail(c, http.StatusServiceUnavailable, "live data is not available: the collector is not running in this process")
		return false
	}
	return true
}

func (s *server) needStore(c *gin.Context) bool {
	if s.q == nil {
		fail(c, http.StatusServiceUnavailable, "history is not available: no database is open")
		return false
	}
	return true
}

// storeFailed answers a store error: the query string was already
// validated, so this is the database's fault (busy, corrupt, gone): 503.
func storeFailed(c *gin.Context, err error) {
	if errors.Is(c.Request.Context().Err(), context.Canceled) {
		c.Abort() // client went away
		return
	}
	slog.Warn("api: store query failed", "path", c.Request.URL.Path, "err", err)
	fail(c, http.StatusServiceUnavailable, "database query failed: "+err.Error())
}

func (s *server) queryCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), queryTimeout)
}

// --- /api/current ---------------------------------------------------------

func (s *server) intervalMs(snap live.Snapshot) int64 {
	if snap.Interval > 0 {
		return snap.Interval.Milliseconds()
	}
	if st := s.live.Status(); st.Interval > 0 {
		return st.Interval.Milliseconds()
	}
	return 1000
}

func (s *server) currentBody(snap live.Snapshot, q currentQuery) CurrentResponse {
	procs := topProcs(snap.Processes, q.Sort, q.Top)
	return CurrentResponse{
		Time: snap.Time, IntervalMs: s.intervalMs(snap),
		TxRate: snap.TxRate, RxRate: snap.RxRate, TxBytes: snap.TxBytes, RxBytes: snap.RxBytes,
		ProcessCount: len(snap.Processes), Processes: procs,
	}
}

// currentJSON encodes the /api/current body, reusing the last encoding
// while the snapshot and the query are unchanged: the dashboard, `top` and
// every stream subscriber ask for the same thing once per interval.
func (s *server) currentJSON(snap live.Snapshot, q currentQuery) []byte {
	return s.cur.get(snap, q, func() []byte {
		b, err := json.Marshal(s.currentBody(snap, q))
		if err != nil { // NaN/Inf rate from a broken clock: say so, do not 500
			slog.Warn("api: cannot encode snapshot", "err", err)
			b, _ = json.Marshal(gin.H{"error": "snapshot could not be encoded: " + err.Error()})
		}
		return b
	})
}

type currentKey struct {
	t     time.Time
	n     int
	q     currentQuery
	valid bool
}

// currentCache holds a few recent encodings (one per distinct query).
type currentCache struct {
	mu      sync.Mutex
	entries [4]struct {
		k currentKey
		b []byte
	}
	next int
}

func (cc *currentCache) get(snap live.Snapshot, q currentQuery, enc func() []byte) []byte {
	k := currentKey{t: snap.Time, n: len(snap.Processes), q: q, valid: true}
	cc.mu.Lock()
	for _, e := range cc.entries {
		if e.k == k {
			cc.mu.Unlock()
			return e.b
		}
	}
	cc.mu.Unlock()
	b := enc()
	if snap.Time.IsZero() {
		return b // no identity to cache on
	}
	cc.mu.Lock()
	cc.entries[cc.next].k, cc.entries[cc.next].b = k, b
	cc.next = (cc.next + 1) % len(cc.entries)
	cc.mu.Unlock()
	return b
}

// topProcs returns the first top processes of in (which it leaves alone:
// it is the collector's) in the order of key. It sorts indexes, not the
// 150-byte structs, and breaks every tie down to the process identity, so
// the order is total and stable across calls.
func topProcs(in []live.ProcRate, key string, top int) []live.ProcRate {
	idx := make([]int, len(in))
	for i := range idx {
		idx[i] = i
	}
	num := func(r *live.ProcRate) float64 {
		switch key {
		case "tx_rate":
			return r.TxRate
		case "rx_rate":
			return r.RxRate
		case "total":
			return float64(r.TxBytes + r.RxBytes)
		case "tx":
			return float64(r.TxBytes)
		case "rx":
			return float64(r.RxBytes)
		default:
			return r.TxRate + r.RxRate
		}
	}
	identity := func(a, b *live.ProcRate) int {
		if a.PID != b.PID {
			return cmpAsc(a.PID, b.PID)
		}
		if a.StartNS != b.StartNS {
			return cmpAsc(a.StartNS, b.StartNS)
		}
		return strings.Compare(a.Comm, b.Comm)
	}
	tie := func(a, b *live.ProcRate) int {
		if c := cmpDesc(a.TxRate+a.RxRate, b.TxRate+b.RxRate); c != 0 {
			return c
		}
		if c := cmpDesc(float64(a.TxBytes+a.RxBytes), float64(b.TxBytes+b.RxBytes)); c != 0 {
			return c
		}
		return identity(a, b)
	}
	slices.SortFunc(idx, func(i, j int) int {
		a, b := &in[i], &in[j]
		switch key {
		case "pid":
			return identity(a, b)
		case "comm":
			if c := strings.Compare(a.Comm, b.Comm); c != 0 {
				return c
			}
			return tie(a, b)
		}
		if c := cmpDesc(num(a), num(b)); c != 0 {
			return c
		}
		return tie(a, b)
	})
	if top > 0 && len(idx) > top {
		idx = idx[:top]
	}
	out := make([]live.ProcRate, len(idx))
	for k, i := range idx {
		out[k] = in[i]
	}
	return out
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func cmpAsc[T uint32 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *server) current(c *gin.Context) {
	q, err := parseCurrent(c.Request.URL.Query())
	if err != nil {
		badRequest(c, err)
		return
	}
	if !s.needLive(c) {
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/json; charset=utf-8", s.currentJSON(s.live.Snapshot(), q))
}

// historyEndpoint is the shape of every history endpoint: its query is
// parsed once (a bad one is 400), it needs the store (503 without one), and
// run answers it under the query timeout (a store error is 503).
func historyEndpoint[Q any](s *server, parse func(url.Values, time.Time) (Q, error), run func(ctx context.Context, q Q) (any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := parse(c.Request.URL.Query(), s.now())
		if err != nil {
			badRequest(c, err)
			return
		}
		if !s.needStore(c) {
			return
		}
		ctx, cancel := s.queryCtx(c)
		defer cancel()
		body, err := run(ctx, q)
		if err != nil {
			storeFailed(c, err)
			return
		}
		c.JSON(http.StatusOK, body)
	}
}

// --- /api/history ---------------------------------------------------------

func (s *server) history(ctx context.Context, q historyQuery) (any, error) {
	pts, err := s.q.Series(ctx, q.query(0), q.Step)
	if err != nil {
		return nil, err
	}
	out := denseHistory(q, pts)
	if rl, ok := s.q.(runLister); ok {
		runs, err := rl.Runs(ctx, q.Since, q.Until)
		if err != nil {
			return nil, err
		}
		out.Gaps = gaps(runs, q.window, s.now())
	}
	return out, nil
}

// runSlack is how long after its last mark a run counts as alive: a
// daemon marks every store.RunHeartbeat, so a live one is never further
// behind, and one killed without a clean stop ended at most that late.
const runSlack = store.RunHeartbeat + 5*time.Second

// gaps are the stretches of w no run covers, from the first run's start
// on (before it the database does not know: an older daemon wrote it).
// A run covers [Started, Alive] when it stopped cleanly, else up to
// Alive+runSlack, but not beyond now.
func gaps(runs []store.Run, w window, now time.Time) []wire.Gap {
	if len(runs) == 0 {
		return nil
	}
	var out []wire.Gap
	add := func(a, b time.Time) {
		a, b = maxTime(a, w.Since), minTime(b, w.Until)
		if a.Before(b) {
			out = append(out, wire.Gap{Since: a.UTC(), Until: b.UTC()})
		}
	}
	covered := runs[0].Started // covered up to here
	for _, r := range runs {
		if r.Started.After(covered) {
			add(covered, r.Started)
		}
		end := r.Alive
		if !r.Stopped {
			end = minTime(r.Alive.Add(runSlack), maxTime(now, r.Alive))
		}
		covered = maxTime(covered, end)
	}
	add(covered, w.Until)
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func denseHistory(q historyQuery, pts []store.Point) HistoryResponse {
	stepMs := q.Step.Milliseconds()
	first := floorDiv(q.Since.UnixMilli(), stepMs)
	n := buckets(q.window, q.Step)
	out := HistoryResponse{
		StepSeconds: stepMs / 1000, Since: q.Since.UTC(), Until: q.Until.UTC(), PID: q.PID, Comm: q.Comm,
		Points: make([]HistoryPoint, n),
	}
	for i := range out.Points {
		out.Points[i].TsMs = (first + int64(i)) * stepMs
	}
	for _, p := range pts {
		i := floorDiv(p.TsMs, stepMs) - first
		if i < 0 || i >= n {
			continue // cannot happen: the store filtered the same window
		}
		out.Points[i].TxBytes += p.TxBytes
		out.Points[i].RxBytes += p.RxBytes
		out.TxBytes += p.TxBytes
		out.RxBytes += p.RxBytes
	}
	return out
}

// --- /api/processes ---------------------------------------------------------

func processTotal(r store.Row) ProcessTotal {
	return ProcessTotal{PID: r.PID, StartNS: r.StartNS, Comm: r.Comm, Exe: r.Exe, App: r.App, UID: r.UID, TxBytes: r.TxBytes, RxBytes: r.RxBytes}
}

type procID struct {
	pid   uint32
	start uint64
	comm  string
}

func (s *server) processes(ctx context.Context, q processesQuery) (any, error) {
	if q.ByApp {
		return s.apps(ctx, q)
	}
	var rows []store.Row
	var err error
	if q.Remote != "" {
		rows, err = s.processesByRemote(ctx, q)
	} else {
		rows, err = s.q.Totals(ctx, q.query(q.Top+1, store.DimApp, store.DimProcess))
	}
	if err != nil {
		return nil, err
	}
	out := ProcessesResponse{Since: q.Since.UTC(), Until: q.Until.UTC(), Processes: []ProcessRow{}}
	if len(rows) > q.Top {
		rows, out.Truncated = rows[:q.Top], true
	}
	want := map[procID]int{}
	for i, r := range rows {
		out.Processes = append(out.Processes, ProcessRow{ProcessTotal: processTotal(r)})
		want[procID{r.PID, r.StartNS, r.Comm}] = i
	}
	if len(rows) > 0 {
		// Remote host counts of the listed processes.
		rq := q.query(0, store.DimProcess, store.DimRemote)
		if len(rows) == 1 {
			rq.PID, rq.Comm = rows[0].PID, rows[0].Comm
		}
		rr, err := s.q.Totals(ctx, rq)
		if err != nil {
			return nil, err
		}
		for _, r := range rr {
			if i, ok := want[procID{r.PID, r.StartNS, r.Comm}]; ok && r.RemoteIP != "" && r.RemoteIP != store.OtherRemotes {
				out.Processes[i].Remotes++
			}
		}
	}
	return out, nil
}

// processesByRemote lists (up to q.Top+1) the processes that talked to a
// remote whose address or name (remote_name, from DNS answers) contains
// q.Remote, case-insensitively.
func (s *server) processesByRemote(ctx context.Context, q processesQuery) ([]store.Row, error) {
	rr, err := s.q.Totals(ctx, q.query(0, store.DimProcess, store.DimRemote))
	if err != nil {
		return nil, err
	}
	needle := strings.ToLower(q.Remote)
	match := map[procID]bool{}
	for _, r := range rr {
		if r.RemoteIP != "" && (strings.Contains(strings.ToLower(r.RemoteIP), needle) || strings.Contains(strings.ToLower(r.RemoteName), needle)) {
			match[procID{r.PID, r.StartNS, r.Comm}] = true
		}
	}
	if len(match) == 0 {
		return nil, nil
	}
	all, err := s.q.Totals(ctx, q.query(0, store.DimApp, store.DimProcess))
	if err != nil {
		return nil, err
	}
	var out []store.Row
	for _, r := range all {
		if match[procID{r.PID, r.StartNS, r.Comm}] {
			out = append(out, r)
			if len(out) > q.Top {
				break
			}
		}
	}
	return out, nil
}

// --- /api/periods -----------------------------------------------------------

// periodGroup is what /api/periods groups by and how a row is named:
// the app (internal/procinfo's app rule).
func periodGroup() (string, func(store.Row) string) {
	return store.DimApp, func(r store.Row) string {
		if r.App == "" {
			return "(unknown)"
		}
		return r.App
	}
}

func (s *server) periods(ctx context.Context, q periodsQuery) (any, error) {
	edges, err := report.PeriodEdges(q.Period, q.Since.In(q.Loc), q.Until.In(q.Loc))
	if err != nil {
		return nil, err
	}
	by, name := periodGroup()
	out := PeriodsResponse{Period: q.Period, TZ: q.Loc.String(), By: by, Groups: []string{}, Periods: make([]PeriodRow, 0, len(edges)-1)}
	sums := map[string]uint64{}
	per := make([]map[string]*PeriodGroup, len(edges)-1)
	rowsPer, err := s.periodGroups(ctx, q.query(0, by), edges)
	if err != nil {
		return nil, err
	}
	for i, rows := range rowsPer {
		per[i] = map[string]*PeriodGroup{}
		for _, r := range rows {
			n := name(r)
			g := per[i][n]
			if g == nil {
				g = &PeriodGroup{Name: n}
				per[i][n] = g
			}
			g.TxBytes += r.TxBytes
			g.RxBytes += r.RxBytes
			sums[n] += r.Total()
		}
	}
	for n := range sums {
		out.Groups = append(out.Groups, n)
	}
	slices.SortFunc(out.Groups, func(a, b string) int {
		if sums[a] != sums[b] {
			return cmpDesc(float64(sums[a]), float64(sums[b]))
		}
		return strings.Compare(a, b)
	})
	if len(out.Groups) > q.Top {
		out.Groups = out.Groups[:q.Top]
	}
	for i := range per {
		row := PeriodRow{Start: edges[i], End: edges[i+1], Groups: []PeriodGroup{}}
		other := PeriodGroup{Name: "other"}
		for _, g := range per[i] {
			row.TxBytes += g.TxBytes
			row.RxBytes += g.RxBytes
		}
		for _, n := range out.Groups {
			if g := per[i][n]; g != nil {
				row.Groups = append(row.Groups, *g)
			}
		}
		for n, g := range per[i] {
			if !slices.Contains(out.Groups, n) {
				other.TxBytes += g.TxBytes
				other.RxBytes += g.RxBytes
			}
		}
		if other.TxBytes+other.RxBytes > 0 {
			row.Groups = append(row.Groups, other)
		}
		out.Periods = append(out.Periods, row)
	}
	return out, nil
}

// periodGroups is the store's PeriodGroups, or one Totals per period for
// a Querier without it.
func (s *server) periodGroups(ctx context.Context, q store.Query, edges []time.Time) ([][]store.Row, error) {
	if pg, ok := s.q.(interface {
		PeriodGroups(context.Context, store.Query, []time.Time) ([][]store.Row, error)
	}); ok {
		return pg.PeriodGroups(ctx, q, edges)
	}
	out := make([][]store.Row, len(edges)-1)
	for i := range out {
		pq := q
		pq.Since, pq.Until = edges[i], edges[i+1]
		rows, err := s.q.Totals(ctx, pq)
		if err != nil {
			return nil, err
		}
		out[i] = rows
	}
	return out, nil
}

// apps is /api/processes?by=app: one row per app, with how many processes
// and distinct remotes it had in the window.
func (s *server) apps(ctx context.Context, q processesQuery) (any, error) {
	rows, err := s.q.Totals(ctx, q.query(q.Top+1, store.DimApp))
	if err != nil {
		return nil, err
	}
	out := ProcessesResponse{Since: q.Since.UTC(), Until: q.Until.UTC(), Processes: []ProcessRow{}}
	if len(rows) > q.Top {
		rows, out.Truncated = rows[:q.Top], true
	}
	want := map[string]int{}
	for i, r := range rows {
		out.Processes = append(out.Processes, ProcessRow{ProcessTotal: ProcessTotal{App: r.App, TxBytes: r.TxBytes, RxBytes: r.RxBytes}})
		want[r.App] = i
	}
	if len(rows) == 0 {
		return out, nil
	}
	for _, d := range []string{store.DimProcess, store.DimRemote} {
		rq := q.query(0, store.DimApp, d)
		if len(rows) == 1 {
			rq.App = rows[0].App
		}
		rr, err := s.q.Totals(ctx, rq)
		if err != nil {
			return nil, err
		}
		for _, r := range rr {
			i, ok := want[r.App]
			switch {
			case !ok:
			case d == store.DimProcess:
				out.Processes[i].Processes++
			case r.RemoteIP != "":
				out.Processes[i].Remotes++
			}
		}
	}
	return out, nil
}

// --- /api/totals ------------------------------------------------------------

// totals is /api/totals: the rows of `report --by ... --format json` for
// the same window and filters (the report package renders both).
func (s *server) totals(c *gin.Context) {
	q, err := parseTotals(c.Request.URL.Query(), s.now())
	if err != nil {
		badRequest(c, err)
		return
	}
	if !s.needStore(c) {
		return
	}
	ctx, cancel := s.queryCtx(c)
	defer cancel()
	rows, err := s.q.Totals(ctx, q.query(q.Top, q.By...))
	if err != nil {
		storeFailed(c, err)
		return
	}
	var buf bytes.Buffer
	if err := report.Write(&buf, "json", q.By, rows); err != nil {
		storeFailed(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", buf.Bytes())
}

// --- /api/remotes -----------------------------------------------------------

func (s *server) remotes(ctx context.Context, q remotesQuery) (any, error) {
	sq := q.query(q.Top+1, q.By...)
	rows, err := s.q.Totals(ctx, sq)
	if err != nil {
		return nil, err
	}
	out := RemotesResponse{Since: q.Since.UTC(), Until: q.Until.UTC(), PID: q.PID, Comm: q.Comm, Remotes: []RemoteTotal{}}
	if len(rows) > q.Top {
		rows, out.Truncated = rows[:q.Top], true
	}
	for _, r := range rows {
		out.Remotes = append(out.Remotes, remoteTotal(r))
	}
	return out, nil
}

// remoteTotal is the wire form of a remote row; a folded row (the remote
// store.OtherRemotes) says so.
func remoteTotal(r store.Row) RemoteTotal {
	return RemoteTotal{RemoteIP: r.RemoteIP, RemoteName: r.RemoteName, Protocol: r.Protocol, RemotePort: r.RemotePort, NetNS: r.NetNS,
		Folded: r.RemoteIP == store.OtherRemotes, TxBytes: r.TxBytes, RxBytes: r.RxBytes}
}

// --- /api/summary -----------------------------------------------------------

func (s *server) summary(ctx context.Context, q summaryQuery) (any, error) {
	rows, err := s.q.Totals(ctx, q.query(0, store.DimProcess))
	if err != nil {
		return nil, err
	}
	out := SummaryResponse{Since: q.Since.UTC(), Until: q.Until.UTC(), Processes: len(rows), TopProcesses: []ProcessTotal{}, TopRemotes: []RemoteTotal{}}
	for i, r := range rows {
		out.TxBytes += r.TxBytes
		out.RxBytes += r.RxBytes
		if i < q.Top {
			out.TopProcesses = append(out.TopProcesses, processTotal(r))
		}
	}
	rr, err := s.q.Totals(ctx, q.query(q.Top, store.DimRemote))
	if err != nil {
		return nil, err
	}
	for _, r := range rr {
		out.TopRemotes = append(out.TopRemotes, remoteTotal(r))
	}
	ar, err := s.q.Totals(ctx, q.query(0, store.DimApp))
	if err != nil {
		return nil, err
	}
	out.Apps = len(ar)
	sr, err := s.q.Totals(ctx, q.query(0, store.DimScope))
	if err != nil {
		return nil, err
	}
	out.Scopes = []ScopeTotal{}
	for _, r := range sr {
		out.Scopes = append(out.Scopes, ScopeTotal{Scope: r.Scope, TxBytes: r.TxBytes, RxBytes: r.RxBytes})
	}
	return out, nil
}

// --- /api/status ------------------------------------------------------------

func (s *server) status(c *gin.Context) {
	if _, err := newParams(c.Request.URL.Query()); err != nil {
		badRequest(c, err)
		return
	}
	var out StatusResponse
	if s.live != nil {
		out.Status = s.live.Status()
		out.Live = true
	}
	if s.cfg.Version != "" {
		out.Version = s.cfg.Version
	}
	if out.Drops == nil {
		out.Drops = map[string]uint64{}
	}
	if out.DetailLost == nil {
		out.DetailLost = map[string]uint64{}
	}
	if sz, ok := s.q.(sizer); ok {
		if out.DBPath == "" {
			out.DBPath = sz.Path()
		}
		if out.DBSize == 0 {
			out.DBSize = sz.Size()
		}
	}
	if !out.Started.IsZero() {
		out.UptimeSeconds = s.now().Sub(out.Started).Seconds()
	}
	out.IntervalMs = out.Interval.Milliseconds()
	out.Listen = s.cfg.Listen
	out.AuthRequired = s.token != nil
	if s.cfg.Alerts != nil {
		st := s.cfg.Alerts.Status()
		out.Alerts = &st
	}
	if len(s.cfg.Exports) > 0 {
		out.Exports = make(map[string]any, len(s.cfg.Exports))
		for name, f := range s.cfg.Exports {
			out.Exports[name] = f()
		}
	}
	c.JSON(http.StatusOK, out)
}
