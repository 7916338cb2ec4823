package api

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwtracker/bwtracker/internal/netscope"
	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/internal/timespec"
)

// Limits on what a query may ask for. Every list the API returns is capped.
const (
	MaxTop        = 1000 // rows in any list
	DefaultTop    = 100  // rows in /api/processes and /api/remotes by default
	MaxPoints     = 1000 // points in one /api/history answer
	MaxWindow     = 10 * 366 * 24 * time.Hour
	maxCommLen    = 64 // the kernel's comm is 15 bytes; leave room for UTF-8
	maxParamBytes = 256
)

// ParamError is a bad query parameter; it becomes 400 {"error": "..."}.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }

func badParam(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// params wraps a request's query values: it refuses unknown and repeated
// parameters up front, and treats an empty value as absent.
type params struct {
	v url.Values
}

func newParams(v url.Values, allowed ...string) (params, error) {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	// Report problems in a stable order.
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !ok[k] {
			name := k
			if !plainName(name) {
				name = strconv.QuoteToASCII(truncate(name, 40))
			}
			if len(allowed) == 0 {
				return params{}, badParam(name, "unknown parameter: this endpoint takes no parameters")
			}
			return params{}, badParam(name, "unknown parameter: valid are %s", strings.Join(allowed, ", "))
		}
		if len(v[k]) > 1 {
			return params{}, badParam(k, "given %d times: give it once", len(v[k]))
		}
		if len(v[k][0]) > maxParamBytes {
			return params{}, badParam(k, "value is %d bytes long: at most %d", len(v[k][0]), maxParamBytes)
		}
	}
	return params{v: v}, nil
}

// plainName is true for parameter names that read fine unquoted.
func plainName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func (p params) get(k string) string { return strings.TrimSpace(p.v.Get(k)) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func quote(s string) string { return strconv.QuoteToASCII(truncate(s, 64)) }

// parseTime reads a since/until value in the one time grammar (timespec).
func parseTime(param, s string, now time.Time) (time.Time, error) {
	t, err := timespec.ParseTime(s, now)
	if err != nil {
		return time.Time{}, badParam(param, "%v", err)
	}
	return t, nil
}

// window is a resolved [Since, Until) range.
type window struct {
	Since, Until time.Time
}

// parseWindow reads since/until; since defaults to now-def, until to now.
func parseWindow(p params, now time.Time, def time.Duration) (window, error) {
	w := window{Since: now.Add(-def), Until: now}
	if s := p.get("since"); s != "" {
		t, err := parseTime("since", s, now)
		if err != nil {
			return w, err
		}
		w.Since = t
	}
	if s := p.get("until"); s != "" {
		t, err := parseTime("until", s, now)
		if err != nil {
			return w, err
		}
		w.Until = t
	}
	if !w.Since.Before(w.Until) {
		return w, badParam("since", "%s is not before until %s", w.Since.UTC().Format(time.RFC3339), w.Until.UTC().Format(time.RFC3339))
	}
	if w.Until.Sub(w.Since) > MaxWindow {
		return w, badParam("since", "the window is longer than 10 years")
	}
	return w, nil
}

func parseTop(p params, def int) (int, error) {
	s := p.get("top")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxTop {
		return 0, badParam("top", "%s: want a whole number from 1 to %d", quote(s), MaxTop)
	}
	return n, nil
}

func parsePID(p params) (uint32, error) {
	s := p.get("pid")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 1<<22 {
		return 0, badParam("pid", "%s: want a process id from 1 to %d", quote(s), 1<<22)
	}
	return uint32(n), nil
}

func parseComm(p params) (string, error) {
	s := p.v.Get("comm") // not trimmed: a comm may end in a space
	if s == "" {
		return "", nil
	}
	if len(s) > maxCommLen || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", badParam("comm", "%s: want a process name (at most %d bytes, no control characters)", quote(s), maxCommLen)
	}
	return s, nil
}

// filter is what every history endpoint selects: the window and which
// processes (pid, comm, service = a systemd unit, container =
// "runtime:shortid" as in /api/current, or the full id; namespace and pod =
// the Kubernetes names, pod also the pod UID). It is parsed once
// per request (parseFiltered) and turned into the store's query by query.
type filter struct {
	window
	PID       uint32
	Comm      string
	Service   string
	Container string
	Port      uint16 // remote port, 0 = any
	NetNS     uint32 // network namespace inode, 0 = any
	Namespace string
	Pod       string
	// App (as in the rows' "app" field), Cgroup (the cgroup v2 path) and
	// Scope (loopback, lan, multicast, internet, unknown).
	App    string
	Cgroup string
	Scope  string
}

// filterParams are the parameters parseFiltered reads.
var filterParams = []string{"since", "until", "pid", "comm", "service", "container", "port", "netns", "namespace", "pod", "app", "cgroup", "scope"}

// parseFiltered checks v against the endpoint's allowed parameters and
// reads the filter (since defaults to now-def, until to now). An endpoint
// that does not allow pid or comm leaves them zero (newParams refused them).
func parseFiltered(v url.Values, now time.Time, def time.Duration, allowed ...string) (params, filter, error) {
	p, err := newParams(v, allowed...)
	if err != nil {
		return p, filter{}, err
	}
	var f filter
	if f.window, err = parseWindow(p, now, def); err != nil {
		return p, f, err
	}
	for _, n := range []struct {
		k   string
		dst *string
	}{{"service", &f.Service}, {"container", &f.Container}, {"namespace", &f.Namespace}, {"pod", &f.Pod}, {"app", &f.App}, {"cgroup", &f.Cgroup}} {
		k := n.k
		s := p.v.Get(k)
		if s == "" {
			continue
		}
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return p, f, badParam(k, "%s: want a name without control characters", quote(s))
		}
		*n.dst = s
	}
	if s := p.get("scope"); s != "" {
		if !slices.Contains(netscope.Scopes, s) {
			return p, f, badParam("scope", "%s: valid are %s", quote(s), strings.Join(netscope.Scopes, ", "))
		}
		f.Scope = s
	}
	if f.PID, err = parsePID(p); err != nil {
		return p, f, err
	}
	port, err := parseUintParam(p, "port", 65535, "a remote port from 1 to 65535")
	if err != nil {
		return p, f, err
	}
	netns, err := parseUintParam(p, "netns", 1<<32-1, "a network namespace inode number (ls -Li /proc/PID/ns/net)")
	if err != nil {
		return p, f, err
	}
	f.Port, f.NetNS = uint16(port), uint32(netns)
	f.Comm, err = parseComm(p)
	return p, f, err
}

// parseUintParam reads an optional whole number from 1 to max (0 when
// absent).
func parseUintParam(p params, k string, max uint64, want string) (uint64, error) {
	s := p.get(k)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > max {
		return 0, badParam(k, "%s: want %s", quote(s), want)
	}
	return n, nil
}

// query is the store query of this filter, grouped by `by` (none for a
// series), at most top rows (0 = all).
func (f filter) query(top int, by ...string) store.Query {
	return store.Query{Since: f.Since, Until: f.Until, PID: f.PID, Comm: f.Comm, Service: f.Service, Container: f.Container,
		Port: f.Port, NetNS: f.NetNS, Namespace: f.Namespace, Pod: f.Pod, App: f.App, Cgroup: f.Cgroup, Scope: f.Scope, By: by, Top: top}
}

// Sort keys of /api/current.
var sortKeys = []string{"rate", "tx_rate", "rx_rate", "total", "tx", "rx", "pid", "comm"}

func parseSort(p params) (string, error) {
	s := p.get("sort")
	if s == "" {
		return "rate", nil
	}
	for _, k := range sortKeys {
		if s == k {
			return s, nil
		}
	}
	return "", badParam("sort", "%s: valid are %s", quote(s), strings.Join(sortKeys, ", "))
}

// niceSteps are the steps /api/history picks from when none is given.
var niceSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 30 * 24 * time.Hour,
	91 * 24 * time.Hour, 183 * 24 * time.Hour, 366 * 24 * time.Hour,
}

// buckets is how many step-aligned buckets [since, until) touches.
func buckets(w window, step time.Duration) int64 {
	s := step.Milliseconds()
	first := floorDiv(w.Since.UnixMilli(), s)
	last := floorDiv(w.Until.UnixMilli()-1, s)
	return last - first + 1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// autoStep is the smallest nice step giving at most MaxPoints buckets.
func autoStep(w window) time.Duration {
	for _, s := range niceSteps {
		if buckets(w, s) <= MaxPoints {
			return s
		}
	}
	return niceSteps[len(niceSteps)-1]
}

func parseStep(p params, w window) (time.Duration, error) {
	s := p.get("step")
	if s == "" {
		return autoStep(w), nil
	}
	d, err := timespec.ParseDuration(s)
	if err != nil {
		return 0, badParam("step", "%v", err)
	}
	if d < time.Second || d%time.Second != 0 {
		return 0, badParam("step", "%s: want whole seconds, at least 1s", quote(s))
	}
	if d > 366*24*time.Hour {
		return 0, badParam("step", "%s: at most 366d", quote(s))
	}
	if n := buckets(w, d); n > MaxPoints {
		return 0, badParam("step", "%s over this window gives %d points, more than %d: use step=%s or more, or leave step out",
			quote(s), n, MaxPoints, autoStep(w))
	}
	return d, nil
}

// Parsed forms of each endpoint's query. The parse* functions are pure (the
// fuzz tests drive them with arbitrary query strings).

type currentQuery struct {
	Top  int // 0 = all (still capped at MaxTop)
	Sort string
}

func parseCurrent(v url.Values, extra ...string) (currentQuery, error) {
	p, err := newParams(v, append([]string{"top", "sort"}, extra...)...)
	if err != nil {
		return currentQuery{}, err
	}
	var q currentQuery
	if q.Top, err = parseTop(p, MaxTop); err != nil {
		return q, err
	}
	q.Sort, err = parseSort(p)
	return q, err
}

type historyQuery struct {
	filter
	Step time.Duration
}

func parseHistory(v url.Values, now time.Time) (historyQuery, error) {
	p, f, err := parseFiltered(v, now, time.Hour, append(filterParams, "step")...)
	q := historyQuery{filter: f}
	if err != nil {
		return q, err
	}
	q.Step, err = parseStep(p, q.window)
	return q, err
}

type processesQuery struct {
	filter
	Top int
	// Remote keeps the processes that talked to a remote whose address
	// contains it (case-insensitive): the dashboard's filter box.
	Remote string
	ByApp  bool // by=app: one row per app
}

func parseProcesses(v url.Values, now time.Time) (processesQuery, error) {
	p, f, err := parseFiltered(v, now, 24*time.Hour, append(filterParams, "top", "remote", "by")...)
	q := processesQuery{filter: f}
	if err != nil {
		return q, err
	}
	if q.Top, err = parseTop(p, DefaultTop); err != nil {
		return q, err
	}
	if q.Remote, err = parseText(p, "remote", "an address or a part of one"); err != nil {
		return q, err
	}
	switch by := p.get("by"); by {
	case "", "process":
	case "app":
		q.ByApp = true
	default:
		return q, badParam("by", "%s: valid are process, app", quote(by))
	}
	return q, nil
}

// totalsQuery is /api/totals: report's --by and its JSON rows over HTTP.
type totalsQuery struct {
	filter
	Top int
	By  []string
}

func parseTotals(v url.Values, now time.Time) (totalsQuery, error) {
	p, f, err := parseFiltered(v, now, 24*time.Hour, append(filterParams, "top", "by")...)
	q := totalsQuery{filter: f}
	if err != nil {
		return q, err
	}
	if q.Top, err = parseTop(p, DefaultTop); err != nil {
		return q, err
	}
	by := p.get("by")
	if by == "" {
		by = store.DimApp
	}
	if q.By, err = store.ValidateDims(strings.Split(by, ",")); err != nil {
		return q, badParam("by", "%s: %v", quote(by), err)
	}
	return q, nil
}

// parseText reads a free-text parameter (trimmed, valid UTF-8, no control
// characters).
func parseText(p params, k, want string) (string, error) {
	s := p.get(k)
	if s != "" && (!utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
		return "", badParam(k, "%s: want %s, without control characters", quote(s), want)
	}
	return s, nil
}

// MaxPeriodTop bounds the groups of /api/periods.
const MaxPeriodTop = 20

type periodsQuery struct {
	filter
	Period string // "day" or "month"
	Loc    *time.Location
	Top    int
}

// parsePeriods reads /api/periods: period=day (default, last 30 days) or
// month (last 12 months), tz=IANA zone (default UTC: the browser sends
// its own), top=groups (default 8).
func parsePeriods(v url.Values, now time.Time) (periodsQuery, error) {
	var q periodsQuery
	pre, err := newParams(v, "since", "until", "service", "container", "period", "tz", "top")
	if err != nil {
		return q, err
	}
	q.Period = pre.get("period")
	def := 30 * 24 * time.Hour
	switch q.Period {
	case "", "day":
		q.Period = "day"
	case "month":
		def = 365 * 24 * time.Hour
	default:
		return q, badParam("period", "%s: valid are day, month", quote(q.Period))
	}
	q.Loc = time.UTC
	if tz := pre.get("tz"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil || strings.HasPrefix(tz, "/") || strings.Contains(tz, "..") {
			return q, badParam("tz", "%s: want an IANA time zone name such as Europe/Berlin or UTC", quote(tz))
		}
		q.Loc = loc
	}
	p, f, err := parseFiltered(v, now, def, "since", "until", "service", "container", "period", "tz", "top")
	q.filter = f
	if err != nil {
		return q, err
	}
	if q.Top, err = parseTop(p, 8); err != nil {
		return q, err
	}
	if q.Top > MaxPeriodTop {
		return q, badParam("top", "%d: at most %d groups", q.Top, MaxPeriodTop)
	}
	if q.Until.Sub(q.Since) > 3*366*24*time.Hour {
		return q, badParam("since", "the window is longer than 3 years: shorten it")
	}
	if q.Period == "day" && q.Until.Sub(q.Since) > 400*24*time.Hour {
		return q, badParam("since", "more than 400 days: use period=month")
	}
	return q, nil
}

type remotesQuery struct {
	filter
	Top int
	By  []string // remote, and any of protocol, port, netns (store order)
}

func parseRemotes(v url.Values, now time.Time) (remotesQuery, error) {
	p, f, err := parseFiltered(v, now, 24*time.Hour, append(filterParams, "top", "by")...)
	q := remotesQuery{filter: f}
	if err != nil {
		return q, err
	}
	if q.Top, err = parseTop(p, DefaultTop); err != nil {
		return q, err
	}
	q.By = []string{store.DimRemote}
	if by := p.get("by"); by != "" {
		dims := []string{store.DimRemote}
		for _, d := range strings.Split(by, ",") {
			switch d = strings.TrimSpace(d); d {
			case store.DimRemote, store.DimProtocol, store.DimPort, store.DimNetNS:
				dims = append(dims, d)
			default:
				return q, badParam("by", "%s: valid are remote and any of protocol, port, netns (comma-separated)", quote(by))
			}
		}
		if q.By, err = store.ValidateDims(dims); err != nil {
			return q, badParam("by", "%s: %v", quote(by), err)
		}
	}
	return q, nil
}

// /api/summary is over all processes: it takes the cgroup filters only.
type summaryQuery struct {
	filter
	Top int
}

func parseSummary(v url.Values, now time.Time) (summaryQuery, error) {
	p, f, err := parseFiltered(v, now, 24*time.Hour, "since", "until", "top", "service", "container", "namespace", "pod", "cgroup")
	q := summaryQuery{filter: f}
	if err != nil {
		return q, err
	}
	q.Top, err = parseTop(p, 5)
	return q, err
}
