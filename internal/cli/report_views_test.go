package cli

import (
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/report"
	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/internal/testenv"
)

// seedViews writes a few flushes at known times: curl today and
// yesterday, a long-path exe in the last hour.
func seedViews(t *testing.T, now time.Time) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	curl := store.Sample{ProcessKey: store.ProcessKey{PID: 10, StartNS: 1, Comm: "curl"}, Exe: "/usr/bin/curl", RemoteIP: "198.18.0.1", Protocol: "tcp"}
	long := store.Sample{ProcessKey: store.ProcessKey{PID: 11, StartNS: 1, Comm: "python3"},
		Exe: "/home/alice/.local/share/virtualenvs/data-pipeline-Xy12/bin/python3.11", RemoteIP: "198.18.0.2", Protocol: "udp"}
	write := func(ts time.Time, sm store.Sample, tx, rx uint64) {
		sm.TxBytes, sm.RxBytes = tx, rx
		if err := s.Write(t.Context(), ts, []store.Sample{sm}); err != nil {
			t.Fatal(err)
		}
	}
	day := report.DayStart(now.Local())
	write(day.Add(-12*time.Hour), curl, 1000, 2000) // yesterday (or the day before, right after midnight)
	write(now.Add(-50*time.Minute), long, 300000, 7)
	write(now.Add(-20*time.Minute), curl, 4000, 8000)
	return db
}

// TestReportGraphBitsWidth: --graph draws each row's bins, --bits shows
// bits, every line fits 80 columns, and JSON keeps the full path.
func TestReportGraphBitsWidth(t *testing.T) {
	now := time.Now()
	db := seedViews(t, now)
	code, out, stderr := runCLI("report", "--db", db, "--no-resolve", "--since", "2h", "--graph", "--bits", "--by", "exe")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, l := range strings.Split(out, "\n") {
		if report.Width(l) > 80 {
			t.Errorf("line wider than 80: %q", l)
		}
	}
	// python3's path is cut in the middle.
	if !strings.Contains(out, "…") {
		t.Fatalf("--by exe table:\n%s", out)
	}
	code, out, stderr = runCLI("report", "--db", db, "--no-resolve", "--since", "2h", "--graph", "--bits")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// 300000 B = 2.4 Mbit sent by python3.
	if !strings.Contains(out, "2.4 Mbit") || !strings.Contains(out, "GRAPH") ||
		!strings.Contains(out, "graph: 16 cells of 10m each") {
		t.Fatalf("graph/bits table:\n%s", out)
	}
	// Each row's sparkline has exactly one cell drawn (one flush each in
	// the window), the peak glyph.
	for _, comm := range []string{"curl", "python3"} {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, comm+" ") { // the app column comes first
				line = l
			}
		}
		if strings.Count(line, "█") != 1 {
			t.Errorf("%s: sparkline %q, want one full cell", comm, line)
		}
	}
	code, out, _ = runCLI("report", "--db", db, "--since", "2h", "--format", "json", "--bits", "--graph", "--by", "exe")
	if code != 0 || !strings.Contains(out, `"exe": "/home/alice/.local/share/virtualenvs/data-pipeline-Xy12/bin/python3.11"`) ||
		!strings.Contains(out, `"tx_bytes": 300000`) {
		t.Fatalf("json unchanged by --bits/--graph:\n%s", out)
	}
	code, out, _ = runCLI("report", "--db", db, "--no-resolve", "--since", "2h", "--width", "0", "--by", "exe")
	if code != 0 || !strings.Contains(out, "/home/alice/.local/share/virtualenvs/data-pipeline-Xy12/bin/python3.11") {
		t.Fatalf("--width 0 keeps full paths:\n%s", out)
	}
	if code, _, _ := runCLI("report", "--db", db, "--width", "-1"); code != 2 {
		t.Fatalf("--width -1: exit %d, want 2", code)
	}
}

// TestReportSummary: on a terminal a bare `report` is the vnStat-like
// summary; --summary asks for it anywhere; any other flag gives the table.
func TestReportSummary(t *testing.T) {
	now := time.Now()
	db := seedViews(t, now)
	code, out, stderr := runCLI("report", "--db", db, "--summary")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "TODAY") || !strings.Contains(out, "YESTERDAY") || !strings.Contains(out, "ESTIMATED") || !strings.Contains(out, "\ncurl ") {
		t.Fatalf("summary:\n%s", out)
	}
	// Today: 4000 + 300000 sent (296.9 KiB) and 8007 received, unless the
	// test runs in the first hour after midnight.
	if now.Sub(report.DayStart(now.Local())) > time.Hour && !strings.Contains(out, "297 KiB") {
		t.Errorf("today's sent total missing:\n%s", out)
	}

	defer func(f func(io.Writer) (int, bool)) { terminalWidth = f }(terminalWidth)
	terminalWidth = func(io.Writer) (int, bool) { return 80, true }
	if _, out2, _ := runCLI("report", "--db", db); out2 != out {
		t.Fatalf("bare report on a terminal is not the summary:\n%s", out2)
	}
	if _, out3, _ := runCLI("report", "--db", db, "--since", "24h", "--no-resolve"); !strings.HasPrefix(out3, "last 24 h") {
		t.Fatalf("--since gives the table:\n%s", out3)
	}
}

// TestReportPeriodYearAndPNG: --period year, and --png writes a PNG of the
// golden size.
func TestReportPeriodYearAndPNG(t *testing.T) {
	now := time.Now()
	db := seedViews(t, now)
	code, out, stderr := runCLI("report", "--db", db, "--period", "year")
	if code != 0 || !strings.HasPrefix(out, "YEAR ") || !strings.Contains(out, now.Format("2006")) || !strings.Contains(out, "1 periods") {
		t.Fatalf("--period year: exit %d %s\n%s", code, stderr, out)
	}
	// The column order is the same as the totals table's.
	hdr := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(hdr[1:4], " ") != "SENT RECEIVED TOTAL" {
		t.Fatalf("period header %v", hdr)
	}
	file := filepath.Join(t.TempDir(), "daily.png")
	code, out, stderr = runCLI("report", "--db", db, "--png", file)
	if code != 0 || !strings.Contains(out, "wrote "+file) {
		t.Fatalf("--png: exit %d %s %s", code, out, stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	// --png alone is --daily over 30 days: 2 days with traffic (yesterday
	// and today) or 1 right after midnight.
	rows := 2
	if now.Sub(report.DayStart(now.Local())) < time.Hour {
		rows = -1
	}
	if b := img.Bounds(); b.Dx() != report.PNGWidth || (rows > 0 && b.Dy() != report.PNGHeight(rows)) {
		t.Fatalf("PNG %dx%d, want %dx%d", b.Dx(), b.Dy(), report.PNGWidth, report.PNGHeight(rows))
	}
	if code, _, stderr := runCLI("report", "--db", db, "--png", file, "--format", "json"); code != 2 {
		t.Fatalf("--png with --format json: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCLI("report", "--db", db, "--png", "/nonexistent-dir/x.png"); code != 1 || !strings.Contains(stderr, "writable") {
		t.Fatalf("--png unwritable: exit %d %s", code, stderr)
	}
}

func TestGraphEdges(t *testing.T) {
	until := time.Date(2026, 12, 2, 20, 33, 17, 0, time.UTC)
	for _, tc := range []struct {
		window time.Duration
		step   time.Duration
	}{
		{24 * time.Hour, 95 * time.Minute}, // 5-minute grain
		{15 * time.Minute, 57 * time.Second},
		{time.Hour, 4 * time.Minute},
		{2 * time.Minute, 8 * time.Second},
	} {
		edges, step := graphEdges(until.Add(-tc.window), until)
		if step != tc.step || len(edges) != GraphCells+1 || edges[0].After(until.Add(-tc.window)) || edges[GraphCells].Before(until) {
			t.Errorf("%s: step %s (want %s), edges %s .. %s", tc.window, step, tc.step, edges[0], edges[len(edges)-1])
		}
	}
}

// TestReportSummaryOnATerminal: in a real terminal (a tmux pane), a bare
// `bwtracker report` is the summary; piped, it is the table.
func TestReportSummaryOnATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		testenv.Missing(t, "tmux (to run `bwtracker report` on a terminal)", "apt-get install tmux")
	}
	bin := bwtrackerBin(t)
	db := seedViews(t, time.Now())
	sock := fmt.Sprintf("bwt-report-%d", os.Getpid())
	tm := func(args ...string) string {
		out, _ := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		return string(out)
	}
	defer tm("kill-server")
	tm("new-session", "-d", "-s", "r", "-x", "80", "-y", "24", fmt.Sprintf("%s report --db %s; echo EXITED $?; %s report --db %s | cat; sleep 30", bin, db, bin, db))
	var screen string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if screen = tm("capture-pane", "-p", "-t", "r"); strings.Contains(screen, "rows; total") {
			break
		}
	}
	parts := strings.SplitN(screen, "EXITED 0", 2)
	if len(parts) != 2 || !strings.Contains(parts[0], "TODAY") || !strings.Contains(parts[0], "ESTIMATED") ||
		!strings.Contains(parts[1], "last 24 h") || strings.Contains(parts[1], "TODAY") {
		t.Fatalf("terminal: summary, then piped: table; screen:\n%s", screen)
	}
}
