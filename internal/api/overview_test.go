package api

import (
	"context"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// TestHistoryGaps: the store's run records turn downtime into gaps; the
// time before the first recorded run is unknown, not a gap.
func TestHistoryGaps(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	// Run 1: t0-20m .. t0-12m (killed: last mark at -12m); run 2 from
	// t0-8m, alive now.
	if err := e.st.MarkRun(ctx, t0.Add(-20*time.Minute), t0.Add(-12*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if err := e.st.MarkRun(ctx, t0.Add(-8*time.Minute), t0.Add(-3*time.Second), false); err != nil {
		t.Fatal(err)
	}
	h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since=30m&step=1m"))
	if len(h.Gaps) != 1 {
		t.Fatalf("gaps %+v, want one", h.Gaps)
	}
	g := h.Gaps[0]
	if want := t0.Add(-12*time.Minute + runSlack); !g.Since.Equal(want) || !g.Until.Equal(t0.Add(-8*time.Minute)) {
		t.Fatalf("gap %s .. %s, want %s .. %s", g.Since, g.Until, want, t0.Add(-8*time.Minute))
	}
	// The bytes are unchanged by the gaps (curl's and firefox's, 30 min).
	if h.TxBytes != curlTx+5555555+10 || h.RxBytes != curlRx+66666666+20 {
		t.Fatalf("history bytes %d/%d", h.TxBytes, h.RxBytes)
	}
	// An older mark never moves alive back.
	if err := e.st.MarkRun(ctx, t0.Add(-8*time.Minute), t0.Add(-7*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since=5m")); len(h.Gaps) != 0 {
		t.Fatalf("gaps in the live run: %+v", h.Gaps)
	}
	// Another daemon: stopped cleanly at -2m (its final mark): the gap
	// starts right there; one killed at -2m is known alive up to
	// runSlack later.
	for _, stopped := range []bool{true, false} {
		e2 := newEnv(t, Config{})
		if err := e2.st.MarkRun(ctx, t0.Add(-8*time.Minute), t0.Add(-2*time.Minute), stopped); err != nil {
			t.Fatal(err)
		}
		want := t0.Add(-2 * time.Minute)
		if !stopped {
			want = want.Add(runSlack)
		}
		h = decode[HistoryResponse](t, e2.do(t, "GET", "/api/history?since=10m&step=10s"))
		if len(h.Gaps) != 1 || !h.Gaps[0].Since.Equal(want) || !h.Gaps[0].Until.Equal(t0) {
			t.Fatalf("stopped %v: gaps %+v, want from %s", stopped, h.Gaps, want)
		}
	}
	// A window inside one run has no gaps; one before any run neither.
	if h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since=7m&until=3m")); len(h.Gaps) != 0 {
		t.Fatalf("gaps inside a run: %+v", h.Gaps)
	}
	if h := decode[HistoryResponse](t, e.do(t, "GET", "/api/history?since=2h&until=30m")); len(h.Gaps) != 0 {
		t.Fatalf("gaps before the first run: %+v", h.Gaps)
	}
}

// TestPeriods: /api/periods sums each local day per app, top groups
// first, the rest as "other".
func TestPeriods(t *testing.T) {
	e := newEnv(t, Config{})
	p := decode[PeriodsResponse](t, e.do(t, "GET", "/api/periods?since=3d&tz=UTC&top=1"))
	if p.Period != "day" || p.TZ != "UTC" || p.By != "app" {
		t.Fatalf("header %+v", p)
	}
	if len(p.Groups) != 1 || p.Groups[0] != "firefox" {
		t.Fatalf("groups %v", p.Groups)
	}
	// 3 days back from 2025-06-01 12:00 UTC: May 29, 30, 31, June 1.
	if len(p.Periods) != 4 || !p.Periods[0].Start.Equal(time.Date(2025, 5, 29, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("periods %+v", p.Periods)
	}
	today := p.Periods[3]
	// Today: firefox (30 min and 2 h ago), curl as other. sshd (48 h ago,
	// May 30 12:00) is in its own day.
	ffTx, ffRx := uint64(5555555+10+1000), uint64(66666666+20+2000)
	if len(today.Groups) != 2 || today.Groups[0].Name != "firefox" || today.Groups[0].TxBytes != ffTx || today.Groups[0].RxBytes != ffRx ||
		today.Groups[1].Name != "other" || today.Groups[1].TxBytes != curlTx || today.Groups[1].RxBytes != curlRx {
		t.Fatalf("today %+v", today)
	}
	if today.TxBytes != ffTx+curlTx || today.RxBytes != ffRx+curlRx {
		t.Fatalf("today's totals %d/%d", today.TxBytes, today.RxBytes)
	}
	if d := p.Periods[1]; d.TxBytes != 777 || d.RxBytes != 888 || len(d.Groups) != 1 || d.Groups[0].Name != "other" {
		t.Fatalf("May 30 %+v", d)
	}
	// In Asia/Kolkata (UTC+5:30) today starts at 2025-05-31T18:30Z.
	p = decode[PeriodsResponse](t, e.do(t, "GET", "/api/periods?since=1d&tz=Asia/Kolkata"))
	last := p.Periods[len(p.Periods)-1]
	if !last.Start.Equal(time.Date(2025, 5, 31, 18, 30, 0, 0, time.UTC)) {
		t.Fatalf("Kolkata day starts %s", last.Start.UTC())
	}
	// Months.
	p = decode[PeriodsResponse](t, e.do(t, "GET", "/api/periods?period=month&since=40d"))
	if len(p.Periods) != 3 || p.Periods[2].TxBytes != ffTx+curlTx || p.Periods[1].TxBytes != 777 {
		t.Fatalf("months %+v", p.Periods)
	}
}

// TestProcessesRemote: ?remote= keeps the processes that talked to a
// matching address, with their whole totals.
func TestProcessesRemote(t *testing.T) {
	e := newEnv(t, Config{})
	p := decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&remote=198.18.0.11"))
	if len(p.Processes) != 1 || p.Processes[0].Comm != "curl" || p.Processes[0].TxBytes != curlTx || p.Processes[0].RxBytes != curlRx {
		t.Fatalf("remote=198.18.0.11: %+v", p.Processes)
	}
	p = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&remote=198.18.0.1"))
	if len(p.Processes) != 2 || p.Processes[0].Comm != "firefox" || p.Processes[1].Comm != "curl" {
		t.Fatalf("remote=198.18.0.1: %+v", p.Processes)
	}
	p = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&remote=2001:DB8&top=1"))
	if len(p.Processes) != 1 || p.Processes[0].Comm != "firefox" || p.Truncated {
		t.Fatalf("remote=2001:DB8: %+v", p)
	}
	p = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&remote=198.18&top=1"))
	if len(p.Processes) != 1 || !p.Truncated {
		t.Fatalf("remote=198.18 top=1: %+v", p)
	}
	// By the remote's name (DNS answers): curl looked up 198.18.0.11.
	if err := e.st.PutNames(context.Background(), []store.NameRecord{{IP: "198.18.0.11", Name: "dns.example.net", Domain: "example.net",
		FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(-5 * time.Minute), Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	p = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&remote=Example.NET"))
	if len(p.Processes) != 1 || p.Processes[0].Comm != "curl" || p.Processes[0].TxBytes != curlTx {
		t.Fatalf("remote=Example.NET: %+v", p.Processes)
	}
	p = decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?since=1h&remote=10.9.9.9"))
	if len(p.Processes) != 0 || p.Processes == nil {
		t.Fatalf("no match: %+v", p)
	}
}
