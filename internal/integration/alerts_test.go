package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/testenv"
)

// Ports of this file's tests (19600-19699 belong to them).
const (
	alertsDaemonPort  = 19610
	alertsAMPort      = 19611
	alertsWebhookPort = 19612
)

type apiAlert struct {
	ID        string            `json:"id"`
	Rule      string            `json:"rule"`
	State     string            `json:"state"`
	Labels    map[string]string `json:"labels"`
	Value     float64           `json:"value"`
	Threshold float64           `json:"threshold"`
	StartedAt time.Time         `json:"started_at"`
	EndedAt   *time.Time        `json:"ended_at"`
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// webhookRecorder is the local HTTP server the webhook sink posts to.
type webhookRecorder struct {
	mu  sync.Mutex
	got []struct {
		Version string   `json:"version"`
		Alert   apiAlert `json:"alert"`
	}
}

func (w *webhookRecorder) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var p struct {
		Version string   `json:"version"`
		Alert   apiAlert `json:"alert"`
	}
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil || r.Method != http.MethodPost {
		http.Error(rw, "bad", 400)
		return
	}
	w.mu.Lock()
	w.got = append(w.got, p)
	w.mu.Unlock()
}

func (w *webhookRecorder) find(rule, state, app string) (apiAlert, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.got {
		if p.Alert.Rule == rule && p.Alert.State == state && p.Alert.Labels["app"] == app {
			return p.Alert, true
		}
	}
	return apiAlert{}, false
}

// startAlertmanager runs Debian's prometheus-alertmanager on loopback
// with its own storage and no clustering.
func startAlertmanager(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		testenv.Missing(t, "prometheus-alertmanager", "apt-get install prometheus-alertmanager (or scripts/deps.sh --test)")
	}
	cfg := filepath.Join(dir, "am.yml")
	os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o644)
	listen := fmt.Sprintf("127.0.0.1:%d", alertsAMPort)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+listen, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + listen
	waitFor(t, "alertmanager ready", 20*time.Second, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

type amGettable struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
	Status   struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base, rule, app string) []amGettable {
	t.Helper()
	q := url.Values{"filter": {fmt.Sprintf("alertname=%q", rule), fmt.Sprintf("app=%q", app)}}
	var out []amGettable
	getJSON(t, base+"/api/v2/alerts?"+q.Encode(), &out)
	return out
}

func daemonAlerts(t *testing.T, api, query string) []apiAlert {
	t.Helper()
	var out []apiAlert
	getJSON(t, api+"/api/alerts"+query, &out)
	return out
}

func forApp(list []apiAlert, rule, app string) []apiAlert {
	var out []apiAlert
	for _, a := range list {
		if a.Rule == rule && a.Labels["app"] == app {
			out = append(out, a)
		}
	}
	return out
}

// burst runs a sink and a paced sender (4 KiB every 10 ms) of the named
// binary until stop is closed; it returns the sender's and sink's results.
func burst(t *testing.T, bin string, stop <-chan struct{}) (sent, got result, pid int) {
	t.Helper()
	sk := startNamedChild(t, bin, "sink")
	port := sk.waitReady()
	snd := startNamedChild(t, bin, "paced-send", "127.0.0.1:"+port)
	snd.waitReady()
	fmt.Fprintln(snd.stdin, "go")
	<-stop
	fmt.Fprintln(snd.stdin, "stop")
	sent = snd.wait()
	got = sk.wait()
	return sent, got, snd.pid()
}

// TestAlertsEndToEnd: a rate rule fires within two intervals of real
// traffic crossing it and resolves after; a real Alertmanager shows it and
// a local webhook receives it; new-app fires once for a never-seen program
// and not again after a restart on the same database; a bad rules file is
// refused on start (exit 2, file:line) and on SIGHUP (old rules stay).
func TestAlertsEndToEnd(t *testing.T) {
	bwtrackerBin(t)
	tmp := t.TempDir()
	os.Chmod(tmp, 0o755)
	amURL := startAlertmanager(t, tmp)
	app := "bwa" + randHex(4) // its own executable name: its own app
	bin := namedBinary(t, tmp, app)

	hook := &webhookRecorder{}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", alertsWebhookPort))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: hook}
	go hs.Serve(ln)
	defer hs.Close()

	const interval = 500 * time.Millisecond
	const threshold = 200 << 10 // bytes sent in the 2 s window
	rules := filepath.Join(tmp, "rules.yaml")
	good := fmt.Sprintf(`rules:
  - name: burst
    match: {app: %s}
    direction: tx
    above: 200KiB
    over: 2s
  - name: newprog
    kind: new-app
    match: {app: %s}
sinks:
  alertmanager: {url: "%s", resend: 10s}
  webhooks:
    - {url: "http://127.0.0.1:%d/hook", backoff: 100ms}
`, app, app, amURL, alertsWebhookPort)
	if err := os.WriteFile(rules, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}

	// A bad file is refused on start: exit 2 and file:line: reason.
	bad := filepath.Join(tmp, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: burst\n    above: 200KiB\n    over: 2 fortnights\n"), 0o644)
	out, err := exec.Command(bwtrackerBin(t), "run", "--db", filepath.Join(tmp, "never.db"), "--rules", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), bad+`:2: rule "burst": over: "2 fortnights"`) {
		t.Fatalf("bad rules on start: %v\n%s", err, out)
	}

	db := filepath.Join(tmp, "bw.db")
	listen := fmt.Sprintf("127.0.0.1:%d", alertsDaemonPort)
	api := "http://" + listen
	d := startDaemonOn(t, db, interval.String(), "--listen", listen, "--rules", rules)

	stop := make(chan struct{})
	type res struct {
		sent, got result
		pid       int
	}
	done := make(chan res, 1)
	goAt := time.Now()
	go func() {
		s, g, p := burst(t, bin, stop)
		done <- res{s, g, p}
	}()

	// 1. Fires: the webhook's firing notification carries the value at the
	// first evaluation above the threshold. At 400 KiB/s an evaluation
	// adds at most 200 KiB, so a value below threshold + 2 intervals of
	// traffic means it fired within two intervals of the crossing.
	var fired apiAlert
	waitFor(t, "the burst alert at the webhook", 15*time.Second, func() bool {
		var ok bool
		fired, ok = hook.find("burst", "firing", app)
		return ok
	})
	maxStep := 4096.0 / 0.010 * interval.Seconds()
	if fired.Value <= threshold || fired.Value > threshold+2*maxStep || fired.Threshold != threshold {
		t.Errorf("fired with value %.0f (threshold %.0f): want above %d and at most two intervals (%.0f bytes) past it", fired.Value, fired.Threshold, threshold, 2*maxStep)
	}
	t.Logf("fired at %.0f bytes in the window (threshold %d, two intervals = %.0f bytes), %s after the traffic started", fired.Value, threshold, 2*maxStep, fired.StartedAt.Sub(goAt).Round(time.Millisecond))
	if lag := fired.StartedAt.Sub(goAt); lag > 5*time.Second {
		t.Errorf("fired %s after the traffic started", lag)
	}
	list := forApp(daemonAlerts(t, api, ""), "burst", app)
	if len(list) != 1 || list[0].State != "firing" || list[0].EndedAt != nil || list[0].ID != fired.ID {
		t.Fatalf("/api/alerts while firing: %+v", list)
	}
	var metrics string
	waitFor(t, "bwtracker_alerts_firing{rule=\"burst\"} 1", 5*time.Second, func() bool {
		resp, err := http.Get(api + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		metrics = string(b)
		return strings.Contains(metrics, `bwtracker_alerts_firing{rule="burst"} 1`)
	})
	// Alertmanager shows it, active.
	var inAM []amGettable
	waitFor(t, "the burst alert in Alertmanager", 10*time.Second, func() bool {
		inAM = amAlerts(t, amURL, "burst", app)
		ok := len(inAM) == 1 && inAM[0].Status.State == "active" && inAM[0].StartsAt.Sub(fired.StartedAt).Abs() < time.Millisecond // Alertmanager keeps ms
		if !ok {
			t.Logf("alertmanager has %+v", inAM)
		}
		return ok
	})

	// 2. new-app fired once for our never-seen program.
	waitFor(t, "the newprog alert", 5*time.Second, func() bool { _, ok := hook.find("newprog", "firing", app); return ok })
	np := forApp(daemonAlerts(t, api, "?all=1"), "newprog", app)
	if len(np) != 1 || np[0].Labels["exe"] != bin {
		t.Fatalf("newprog: %+v", np)
	}

	// 3. Stop the traffic: it resolves (hysteresis: the window must drain
	// below 90% for two evaluations), everywhere.
	close(stop)
	r := <-done
	waitFor(t, "the burst alert to resolve", 10*time.Second, func() bool {
		_, ok := hook.find("burst", "resolved", app)
		return ok
	})
	all := forApp(daemonAlerts(t, api, "?all=1"), "burst", app)
	if len(all) != 1 || all[0].State != "resolved" || all[0].EndedAt == nil || !all[0].EndedAt.After(all[0].StartedAt) {
		t.Fatalf("resolved: %+v", all)
	}
	if f := forApp(daemonAlerts(t, api, ""), "burst", app); len(f) != 0 {
		t.Fatalf("still firing: %+v", f)
	}
	// Alertmanager got endsAt (long before the 40 s a lost daemon's alert
	// would take to expire).
	waitFor(t, "the burst alert to leave Alertmanager's active alerts", 10*time.Second, func() bool {
		for _, a := range amAlerts(t, amURL, "burst", app) {
			if a.Status.State == "active" && a.EndsAt.After(time.Now()) {
				return false
			}
		}
		return true
	})
	var status struct {
		Alerts struct {
			Rules int `json:"rules"`
			Sinks map[string]struct {
				Sent, Failed, Dropped uint64
			} `json:"sinks"`
			LoadError string `json:"load_error"`
		} `json:"alerts"`
	}
	getJSON(t, api+"/api/status", &status)
	if s := status.Alerts.Sinks; s["webhook0"].Sent < 3 || s["alertmanager"].Sent < 2 || s["webhook0"].Failed != 0 {
		t.Errorf("sink counters: %+v", s)
	}
	d.stop()
	// Exact bytes of the sender, so the alert's traffic is the counted one.
	rows := forPID(d.report("process"), r.pid)
	tx, _ := sum(rows)
	mustEqual(t, "sender tx", tx, r.sent.TX)

	// 4. Restart on the same DB: the program is known, no new-app alert;
	// the history is back (the burst alert resolved, newprog closed).
	d2 := startDaemonOn(t, db, interval.String(), "--listen", listen, "--rules", rules)
	defer d2.stop()
	stop2 := make(chan struct{})
	done2 := make(chan res, 1)
	go func() {
		s, g, p := burst(t, bin, stop2)
		done2 <- res{s, g, p}
	}()
	// The burst rule fires again for this traffic: the daemon sees it.
	waitFor(t, "burst firing after the restart", 15*time.Second, func() bool {
		return len(forApp(daemonAlerts(t, api, ""), "burst", app)) == 1
	})
	if np := forApp(daemonAlerts(t, api, "?all=1"), "newprog", app); len(np) != 1 || np[0].State != "resolved" {
		t.Fatalf("newprog after restart: %+v", np)
	}
	hook.mu.Lock()
	n := 0
	for _, p := range hook.got {
		if p.Alert.Rule == "newprog" && p.Alert.State == "firing" {
			n++
		}
	}
	hook.mu.Unlock()
	if n != 1 {
		t.Fatalf("newprog fired %d times, want once", n)
	}

	// 5. A bad file on SIGHUP: refused with file:line, the old rules stay
	// (burst still firing, rules still 2).
	os.WriteFile(rules, []byte(strings.Replace(good, "sinks:", "  - name: Burst!\n    above: 1\n    over: 1m\nsinks:", 1)), 0o644)
	d2.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refused reload in the log", 5*time.Second, func() bool {
		return strings.Contains(d2.log(), "rules not reloaded") && strings.Contains(d2.log(), rules+":10:")
	})
	getJSON(t, api+"/api/status", &status)
	if status.Alerts.Rules != 2 || !strings.Contains(status.Alerts.LoadError, rules+`:10: rule "Burst!": name must be`) {
		t.Fatalf("after a bad reload: %+v", status.Alerts)
	}
	if f := forApp(daemonAlerts(t, api, ""), "burst", app); len(f) != 1 {
		t.Fatalf("a bad reload dropped the firing alert: %+v", f)
	}
	close(stop2)
	<-done2
	waitFor(t, "burst resolving under the old rules", 10*time.Second, func() bool {
		return len(forApp(daemonAlerts(t, api, ""), "burst", app)) == 0
	})
	if strings.Contains(d2.log(), "panic") {
		t.Fatalf("daemon log:\n%s", d2.log())
	}
}
