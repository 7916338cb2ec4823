package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

type memStore struct {
	mu     sync.Mutex
	known  map[string]bool
	alerts map[string]store.AlertRecord
}

func newMemStore() *memStore {
	return &memStore{known: map[string]bool{}, alerts: map[string]store.AlertRecord{}}
}

func (m *memStore) KnownApps(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.known {
		out = append(out, k)
	}
	return out, nil
}

func (m *memStore) AddKnownApps(_ context.Context, keys []string, _ int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.known[k] = true
	}
	return nil
}

func (m *memStore) SaveAlerts(_ context.Context, recs []store.AlertRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		m.alerts[r.ID] = r
	}
	return nil
}

func (m *memStore) RecentAlerts(context.Context, int) ([]store.AlertRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AlertRecord
	for _, r := range m.alerts {
		out = append(out, r)
	}
	return out, nil
}

func mustRule(t *testing.T, s string) Rule {
	t.Helper()
	r, err := ParseFlag(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newEngine(t *testing.T, st Store, rules ...Rule) *Engine {
	t.Helper()
	e := New(Options{Store: st})
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(time.Second) })
	e.SetConfig(Config{Rules: rules}, "test")
	return e
}

func firing(e *Engine) []Alert { return e.Alerts(false) }

func TestRateRuleFiresAndResolvesWithHysteresis(t *testing.T) {
	e := newEngine(t, nil, mustRule(t, "name=big;comm=rsync;dir=tx;above=1000;over=10s"))
	t0 := time.Unix(1_700_000_000, 0)
	rsync := func(n uint64) []Delta { return []Delta{{Comm: "rsync", Exe: "/usr/bin/rsync", TxBytes: n}} }
	// 600 B/s for two seconds: 1200 in the window, above 1000.
	e.Observe(t0, rsync(600))
	if len(firing(e)) != 0 {
		t.Fatal("fired at 600")
	}
	e.Observe(t0.Add(time.Second), rsync(600))
	f := firing(e)
	if len(f) != 1 || f[0].Value != 1200 || f[0].Threshold != 1000 || f[0].Labels["comm"] != "rsync" || !f[0].StartedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("firing: %+v", f)
	}
	// Other programs do not match.
	e.Observe(t0.Add(2*time.Second), []Delta{{Comm: "curl", TxBytes: 1 << 20}})
	// t0's 600 leaves the window at t0+10s: 600 left, below 0.9*1000 -> one
	// evaluation below, still firing (resolve_after=2).
	e.Observe(t0.Add(10*time.Second), nil)
	if f := firing(e); len(f) != 1 || f[0].Value != 600 {
		t.Fatalf("after one evaluation below: %+v", f)
	}
	// Back to 950 (between 900 and 1000): the hysteresis keeps it firing
	// and resets the count.
	e.Observe(t0.Add(10500*time.Millisecond), rsync(350))
	e.Observe(t0.Add(10600*time.Millisecond), nil)
	if f := firing(e); len(f) != 1 || f[0].Value != 950 {
		t.Fatalf("in the hysteresis band: %+v", f)
	}
	e.Observe(t0.Add(12*time.Second), nil) // 350 left
	e.Observe(t0.Add(13*time.Second), nil)
	if f := firing(e); len(f) != 0 {
		t.Fatalf("still firing: %+v", f)
	}
	all := e.Alerts(true)
	if len(all) != 1 || all[0].State != StateResolved || !all[0].EndedAt.Equal(t0.Add(13*time.Second)) {
		t.Fatalf("history: %+v", all)
	}
	if st := e.Status(); st.Firing != 0 || st.Rules != 1 || st.RuleFiring["big"] != 0 {
		t.Errorf("status: %+v", st)
	}
}

func TestPerAppGroupsAndRate(t *testing.T) {
	e := newEngine(t, nil, mustRule(t, "name=fast;above=100/s;over=10s"))
	t0 := time.Unix(1_700_000_000, 0)
	e.Observe(t0, []Delta{{Exe: "/usr/bin/curl", Comm: "curl", RxBytes: 2000}, {Exe: "/bin/wget", Comm: "wget", RxBytes: 500}, {Exe: "/usr/bin/curl", Comm: "curl", TxBytes: 10}})
	f := firing(e)
	if len(f) != 1 || f[0].Labels["app"] != "curl" || f[0].Value != 201 || f[0].Unit != "bytes/s" {
		t.Fatalf("%+v", f)
	}
}

func TestForDelaysFiring(t *testing.T) {
	e := newEngine(t, nil, mustRule(t, "name=slow;above=10;over=1m;for=2s"))
	t0 := time.Unix(1_700_000_000, 0)
	d := []Delta{{Comm: "x", TxBytes: 100}}
	e.Observe(t0, d)
	e.Observe(t0.Add(time.Second), d)
	if len(firing(e)) != 0 {
		t.Fatal("fired before for")
	}
	e.Observe(t0.Add(2*time.Second), d)
	if len(firing(e)) != 1 {
		t.Fatal("did not fire after for")
	}
}

type fakeHistory struct{ rows []store.Row }

func (f fakeHistory) Totals(context.Context, store.Query) ([]store.Row, error) { return f.rows, nil }
func (f fakeHistory) AppHours(context.Context, time.Time, time.Time) ([]store.AppHour, error) {
	return nil, nil
}

func TestCalendarQuotaStartsFromStore(t *testing.T) {
	now := time.Now()
	h := fakeHistory{rows: []store.Row{
		{Comm: "restic", Exe: "/usr/bin/restic", Service: "backup.service", TxBytes: 900, RxBytes: 50},
		{Comm: "sshd", Service: "ssh.service", TxBytes: 5000},
	}}
	e := New(Options{History: h, Now: func() time.Time { return now }})
	e.Start(context.Background())
	defer e.Close(time.Second)
	e.SetConfig(Config{Rules: []Rule{mustRule(t, "name=quota;service=backup.service;above=1000;over=calendar-day")}}, "test")
	for i := 0; i < 100; i++ { // the base loads in the background
		e.mu.Lock()
		ready := e.rules[0].baseReady
		e.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.Observe(now.Add(time.Second), []Delta{{Comm: "restic", Service: "backup.service", TxBytes: 40}})
	if f := firing(e); len(f) != 0 {
		t.Fatalf("990 fired: %+v", f)
	}
	e.Observe(now.Add(2*time.Second), []Delta{{Comm: "restic", Service: "backup.service", TxBytes: 20}})
	f := firing(e)
	if len(f) != 1 || f[0].Value != 1010 || f[0].Labels["service"] != "backup.service" || f[0].Window != CalendarDay {
		t.Fatalf("%+v", f)
	}
	// The next day starts from zero.
	next := periodStart(CalendarDay, now).AddDate(0, 0, 1).Add(time.Minute)
	e.Observe(next, nil)
	e.Observe(next.Add(time.Second), nil)
	if f := firing(e); len(f) != 0 {
		t.Fatalf("quota did not reset: %+v", f)
	}
}

func TestNewAppOncePersisted(t *testing.T) {
	st := newMemStore()
	st.known["/usr/bin/ssh"] = true
	rule := mustRule(t, "name=newprog;kind=new-app;hold=1m")
	e := newEngine(t, st, rule)
	t0 := time.Unix(1_700_000_000, 0)
	e.Observe(t0, []Delta{{Exe: "/usr/bin/ssh", Comm: "ssh", TxBytes: 1}, {Exe: "/tmp/evil", Comm: "evil", TxBytes: 1}, {Exe: "/tmp/evil", Comm: "evil", RxBytes: 1}})
	f := firing(e)
	if len(f) != 1 || f[0].Labels["exe"] != "/tmp/evil" || f[0].Labels["app"] != "evil" {
		t.Fatalf("%+v", f)
	}
	e.Observe(t0.Add(time.Second), []Delta{{Exe: "/tmp/evil", Comm: "evil", TxBytes: 1}})
	if n := len(e.Alerts(true)); n != 1 {
		t.Fatalf("fired again: %d", n)
	}
	e.Observe(t0.Add(time.Minute), nil)
	if len(firing(e)) != 0 {
		t.Fatal("not resolved after hold")
	}
	e.Close(time.Second)
	if !st.known["/tmp/evil"] {
		t.Fatal("not persisted")
	}
	// A restart on the same store: not new any more, and the history is back.
	e2 := newEngine(t, st, rule)
	e2.Observe(t0.Add(2*time.Minute), []Delta{{Exe: "/tmp/evil", Comm: "evil", TxBytes: 1}})
	if f := firing(e2); len(f) != 0 {
		t.Fatalf("fired after restart: %+v", f)
	}
	if all := e2.Alerts(true); len(all) != 1 || all[0].Rule != "newprog" || all[0].State != StateResolved {
		t.Fatalf("history after restart: %+v", all)
	}
}

func TestReloadKeepsFiringAndResolvesRemoved(t *testing.T) {
	r := mustRule(t, "name=big;above=10;over=1m")
	e := newEngine(t, nil, r)
	t0 := time.Unix(1_700_000_000, 0)
	e.Observe(t0, []Delta{{Comm: "x", TxBytes: 100}})
	e.SetConfig(Config{Rules: []Rule{r, mustRule(t, "name=other;above=1000;over=1m")}}, "test")
	if f := firing(e); len(f) != 1 || f[0].StartedAt != t0 {
		t.Fatalf("reload lost the alert: %+v", f)
	}
	e.SetConfig(Config{}, "test")
	if f := firing(e); len(f) != 0 {
		t.Fatalf("removed rule still firing: %+v", f)
	}
}

func TestLoaderRefusesBadFileKeepsRules(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "rules.yaml")
	os.WriteFile(f, []byte("rules:\n  - name: a\n    above: 1\n    over: 1m\n"), 0o600)
	e := New(Options{})
	e.Start(context.Background())
	defer e.Close(time.Second)
	l := &Loader{File: f, E: e}
	if err := l.Load(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f, []byte("rules:\n  - name: a\n    above: 1zz\n    over: 1m\n"), 0o600)
	err := l.Load()
	if err == nil || err.Error() != f+`:2: rule "a": above: unit "zz": valid are B, KiB, MiB, GiB, TiB (1024) and kB, MB, GB, TB (1000)` {
		t.Fatalf("bad file: %v", err)
	}
	st := e.Status()
	if st.Rules != 1 || st.LoadError == "" {
		t.Fatalf("status: %+v", st)
	}
}

func TestSinksWebhookRetryCommandAlertmanager(t *testing.T) {
	var mu sync.Mutex
	var hookCalls int
	got := make(chan WebhookPayload, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hookCalls++
		n := hookCalls
		mu.Unlock()
		if n == 1 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var p WebhookPayload
		json.NewDecoder(r.Body).Decode(&p)
		got <- p
	}))
	defer hook.Close()
	amGot := make(chan []amAlert, 10)
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var b []amAlert
		json.NewDecoder(r.Body).Decode(&b)
		amGot <- b
	}))
	defer am.Close()
	out := filepath.Join(t.TempDir(), "cmd.json")
	script := filepath.Join(t.TempDir(), "hook.sh")
	os.WriteFile(script, []byte("#!/bin/sh\ncat >> "+out+"\n"), 0o755)

	sinks := Sinks{
		Alertmanager: &AlertmanagerSink{URL: am.URL, Resend: Duration(time.Hour)},
		Webhooks:     []WebhookSink{{URL: hook.URL, Retries: 3, Backoff: Duration(time.Millisecond), Timeout: Duration(5 * time.Second), Queue: 10}},
		Commands:     []CommandSink{{Argv: []string{script}, Timeout: Duration(10 * time.Second), Queue: 10}},
	}
	e := New(Options{})
	e.Start(context.Background())
	e.SetConfig(Config{Rules: []Rule{mustRule(t, "name=big;above=10;over=1s;resolve_after=1")}, Sinks: sinks}, "test")
	t0 := time.Now()
	e.Observe(t0, []Delta{{Comm: "x", TxBytes: 100}})
	e.Observe(t0.Add(2*time.Second), nil)

	p := <-got
	if p.Alert.State != StateFiring || p.Alert.Rule != "big" || p.Alert.Value != 100 {
		t.Fatalf("webhook: %+v", p)
	}
	if p := <-got; p.Alert.State != StateResolved || p.Alert.EndedAt == nil {
		t.Fatalf("webhook resolve: %+v", p)
	}
	var amAlerts []amAlert
	for len(amAlerts) < 2 {
		amAlerts = append(amAlerts, <-amGot...)
	}
	last := amAlerts[len(amAlerts)-1]
	if amAlerts[0].Labels["alertname"] != "big" || amAlerts[0].Labels["app"] != "x" || !last.EndsAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("alertmanager: %+v", amAlerts)
	}
	e.Close(5 * time.Second)
	b, _ := os.ReadFile(out)
	dec := json.NewDecoder(io.MultiReader(bytesReader(b)))
	var states []string
	for {
		var a Alert
		if err := dec.Decode(&a); err != nil {
			break
		}
		states = append(states, a.State)
	}
	if len(states) != 2 || states[0] != StateFiring || states[1] != StateResolved {
		t.Fatalf("command got %q", b)
	}
	st := e.Status().Sinks
	if st["webhook0"].Sent != 2 || st["webhook0"].Failed != 1 || st["command0"].Sent != 2 || st["alertmanager"].Sent < 1 {
		t.Fatalf("sink stats: %+v", st)
	}
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

type hourHistory struct{ rows []store.AppHour }

func (h hourHistory) Totals(context.Context, store.Query) ([]store.Row, error) { return nil, nil }
func (h hourHistory) AppHours(context.Context, time.Time, time.Time) ([]store.AppHour, error) {
	return h.rows, nil
}

func TestAnomalyRuleUsesHourTier(t *testing.T) {
	now := time.Now()
	var rows []store.AppHour
	// 14 days of 10 MiB/h sent by /usr/bin/rsync.
	for h := now.Truncate(time.Hour).Add(-14 * 24 * time.Hour); h.Before(now.Truncate(time.Hour)); h = h.Add(time.Hour) {
		rows = append(rows, store.AppHour{BucketMs: h.UnixMilli(), Exe: "/usr/bin/rsync", Comm: "rsync", TxBytes: 10 << 20})
	}
	e := New(Options{History: hourHistory{rows}})
	e.Start(context.Background())
	defer e.Close(time.Second)
	e.SetConfig(Config{Rules: []Rule{mustRule(t, "name=odd;kind=anomaly;dir=tx")}}, "test")
	for i := 0; i < 200; i++ { // the baseline loads in the background
		e.mu.Lock()
		ready := e.rules[0].baseline != nil
		e.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rsync := func(n uint64) []Delta { return []Delta{{Comm: "rsync", Exe: "/usr/bin/rsync", TxBytes: n}} }
	e.Observe(now, rsync(20<<20)) // 20 MiB in the last hour: normal-ish
	if f := firing(e); len(f) != 0 {
		t.Fatalf("fired at 20 MiB: %+v", f)
	}
	e.Observe(now.Add(time.Minute), rsync(100<<20)) // 120 MiB: anomalous
	f := firing(e)
	if len(f) != 1 || f[0].Labels["app"] != "rsync" || f[0].Value != 120<<20 || f[0].Threshold < 30<<20 || f[0].Threshold > 40<<20 {
		t.Fatalf("%+v", f)
	}
	// An app without history does not fire (new-app's business).
	e.Observe(now.Add(2*time.Minute), []Delta{{Comm: "x", Exe: "/tmp/x", TxBytes: 1 << 30}})
	if f := firing(e); len(f) != 1 {
		t.Fatalf("unknown app fired: %+v", f)
	}
	// An hour later the window is empty: resolved.
	e.Observe(now.Add(62*time.Minute), nil)
	if f := firing(e); len(f) != 0 {
		t.Fatalf("not resolved: %+v", f)
	}
}

func TestAlertmanagerResendsWhileFiringAndCommandTimeout(t *testing.T) {
	posts := make(chan []amAlert, 100)
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b []amAlert
		json.NewDecoder(r.Body).Decode(&b)
		posts <- b
	}))
	defer am.Close()
	sinks := Sinks{
		Alertmanager: &AlertmanagerSink{URL: am.URL, Resend: Duration(20 * time.Millisecond)},
		Commands:     []CommandSink{{Argv: []string{"/bin/sleep", "10"}, Timeout: Duration(50 * time.Millisecond), Queue: 1}},
	}
	e := New(Options{})
	e.Start(context.Background())
	e.SetConfig(Config{Rules: []Rule{mustRule(t, "name=big;above=10;over=1h")}, Sinks: sinks}, "test")
	t0 := time.Now()
	e.Observe(t0, []Delta{{Comm: "x", TxBytes: 100}})
	// The first post and at least two resends, all firing, endsAt ahead.
	for i := 0; i < 3; i++ {
		b := <-posts
		if len(b) != 1 || b[0].Labels["alertname"] != "big" || !b[0].EndsAt.After(b[0].StartsAt) {
			t.Fatalf("post %d: %+v", i, b)
		}
	}
	e.Close(5 * time.Second)
	st := e.Status().Sinks
	if c := st["command0"]; c.Sent != 0 || c.Failed != 1 || c.Dropped != 1 {
		t.Fatalf("a command that times out is a failure: %+v", c)
	}
	if st["alertmanager"].Sent < 3 {
		t.Fatalf("alertmanager: %+v", st["alertmanager"])
	}
}

// BenchmarkObserve: one flush of 1000 deltas (200 programs) through five
// rules of each kind but anomaly, as the collector's goroutine runs it.
func BenchmarkObserve(b *testing.B) {
	e := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e.Start(context.Background())
	defer e.Close(time.Second)
	var rules []Rule
	for _, s := range []string{
		"name=a;above=5MiB;over=1m", "name=b;comm=rsync*;dir=tx;above=1MB/s;over=10s",
		"name=c;service=*.service;above=1GiB;over=1h", "name=d;remote=10.0.0.0/8;above=1MiB;over=1m",
		"name=e;kind=new-app",
	} {
		r, _ := ParseFlag(s)
		rules = append(rules, r)
	}
	e.SetConfig(Config{Rules: rules}, "bench")
	deltas := make([]Delta, 1000)
	for i := range deltas {
		deltas[i] = Delta{Comm: fmt.Sprintf("prog%d", i%200), Exe: fmt.Sprintf("/usr/bin/prog%d", i%200), Service: "x.service",
			RemoteIP: fmt.Sprintf("10.0.%d.%d", i/250, i%250), TxBytes: 1000, RxBytes: 2000}
	}
	t0 := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Observe(t0.Add(time.Duration(i)*time.Second), deltas)
	}
}
