package report

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name.golden (go test -update rewrites
// it) and checks that no line is wider than width terminal cells.
func golden(t *testing.T, name, got string, width int) {
	t.Helper()
	for i, l := range strings.Split(got, "\n") {
		if Width(l) > width {
			t.Errorf("%s line %d is %d cells wide (max %d): %q", name, i+1, Width(l), width, l)
		}
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

// busyRows: long paths, a long remote name, wide runes, an escape in a
// name: what a busy host gives a report.
var busyRows = []store.Row{
	{PID: 4021337, Comm: "firefox-bin", Exe: "/usr/lib/firefox-esr/firefox-esr-developer-edition/firefox-bin", RemoteIP: "2001:db8:1234:5678:9abc:def0:1234:5678", Protocol: "tcp", TxBytes: 31 << 20, RxBytes: 1234 << 20},
	{PID: 812, Comm: "python3", Exe: "/home/alice/.local/share/virtualenvs/data-pipeline-Xy12/bin/python3.11", RemoteIP: "198.18.0.1", Protocol: "udp", TxBytes: 9 << 30, RxBytes: 3 << 20},
	{PID: 77, Comm: "日本語プロセス", Exe: "/opt/日本語/bin/とても長い名前のプログラム", RemoteIP: "198.18.0.2", Protocol: "tcp", TxBytes: 5000, RxBytes: 70000},
	{PID: 9, Comm: "evil\x1b[2J", Exe: "/tmp/\x1b]0;pwned\x07/x", RemoteIP: "", Protocol: "icmp", TxBytes: 64, RxBytes: 64},
}

func TestTableFits80Golden(t *testing.T) {
	for _, tc := range []struct {
		name string
		by   []string
		opt  Options
	}{
		{"process_bars", []string{store.DimProcess}, Options{Bars: true, Width: 80}},
		{"process_remote", []string{store.DimProcess, store.DimRemote, store.DimProtocol}, Options{Bars: true, Width: 80,
			Names: map[string]string{"198.18.0.1": "a-very-long-reverse-dns-name.compute-1.cloud-provider.example.com"}}},
		{"exe_bits", []string{store.DimExe}, Options{Bars: true, Width: 80, Units: Units{Bits: true},
			Window: &WindowTotals{Rows: 9, TxBytes: 10 << 30, RxBytes: 2 << 30}}},
		{"exe_graph", []string{store.DimExe}, Options{Width: 80, Graph: map[store.Row][]uint64{
			GraphKey(store.Row{Exe: busyRows[0].Exe}): {0, 1, 2, 4, 8, 16, 8, 4, 0, 0, 1, 1, 5, 9, 12, 3},
			GraphKey(store.Row{Exe: busyRows[1].Exe}): {9, 9, 9, 9, 0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 1},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := busyRows
			if tc.by[0] == store.DimExe {
				rows = nil
				for _, r := range busyRows {
					rows = append(rows, store.Row{Exe: r.Exe, TxBytes: r.TxBytes, RxBytes: r.RxBytes})
				}
			}
			var b bytes.Buffer
			if err := WriteWith(&b, "table", tc.by, rows, tc.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, "table_"+tc.name, b.String(), 80)
			// JSON keeps the whole values.
			b.Reset()
			WriteWith(&b, "json", tc.by, rows, tc.opt)
			if !strings.Contains(b.String(), "/home/alice/.local/share/virtualenvs/data-pipeline-Xy12/bin/python3.11") {
				t.Errorf("json lost the full path:\n%s", b.String())
			}
		})
	}
}

func TestMiddle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		w    int
		want string
	}{
		{"/usr/bin/curl", 20, "/usr/bin/curl"},
		{"/usr/lib/firefox/firefox-bin", 12, "/usr/…ox-bin"},
		{"abcdef", 1, "a"},
		{"日本語プログラム", 7, "日…ム  "}, // wide runes are not split: padded to 7 cells
	} {
		got := Middle(tc.in, tc.w)
		if got != tc.want || (Width(tc.in) > tc.w && Width(got) != tc.w) {
			t.Errorf("Middle(%q, %d) = %q (%d cells), want %q", tc.in, tc.w, got, Width(got), tc.want)
		}
	}
}

func TestUnits(t *testing.T) {
	b, bits := Units{}, Units{Bits: true}
	for _, tc := range []struct{ got, want string }{
		{b.Size(1536), "1.5 KiB"}, {bits.Size(1536), "12 kbit"}, {bits.Size(1000), "8 kbit"}, {bits.Size(150), "1.2 kbit"},
		{bits.Size(100), "800 bit"}, {bits.Size(5 << 30), "43 Gbit"},
		{b.Rate(0.2), "0 B/s"}, {bits.Rate(0.2), "0 bit/s"},
		{b.Rate(125000), "122 KiB/s"}, {bits.Rate(125000), "1 Mbit/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func periodsFixture() ([]store.Period, time.Time) {
	loc := time.FixedZone("CET", 3600)
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, loc)
	var ps []store.Period
	for i := 0; i < 8; i++ {
		p := store.Period{Start: start.AddDate(0, 0, i), End: start.AddDate(0, 0, i+1)}
		if i != 3 { // a quiet day: a gap in the chart, no table row
			p.TxBytes = uint64(i+1) * 300 << 20
			p.RxBytes = uint64(8-i) * 700 << 20
			p.Top = store.Row{PID: 4021337, Comm: "firefox-bin", Exe: "/usr/lib/firefox-esr/firefox-esr-developer-edition/firefox-bin",
				TxBytes: p.TxBytes / 2, RxBytes: p.RxBytes / 2}
		}
		ps = append(ps, p)
	}
	return ps, start.AddDate(0, 0, 7).Add(15 * time.Hour)
}

// The period table has the same column order as the totals (SENT,
// RECEIVED, TOTAL) and fits 80 columns.
func TestPeriodTableGolden(t *testing.T) {
	ps, now := periodsFixture()
	for _, tc := range []struct {
		name string
		opt  PeriodOptions
	}{
		{"daily", PeriodOptions{Kind: PeriodDay, Now: now, Bars: true, Width: 80}},
		{"daily_bits", PeriodOptions{Kind: PeriodDay, Now: now, Bars: true, Width: 80, Units: Units{Bits: true}}},
		{"daily_exe", PeriodOptions{Kind: PeriodDay, Now: now, Bars: true, Width: 80, By: []string{store.DimExe}}},
	} {
		var b bytes.Buffer
		if err := WritePeriods(&b, "table", ps, tc.opt); err != nil {
			t.Fatal(err)
		}
		golden(t, "periods_"+tc.name, b.String(), 80)
	}
}

func TestYearPeriods(t *testing.T) {
	loc := time.FixedZone("IST", 5*3600+1800)
	edges, err := PeriodEdges(PeriodYear, time.Date(2024, 6, 1, 12, 0, 0, 0, loc), time.Date(2026, 12, 2, 1, 0, 0, 0, loc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range edges {
		got = append(got, e.Format("2006-01-02T15:04-07:00"))
	}
	if strings.Join(got, " ") != "2024-01-01T00:00+05:30 2025-01-01T00:00+05:30 2026-01-01T00:00+05:30 2027-01-01T00:00+05:30" {
		t.Fatalf("year edges: %v", got)
	}
	if periodLabel(PeriodYear, edges[1]) != "2025" {
		t.Fatalf("label %q", periodLabel(PeriodYear, edges[1]))
	}
}

func TestSummaryGolden(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2026, 12, 2, 20, 30, 0, 0, loc) // 1 day 20.5 h of 31 days
	ff := "/usr/lib/firefox-esr/firefox-esr-developer-edition/firefox-bin"
	s := Summary{By: []string{store.DimExe}, Now: now, Width: 80, Top: 2,
		Today:     []store.Row{{Exe: ff, TxBytes: 10 << 20, RxBytes: 500 << 20}, {Exe: "/usr/bin/curl", TxBytes: 1 << 20, RxBytes: 2 << 20}},
		Yesterday: []store.Row{{Exe: ff, TxBytes: 20 << 20, RxBytes: 700 << 20}, {Exe: "/usr/bin/rsync", TxBytes: 3 << 30}},
		Month: []store.Row{{Exe: ff, TxBytes: 30 << 20, RxBytes: 1200 << 20}, {Exe: "/usr/bin/rsync", TxBytes: 3 << 30},
			{Exe: "/usr/bin/curl", TxBytes: 1 << 20, RxBytes: 2 << 20}},
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary", b.String(), 80)
	// The estimate: 1.2 GiB in 44.5 h of a 744 h month.
	soFar := float64(1200 << 20)
	if got, want := Estimate(1200<<20, now), uint64(soFar*744/44.5); got != want {
		t.Fatalf("Estimate = %d, want %d", got, want)
	}
}

// The PNG decodes and has the golden size (the chart's pixels are not
// compared: fonts and anti-aliasing may change with the library).
func TestPNGSize(t *testing.T) {
	ps, now := periodsFixture()
	var b bytes.Buffer
	if err := WritePNG(&b, ps, PeriodOptions{Kind: PeriodDay, Now: now}, "bwtracker · day · 2026-11-25 – 2026-12-02 CET"); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	// 7 periods with traffic: 34 title + 300 chart + 12 + 15*(7+2) + 12.
	if got := img.Bounds(); got.Dx() != 760 || got.Dy() != 493 || PNGHeight(7) != 493 {
		t.Fatalf("PNG is %dx%d, want 760x493", got.Dx(), got.Dy())
	}
	if out := os.Getenv("BWTRACKER_PNG_OUT"); out != "" { // to look at it
		os.WriteFile(out, b.Bytes(), 0o644)
	}
}
