package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/bwtracker/bwtracker/internal/store"
)

// page drives one headless Chromium tab in a browser test: it collects the
// page's log, saves screenshots to the artifacts directory and fails with
// a screenshot and the log.
type page struct {
	t    *testing.T
	ctx  context.Context
	name string
	logs consoleLog
	stop func()
}

func newPage(t *testing.T, name string) *page {
	t.Helper()
	ctx, cancel := newBrowser(t)
	p := &page{t: t, ctx: ctx, name: name}
	msgs := chromedp.Console(ctx)
	logCtx, stopLog := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil || logCtx.Err() != nil {
				return
			}
			p.logs.add(m.Type == chromedp.ConsoleError || m.IsException(), fmt.Sprintf("%s %s:%d", m, m.URL, m.Line+1))
		}
	}()
	p.stop = func() { stopLog(); cancel(); wg.Wait() }
	t.Cleanup(p.stop)
	return p
}

func (p *page) shot(file string) string {
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", file, err)
		return ""
	}
	dir := artifactsDir(p.t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Logf("screenshot %s: %v", file, err)
		return ""
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Logf("screenshot %s: %v", file, err)
		return ""
	}
	p.t.Logf("screenshot: %s", path)
	return path
}

func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	p.shot(p.name + "-failure.png")
	_, all := p.logs.snapshot()
	p.t.Fatalf(format+"\npage log:\n  %s", append(args, strings.Join(all, "\n  "))...)
}

func (p *page) do(what string, acts ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, acts...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// setInput sets a form field's value as typing would (an input event).
func (p *page) setInput(sel, v string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, sel, v)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](js)(ctx, t)
		return chromedp.Void{}, err
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.fail("text of %s: %v", sel, err)
	}
	return s
}

func evalAs[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *page) poll(what, expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		p.fail("waiting for %s: %v", what, err)
	}
}

// noErrors fails if the page logged an error other than ones containing
// one of expected (failed loads the test caused on purpose).
func (p *page) noErrors(expected ...string) {
	p.t.Helper()
	errs, _ := p.logs.snapshot()
	var bad []string
	for _, e := range errs {
		if !slices.ContainsFunc(expected, func(x string) bool { return strings.Contains(e, x) }) {
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		p.fail("the page logged errors:\n  %s", strings.Join(bad, "\n  "))
	}
}

// publishEvery publishes a live snapshot every 200 ms until the test ends:
// at t0+i s, or (advance false) always at t0, which keeps the stream alive
// and the live window still.
func publishEvery(t *testing.T, l *fakeLive, advance bool) {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				at := t0
				if advance {
					at = t0.Add(time.Duration(i) * time.Second)
				}
				l.publish(liveSnapshot(at))
			}
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })
}

// seedLastMinutes writes one flush per second for the last n seconds
// before t0: curl and firefox at steady rates (what a busy host's last 5
// minutes look like to the pre-fill).
func seedLastMinutes(t *testing.T, st *store.Store, n int, skip func(ago int) bool) {
	t.Helper()
	ctx := context.Background()
	for ago := n; ago >= 1; ago-- {
		if skip != nil && skip(ago) {
			continue
		}
		err := st.Write(ctx, t0.Add(-time.Duration(ago)*time.Second), []store.Sample{
			{ProcessKey: keyCurl, Exe: "/usr/bin/curl", UID: 1000, RemoteIP: "198.18.0.10", RemotePort: 443, Protocol: "tcp", TxBytes: 20000, RxBytes: 300000, TxCalls: 1, RxCalls: 1},
			{ProcessKey: keyFirefox, Exe: "/usr/lib/firefox/firefox", UID: 1000, RemoteIP: "2001:db8::1", RemotePort: 443, Protocol: "tcp", TxBytes: 50000, RxBytes: 600000 + uint64(ago%30)*10000, TxCalls: 1, RxCalls: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// slowHistory delays /api/history answers while hold is set, so a test
// sees the page before its pre-fill arrives.
func slowHistory(h http.Handler, hold *atomic.Bool, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() && (r.URL.Path == "/api/history" || r.URL.Path == "/api/processes") {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// canvasColour counts the pixels of a chart's canvas near a colour (r, g,
// b within tol; the canvas is transparent, so fills keep their own colour
// with their alpha) in the x range [x0, x1) (fractions of its width).
func canvasColour(sel string, r, g, b, tol int, x0, x1 float64) string {
	return fmt.Sprintf(`(() => {
		const c = document.querySelector(%q);
		if (!c || !c.width) return 0;
		const w = c.width, d = c.getContext('2d').getImageData(0, 0, w, c.height).data;
		let n = 0;
		for (let i = 0; i < d.length; i += 4) {
			const x = (i / 4) %% w;
			if (x < %f * w || x >= %f * w) continue;
			if (d[i+3] > 30 && Math.abs(d[i]-%d) < %d && Math.abs(d[i+1]-%d) < %d && Math.abs(d[i+2]-%d) < %d) n++;
		}
		return n;
	})()`, sel, x0, x1, r, tol, g, tol, b, tol)
}

var badTick = regexp.MustCompile(`\.\d|\b20(2[7-9]|[3-9]\d)\b|\b19[0-9]{2}\b|^$`)

// TestBrowserFirstFrame: while the pre-fill is pending the live charts
// show the last 5 minutes on a whole-second axis (no milliseconds, no
// made-up years); once it arrives the stacked chart's series are the
// apps of those 5 minutes, drawn from the first frame across the whole
// window, not one grey "other".
func TestBrowserFirstFrame(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, Config{})
	seedLastMinutes(t, e.st, 300, nil)
	var hold atomic.Bool
	hold.Store(true)
	release := make(chan struct{})
	base := serveTest(t, slowHistory(e.h, &hold, release))
	p := newPage(t, "first-frame")

	p.do("load", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#chart-procs canvas`)))
	p.poll("the pending hint", `document.getElementById('chart-procs-hint').textContent === 'loading history…'`)
	for _, sel := range []string{"#chart-total", "#chart-procs"} {
		ticks := evalAs[string](p, `document.querySelector('`+sel+`').dataset.ticks || ''`)
		for _, tk := range strings.Split(ticks, "|") {
			if badTick.MatchString(tk) {
				p.fail("%s axis while pending shows %q (all: %q)", sel, tk, ticks)
			}
		}
	}
	p.shot("first-frame-pending.png")

	hold.Store(false)
	close(release)
	p.poll("the pre-filled stack", `document.querySelector('#chart-procs').dataset.series === 'firefox|curl'`)
	p.poll("the pre-fill to draw", `document.getElementById('chart-procs-hint').textContent === 'stacked, up + down'`)
	// firefox is PALETTE[0] (#1c7ed6 at 55% over the panel), curl
	// PALETTE[1] (#e8590c): both fill the left half (the pre-filled
	// minutes), and the grey of "other" does not.
	// firefox's band is its blue over curl's orange (the stack paints the
	// sum first): (91, 115, 151); curl's band above it the orange itself.
	blue := evalAs[int](p, canvasColour("#chart-procs canvas", 91, 115, 151, 20, 0.1, 0.5))
	orange := evalAs[int](p, canvasColour("#chart-procs canvas", 0xe8, 0x59, 0x0c, 20, 0.1, 0.5))
	grey := evalAs[int](p, canvasColour("#chart-procs canvas", 0x86, 0x8e, 0x96, 10, 0.1, 0.5))
	if blue < 2000 || orange < 300 || grey > blue/10 {
		p.fail("pre-filled half of the stack: %d firefox, %d curl, %d grey pixels", blue, orange, grey)
	}
	ticks := evalAs[string](p, `document.querySelector('#chart-procs').dataset.ticks`)
	if !strings.Contains(ticks, "11:56") || badTick.MatchString(strings.ReplaceAll(ticks, "|", " ")) {
		p.fail("axis after the pre-fill: %q", ticks)
	}
	// The ARIA summary names the apps.
	if s := evalAs[string](p, `document.getElementById('chart-procs').getAttribute('aria-label')`); !strings.Contains(s, "Top apps") || !strings.Contains(s, "firefox") || !strings.Contains(s, "curl") {
		p.fail("stack summary %q", s)
	}
	p.shot("first-frame.png")
	p.noErrors()
}

// TestBrowserGaps: the daemon's downtime (runs table) is a shaded gap in
// the live and history charts, not zero traffic; while the stream is down
// the rate cards say "disconnected" instead of the last rates.
func TestBrowserGaps(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, Config{})
	// Counting from -5m to -3m (a clean stop), then down until -1m, then
	// up again.
	seedLastMinutes(t, e.st, 300, func(ago int) bool { return ago < 180 && ago > 60 })
	ctx := context.Background()
	if err := e.st.MarkRun(ctx, t0.Add(-40*time.Minute), t0.Add(-180*time.Second), true); err != nil {
		t.Fatal(err)
	}
	if err := e.st.MarkRun(ctx, t0.Add(-60*time.Second), t0, false); err != nil {
		t.Fatal(err)
	}
	var streamDown atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streamDown.Load() && r.URL.Path == "/api/stream" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"collector stopped"}`)
			return
		}
		e.h.ServeHTTP(w, r)
	})
	base := serveTest(t, h)
	publishEvery(t, e.live, false)
	p := newPage(t, "gaps")
	p.do("load", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#proc-body tr`)))
	p.poll("the live gap", `document.querySelector('#chart-total').dataset.gaps === '1' && document.getElementById('chart-procs-hint').textContent === 'stacked, up + down'`)
	// The gap is -180 s .. -60 s of the live 5 minutes (60%..75% of the
	// canvas is inside it): the grey band there, not a line at zero.
	gapPx := evalAs[int](p, canvasColour("#chart-total canvas", 0x86, 0x8e, 0x96, 10, 0.6, 0.75))
	if gapPx < 1000 {
		p.fail("the gap band has %d pixels", gapPx)
	}
	if s := evalAs[string](p, `document.getElementById('chart-total').getAttribute('aria-label')`); !strings.Contains(s, "gaps where the daemon was not counting") {
		p.fail("total summary %q", s)
	}
	if got := p.text("#card-up-sub"); got != "now" {
		p.fail("live card says %q", got)
	}
	p.shot("gaps-live.png")

	// The stream goes away: the cards stop showing "now" rates.
	streamDown.Store(true)
	e.live.mu.Lock()
	for ch := range e.live.subs {
		close(ch)
		delete(e.live.subs, ch)
	}
	e.live.mu.Unlock()
	p.poll("the disconnected cards", `document.getElementById('card-up-sub').textContent.startsWith('disconnected') && document.getElementById('card-up').textContent === '–' && document.querySelector('.card.up').classList.contains('stale')`)
	if got := p.text("#th-up"); got != "Up/s at disconnect" {
		p.fail("the table's rate column while disconnected: %q", got)
	}
	p.shot("gaps-disconnected.png")
	streamDown.Store(false)
	p.poll("the cards after the reconnect", `document.getElementById('card-up-sub').textContent === 'now' && document.getElementById('card-up').textContent !== '–'`)

	// 1 h: the downtime before the first run is unknown (no band); the
	// one between the runs is.
	p.do("1 h", chromedp.Click(chromedp.CSS(`button[data-window="1h"]`)))
	p.poll("the 1 h gap", `document.getElementById('chart-total-hint').textContent.startsWith('last hour') && document.querySelector('#chart-total').dataset.gaps === '1'`)
	p.shot("gaps-1h.png")
	p.noErrors("503 (Service Unavailable) " + base + "/api/stream")
}

// TestBrowserCustomWindow: From after To is refused next to the inputs;
// the shown window and its button stay; a good window then works.
func TestBrowserCustomWindow(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, Config{})
	base := serveTest(t, e.h)
	p := newPage(t, "custom")
	p.do("load", chromedp.Navigate(base+"/#w=1h"), chromedp.WaitVisible(chromedp.CSS(`#proc-body tr`)))
	p.poll("1 h", `document.querySelector('button[data-window="1h"]').getAttribute('aria-pressed') === 'true'`)
	p.do("open custom",
		chromedp.Click(chromedp.CSS(`button[data-window="custom"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#custom-since`)),
		p.setInput("#custom-since", "2025-06-01T12:00"),
		p.setInput("#custom-until", "2025-06-01T10:00"),
		chromedp.Click(chromedp.CSS(`#custom button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#custom-error`)),
	)
	if msg := p.text("#custom-error"); !strings.Contains(msg, "is not before To") {
		p.fail("error %q", msg)
	}
	if evalAs[string](p, `document.querySelector('button[data-window="custom"]').getAttribute('aria-pressed')`) != "false" ||
		evalAs[string](p, `document.querySelector('button[data-window="1h"]').getAttribute('aria-pressed')`) != "true" ||
		evalAs[string](p, `document.getElementById('custom-since').getAttribute('aria-invalid')`) != "true" ||
		!strings.HasPrefix(p.text("#chart-total-hint"), "last hour") {
		p.fail("after a refused custom window the page shows another state")
	}
	p.shot("custom-from-after-to.png")
	// Fixed: the window shows, the error goes.
	p.do("fix",
		p.setInput("#custom-since", "2025-06-01T11:00"),
		p.setInput("#custom-until", "2025-06-01T12:00"),
		chromedp.Click(chromedp.CSS(`#custom button[type="submit"]`)),
	)
	p.poll("the custom window", `document.querySelector('button[data-window="custom"]').getAttribute('aria-pressed') === 'true' && document.getElementById('custom-error').hidden && /w=custom&from=2025-06-01T11%3A00/.test(location.hash)`)
	p.noErrors()
}

// TestBrowserURLState: window, filter, grouping and selection come from
// the URL, survive a reload and follow changes; the filter matches a
// remote address (curl's 198.18.0.11, in none of its own fields) and the
// filtered table has a totals row.
func TestBrowserURLState(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, Config{})
	base := serveTest(t, e.h)
	p := newPage(t, "url")
	curlRow := `#proc-body tr[data-key="4242:1000000:curl"]`
	check := func(when string) {
		p.t.Helper()
		p.poll(when+": the view from the URL", `document.querySelector('button[data-window="1h"]').getAttribute('aria-pressed') === 'true' &&
			document.getElementById('filter').value === '198.18.0.11' && !!document.querySelector('`+curlRow+` .tag') &&
			!document.getElementById('detail').hidden && document.getElementById('detail-title').textContent === 'curl (4242)'`)
		if n := evalAs[int](p, `document.querySelectorAll('#proc-body tr').length`); n != 1 {
			p.fail("%s: %d rows for the remote filter", when, n)
		}
		foot := p.text("#proc-foot")
		if !strings.Contains(foot, "Total of 1 shown") || !strings.Contains(foot, "1.37 KiB") || !strings.Contains(foot, "965 KiB") {
			p.fail("%s: totals row %q", when, foot)
		}
	}
	p.do("load", chromedp.Navigate(base+"/#w=1h&q=198.18.0.11&g=process&sel=4242:1000000:curl"))
	check("load")
	p.shot("url-state.png")
	p.do("reload", chromedp.Reload())
	check("reload")
	// Changes go into the URL.
	p.do("24 h", chromedp.Click(chromedp.CSS(`button[data-window="24h"]`)))
	p.poll("the URL", `location.hash.includes('w=24h') && location.hash.includes('q=198.18.0.11') && location.hash.includes('sel=4242%3A1000000%3Acurl')`)
	p.do("close", chromedp.Click(chromedp.CSS(`#detail-close`)))
	p.poll("the URL without sel", `!location.hash.includes('sel=')`)
	// A remote's name (from DNS answers) matches too, and the detail
	// panel shows it.
	if err := e.st.PutNames(context.Background(), []store.NameRecord{{IP: "198.18.0.11", Name: "dns.example.net", Domain: "example.net",
		FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(-5 * time.Minute), Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	p.do("filter by name", p.setInput("#filter", "example.net"))
	p.poll("the row matched by name", `document.getElementById('table-title').textContent.includes('last 24 hours') && document.querySelectorAll('#proc-body tr').length === 1 && !!document.querySelector('`+curlRow+` .tag')`)
	p.do("open curl", chromedp.Click(chromedp.CSS(curlRow)))
	p.poll("the remote's name in the detail", `!document.getElementById('remote-name-th').hidden && document.getElementById('remote-body').textContent.includes('dns.example.net')`)
	p.shot("url-filter-by-name.png")
	p.do("close again", chromedp.Click(chromedp.CSS(`#detail-close`)))
	// A filter over two processes sums both.
	p.do("filter", p.setInput("#filter", ""), chromedp.SendKeys(chromedp.CSS(`#filter`), "/usr/"))
	p.poll("two rows", `document.getElementById('table-title').textContent.includes('last 24 hours') && document.querySelectorAll('#proc-body tr').length === 2 && document.getElementById('proc-foot').textContent.includes('Total of 2 shown')`)
	// curl + firefox in 24 h: 1400+5555555+10+1000 sent.
	if s := evalAs[string](p, `document.querySelector('#proc-foot td:nth-child(6)').title`); s != "5,557,965 B" {
		p.fail("totals row sent %q", s)
	}
	p.noErrors()
}

// TestBrowserApps: the table is grouped by app by default; the keyboard
// moves through it, opens an app, a process's details and closes them;
// focus is visible; light and dark.
func TestBrowserApps(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, Config{})
	base := serveTest(t, e.h)
	publishEvery(t, e.live, true)
	p := newPage(t, "apps")
	p.do("load", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#proc-body tr[data-app="curl"]`)))
	if got := evalAs[string](p, `[...document.querySelectorAll('#proc-body tr')].map(r => r.dataset.app).join(',')`); got != "firefox,curl,idle" {
		p.fail("app rows %q", got)
	}
	if role := evalAs[string](p, `document.getElementById('proc-table').getAttribute('role')`); role != "treegrid" {
		p.fail("table role %q", role)
	}
	// Tab into the table: one row is in the tab order.
	if n := evalAs[int](p, `document.querySelectorAll('#proc-body tr[tabindex="0"]').length`); n != 1 {
		p.fail("%d rows in the tab order", n)
	}
	p.do("focus the first row", chromedp.Focus(chromedp.CSS(`#proc-body tr[tabindex="0"]`)))
	p.do("down, right", chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowRight))
	p.poll("curl open", `document.querySelector('#proc-body tr[data-app="curl"]').getAttribute('aria-expanded') === 'true' && !!document.querySelector('#proc-body tr[data-key^="4242:"]') && document.activeElement.dataset.app === 'curl'`)
	p.do("into curl", chromedp.KeyEvent(kb.ArrowRight))
	p.poll("focus on curl's process", `document.activeElement.dataset.key === '4242:1000000:curl'`)
	outline := evalAs[string](p, `getComputedStyle(document.activeElement).outlineStyle`)
	if outline != "solid" {
		p.fail("focused row outline %q", outline)
	}
	p.shot("apps-keyboard.png")
	p.do("enter", chromedp.KeyEvent(kb.Enter))
	p.poll("the detail panel", `!document.getElementById('detail').hidden && document.activeElement.id === 'detail-title' && location.hash.includes('sel=')`)
	p.poll("the remotes", `document.querySelectorAll('#remote-body tr').length === 2`)
	p.do("escape", chromedp.KeyEvent(kb.Escape))
	p.poll("back on the row", `document.getElementById('detail').hidden && document.activeElement.dataset.key === '4242:1000000:curl'`)
	p.do("left", chromedp.KeyEvent(kb.ArrowLeft))
	p.poll("on curl", `document.activeElement.dataset.app === 'curl'`)
	p.do("left again", chromedp.KeyEvent(kb.ArrowLeft))
	p.poll("curl closed", `document.querySelector('#proc-body tr[data-app="curl"]').getAttribute('aria-expanded') === 'false' && location.hash === ''`)
	// The charts have summaries for screen readers.
	for _, id := range []string{"chart-total", "chart-procs", "chart-ov"} {
		role := evalAs[string](p, `document.getElementById('`+id+`').getAttribute('role')`)
		label := evalAs[string](p, `document.getElementById('`+id+`').getAttribute('aria-label') || ''`)
		if role != "img" || len(label) < 20 {
			p.fail("%s: role %q, label %q", id, role, label)
		}
	}
	p.do("expand firefox", chromedp.Click(chromedp.CSS(`#proc-body tr[data-app="firefox"]`)))
	p.poll("firefox open", `!!document.querySelector('#proc-body tr[data-key^="777:"]')`)
	if _, err := chromedp.Call(p.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	}); err != nil {
		p.fail("dark mode: %v", err)
	}
	p.poll("the dark background", `getComputedStyle(document.body).backgroundColor === 'rgb(21, 23, 26)'`)
	p.do("focus", chromedp.Focus(chromedp.CSS(`#proc-body tr[data-app="curl"]`)), chromedp.KeyEvent(kb.ArrowDown), chromedp.Sleep(300*time.Millisecond))
	p.shot("apps-dark.png")
	p.noErrors()
}

// TestBrowserOverview: the day bars per app from /api/periods, the top
// remotes, and the locality split.
func TestBrowserOverview(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, Config{})
	base := serveTest(t, e.h)
	p := newPage(t, "overview")
	p.do("load", chromedp.Navigate(base+"/#ov=month"), chromedp.WaitVisible(chromedp.CSS(`#ov-remotes-body tr`)))
	p.poll("month bars", `document.querySelector('button[data-ov="month"]').getAttribute('aria-pressed') === 'true' && document.querySelector('#chart-ov').dataset.series === 'firefox|curl|sshd'`)
	p.do("days", chromedp.Click(chromedp.CSS(`button[data-ov="day"]`)))
	p.poll("day bars", `document.getElementById('ov-unit').textContent === 'day' && /^31 days/.test(document.getElementById('ov-hint').textContent)`)
	// firefox's bar: its blue over the stack below it (54, 121, 184).
	p.poll("the bars to draw", canvasColour("#chart-ov canvas", 54, 121, 184, 20, 0.8, 1)+` > 500`)
	rem := p.text("#ov-remotes-body")
	if !strings.HasPrefix(rem, "2001:db8::1") || !strings.Contains(rem, "198.18.0.99") {
		p.fail("top remotes %q", rem)
	}
	// Locality from /api/summary's scopes: every seeded remote is outside
	// this host's networks (198.18/15 and 2001:db8::/32 are not LAN here).
	if s := p.text("#ov-scope"); !strings.Contains(s, "internet 100.0%") {
		p.fail("locality %q", s)
	}
	if s := evalAs[string](p, `document.getElementById('ov-scope').getAttribute('aria-label')`); s != "Locality: internet 100.0%" {
		p.fail("locality summary %q", s)
	}
	label := evalAs[string](p, `document.getElementById('chart-ov').getAttribute('aria-label')`)
	if !strings.Contains(label, "Traffic per day") || !strings.Contains(label, "busiest day") {
		p.fail("overview summary %q", label)
	}
	p.do("open the table", chromedp.Click(chromedp.CSS(`.ov-table summary`)))
	if first := p.text("#ov-periods-body tr:first-child"); !strings.Contains(first, "Sun 1") || !strings.Contains(first, "firefox") {
		p.fail("today's row %q", first)
	}
	p.do("scroll", chromedp.ScrollIntoView(chromedp.CSS(`#ov-title`)))
	p.shot("overview.png")
	p.noErrors()
}
