package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os/user"
	"path"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// Alert states.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is one alert instance: a rule firing for one label set.
type Alert struct {
	ID        string            `json:"id"`
	Rule      string            `json:"rule"`
	Kind      string            `json:"kind"`
	State     string            `json:"state"`
	Labels    map[string]string `json:"labels"`
	Value     float64           `json:"value"`
	Threshold float64           `json:"threshold"`
	Unit      string            `json:"unit"`   // bytes or bytes/s
	Window    string            `json:"window"` // 1m, calendar-day, 1h, ...
	Direction string            `json:"direction"`
	Summary   string            `json:"summary"`
	StartedAt time.Time         `json:"started_at"`
	EndedAt   *time.Time        `json:"ended_at"`
}

// Delta is what one process moved with one remote in one interval, as the
// collector hands it over (cli/run.go converts its Flush).
type Delta struct {
	Comm, Exe          string
	UID                uint32
	Service, Container string
	RemoteIP           string
	TxBytes, RxBytes   uint64
}

// AppLabel is the app of a process until the app rule lands: the
// executable's base name, else its comm (bwtracker_bytes_total's exe label).
func AppLabel(exe, comm string) string {
	if exe != "" {
		exe = strings.TrimSuffix(exe, " (deleted)")
		if b := path.Base(exe); b != "." && b != "/" {
			return b
		}
	}
	if comm != "" {
		return comm
	}
	return "unknown"
}

// Store is what the engine keeps in the database (the writer *store.Store).
type Store interface {
	KnownApps(ctx context.Context) ([]string, error)
	AddKnownApps(ctx context.Context, keys []string, seenMs int64) error
	SaveAlerts(ctx context.Context, recs []store.AlertRecord) error
	RecentAlerts(ctx context.Context, n int) ([]store.AlertRecord, error)
}

// History is what the engine reads from the database at start and reload
// (a read-only *store.Store): calendar windows' totals so far and the hour
// tier for anomaly baselines.
type History interface {
	Totals(ctx context.Context, q store.Query) ([]store.Row, error)
	AppHours(ctx context.Context, since, until time.Time) ([]store.AppHour, error)
}

// Options configure an Engine.
type Options struct {
	Log     *slog.Logger
	Store   Store   // nil: nothing persisted (tests)
	History History // nil: calendar windows start at 0, no anomaly baselines
	// MaxHistory bounds the alerts kept in memory and in the store (10000).
	MaxHistory int
	// MaxGroups bounds the label sets one rule tracks (10000).
	MaxGroups int
	// Now is the clock (tests).
	Now func() time.Time
}

// Engine evaluates the rules on every flush and hands alert changes to the
// sinks. Observe is called from the collector's goroutine and never blocks
// on a sink or on the database.
type Engine struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	cfg       Config
	rules     []*ruleState
	known     map[string]bool // new-app keys ever seen
	knownOK   bool
	lastFlush time.Time
	hist      []*Alert // newest last, bounded
	users     map[uint32]string
	sinks     *sinkSet
	cnt       *counters
	loadErr   string
	loadedAt  time.Time
	source    string

	writes    chan []store.AlertRecord
	apps      chan []string
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	baseReq   chan struct{}
	closeOnce sync.Once
}

// New makes an engine with no rules; Start loads its state.
func New(opts Options) *Engine {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxHistory <= 0 {
		opts.MaxHistory = 10000
	}
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{opts: opts, log: opts.Log, known: map[string]bool{}, users: map[uint32]string{},
		writes: make(chan []store.AlertRecord, 1024), apps: make(chan []string, 1024),
		ctx: ctx, cancel: cancel, baseReq: make(chan struct{}, 1)}
	e.cnt = newCounters()
	e.sinks = newSinkSet(Sinks{}, e.log, e.cnt)
	return e
}

// Start loads the known apps and the recent alert history from the store
// (alerts left firing by a previous run are closed now) and starts the
// writer and baseline goroutines.
func (e *Engine) Start(ctx context.Context) error {
	now := e.opts.Now()
	if e.opts.Store != nil {
		keys, err := e.opts.Store.KnownApps(ctx)
		if err != nil {
			return fmt.Errorf("alerts: reading known apps: %w", err)
		}
		recs, err := e.opts.Store.RecentAlerts(ctx, e.opts.MaxHistory)
		if err != nil {
			return fmt.Errorf("alerts: reading alert history: %w", err)
		}
		e.mu.Lock()
		for _, k := range keys {
			e.known[k] = true
		}
		var closed []store.AlertRecord
		for _, r := range recs {
			a := fromRecord(r)
			if a.EndedAt == nil {
				t := now
				a.EndedAt = &t
				a.State = StateResolved
				closed = append(closed, toRecord(a))
			}
			e.hist = append(e.hist, a)
		}
		e.mu.Unlock()
		if len(closed) > 0 {
			if err := e.opts.Store.SaveAlerts(ctx, closed); err != nil {
				e.log.Warn("alerts: closing the previous run's alerts", "err", err)
			}
		}
	}
	e.mu.Lock()
	e.knownOK = true
	e.mu.Unlock()
	e.wg.Add(2)
	go e.writer()
	go e.baselines()
	return nil
}

// Close stops the sinks (giving queued notifications up to timeout) and
// writes what is pending to the store.
func (e *Engine) Close(timeout time.Duration) {
	e.closeOnce.Do(func() { e.close(timeout) })
}

func (e *Engine) close(timeout time.Duration) {
	e.mu.Lock()
	s := e.sinks
	e.mu.Unlock()
	s.close(timeout)
	e.cancel()
	e.wg.Wait()
}

// SetConfig replaces the rules and sinks. Rules whose definition did not
// change keep their state (a firing alert stays firing); alerts of removed
// or changed rules are resolved.
func (e *Engine) SetConfig(cfg Config, source string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	old := map[string]*ruleState{}
	for _, rs := range e.rules {
		old[rs.rule.Name] = rs
	}
	var next []*ruleState
	for _, r := range cfg.Rules {
		if rs, ok := old[r.Name]; ok && sameRule(rs.rule, r) {
			next = append(next, rs)
			delete(old, r.Name)
			continue
		}
		next = append(next, e.newRuleState(r, now))
	}
	for _, rs := range old {
		for _, g := range rs.groups {
			if g.active != nil {
				e.resolve(rs, g, now)
			}
		}
	}
	e.rules = next
	if !reflect.DeepEqual(cfg.Sinks, e.cfg.Sinks) {
		oldSinks := e.sinks
		e.sinks = newSinkSet(cfg.Sinks, e.log, e.cnt)
		// Alertmanager keeps resending what is still firing.
		for _, rs := range e.rules {
			for _, g := range rs.groups {
				if g.active != nil {
					e.sinks.amFiring(*g.active)
				}
			}
		}
		go oldSinks.close(5 * time.Second)
	}
	e.cfg = cfg
	e.loadErr = ""
	e.loadedAt = now
	e.source = source
	select {
	case e.baseReq <- struct{}{}:
	default:
	}
}

// SetLoadError records a refused reload (the old rules stay).
func (e *Engine) SetLoadError(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loadErr = err.Error()
}

func sameRule(a, b Rule) bool {
	a.Line, b.Line = 0, 0
	a.matchers, b.matchers = nil, nil
	return reflect.DeepEqual(a, b)
}

// --- per-rule state ----------------------------------------------------------

type bucket struct {
	t     time.Time
	bytes float64
}

type group struct {
	key     string
	labels  map[string]string
	ring    []bucket // sliding windows: oldest first
	sum     float64  // of ring, or calendar total (live part)
	base    float64  // calendar: what the store had before cutoff
	pending time.Time
	below   int
	active  *Alert
	seen    time.Time
}

type ruleState struct {
	rule   Rule
	groups map[string]*group
	capped bool
	// calendar windows
	period    time.Time // start of the current day/month (local)
	cutoff    time.Time // store totals up to here, live after
	baseReady bool
	// anomaly
	baseline *Baseline
}

func (e *Engine) newRuleState(r Rule, now time.Time) *ruleState {
	rs := &ruleState{rule: r, groups: map[string]*group{}}
	if r.Calendar != "" {
		rs.period = periodStart(r.Calendar, now)
		cutoff := e.lastFlush
		if cutoff.IsZero() {
			cutoff = now
		}
		rs.cutoff = cutoff
		if e.opts.History == nil {
			rs.baseReady = true
		} else {
			e.wg.Add(1)
			go e.loadCalendar(rs)
		}
	}
	return rs
}

func periodStart(cal string, t time.Time) time.Time {
	y, m, d := t.Date()
	if cal == CalendarMonth {
		return time.Date(y, m, 1, 0, 0, 0, 0, t.Location())
	}
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// loadCalendar reads what the store already has for the rule's period (up
// to the cutoff; later flushes are counted live).
func (e *Engine) loadCalendar(rs *ruleState) {
	defer e.wg.Done()
	by := []string{store.DimProcess, store.DimService, store.DimContainer}
	for _, m := range rs.rule.matchers {
		if m.key == KeyRemote {
			by = append(by, store.DimRemote)
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	rows, err := e.opts.History.Totals(ctx, store.Query{Since: rs.period, Until: rs.cutoff.Add(time.Millisecond), By: by})
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.log.Warn("alerts: reading this period's totals; the quota counts from now", "rule", rs.rule.Name, "err", err)
	}
	for _, r := range rows {
		l := sampleLabels{comm: r.Comm, exe: r.Exe, uid: r.UID, service: r.Service, container: r.Container, remote: r.RemoteIP, users: e.users}
		if !rs.rule.matches(&l) {
			continue
		}
		g := e.group(rs, &l, e.opts.Now())
		if g != nil {
			g.base += dirBytes(rs.rule.Direction, r.TxBytes, r.RxBytes)
		}
	}
	rs.baseReady = true
}

// sampleLabels are the label values of one delta, computed lazily.
type sampleLabels struct {
	comm, exe, service, container, remote string
	uid                                   uint32
	users                                 map[uint32]string
}

func (l *sampleLabels) get(k string) string {
	switch k {
	case KeyApp:
		return AppLabel(l.exe, l.comm)
	case KeyComm:
		return l.comm
	case KeyExe:
		return l.exe
	case KeyService:
		return l.service
	case KeyContainer:
		return l.container
	case KeyUser:
		return userName(l.users, l.uid)
	case KeyRemote:
		return l.remote
	}
	return ""
}

// userName resolves a uid once (the engine's lock guards the cache).
func userName(cache map[uint32]string, uid uint32) string {
	if n, ok := cache[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil && u.Username != "" {
		n = u.Username
	}
	if len(cache) < 10000 {
		cache[uid] = n
	}
	return n
}

func (r *Rule) matches(l *sampleLabels) bool {
	for _, m := range r.matchers {
		if m.key == KeyUser {
			// user: a name or a uid
			if ok, _ := path.Match(m.glob, strconv.FormatUint(uint64(l.uid), 10)); ok {
				continue
			}
		}
		if !m.ok(l) {
			return false
		}
	}
	return true
}

func dirBytes(dir string, tx, rx uint64) float64 {
	switch dir {
	case DirTx:
		return float64(tx)
	case DirRx:
		return float64(rx)
	}
	return float64(tx) + float64(rx)
}

func (e *Engine) group(rs *ruleState, l *sampleLabels, now time.Time) *group {
	var sb strings.Builder
	for _, k := range rs.rule.GroupBy {
		sb.WriteString(l.get(k))
		sb.WriteByte(0)
	}
	key := sb.String()
	g := rs.groups[key]
	if g == nil {
		if len(rs.groups) >= e.opts.MaxGroups {
			if !rs.capped {
				rs.capped = true
				e.log.Warn("alerts: rule tracks too many label sets; new ones are ignored", "rule", rs.rule.Name, "max", e.opts.MaxGroups)
			}
			return nil
		}
		labels := map[string]string{}
		for _, k := range rs.rule.GroupBy {
			labels[k] = l.get(k)
		}
		g = &group{key: key, labels: labels}
		rs.groups[key] = g
	}
	g.seen = now
	return g
}

// --- evaluation --------------------------------------------------------------

// Observe adds one flush and evaluates every rule. now is the flush time.
func (e *Engine) Observe(now time.Time, deltas []Delta) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastFlush = now
	var newKeys []string
	for i := range deltas {
		d := &deltas[i]
		l := sampleLabels{comm: d.Comm, exe: d.Exe, uid: d.UID, service: d.Service, container: d.Container, remote: d.RemoteIP, users: e.users}
		for _, rs := range e.rules {
			switch rs.rule.Kind {
			case KindNewApp:
				continue
			}
			if !rs.rule.matches(&l) {
				continue
			}
			b := dirBytes(rs.rule.Direction, d.TxBytes, d.RxBytes)
			if b == 0 {
				continue
			}
			g := e.group(rs, &l, now)
			if g == nil {
				continue
			}
			g.add(now, b, rs.bucketWidth())
		}
		if e.knownOK && (d.TxBytes > 0 || d.RxBytes > 0) {
			key := newAppKey(d.Exe, d.Comm)
			if !e.known[key] {
				e.known[key] = true
				newKeys = append(newKeys, key)
				for _, rs := range e.rules {
					if rs.rule.Kind == KindNewApp && rs.rule.matches(&l) {
						e.fireNewApp(rs, &l, key, now)
					}
				}
			}
		}
	}
	if len(newKeys) > 0 && e.opts.Store != nil {
		select {
		case e.apps <- newKeys:
		default:
			e.log.Warn("alerts: known-apps write queue full; these apps may alert again after a restart", "apps", len(newKeys))
		}
	}
	for _, rs := range e.rules {
		e.evaluate(rs, now)
	}
}

// newAppKey identifies a program for new-app: its executable path, or its
// comm when the path is unknown.
func newAppKey(exe, comm string) string {
	if exe != "" {
		return strings.TrimSuffix(exe, " (deleted)")
	}
	return "comm:" + comm
}

func (rs *ruleState) window() time.Duration {
	switch rs.rule.Kind {
	case KindAnomaly:
		return time.Hour
	}
	return rs.rule.Over
}

func (rs *ruleState) bucketWidth() time.Duration {
	if rs.rule.Calendar != "" {
		return 0
	}
	return rs.window() / 60
}

func (g *group) add(now time.Time, b float64, width time.Duration) {
	g.sum += b
	if width == 0 { // calendar: a plain total
		return
	}
	if n := len(g.ring); n > 0 && now.Sub(g.ring[n-1].t) < width {
		g.ring[n-1].bytes += b
		return
	}
	g.ring = append(g.ring, bucket{t: now, bytes: b})
}

// expire drops ring buckets older than the window.
func (g *group) expire(now time.Time, win time.Duration) {
	i := 0
	for i < len(g.ring) && !g.ring[i].t.After(now.Add(-win)) {
		g.sum -= g.ring[i].bytes
		i++
	}
	if i > 0 {
		g.ring = append(g.ring[:0], g.ring[i:]...)
		if len(g.ring) == 0 {
			g.sum = 0
		}
	}
}

func (e *Engine) evaluate(rs *ruleState, now time.Time) {
	r := &rs.rule
	switch r.Kind {
	case KindNewApp:
		for k, g := range rs.groups {
			if g.active != nil && now.Sub(g.active.StartedAt) >= r.Hold {
				e.resolve(rs, g, now)
			}
			if g.active == nil {
				delete(rs.groups, k)
			}
		}
		return
	case KindAnomaly:
		for k, g := range rs.groups {
			g.expire(now, time.Hour)
			var thr, med float64
			ok := false
			if rs.baseline != nil {
				thr, med, ok = rs.baseline.SlidingThreshold(g.labels[KeyApp], now, r.Sensitivity)
			}
			if !ok {
				thr = 0
			}
			e.step(rs, g, now, g.sum, thr, ok, fmt.Sprintf("median %s for this hour", fmtBytes(med)))
			if g.active == nil && len(g.ring) == 0 {
				delete(rs.groups, k)
			}
		}
		return
	}
	if r.Calendar != "" {
		if p := periodStart(r.Calendar, now); !p.Equal(rs.period) {
			// A new day or month: the quota starts again.
			rs.period = p
			for _, g := range rs.groups {
				g.sum, g.base = 0, 0
			}
		}
		if !rs.baseReady {
			return
		}
		for k, g := range rs.groups {
			e.step(rs, g, now, g.sum+g.base, r.Above, true, "")
			if g.active == nil && g.sum+g.base == 0 {
				delete(rs.groups, k)
			}
		}
		return
	}
	for k, g := range rs.groups {
		g.expire(now, r.Over)
		v := g.sum
		if r.PerSecond {
			v /= r.Over.Seconds()
		}
		e.step(rs, g, now, v, r.Above, true, "")
		if g.active == nil && len(g.ring) == 0 {
			delete(rs.groups, k)
		}
	}
}

// step applies the firing/resolving rules with hysteresis to one group.
func (e *Engine) step(rs *ruleState, g *group, now time.Time, v, thr float64, ok bool, note string) {
	r := &rs.rule
	over := ok && v > thr && thr > 0
	if g.active == nil {
		if !over {
			g.pending = time.Time{}
			return
		}
		if g.pending.IsZero() {
			g.pending = now
		}
		if now.Sub(g.pending) < r.For {
			return
		}
		a := &Alert{Rule: r.Name, Kind: r.Kind, State: StateFiring, Labels: g.labels, Value: v, Threshold: thr,
			Unit: "bytes", Window: windowName(r), Direction: r.Direction, StartedAt: now}
		if r.PerSecond {
			a.Unit = "bytes/s"
		}
		a.ID = alertID(a)
		a.Summary = summary(a, note)
		g.active = a
		g.below = 0
		e.changed(a)
		return
	}
	g.active.Value = v
	if ok {
		g.active.Threshold = thr
	}
	if ok && v >= thr*r.ResolveBelow {
		g.below = 0
		return
	}
	g.below++
	if g.below >= r.ResolveAfter {
		e.resolve(rs, g, now)
	}
}

func (e *Engine) fireNewApp(rs *ruleState, l *sampleLabels, key string, now time.Time) {
	labels := map[string]string{KeyApp: l.get(KeyApp), KeyExe: l.exe, KeyComm: l.comm, KeyUser: l.get(KeyUser)}
	if l.service != "" {
		labels[KeyService] = l.service
	}
	if l.container != "" {
		labels[KeyContainer] = l.container
	}
	g := &group{key: key, labels: labels, seen: now}
	a := &Alert{Rule: rs.rule.Name, Kind: KindNewApp, State: StateFiring, Labels: labels, Unit: "bytes",
		Window: "", Direction: rs.rule.Direction, StartedAt: now}
	a.ID = alertID(a)
	a.Summary = fmt.Sprintf("new program on the network: %s (%s)", labels[KeyApp], strings.TrimPrefix(key, "comm:"))
	g.active = a
	rs.groups["\x00new\x00"+key] = g
	e.changed(a)
}

func (e *Engine) resolve(rs *ruleState, g *group, now time.Time) {
	a := g.active
	g.active = nil
	g.below = 0
	g.pending = time.Time{}
	t := now
	a.EndedAt = &t
	a.State = StateResolved
	e.changed(a)
}

// changed records an alert change: history, store, log and sinks.
func (e *Engine) changed(a *Alert) {
	if a.State == StateFiring {
		e.hist = append(e.hist, a)
		if over := len(e.hist) - e.opts.MaxHistory; over > 0 {
			e.hist = append(e.hist[:0], e.hist[over:]...)
		}
	}
	cp := *a
	if a.State == StateFiring {
		e.log.Warn("alert firing", "rule", a.Rule, "labels", fmtLabels(a.Labels), "value", a.Value, "threshold", a.Threshold, "summary", a.Summary)
	} else {
		e.log.Info("alert resolved", "rule", a.Rule, "labels", fmtLabels(a.Labels), "value", a.Value, "threshold", a.Threshold)
	}
	if e.opts.Store != nil {
		select {
		case e.writes <- []store.AlertRecord{toRecord(&cp)}:
		default:
			e.sinks.count("store", false, true)
		}
	}
	e.sinks.send(cp)
}

func alertID(a *Alert) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d", a.Rule, fmtLabels(a.Labels), a.StartedAt.UnixNano())
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func windowName(r *Rule) string {
	switch {
	case r.Calendar != "":
		return r.Calendar
	case r.Kind == KindAnomaly:
		return "1h"
	case r.Over > 0:
		return fmtDuration(r.Over)
	}
	return ""
}

func fmtDuration(d time.Duration) string {
	s := d.String() // 30s, 1m0s, 1h30m0s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func fmtLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=%q", k, l[k])
	}
	return sb.String()
}

func summary(a *Alert, note string) string {
	who := fmtLabels(a.Labels)
	unit := ""
	if a.Unit == "bytes/s" {
		unit = "/s"
	}
	s := fmt.Sprintf("%s %s %s%s over %s, above %s%s", who, a.Direction, fmtBytes(a.Value), unit, a.Window, fmtBytes(a.Threshold), unit)
	if note != "" {
		s += " (" + note + ")"
	}
	return s
}

func fmtBytes(b float64) string {
	const u = 1024.0
	switch {
	case b >= u*u*u*u:
		return fmt.Sprintf("%.1fTiB", b/(u*u*u*u))
	case b >= u*u*u:
		return fmt.Sprintf("%.1fGiB", b/(u*u*u))
	case b >= u*u:
		return fmt.Sprintf("%.1fMiB", b/(u*u))
	case b >= u:
		return fmt.Sprintf("%.1fKiB", b/u)
	}
	return fmt.Sprintf("%.0fB", b)
}

// --- reading -----------------------------------------------------------------

// Alerts returns the firing alerts, or with all also the resolved ones
// kept in the history, newest first.
func (e *Engine) Alerts(all bool) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Alert{}
	for i := len(e.hist) - 1; i >= 0; i-- {
		a := e.hist[i]
		if !all && a.State != StateFiring {
			continue
		}
		cp := *a
		cp.Labels = map[string]string{}
		for k, v := range a.Labels {
			cp.Labels[k] = v
		}
		out = append(out, cp)
	}
	return out
}

// Status is the alerting part of /api/status.
type Status struct {
	Rules      int                  `json:"rules"`
	Firing     int                  `json:"firing"`
	Source     string               `json:"source,omitempty"`
	LoadedAt   time.Time            `json:"loaded_at"`
	LoadError  string               `json:"load_error,omitempty"`
	Sinks      map[string]SinkStats `json:"sinks"`
	KnownApps  int                  `json:"known_apps"`
	RuleFiring map[string]int       `json:"-"`
}

// Status describes the engine.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Rules: len(e.rules), Source: e.source, LoadedAt: e.loadedAt, LoadError: e.loadErr,
		Sinks: e.sinks.stats(), KnownApps: len(e.known), RuleFiring: map[string]int{}}
	for _, rs := range e.rules {
		st.RuleFiring[rs.rule.Name] = 0
		for _, g := range rs.groups {
			if g.active != nil {
				st.Firing++
				st.RuleFiring[rs.rule.Name]++
			}
		}
	}
	return st
}

// --- background --------------------------------------------------------------

// writer persists alert changes and new apps, off the collector's path.
func (e *Engine) writer() {
	defer e.wg.Done()
	st := e.opts.Store
	flush := func(recs []store.AlertRecord) {
		if st == nil || len(recs) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.SaveAlerts(ctx, recs); err != nil {
			e.log.Warn("alerts: writing alert history", "err", err)
			e.sinks.count("store", false, false)
		}
	}
	addApps := func(keys []string) {
		if st == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.AddKnownApps(ctx, keys, e.opts.Now().UnixMilli()); err != nil {
			e.log.Warn("alerts: recording known apps", "err", err)
			e.sinks.count("store", false, false)
		}
	}
	for {
		select {
		case r := <-e.writes:
			flush(r)
		case k := <-e.apps:
			addApps(k)
		case <-e.ctx.Done():
			for {
				select {
				case r := <-e.writes:
					flush(r)
				case k := <-e.apps:
					addApps(k)
				default:
					return
				}
			}
		}
	}
}

// baselines refreshes the anomaly rules' baselines from the hour tier at
// start, after a reload, and every hour.
func (e *Engine) baselines() {
	defer e.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-e.baseReq:
		}
		e.mu.Lock()
		need := false
		for _, rs := range e.rules {
			need = need || rs.rule.Kind == KindAnomaly
		}
		e.mu.Unlock()
		if !need || e.opts.History == nil {
			continue
		}
		now := e.opts.Now()
		since := now.Add(-time.Duration(BaselineWeeks+1) * 7 * 24 * time.Hour)
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
		rows, err := e.opts.History.AppHours(ctx, since, now)
		cancel()
		if err != nil {
			e.log.Warn("alerts: reading the hour tier for anomaly baselines", "err", err)
			continue
		}
		b := BaselinesFromStore(rows, now)
		e.mu.Lock()
		for _, rs := range e.rules {
			if rs.rule.Kind == KindAnomaly {
				rs.baseline = b[rs.rule.Direction]
			}
		}
		e.mu.Unlock()
	}
}

// BaselinesFromStore builds one baseline per direction from hour-tier rows.
func BaselinesFromStore(rows []store.AppHour, end time.Time) map[string]*Baseline {
	var tx, rx, tot []HourValue
	for _, r := range rows {
		app := AppLabel(r.Exe, r.Comm)
		h := time.UnixMilli(r.BucketMs)
		tx = append(tx, HourValue{App: app, Hour: h, Bytes: float64(r.TxBytes)})
		rx = append(rx, HourValue{App: app, Hour: h, Bytes: float64(r.RxBytes)})
		tot = append(tot, HourValue{App: app, Hour: h, Bytes: float64(r.TxBytes + r.RxBytes)})
	}
	return map[string]*Baseline{DirTx: NewBaseline(tx, end), DirRx: NewBaseline(rx, end), DirTotal: NewBaseline(tot, end)}
}

func toRecord(a *Alert) store.AlertRecord {
	r := store.AlertRecord{ID: a.ID, Rule: a.Rule, Kind: a.Kind, Labels: a.Labels, Value: a.Value, Threshold: a.Threshold,
		Unit: a.Unit, Window: a.Window, Direction: a.Direction, Summary: a.Summary, StartedMs: a.StartedAt.UnixMilli()}
	if a.EndedAt != nil {
		r.EndedMs = a.EndedAt.UnixMilli()
	}
	return r
}

func fromRecord(r store.AlertRecord) *Alert {
	a := &Alert{ID: r.ID, Rule: r.Rule, Kind: r.Kind, Labels: r.Labels, Value: r.Value, Threshold: r.Threshold,
		Unit: r.Unit, Window: r.Window, Direction: r.Direction, Summary: r.Summary, StartedAt: time.UnixMilli(r.StartedMs), State: StateFiring}
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	if r.EndedMs != 0 {
		t := time.UnixMilli(r.EndedMs)
		a.EndedAt = &t
		a.State = StateResolved
	}
	return a
}
