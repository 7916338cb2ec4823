package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

func TestPeriodEdges(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata")
	}
	// Across the spring DST change (2026-03-29): 23-hour day, no hour repeated.
	since := time.Date(2026, 3, 28, 13, 7, 0, 0, berlin)
	until := time.Date(2026, 3, 30, 1, 0, 0, 0, berlin)
	days, err := PeriodEdges(PeriodDay, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 4 || days[1].Sub(days[0]) != 24*time.Hour || days[2].Sub(days[1]) != 23*time.Hour || days[0].Hour() != 0 {
		t.Fatalf("days: %v", days)
	}
	hours, _ := PeriodEdges(PeriodHour, since, until)
	for i := 1; i < len(hours); i++ {
		if hours[i].Sub(hours[i-1]) != time.Hour {
			t.Fatalf("hour %d: %v -> %v", i, hours[i-1], hours[i])
		}
	}
	months, _ := PeriodEdges(PeriodMonth, time.Date(2025, 12, 15, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC))
	if len(months) != 4 || months[1] != time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("months: %v", months)
	}
	fives, _ := PeriodEdges(Period5Min, time.Date(2026, 1, 1, 10, 7, 0, 0, time.UTC), time.Date(2026, 1, 1, 10, 20, 0, 0, time.UTC))
	if len(fives) != 4 || fives[0].Minute() != 5 {
		t.Fatalf("5min: %v", fives)
	}
	if _, err := PeriodEdges("week", since, until); err == nil {
		t.Fatal("week accepted")
	}
	if _, err := PeriodEdges(Period5Min, time.Time{}, time.Now()); err == nil {
		t.Fatal("millions of periods accepted")
	}
}

var periods = []store.Period{
	{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), TxBytes: 100, RxBytes: 1 << 30,
		Top: store.Row{PID: 42, Comm: "curl", Exe: "/usr/bin/curl", TxBytes: 50, RxBytes: 1 << 29}},
	{Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
	{Start: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), TxBytes: 1 << 20, RxBytes: 3 << 30,
		Top: store.Row{PID: 7, Comm: "rsync", Exe: "/usr/bin/rsync", TxBytes: 1 << 20, RxBytes: 2 << 30}},
}

func TestWritePeriods(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePeriods(&buf, "json", periods, PeriodOptions{Kind: PeriodDay}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 { // the empty day is left out
		t.Fatalf("%d periods: %s", len(got), buf.String())
	}
	top := got[1]["top"].(map[string]any)
	if got[1]["total_bytes"].(float64) != float64(1<<20+3<<30) || top["comm"] != "rsync" || top["pid"].(float64) != 7 || got[0]["start"] != "2026-03-01T00:00:00Z" {
		t.Fatalf("json: %s", buf.String())
	}

	buf.Reset()
	WritePeriods(&buf, "table", periods, PeriodOptions{Kind: PeriodDay, Bars: true, TopDays: 1})
	out := buf.String()
	if !strings.Contains(out, "2026-03-03") || strings.Contains(out, "2026-03-01") || !strings.Contains(out, "rsync[7]") || !strings.Contains(out, "█") || !strings.Contains(out, "1 top periods") {
		t.Fatalf("top days table:\n%s", out)
	}
	buf.Reset()
	WritePeriods(&buf, "table", periods, PeriodOptions{Kind: PeriodMonth, By: []string{store.DimExe}})
	if !strings.Contains(buf.String(), "/usr/bin/curl") || !strings.Contains(buf.String(), "TOP EXE") || strings.Contains(buf.String(), "█") {
		t.Fatalf("exe table:\n%s", buf.String())
	}
	buf.Reset()
	WritePeriods(&buf, "csv", periods, PeriodOptions{Kind: PeriodDay})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if lines[0] != "start,end,tx_bytes,rx_bytes,total_bytes,top_pid,top_comm,top_exe,top_tx_bytes,top_rx_bytes" || len(lines) != 3 {
		t.Fatalf("csv:\n%s", buf.String())
	}
}

func TestDimsExeUserAndBars(t *testing.T) {
	rows := []store.Row{{Exe: "/usr/bin/curl", UID: 0, RemoteIP: "198.18.0.1", TxBytes: 10, RxBytes: 90}, {Exe: "", UID: 4242424, TxBytes: 1}}
	var buf bytes.Buffer
	if err := Write(&buf, "json", []string{store.DimExe, store.DimUser}, rows); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	json.Unmarshal(buf.Bytes(), &got)
	if got[0]["exe"] != "/usr/bin/curl" || got[0]["user"] != "root" || got[0]["uid"].(float64) != 0 || got[1]["user"] != "4242424" {
		t.Fatalf("json: %s", buf.String())
	}
	// process + exe: exe appears once.
	buf.Reset()
	Write(&buf, "json", []string{store.DimProcess, store.DimExe}, rows)
	if strings.Count(buf.String(), `"exe"`) != 2 {
		t.Fatalf("exe duplicated: %s", buf.String())
	}
	buf.Reset()
	WriteWith(&buf, "table", []string{store.DimRemote}, rows, Options{Bars: true, Names: map[string]string{"198.18.0.1": "bench.example"}})
	if !strings.Contains(buf.String(), "bench.example (198.18.0.1)") || !strings.Contains(buf.String(), "████████████████") {
		t.Fatalf("table:\n%s", buf.String())
	}
	// JSON and CSV keep the raw address whatever the options.
	buf.Reset()
	WriteWith(&buf, "csv", []string{store.DimRemote}, rows, Options{Bars: true, Names: map[string]string{"198.18.0.1": "bench.example"}})
	if strings.Contains(buf.String(), "bench.example") || strings.Contains(buf.String(), "█") {
		t.Fatalf("csv not clean:\n%s", buf.String())
	}
	if b := Bar(1, 1000, 16); b != "▏" {
		t.Fatalf("tiny bar %q", b)
	}
	if s := Sparkline([]uint64{0, 1, 8}); s != " ▁█" {
		t.Fatalf("sparkline %q", s)
	}
}

func TestResolverCachesAndTimesOut(t *testing.T) {
	var calls atomic.Int64
	r := &Resolver{Lookup: func(ctx context.Context, addr string) ([]string, error) {
		calls.Add(1)
		switch addr {
		case "198.18.0.1":
			return []string{"one.example."}, nil
		case "198.18.0.2":
			<-ctx.Done() // a DNS server that never answers
			return nil, ctx.Err()
		}
		return nil, errors.New("NXDOMAIN")
	}}
	start := time.Now()
	names := r.Resolve([]string{"198.18.0.1", "198.18.0.2", "198.18.0.3", "", "not-an-ip"}, 200*time.Millisecond)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Resolve took %v despite a 200ms timeout", el)
	}
	if names["198.18.0.1"] != "one.example" || len(names) != 1 {
		t.Fatalf("names: %v", names)
	}
	n := calls.Load()
	r.Resolve([]string{"198.18.0.1", "198.18.0.3"}, time.Second)
	if calls.Load() != n {
		t.Fatalf("cached answers looked up again (%d -> %d calls)", n, calls.Load())
	}
	if name, ok := r.Cached("198.18.0.1"); !ok || name != "one.example" {
		t.Fatalf("Cached: %q %v", name, ok)
	}
}
