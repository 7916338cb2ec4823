package alerts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Rule kinds.
const (
	KindThreshold = "threshold" // a volume (or rate) over a window (default)
	KindNewApp    = "new-app"   // first time a program is seen on the network
	KindAnomaly   = "anomaly"   // far above the app's hour-of-week baseline
)

// Directions.
const (
	DirTx    = "tx"
	DirRx    = "rx"
	DirTotal = "total"
)

// Calendar windows (quota style; reset at local midnight / month start).
const (
	CalendarDay   = "calendar-day"
	CalendarMonth = "calendar-month"
)

// Match keys, also the label names of alerts. "app" is, until the app rule
// (issue 10) lands, the executable's base name (the comm when the exe is
// unknown): the same value as the exe label of bwtracker_bytes_total.
const (
	KeyApp       = "app"
	KeyComm      = "comm"
	KeyExe       = "exe"
	KeyService   = "service"
	KeyContainer = "container"
	KeyUser      = "user"
	KeyRemote    = "remote"
)

var matchKeys = []string{KeyApp, KeyComm, KeyExe, KeyService, KeyContainer, KeyUser, KeyRemote}

// Rule is one validated rule.
type Rule struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Match     map[string]string `json:"match,omitempty"`
	GroupBy   []string          `json:"group_by,omitempty"`
	Direction string            `json:"direction"`
	// Above is the threshold in bytes (or bytes per second when PerSecond).
	Above     float64 `json:"above,omitempty"`
	PerSecond bool    `json:"per_second,omitempty"`
	// Over is the sliding window; Calendar is set instead for quotas.
	Over     time.Duration `json:"-"`
	Calendar string        `json:"calendar,omitempty"`
	// For: the condition must hold this long before the alert fires.
	For time.Duration `json:"-"`
	// ResolveBelow: a firing alert resolves once the value is below this
	// fraction of Above (hysteresis; default 0.9) ...
	ResolveBelow float64 `json:"resolve_below,omitempty"`
	// ... for this many consecutive evaluations (default 2).
	ResolveAfter int `json:"resolve_after,omitempty"`
	// Hold is how long a new-app alert stays firing (default 10m).
	Hold time.Duration `json:"-"`
	// Sensitivity of the anomaly kind: low, medium (default), high.
	Sensitivity string `json:"sensitivity,omitempty"`
	// Line is where the rule starts in its file (0 for flags).
	Line int `json:"-"`

	matchers []matcher
}

// Sinks configures where alerts go besides the log.
type Sinks struct {
	Alertmanager *AlertmanagerSink `yaml:"alertmanager"`
	Webhooks     []WebhookSink     `yaml:"webhooks"`
	Commands     []CommandSink     `yaml:"commands"`
}

// AlertmanagerSink posts to Alertmanager's API v2.
type AlertmanagerSink struct {
	URL string `yaml:"url"` // base URL, e.g. http://127.0.0.1:9093
	// Resend is how often a firing alert is posted again (default 1m).
	Resend Duration `yaml:"resend"`
	// GeneratorURL links back to the dashboard (optional).
	GeneratorURL string `yaml:"generator_url"`
}

// WebhookSink posts each alert change as JSON.
type WebhookSink struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Timeout Duration          `yaml:"timeout"` // per attempt, default 5s
	Retries int               `yaml:"retries"` // default 5
	Queue   int               `yaml:"queue"`   // bounded queue, default 1000
	Backoff Duration          `yaml:"backoff"` // first retry delay, default 500ms (doubles)
}

// CommandSink runs a program (no shell) with the alert as JSON on stdin.
type CommandSink struct {
	Argv    []string `yaml:"argv"`
	Timeout Duration `yaml:"timeout"` // default 10s
	Queue   int      `yaml:"queue"`   // default 100
}

// Duration is a YAML duration ("30s", "5m", "1h").
type Duration time.Duration

// UnmarshalYAML parses a Go duration (plus d and w).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is a parsed rules file.
type Config struct {
	Rules []Rule
	Sinks Sinks
}

// ParseError points at the line of a rules file that is wrong.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	where := e.File
	if where == "" {
		where = "rules"
	}
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, e.Line)
	}
	return where + ": " + e.Msg
}

type rawFile struct {
	Rules []yaml.Node `yaml:"rules"`
	Sinks yaml.Node   `yaml:"sinks"`
}

type rawRule struct {
	Name         string            `yaml:"name"`
	Kind         string            `yaml:"kind"`
	Match        map[string]string `yaml:"match"`
	GroupBy      []string          `yaml:"group_by"`
	Direction    string            `yaml:"direction"`
	Above        string            `yaml:"above"`
	Over         string            `yaml:"over"`
	For          string            `yaml:"for"`
	ResolveBelow *float64          `yaml:"resolve_below"`
	ResolveAfter int               `yaml:"resolve_after"`
	Hold         string            `yaml:"hold"`
	Sensitivity  string            `yaml:"sensitivity"`
}

// LoadFile reads and validates a rules file.
func LoadFile(name string) (Config, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return Config{}, fmt.Errorf("rules file: %w", err)
	}
	return Parse(name, b)
}

var lineRe = regexp.MustCompile(`^yaml: (?:unmarshal errors:\n\s*)?line (\d+): (.*)$`)

// Parse validates a rules file's content; file names it in errors.
func Parse(file string, b []byte) (Config, error) {
	var raw rawFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		msg := err.Error()
		if m := lineRe.FindStringSubmatch(msg); m != nil {
			l, _ := strconv.Atoi(m[1])
			return Config{}, &ParseError{File: file, Line: l, Msg: m[2]}
		}
		return Config{}, &ParseError{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
	}
	var cfg Config
	names := map[string]int{}
	for _, n := range raw.Rules {
		var rr rawRule
		if err := decodeStrict(&n, &rr); err != nil {
			return Config{}, yamlErr(file, n.Line, err)
		}
		r, err := rr.build()
		if err != nil {
			return Config{}, &ParseError{File: file, Line: n.Line, Msg: fmt.Sprintf("rule %q: %v", rr.Name, err)}
		}
		r.Line = n.Line
		if l, dup := names[r.Name]; dup {
			return Config{}, &ParseError{File: file, Line: n.Line, Msg: fmt.Sprintf("rule name %q is already used at line %d: names must be unique", r.Name, l)}
		}
		names[r.Name] = n.Line
		cfg.Rules = append(cfg.Rules, r)
	}
	if !raw.Sinks.IsZero() {
		if err := decodeStrict(&raw.Sinks, &cfg.Sinks); err != nil {
			return Config{}, yamlErr(file, raw.Sinks.Line, err)
		}
		if err := cfg.Sinks.validate(); err != nil {
			return Config{}, &ParseError{File: file, Line: raw.Sinks.Line, Msg: "sinks: " + err.Error()}
		}
	}
	return cfg, nil
}

// decodeStrict decodes a node refusing unknown fields (Node.Decode does not
// honour KnownFields, so round-trip through a strict decoder).
func decodeStrict(n *yaml.Node, out any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(out)
}

// yamlErr maps a line relative to a re-encoded node back to the file.
func yamlErr(file string, base int, err error) error {
	msg := err.Error()
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		l, _ := strconv.Atoi(m[1])
		return &ParseError{File: file, Line: base + l - 1, Msg: m[2]}
	}
	return &ParseError{File: file, Line: base, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

var nameRe = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func (rr rawRule) build() (Rule, error) {
	r := Rule{Name: rr.Name, Kind: rr.Kind, Direction: rr.Direction, Sensitivity: rr.Sensitivity, ResolveAfter: rr.ResolveAfter}
	if !nameRe.MatchString(r.Name) {
		return r, fmt.Errorf("name must be 1-64 characters of a-z, 0-9, _ and -")
	}
	if r.Kind == "" {
		r.Kind = KindThreshold
	}
	switch r.Kind {
	case KindThreshold, KindNewApp, KindAnomaly:
	default:
		return r, fmt.Errorf("kind %q: valid are %s, %s, %s", r.Kind, KindThreshold, KindNewApp, KindAnomaly)
	}
	if r.Direction == "" {
		r.Direction = DirTotal
	}
	switch r.Direction {
	case DirTx, DirRx, DirTotal:
	default:
		return r, fmt.Errorf("direction %q: valid are tx, rx, total", r.Direction)
	}
	if len(rr.Match) > 0 {
		r.Match = map[string]string{}
		for k, v := range rr.Match {
			k = strings.ToLower(strings.TrimSpace(k))
			m, err := newMatcher(k, v)
			if err != nil {
				return r, err
			}
			r.Match[k] = v
			r.matchers = append(r.matchers, m)
		}
		sort.Slice(r.matchers, func(i, j int) bool { return r.matchers[i].key < r.matchers[j].key })
	}
	for _, g := range rr.GroupBy {
		g = strings.ToLower(strings.TrimSpace(g))
		if !validKey(g) || g == KeyRemote {
			return r, fmt.Errorf("group_by %q: valid are app, comm, exe, service, container, user", g)
		}
		r.GroupBy = append(r.GroupBy, g)
	}
	if len(r.GroupBy) == 0 {
		// Default: one alert per value of what the rule matches on, or per
		// app when it matches everything.
		for _, m := range r.matchers {
			if m.key != KeyRemote {
				r.GroupBy = append(r.GroupBy, m.key)
			}
		}
		if len(r.GroupBy) == 0 {
			r.GroupBy = []string{KeyApp}
		}
	}
	sort.Strings(r.GroupBy)
	if rr.For != "" {
		d, err := parseDuration(rr.For)
		if err != nil {
			return r, fmt.Errorf("for: %v", err)
		}
		r.For = d
	}
	if rr.ResolveBelow != nil {
		if *rr.ResolveBelow <= 0 || *rr.ResolveBelow > 1 {
			return r, fmt.Errorf("resolve_below %v: a fraction of above, 0 < x <= 1", *rr.ResolveBelow)
		}
		r.ResolveBelow = *rr.ResolveBelow
	} else {
		r.ResolveBelow = 0.9
	}
	if r.ResolveAfter < 0 || r.ResolveAfter > 1000 {
		return r, fmt.Errorf("resolve_after %d: evaluations, 0 to 1000", r.ResolveAfter)
	}
	if r.ResolveAfter == 0 {
		r.ResolveAfter = 2
	}
	switch r.Kind {
	case KindThreshold:
		if rr.Above == "" {
			return r, fmt.Errorf("above is missing: give a volume such as 5MiB (or a rate such as 1MB/s)")
		}
		v, perSec, err := ParseBytes(rr.Above)
		if err != nil {
			return r, fmt.Errorf("above: %v", err)
		}
		r.Above, r.PerSecond = v, perSec
		switch rr.Over {
		case "":
			return r, fmt.Errorf("over is missing: give a window such as 1m, 1h, calendar-day or calendar-month")
		case CalendarDay, CalendarMonth:
			if perSec {
				return r, fmt.Errorf("above %q is a rate: a calendar window takes a volume such as 200GiB", rr.Above)
			}
			r.Calendar = rr.Over
		default:
			d, err := parseDuration(rr.Over)
			if err != nil {
				return r, fmt.Errorf("over: %v (or calendar-day, calendar-month)", err)
			}
			if d < time.Second || d > 31*24*time.Hour {
				return r, fmt.Errorf("over %s: between 1s and 31d", rr.Over)
			}
			r.Over = d
		}
		if rr.Sensitivity != "" || rr.Hold != "" {
			return r, fmt.Errorf("sensitivity and hold are for kind anomaly and new-app")
		}
	case KindNewApp:
		if rr.Above != "" || rr.Over != "" || rr.Sensitivity != "" {
			return r, fmt.Errorf("kind new-app takes no above, over or sensitivity")
		}
		r.Hold = 10 * time.Minute
		if rr.Hold != "" {
			d, err := parseDuration(rr.Hold)
			if err != nil || d <= 0 {
				return r, fmt.Errorf("hold %q: a positive duration such as 10m", rr.Hold)
			}
			r.Hold = d
		}
	case KindAnomaly:
		if rr.Above != "" || rr.Over != "" || rr.Hold != "" {
			return r, fmt.Errorf("kind anomaly takes no above, over or hold: it learns its threshold (see sensitivity)")
		}
		if r.Sensitivity == "" {
			r.Sensitivity = SensMedium
		}
		if _, ok := sensitivities[r.Sensitivity]; !ok {
			return r, fmt.Errorf("sensitivity %q: valid are low, medium, high", r.Sensitivity)
		}
		r.ResolveAfter = 1
		// The baseline is per app: one alert per app.
		if len(rr.GroupBy) > 0 && !(len(rr.GroupBy) == 1 && rr.GroupBy[0] == KeyApp) {
			return r, fmt.Errorf("kind anomaly groups by app only (its baseline is per app)")
		}
		r.GroupBy = []string{KeyApp}
	}
	return r, nil
}

func validKey(k string) bool {
	for _, m := range matchKeys {
		if m == k {
			return true
		}
	}
	return false
}

// matcher tests one label of a sample.
type matcher struct {
	key     string
	glob    string
	literal bool // no glob characters: a plain comparison
	prefix  netip.Prefix
}

func newMatcher(key, val string) (matcher, error) {
	m := matcher{key: key, glob: val}
	switch key {
	case "remote_name", "domain":
		return m, fmt.Errorf("match %s: remote names are not tracked yet; match remote: IP or CIDR instead", key)
	case KeyRemote:
		if p, err := netip.ParsePrefix(val); err == nil {
			m.prefix = p.Masked()
		} else if a, err := netip.ParseAddr(val); err == nil {
			m.prefix = netip.PrefixFrom(a, a.BitLen())
		} else {
			return m, fmt.Errorf("match remote %q: give an IP address or a CIDR such as 10.0.0.0/8", val)
		}
		return m, nil
	}
	if !validKey(key) {
		return m, fmt.Errorf("match %q: valid keys are %s", key, strings.Join(matchKeys, ", "))
	}
	if val == "" {
		return m, fmt.Errorf("match %s: empty value (use \"*\" for any)", key)
	}
	if _, err := path.Match(val, ""); err != nil {
		return m, fmt.Errorf("match %s %q: bad glob pattern", key, val)
	}
	m.literal = !strings.ContainsAny(val, `*?[\`)
	return m, nil
}

func (m matcher) ok(l *sampleLabels) bool {
	if m.key == KeyRemote {
		a, err := netip.ParseAddr(l.remote)
		return err == nil && m.prefix.Contains(a.Unmap())
	}
	v := l.get(m.key)
	if m.key == KeyExe && !strings.Contains(m.glob, "/") {
		v = path.Base(v) // exe: rsync matches /usr/bin/rsync
	}
	if m.literal {
		return m.glob == v
	}
	ok, _ := path.Match(m.glob, v)
	return ok
}

// ParseBytes reads a size with IEC (KiB, MiB, GiB, TiB) or SI (kB, MB, GB,
// TB) units, or plain bytes (B or nothing); a "/s" suffix makes it a rate.
func ParseBytes(s string) (v float64, perSec bool, err error) {
	s = strings.TrimSpace(s)
	if t, ok := strings.CutSuffix(s, "/s"); ok {
		s, perSec = strings.TrimSpace(t), true
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, false, fmt.Errorf("%q: want a number and a unit such as 5MiB, 200GB or 1MB/s", s)
	}
	n, perr := strconv.ParseFloat(s[:i], 64)
	if perr != nil || math.IsInf(n, 0) || n <= 0 {
		return 0, false, fmt.Errorf("%q: want a positive number", s)
	}
	unit := strings.TrimSpace(s[i:])
	mult, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, false, fmt.Errorf("unit %q: valid are B, KiB, MiB, GiB, TiB (1024) and kB, MB, GB, TB (1000)", unit)
	}
	return n * mult, perSec, nil
}

var units = map[string]float64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1e3, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40,
}

// parseDuration is time.ParseDuration plus d (days) and w (weeks).
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err == nil && f > 0 {
			return time.Duration(f * float64(24*time.Hour)), nil
		}
	}
	if n, ok := strings.CutSuffix(s, "w"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err == nil && f > 0 {
			return time.Duration(f * float64(7*24*time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 30s, 5m, 1h, 7d", s)
	}
	return d, nil
}

// ParseFlag reads a one-line rule as given to `run --alert`:
//
//	name=big;comm=rsync;dir=tx;above=5MiB;over=1m
//
// Keys: name, kind, dir (or direction), above, over, for, hold,
// sensitivity, group_by (comma list), resolve_below, resolve_after, and any
// match key (app, comm, exe, service, container, user, remote).
func ParseFlag(s string) (Rule, error) {
	var rr rawRule
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Rule{}, fmt.Errorf("--alert %q: %q is not key=value (separate pairs with ;)", s, part)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "name":
			rr.Name = v
		case "kind":
			rr.Kind = v
		case "dir", "direction":
			rr.Direction = v
		case "above":
			rr.Above = v
		case "over":
			rr.Over = v
		case "for":
			rr.For = v
		case "hold":
			rr.Hold = v
		case "sensitivity":
			rr.Sensitivity = v
		case "group_by":
			rr.GroupBy = strings.Split(v, ",")
		case "resolve_below":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return Rule{}, fmt.Errorf("--alert %q: resolve_below %q is not a number", s, v)
			}
			rr.ResolveBelow = &f
		case "resolve_after":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Rule{}, fmt.Errorf("--alert %q: resolve_after %q is not a number", s, v)
			}
			rr.ResolveAfter = n
		default:
			if rr.Match == nil {
				rr.Match = map[string]string{}
			}
			rr.Match[k] = v
		}
	}
	r, err := rr.build()
	if err != nil {
		return r, fmt.Errorf("--alert %q: %w", s, err)
	}
	return r, nil
}

func (s *Sinks) validate() error {
	if am := s.Alertmanager; am != nil {
		if !strings.HasPrefix(am.URL, "http://") && !strings.HasPrefix(am.URL, "https://") {
			return fmt.Errorf("alertmanager url %q: want http://HOST:PORT", am.URL)
		}
		if am.Resend == 0 {
			am.Resend = Duration(time.Minute)
		}
		if am.Resend < Duration(time.Second) {
			return fmt.Errorf("alertmanager resend: at least 1s")
		}
	}
	for i := range s.Webhooks {
		w := &s.Webhooks[i]
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			return fmt.Errorf("webhooks[%d] url %q: want http:// or https://", i, w.URL)
		}
		if w.Timeout == 0 {
			w.Timeout = Duration(5 * time.Second)
		}
		if w.Retries == 0 {
			w.Retries = 5
		}
		if w.Queue == 0 {
			w.Queue = 1000
		}
		if w.Backoff == 0 {
			w.Backoff = Duration(500 * time.Millisecond)
		}
		if w.Retries < 0 || w.Queue < 1 || w.Queue > 100000 {
			return fmt.Errorf("webhooks[%d]: retries >= 0, queue 1 to 100000", i)
		}
	}
	for i := range s.Commands {
		c := &s.Commands[i]
		if len(c.Argv) == 0 || c.Argv[0] == "" {
			return fmt.Errorf("commands[%d]: argv is empty: give the program and its arguments as a list (no shell)", i)
		}
		if !strings.HasPrefix(c.Argv[0], "/") {
			return fmt.Errorf("commands[%d]: argv[0] %q: give an absolute path (no shell, no PATH lookup)", i, c.Argv[0])
		}
		if c.Timeout == 0 {
			c.Timeout = Duration(10 * time.Second)
		}
		if c.Queue == 0 {
			c.Queue = 100
		}
	}
	return nil
}
