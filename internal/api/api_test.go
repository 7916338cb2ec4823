package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/store"
)

func wantStatus(t *testing.T, rec interface {
	Result() *http.Response
}, code int) {
	t.Helper()
	if got := rec.Result().StatusCode; got != code {
		t.Fatalf("status %d, want %d", got, code)
	}
}

func errBody(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("want {\"error\": ...}, got %q", body)
	}
	return e.Error
}

func TestCurrent(t *testing.T) {
	e := newEnv(t, Config{})
	rec := e.do(t, "GET", "/api/current")
	wantStatus(t, rec, 200)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content-type %q", ct)
	}
	got := decode[CurrentResponse](t, rec)
	if got.IntervalMs != 1000 || got.ProcessCount != 3 || len(got.Processes) != 3 || !got.Time.Equal(t0) {
		t.Fatalf("unexpected body %+v", got)
	}
	if got.Processes[0].Comm != "firefox" || got.Processes[1].Comm != "curl" {
		t.Errorf("default sort by rate: got %s, %s", got.Processes[0].Comm, got.Processes[1].Comm)
	}
	// Raw JSON keeps the snapshot.go field names.
	var raw map[string]any
	json.Unmarshal(rec.Body.Bytes(), &raw)
	p0 := raw["processes"].([]any)[0].(map[string]any)
	for _, k := range []string{"pid", "start_ns", "comm", "exe", "uid", "tx_bytes_per_sec", "rx_bytes_per_sec", "tx_bytes", "rx_bytes", "remotes"} {
		if _, ok := p0[k]; !ok {
			t.Errorf("process JSON lacks %q: %v", k, p0)
		}
	}
	for _, k := range []string{"time", "interval_ms", "tx_bytes_per_sec", "rx_bytes_per_sec", "processes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("body lacks %q", k)
		}
	}

	for sort, first := range map[string]string{"pid": "idle", "comm": "curl", "tx": "firefox", "rx_rate": "firefox", "tx_rate": "firefox", "total": "firefox", "rx": "firefox", "rate": "firefox"} {
		got := decode[CurrentResponse](t, e.do(t, "GET", "/api/current?top=1&sort="+sort))
		if len(got.Processes) != 1 || got.Processes[0].Comm != first || got.ProcessCount != 3 {
			t.Errorf("sort=%s top=1: got %+v, want %s", sort, got.Processes, first)
		}
	}
	// Ties in rate (tx_rate equal) are broken by totals, then pid.
	got = decode[CurrentResponse](t, e.do(t, "GET", "/api/current?sort=tx_rate"))
	if got.Processes[0].Comm != "firefox" || got.Processes[1].Comm != "curl" {
		t.Errorf("tie-break: %s %s", got.Processes[0].Comm, got.Processes[1].Comm)
	}
	// The cache must not serve a stale snapshot.
	s2 := liveSnapshot(t0.Add(time.Second))
	s2.Processes = s2.Processes[:1]
	e.live.publish(s2)
	got = decode[CurrentResponse](t, e.do(t, "GET", "/api/current?top=1&sort=comm"))
	if got.ProcessCount != 1 || got.Processes[0].Comm != "firefox" {
		t.Errorf("after publish: %+v", got)
	}
	// Empty snapshot: [] not null.
	e.live.publish(live.Snapshot{})
	rec = e.do(t, "GET", "/api/current")
	wantStatus(t, rec, 200)
	if !strings.Contains(rec.Body.String(), `"processes":[]`) {
		t.Errorf("empty snapshot: %s", rec.Body)
	}
}

func TestBadQueries(t *testing.T) {
	e := newEnv(t, Config{})
	cases := []struct{ target, param string }{
		{"/api/current?top=0", "top"},
		{"/api/current?top=1001", "top"},
		{"/api/current?top=abc", "top"},
		{"/api/current?top=-5", "top"},
		{"/api/current?sort=bytes", "sort"},
		{"/api/current?sort=rate&sort=tx", "sort"},
		{"/api/current?bogus=1", "bogus"},
		{"/api/current?token=x", "token"},
		{"/api/history?since=yesteryear", "since"},
		{"/api/history?since=-1h", "since"},
		{"/api/history?since=11y", "since"}, // longer than the 10-year window
		{"/api/history?since=99999999h", "since"},
		{"/api/history?until=2h&since=1h", "since"},
		{"/api/history?since=0001-01-01T00:00:00Z", "since"},
		{"/api/history?since=7d&step=1s", "step"},
		{"/api/history?step=0s", "step"},
		{"/api/history?step=1500ms", "step"},
		{"/api/history?step=abc", "step"},
		{"/api/history?pid=0", "pid"},
		{"/api/history?pid=4294967296", "pid"},
		{"/api/history?pid=12x", "pid"},
		{"/api/history?comm=" + url.QueryEscape("a\x00b"), "comm"},
		{"/api/history?comm=" + strings.Repeat("x", 65), "comm"},
		{"/api/history?top=5", "top"},
		{"/api/processes?top=100000", "top"},
		{"/api/processes?since=1h&until=2025-13-01", "until"},
		{"/api/processes?step=1m", "step"},
		{"/api/remotes?by=process", "by"},
		{"/api/remotes?pid=-1", "pid"},
		{"/api/summary?since=1m&pid=3", "pid"},
		{"/api/periods?period=week", "period"},
		{"/api/periods?tz=Mars/Olympus", "tz"},
		{"/api/periods?tz=../../etc/passwd", "tz"},
		{"/api/periods?top=21", "top"},
		{"/api/periods?since=2y", "period=month"},
		{"/api/periods?pid=1", "pid"},
		{"/api/processes?remote=a%01b", "remote"},
		{"/api/processes?service=a%01b", "service"},
		{"/api/processes?namespace=a%01b", "namespace"},
		{"/api/history?pod=a%7fb", "pod"},
		{"/api/status?x=1", "x"},
		{"/healthz?x=1", "x"},
		{"/api/stream?top=0", "top"},
		{"/api/history?since=" + strings.Repeat("1", 300), "since"},
		{"/api/history?since=%zz", "query string"},
		{"/api/history?since=1h;until=2h", "query string"},
		{"/api/history?=1", `""`},
	}
	for _, c := range cases {
		rec := e.do(t, "GET", c.target)
		if rec.Code != 400 {
			t.Errorf("%s: status %d, want 400 (%s)", c.target, rec.Code, rec.Body)
			continue
		}
		msg := errBody(t, rec.Body.Bytes())
		if !strings.Contains(msg, c.param) {
			t.Errorf("%s: error %q does not name %q", c.target, msg, c.param)
		}
	}
	// A few good ones, for contrast.
	for _, target := range []string{
		"/api/history?since=7d", "/api/history?since=1h&step=1m", "/api/history?since=2025-06-01T10:00:00Z&until=now",
		"/api/history?since=2025-06-01", "/api/history?since=1.5h", "/api/history?since=1d12h", "/api/history?since=2w", "/api/history?since=yesterday", "/api/history?since=1y&step=1d", "/api/history?since=2025-06-01%2010:00",
		"/api/history?since=", "/api/processes?top=1000", "/api/remotes?by=remote,protocol", "/api/current?top=1&sort=pid",
		"/api/history?comm=curl&pid=4242", "/api/summary?since=30m&top=2",
		"/api/periods", "/api/periods?period=month&tz=Asia/Kolkata", "/api/processes?remote=198.18",
	} {
		if rec := e.do(t, "GET", target); rec.Code != 200 {
			t.Errorf("%s: status %d: %s", target, rec.Code, rec.Body)
		}
	}
}

func TestHistory(t *testing.T) {
	e := newEnv(t, Config{})
	got := decode[HistoryResponse](t, e.do(t, "GET", "/api/history"))
	// Default: last hour, auto step 5s (3600/5 = 720 points).
	if got.StepSeconds != 5 || len(got.Points) != 720 || !got.Since.Equal(t0.Add(-time.Hour)) || !got.Until.Equal(t0) {
		t.Fatalf("default history: step %d, %d points, %s..%s", got.StepSeconds, len(got.Points), got.Since, got.Until)
	}
	wantTx := uint64(curlTx + 5555555 + 10)
	wantRx := uint64(curlRx + 66666666 + 20)
	if got.TxBytes != wantTx || got.RxBytes != wantRx {
		t.Errorf("history totals %d/%d, want %d/%d", got.TxBytes, got.RxBytes, wantTx, wantRx)
	}
	var sumTx, sumRx uint64
	for i, p := range got.Points {
		sumTx += p.TxBytes
		sumRx += p.RxBytes
		if i > 0 && p.TsMs-got.Points[i-1].TsMs != 5000 {
			t.Fatalf("points not dense at %d", i)
		}
	}
	if sumTx != wantTx || sumRx != wantRx {
		t.Errorf("points sum %d/%d", sumTx, sumRx)
	}
	// Every window stays within MaxPoints.
	for _, since := range []string{"5m", "1h", "24h", "7d", "30d", "365d", "3650d"} {
		h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since="+since))
		if len(h.Points) > MaxPoints || len(h.Points) < 100 {
			t.Errorf("since=%s: %d points, step %ds", since, len(h.Points), h.StepSeconds)
		}
	}
	// One process.
	h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?pid=4242&since=15m&step=1m"))
	if h.TxBytes != curlTx || h.RxBytes != curlRx || h.PID != 4242 || len(h.Points) != 15 {
		t.Errorf("pid history: %d/%d pid %d, %d points", h.TxBytes, h.RxBytes, h.PID, len(h.Points))
	}
	// The 5 m bucket holds the 1234/987654 sample written 10 m ago.
	var found bool
	for _, p := range h.Points {
		if p.TsMs == t0.Add(-10*time.Minute).UnixMilli() && p.TxBytes == 1234 {
			found = true
		}
	}
	if !found {
		t.Errorf("sample at -10m not in its bucket: %+v", h.Points)
	}
	h = decode[HistoryResponse](t, e.do(t, "GET", "/api/history?comm=nosuch&since=1h"))
	if h.TxBytes != 0 || len(h.Points) == 0 {
		t.Errorf("unknown comm: %+v", h.TxBytes)
	}
}

// TestMatchesStore checks the API's numbers against store.Totals, which is
// what `bwtracker report` prints, for the same windows.
func TestMatchesStore(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	windows := []struct{ since, until time.Time }{
		{t0.Add(-time.Hour), t0},
		{t0.Add(-24 * time.Hour), t0},
		{t0.Add(-72 * time.Hour), t0},
		{t0.Add(-10 * time.Minute), t0.Add(-4 * time.Minute)}, // until is exclusive: the -4m row is out
	}
	for _, w := range windows {
		qs := "since=" + url.QueryEscape(w.since.Format(time.RFC3339)) + "&until=" + url.QueryEscape(w.until.Format(time.RFC3339))
		want, err := e.st.Totals(ctx, store.Query{Since: w.since, Until: w.until, By: []string{store.DimProcess}})
		if err != nil {
			t.Fatal(err)
		}
		got := decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?"+qs))
		if len(got.Processes) != len(want) {
			t.Fatalf("%s: %d processes, store has %d", qs, len(got.Processes), len(want))
		}
		for i, r := range want {
			g := got.Processes[i]
			if g.PID != r.PID || g.StartNS != r.StartNS || g.Comm != r.Comm || g.Exe != r.Exe || g.UID != r.UID || g.TxBytes != r.TxBytes || g.RxBytes != r.RxBytes {
				t.Errorf("%s row %d: api %+v, store %+v", qs, i, g, r)
			}
		}
		wantR, _ := e.st.Totals(ctx, store.Query{Since: w.since, Until: w.until, By: []string{store.DimRemote}})
		gotR := decode[RemotesResponse](t, e.do(t, "GET", "/api/remotes?"+qs))
		if len(gotR.Remotes) != len(wantR) {
			t.Fatalf("%s: %d remotes, store has %d", qs, len(gotR.Remotes), len(wantR))
		}
		for i, r := range wantR {
			if g := gotR.Remotes[i]; g.RemoteIP != r.RemoteIP || g.TxBytes != r.TxBytes || g.RxBytes != r.RxBytes || g.Protocol != "" {
				t.Errorf("%s remote %d: api %+v, store %+v", qs, i, g, r)
			}
		}
		var tx, rx uint64
		for _, r := range want {
			tx += r.TxBytes
			rx += r.RxBytes
		}
		sum := decode[SummaryResponse](t, e.do(t, "GET", "/api/summary?"+qs))
		if sum.TxBytes != tx || sum.RxBytes != rx || sum.Processes != len(want) {
			t.Errorf("%s summary %+v, want %d/%d/%d", qs, sum, tx, rx, len(want))
		}
		h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?"+qs))
		if h.TxBytes != tx || h.RxBytes != rx {
			t.Errorf("%s history %d/%d, want %d/%d", qs, h.TxBytes, h.RxBytes, tx, rx)
		}
	}
}

func TestProcessesAndRemotes(t *testing.T) {
	e := newEnv(t, Config{})
	got := decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h"))
	if len(got.Processes) != 2 || got.Truncated {
		t.Fatalf("processes: %+v", got)
	}
	ff, curl := got.Processes[0], got.Processes[1]
	if ff.Comm != "firefox" || ff.Remotes != 2 || curl.Comm != "curl" || curl.TxBytes != curlTx || curl.RxBytes != curlRx || curl.Remotes != 2 || curl.Exe != "/usr/bin/curl" || curl.StartNS != 1_000_000 {
		t.Errorf("processes: %+v", got.Processes)
	}
	got = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&top=1"))
	if len(got.Processes) != 1 || !got.Truncated || got.Processes[0].Remotes != 2 {
		t.Errorf("top=1: %+v", got)
	}
	// sshd is 48 h old: only in a 3 d window.
	got = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=3d"))
	if len(got.Processes) != 3 {
		t.Errorf("3d: %d processes", len(got.Processes))
	}

	r := decode[RemotesResponse](t, e.do(t, "GET", "/api/remotes?pid=4242&since=1h&by=remote,protocol"))
	want := []RemoteTotal{{RemoteIP: "198.18.0.10", Protocol: "tcp", TxBytes: 1300, RxBytes: 987688}, {RemoteIP: "198.18.0.11", Protocol: "udp", TxBytes: 100, RxBytes: 200}}
	if fmt.Sprint(r.Remotes) != fmt.Sprint(want) || r.PID != 4242 {
		t.Errorf("remotes of curl: %+v, want %+v", r.Remotes, want)
	}
	r = decode[RemotesResponse](t, e.do(t, "GET", "/api/remotes?since=1h&top=1"))
	if len(r.Remotes) != 1 || r.Remotes[0].RemoteIP != "2001:db8::1" || !r.Truncated {
		t.Errorf("top remote: %+v", r)
	}
	// Filter by systemd service (the cgroups table).
	got = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&service=fetch.service"))
	if len(got.Processes) != 1 || got.Processes[0].Comm != "curl" || got.Processes[0].TxBytes != curlTx {
		t.Errorf("service filter: %+v", got.Processes)
	}
	hs := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since=1h&service=fetch.service"))
	if hs.TxBytes != curlTx || hs.RxBytes != curlRx {
		t.Errorf("service history: %d/%d", hs.TxBytes, hs.RxBytes)
	}
	if n := len(decode[RemotesResponse](t, e.do(t, "GET", "/api/remotes?since=1h&service=nosuch.service")).Remotes); n != 0 {
		t.Errorf("unknown service: %d remotes", n)
	}
	// Filter by Kubernetes namespace and pod (name or UID).
	for _, q := range []string{"namespace=shop", "pod=fetch-0", "pod=" + seedPodUID, "namespace=shop&pod=fetch-0"} {
		got = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&"+q))
		if len(got.Processes) != 1 || got.Processes[0].Comm != "curl" || got.Processes[0].TxBytes != curlTx {
			t.Errorf("%s: %+v", q, got.Processes)
		}
		hs := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since=1h&"+q))
		if hs.TxBytes != curlTx || hs.RxBytes != curlRx {
			t.Errorf("%s history: %d/%d", q, hs.TxBytes, hs.RxBytes)
		}
		if s := decode[SummaryResponse](t, e.do(t, "GET", "/api/summary?since=1h&"+q)); s.TxBytes != curlTx || s.RxBytes != curlRx {
			t.Errorf("%s summary: %d/%d", q, s.TxBytes, s.RxBytes)
		}
	}
	for _, q := range []string{"namespace=nosuch", "pod=nosuch", "namespace=kube-system&pod=fetch-0"} {
		if n := len(decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&"+q)).Processes); n != 0 {
			t.Errorf("%s: %d processes, want 0", q, n)
		}
	}
	s := decode[SummaryResponse](t, e.do(t, "GET", "/api/summary?since=1h&top=1"))
	if s.Processes != 2 || len(s.TopProcesses) != 1 || s.TopProcesses[0].Comm != "firefox" || len(s.TopRemotes) != 1 {
		t.Errorf("summary: %+v", s)
	}
}

func TestStatusAndHealth(t *testing.T) {
	e := newEnv(t, Config{})
	rec := e.do(t, "GET", "/healthz")
	wantStatus(t, rec, 200)
	st := decode[StatusResponse](t, e.do(t, "GET", "/api/status"))
	if st.Version != "v-test" || st.Hook != "tracepoint" || st.IntervalMs != 1000 || st.UptimeSeconds != 3600 ||
		st.DBPath != e.st.Path() || st.DBSize <= 0 || !st.Live || st.AuthRequired {
		t.Errorf("status: %+v", st)
	}
	rec = e.do(t, "HEAD", "/api/status")
	wantStatus(t, rec, 200)
}

func TestMethodsAndHeaders(t *testing.T) {
	e := newEnv(t, Config{})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
		rec := e.do(t, m, "/api/current", "Origin", "http://evil.example")
		if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d allow=%q", m, rec.Code, rec.Header().Get("Allow"))
		}
		if rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header set", m)
		}
	}
	rec := e.do(t, "GET", "/api/current", "Origin", "http://evil.example")
	if v := rec.Header().Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("CORS header %q", v)
	}
	for k, v := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
	} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	rec = e.do(t, "GET", "/api/nope")
	wantStatus(t, rec, 404)
	errBody(t, rec.Body.Bytes())
}

func TestHostCheck(t *testing.T) {
	e := newEnv(t, Config{Listen: "127.0.0.1:8080", AllowedHosts: []string{"bw.lan"}})
	for _, h := range []string{"127.0.0.1:8080", "localhost:8080", "localhost", "[::1]:8080", "LOCALHOST:1", "bw.lan:8080", "bw.lan", "bw.lan."} {
		if rec := e.do(t, "GET", "/api/status", "Host", h); rec.Code != 200 {
			t.Errorf("Host %q: %d", h, rec.Code)
		}
	}
	for _, h := range []string{"evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1:8080", "", "127.0.0.1.nip.io"} {
		for _, p := range []string{"/api/status", "/", "/healthz", "/api/stream"} {
			rec := e.do(t, "GET", p, "Host", h)
			if rec.Code != 403 {
				t.Errorf("Host %q %s: %d, want 403", h, p, rec.Code)
				continue
			}
			if msg := errBody(t, rec.Body.Bytes()); !strings.Contains(msg, "--allowed-host") {
				t.Errorf("message %q", msg)
			}
		}
	}
	// On all interfaces, an IP literal is fine (it cannot be rebound); names
	// still need --allowed-host.
	e = newEnv(t, Config{Listen: "0.0.0.0:8080", AuthToken: "0123456789abcdef0123"})
	auth := "Bearer 0123456789abcdef0123"
	if rec := e.do(t, "GET", "/api/status", "Host", "192.0.2.7:8080", "Authorization", auth); rec.Code != 200 {
		t.Errorf("IP host on 0.0.0.0: %d", rec.Code)
	}
	if rec := e.do(t, "GET", "/api/status", "Host", "myhost:8080", "Authorization", auth); rec.Code != 403 {
		t.Errorf("name host on 0.0.0.0: %d", rec.Code)
	}
}

func TestToken(t *testing.T) {
	const tok = "s3cret-token-0123456789"
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "bwtracker_up 1") })
	e := newEnv(t, Config{Listen: "192.0.2.1:8080", AuthToken: tok, Metrics: metrics, UI: fstest.MapFS{"index.html": {Data: []byte("<html>ui</html>")}}})
	for _, p := range []string{"/api/current", "/api/history", "/api/processes", "/api/remotes", "/api/summary", "/api/status", "/api/stream", "/metrics"} {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + tok}, {"Authorization", tok}} {
			rec := e.do(t, "GET", p, hdr...)
			if rec.Code != 401 || !strings.Contains(errBody(t, rec.Body.Bytes()), "token") || rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %v: %d %s", p, hdr, rec.Code, rec.Body)
			}
		}
		if p == "/api/stream" {
			continue
		}
		if rec := e.do(t, "GET", p, "Authorization", "Bearer "+tok); rec.Code != 200 {
			t.Errorf("%s with token: %d %s", p, rec.Code, rec.Body)
		}
		// ?token= is for the stream only.
		if rec := e.do(t, "GET", p+"?token="+tok); rec.Code != 401 {
			t.Errorf("%s ?token=: %d", p, rec.Code)
		}
	}
	if rec := e.do(t, "GET", "/metrics", "Authorization", "bearer "+tok); !strings.Contains(rec.Body.String(), "bwtracker_up 1") {
		t.Errorf("metrics: %d %q", rec.Code, rec.Body)
	}
	// Static files and healthz need no token (they hold no data).
	for _, p := range []string{"/", "/healthz"} {
		if rec := e.do(t, "GET", p); rec.Code != 200 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
	// The stream takes ?token= (EventSource cannot set headers).
	srv := serveTest(t, e.h)
	resp, err := http.Get(srv + "/api/stream?token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("stream ?token=: %d", resp.StatusCode)
	}
}

func TestValidateConfig(t *testing.T) {
	ok := []Config{
		{}, {Listen: "127.0.0.1:8080"}, {Listen: "localhost:9000"}, {Listen: "[::1]:8080"}, {Listen: "127.0.0.2:1"},
		{Listen: "0.0.0.0:8080", AuthToken: "0123456789abcdef"}, {Listen: "192.0.2.1:80", AuthToken: "0123456789abcdef", AllowedHosts: []string{"bw.lan"}},
	}
	for _, c := range ok {
		if err := ValidateConfig(c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]Config{
		"--auth-token":   {Listen: "0.0.0.0:8080"},
		"all interfaces": {Listen: ":8080"},
		"at least 16":    {Listen: "192.0.2.1:8080", AuthToken: "short"},
		"host:port":      {Listen: "8080"},
		"whitespace":     {AuthToken: "a b"},
		"--allowed-host": {AllowedHosts: []string{"http://x/"}},
		"missing port":   {Listen: "127.0.0.1:"},
	}
	for want, c := range bad {
		err := ValidateConfig(c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want it to say %q", c, err, want)
		}
		if _, err := New(c, nil, nil); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
}

func TestStatic(t *testing.T) {
	uifs := fstest.MapFS{
		"index.html":    {Data: []byte("<!doctype html><title>bwtracker</title>")},
		"assets/app.js": {Data: []byte("console.log(1)")},
	}
	e := newEnv(t, Config{UI: uifs})
	rec := e.do(t, "GET", "/")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "<title>bwtracker") {
		t.Errorf("/: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(t, "GET", "/assets/app.js"); rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, p := range []string{"/../go.mod", "/assets/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fembed.go", "/nope.js"} {
		rec := e.do(t, "GET", p)
		if rec.Code == 200 && !strings.Contains(rec.Body.String(), "bwtracker") {
			t.Errorf("%s: served %q", p, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "root:") || strings.Contains(rec.Body.String(), "module ") {
			t.Errorf("%s: traversal: %s", p, rec.Body)
		}
	}
	// Without a built UI: a clear 404, the API still works.
	e = newEnv(t, Config{UI: fstest.MapFS{}})
	if rec := e.do(t, "GET", "/"); rec.Code != 404 || !strings.Contains(rec.Body.String(), "make") {
		t.Errorf("unbuilt ui: %d %s", rec.Code, rec.Body)
	}
}

// serveTest serves h on 127.0.0.1:0 through Serve and returns its base URL.
func serveTest(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second): // a bound, not a timing claim: Serve must return once cancelled
			t.Errorf("Serve did not return within 10s of its context being cancelled")
		}
	})
	return "http://" + ln.Addr().String()
}

func TestStream(t *testing.T) {
	e := newEnv(t, Config{})
	base := serveTest(t, e.h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/stream?top=1&sort=comm", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() CurrentResponse {
		t.Helper()
		var ev string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				ev = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && ev == "snapshot" {
				var cr CurrentResponse
				if err := json.Unmarshal([]byte(v), &cr); err != nil {
					t.Fatal(err)
				}
				return cr
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return CurrentResponse{}
	}
	first := next()
	if !first.Time.Equal(t0) || len(first.Processes) != 1 || first.Processes[0].Comm != "curl" {
		t.Fatalf("first event: %+v", first)
	}
	for e.live.subscribers() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 1; i <= 3; i++ {
		s := liveSnapshot(t0.Add(time.Duration(i) * time.Second))
		s.TxRate = float64(i)
		e.live.publish(s)
		got := next()
		if got.TxRate != float64(i) || !got.Time.Equal(s.Time) {
			t.Fatalf("event %d: %+v", i, got)
		}
	}
	cancel()
	// The subscription is released when the client goes away.
	deadline := time.Now().Add(5 * time.Second)
	for e.live.subscribers() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.live.subscribers(); n != 0 {
		t.Errorf("%d subscriptions leaked", n)
	}
}

func TestServeShutsDownWithOpenStream(t *testing.T) {
	e := newEnv(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, e.h) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Serve did not return with an open stream")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	if err := ListenAndServe(context.Background(), Config{Listen: ln.Addr().String() + "x"}, e.h); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("bad listen: %v", err)
	}
}

func TestNilSources(t *testing.T) {
	h, err := New(Config{UI: fstest.MapFS{}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{h: h}
	for _, p := range []string{"/api/current", "/api/history", "/api/processes", "/api/remotes", "/api/summary", "/api/stream"} {
		if rec := e.do(t, "GET", p); rec.Code != 503 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
	if rec := e.do(t, "GET", "/api/status"); rec.Code != 200 {
		t.Errorf("status: %d", rec.Code)
	}
}
