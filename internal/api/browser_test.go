package api

import (
	"context"
	"fmt"
	"github.com/bwtracker/bwtracker/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/ui"
)

const chromiumPath = "/usr/bin/chromium"

// artifactsDir is $BWTRACKER_ARTIFACTS, or artifacts/ at the repository root
// (gitignored).
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("BWTRACKER_ARTIFACTS"); d != "" {
		return d
	}
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "artifacts")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, "artifacts")
		}
	}
}

// newBrowser starts headless Chromium with a fresh profile; cancel stops it.
func newBrowser(t *testing.T) (context.Context, context.CancelFunc) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
		// Chromium leaves org.chromium.Chromium.* in $TMPDIR: keep them in
		// the test's own directory, which the test removes.
		chromedp.Env("TMPDIR="+t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	return ctx, func() { cancelT(); cancelC(); cancelA() }
}

func needBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, chromiumPath, "apt-get install chromium")
	}
	if !ui.Built() {
		testenv.Missing(t, "the dashboard bundle (ui/dist/index.html)", "run `make ui` first")
	}
}

// TestBrowserToken: with --auth-token, the page asks for the token, then
// shows the data once it is entered.
func TestBrowserToken(t *testing.T) {
	needBrowser(t)
	const tok = "browser-token-0123456789"
	e := newEnv(t, Config{AuthToken: tok})
	base := serveTest(t, e.h)
	ctx, cancel := newBrowser(t)
	defer cancel()
	curlRow := `#proc-body tr[data-app="curl"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token-form`)),
	); err != nil {
		t.Fatalf("token prompt: %v", err)
	}
	banner, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#banner-text`)))
	if err != nil || !strings.Contains(banner, "token") {
		t.Fatalf("banner %q, %v", banner, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#token-input`), tok),
		chromedp.Click(chromedp.CSS(`#token-form button`)),
		chromedp.WaitVisible(chromedp.CSS(curlRow)),
	); err != nil {
		t.Fatalf("after entering the token: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('banner').hidden && document.getElementById('conn').textContent === 'live'`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("stream with ?token=: %v", err)
	}
}

// consoleLog collects what the page reports as errors.
type consoleLog struct {
	mu     sync.Mutex
	errors []string
	all    []string
}

func (l *consoleLog) add(isErr bool, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, s)
	if isErr {
		l.errors = append(l.errors, s)
	}
}

func (l *consoleLog) snapshot() (errs, all []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...), append([]string(nil), l.all...)
}

// TestBrowserDashboard loads the embedded dashboard in headless Chromium
// against the API over a seeded store and a fake live collector.
func TestBrowserDashboard(t *testing.T) {
	needBrowser(t)
	end := t0.Add(time.Minute)
	e := newEnv(t, Config{Alerts: fakeAlerts{list: []alerts.Alert{
		{Rule: "big-upload", Kind: "threshold", State: alerts.StateFiring, Labels: map[string]string{"app": "curl"}, Value: 6 << 20, Threshold: 5 << 20, Unit: "bytes", StartedAt: t0},
		{Rule: "quota", Kind: "threshold", State: alerts.StateResolved, Labels: map[string]string{"service": "backup.service"}, Value: 1, Threshold: 2, Unit: "bytes", StartedAt: t0, EndedAt: &end},
	}}})
	base := serveTest(t, e.h)

	// Publish a snapshot every 200 ms, as a fast collector would.
	pubCtx, stopPub := context.WithCancel(context.Background())
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-pubCtx.Done():
				return
			case <-tick.C:
				s := liveSnapshot(t0.Add(time.Duration(i) * time.Second))
				s.RxRate = float64(1<<20 + (i%7)*200000)
				s.TxRate = float64(300000 + (i%5)*50000)
				e.live.publish(s)
			}
		}
	}()
	t.Cleanup(func() { stopPub(); pubWG.Wait() })

	ctx, cancelT := newBrowser(t)
	defer cancelT()

	// Collect everything the page logs (console calls, uncaught exceptions,
	// the browser log: failed loads, CSP violations).
	var logs consoleLog
	msgs := chromedp.Console(ctx)
	logCtx, stopLog := context.WithCancel(ctx)
	var logWG sync.WaitGroup
	logWG.Add(1)
	go func() {
		defer logWG.Done()
		for m, err := range msgs {
			if err != nil || logCtx.Err() != nil {
				return
			}
			logs.add(m.Type == chromedp.ConsoleError || m.IsException(), fmt.Sprintf("%s %s:%d", m, m.URL, m.Line+1))
		}
	}()
	defer func() { stopLog(); cancelT(); logWG.Wait() }()

	dir := artifactsDir(t)
	shot := func(name string) {
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("screenshot %s: %v", name, err)
			return
		}
		if err := os.MkdirAll(dir, 0o755); err == nil {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, buf, 0o644); err == nil {
				t.Logf("screenshot: %s", p)
			}
		}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		shot("dashboard-failure.png")
		_, all := logs.snapshot()
		t.Fatalf(format+"\npage log:\n  %s", append(args, strings.Join(all, "\n  "))...)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("text of %s: %v", sel, err)
		}
		return s
	}
	attr := func(sel, name string) string {
		t.Helper()
		a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		if err != nil || !a.Exists {
			fail("attribute %s of %s: %v", name, sel, err)
		}
		return a.Value
	}
	eval := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			fail("evaluate: %v", err)
		}
		return n
	}
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			fail("waiting for %s: %v", what, err)
		}
	}

	curlRow := `#proc-body tr[data-key^="4242:1000000:curl"]`
	// Grouped by process (g=process in the URL); grouping by app is
	// TestBrowserApps'.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/#g=process"),
		chromedp.WaitVisible(chromedp.CSS(curlRow)),
	); err != nil {
		fail("load dashboard: %v", err)
	}
	// Alerts: the badge counts the firing one, the curl row is marked, the
	// badge opens the list with the history.
	poll("the alerts badge", `document.getElementById("alerts-badge").textContent === "1 alert firing" && !document.getElementById("alerts-badge").hidden`)
	poll("the marked curl row", `document.querySelector('`+curlRow+`').classList.contains("alerting")`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#alerts-badge`)), chromedp.WaitVisible(chromedp.CSS(`#alerts-panel`))); err != nil {
		fail("open the alerts list: %v", err)
	}
	if n := eval(`document.querySelectorAll("#alerts-body tr").length`); n != 2 {
		fail("alerts list has %d rows, want 2", n)
	}
	if s := text(`#alerts-body tr.firing`); !strings.Contains(s, "big-upload") || !strings.Contains(s, "app=curl") || !strings.Contains(s, "6.00 MiB") {
		fail("firing alert row: %q", s)
	}
	chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#alerts-badge`)))
	// Live table: the snapshot's totals since start.
	rowText := text(curlRow)
	for _, want := range []string{"curl", "4242", "/usr/bin/curl", "1.37 KiB", "965 KiB"} {
		if !strings.Contains(rowText, want) {
			fail("live row %q lacks %q", rowText, want)
		}
	}
	if tx, rx := attr(curlRow+` td:nth-child(6)`, "data-bytes"), attr(curlRow+` td:nth-child(7)`, "data-bytes"); tx != fmt.Sprint(curlTx) || rx != fmt.Sprint(curlRx) {
		fail("live row bytes %s/%s, want %d/%d", tx, rx, curlTx, curlRx)
	}

	// The live chart has drawn lines: count pixels of the download colour.
	poll("the live chart to draw", `(() => {
		const c = document.querySelector('#chart-total canvas');
		if (!c || !c.width || !c.height) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 0; i < d.length; i += 4) {
			if (d[i+3] > 200 && d[i] < 80 && d[i+1] > 100 && d[i+1] < 160 && d[i+2] > 180) n++;
		}
		return n > 50;
	})()`)
	poll("the stacked chart to draw", `(() => {
		const c = document.querySelector('#chart-procs canvas');
		if (!c || !c.width) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 3; i < d.length; i += 4) if (d[i] > 100) n++;
		return n > 1000;
	})()`)

	// Click curl: the detail panel lists its remote addresses and protocols.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(curlRow)),
		chromedp.WaitVisible(chromedp.CSS(`#detail`)),
		chromedp.WaitVisible(chromedp.CSS(`#remote-body td.remote`)),
	); err != nil {
		fail("open detail: %v", err)
	}
	remotes := text(`#remote-body`)
	for _, want := range []string{"198.18.0.10", "tcp", "198.18.0.11", "udp"} {
		if !strings.Contains(remotes, want) {
			fail("remotes %q lack %q", remotes, want)
		}
	}
	if title := text(`#detail-title`); title != "curl (4242)" {
		fail("detail title %q", title)
	}
	shot("dashboard-live.png")

	// History window: the table now shows the store's totals for the last
	// hour (the numbers of `bwtracker report --since 1h --by process`).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-window="1h"]`))); err != nil {
		fail("click 1 h: %v", err)
	}
	poll("the 1 h table", `document.getElementById('th-up').textContent === 'Avg up/s' && !!document.querySelector('`+curlRow+`')`)
	if tx, rx := attr(curlRow+` td:nth-child(6)`, "data-bytes"), attr(curlRow+` td:nth-child(7)`, "data-bytes"); tx != fmt.Sprint(curlTx) || rx != fmt.Sprint(curlRx) {
		fail("1 h window curl bytes %s/%s, want %d/%d", tx, rx, curlTx, curlRx)
	}
	// Sorting by name and the text filter.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`th[data-sort="comm"]`))); err != nil {
		fail("sort: %v", err)
	}
	if first := text(`#proc-body tr:first-child td.comm`); first != "curl" {
		fail("sorted by name, first row is %q", first)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#filter`), "fire")); err != nil {
		fail("filter: %v", err)
	}
	if n := eval(`document.querySelectorAll('#proc-body tr').length`); n != 1 {
		fail("filter 'fire' left %d rows", n)
	}
	shot("dashboard-1h.png")

	// Dark mode: the page follows prefers-color-scheme, charts included.
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	}); err != nil {
		fail("emulate dark mode: %v", err)
	}
	poll("the dark background", `getComputedStyle(document.body).backgroundColor === 'rgb(21, 23, 26)'`)
	if err := chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond)); err != nil {
		fail("sleep: %v", err)
	}
	shot("dashboard-dark.png")
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		fail("reset media: %v", err)
	}

	if errs, _ := logs.snapshot(); len(errs) > 0 {
		fail("the page logged errors:\n  %s", strings.Join(errs, "\n  "))
	}

	// The stream ends (collector stopped): a clear banner, then a reconnect.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-window="live"]`))); err != nil {
		fail("click live: %v", err)
	}
	e.live.mu.Lock()
	for ch := range e.live.subs {
		close(ch)
		delete(e.live.subs, ch)
	}
	e.live.mu.Unlock()
	poll("the stream-dropped banner", `!document.getElementById('banner').hidden && /dropped/.test(document.getElementById('banner-text').textContent)`)
	shot("dashboard-dropped.png")
	poll("the reconnect", `document.getElementById('banner').hidden && document.getElementById('conn').textContent === 'live'`)
}
