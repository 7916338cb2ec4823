package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/store"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(append([]string{"bwtracker"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	db := filepath.Join(t.TempDir(), "x.db")
	cases := [][]string{
		{"report", "--db", db, "--by", "colour"},
		{"report", "--db", db, "--format", "xml"},
		{"report", "--db", db, "--since", "yesteryear"},
		{"report", "--db", db, "--since", "1h", "--until", "2h"},
		{"report", "--db", db, "--top", "-3"},
		{"report", "--db", db, "--no-such-flag"},
		{"report", "stray-arg"},
		{"run", "--interval", "1ms"},
		{"run", "--hook", "kprobe"},
		{"run", "--listen", "0.0.0.0:8080"},
		{"run", "--otlp-header", "a=b"},
		{"run", "--otlp-endpoint", "collector:4318"},
		{"run", "--otlp-endpoint", "http://c:4318", "--otlp-protocol", "http/json"},
		{"run", "--otlp-endpoint", "http://c:4318", "--otlp-header", "novalue"},
		{"run", "--otlp-endpoint", "http://c:4318", "--otlp-interval", "1ms"},
		{"run", "--otlp-endpoint", "http://c:4318", "--otlp-temporality", "sometimes"},
		{"run", "--otlp-endpoint", "http://c:4318", "--otlp-ca-file", "/nonexistent/ca.pem"},
		{"run", "--otlp-endpoint", "http://c:4318", "--otlp-client-cert", "/x.pem"},
	}
	for _, args := range cases {
		code, _, stderr := runCLI(args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
		if stderr == "" || strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
			t.Errorf("%v: stderr %q", args, stderr)
		}
	}
}

func TestReportMissingDBSaysWhatToDo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "missing.db")
	code, _, stderr := runCLI("report", "--db", db)
	if code != 1 || !strings.Contains(stderr, db) || !strings.Contains(stderr, "bwtracker run") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestReportReadsStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(t.Context(), time.Now().Add(-time.Minute), []store.Sample{
		{ProcessKey: store.ProcessKey{PID: 9, StartNS: 1, Comm: "wget"}, Exe: "/usr/bin/wget", RemoteIP: "::1", Protocol: "tcp", TxBytes: 11, RxBytes: 22},
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI("report", "--db", db, "--format", "json", "--by", "process,remote")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `"pid": 9`
	if !strings.Contains(out, want) || !strings.Contains(out, `"remote_ip": "::1"`) || !strings.Contains(out, `"rx_bytes": 22`) {
		t.Fatalf("output:\n%s", out)
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, cmd := range []string{"run", "report", "check"} {
		code, out, _ := runCLI(cmd, "--help")
		if code != 0 || !strings.Contains(out, "Examples") && !strings.Contains(out, "Example") {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, out)
		}
	}
	code, out, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(out, "bwtracker ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestRunWithoutPrivileges(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root")
	}
	code, _, stderr := runCLI("run", "--db", filepath.Join(t.TempDir(), "x.db"), "--no-web")
	if code != 1 || !strings.Contains(stderr, "sudo") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestHelpAndDebugEverywhere: `bwtracker help`, `--debug` after any command
// name, an unknown subcommand pointing at its parent's help, and help texts
// without garbled placeholders.
func TestHelpAndDebugEverywhere(t *testing.T) {
	code, out, stderr := runCLI("help")
	if code != 0 || !strings.Contains(out, "COMMANDS") {
		t.Errorf("help: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCLI("help", "report")
	if code != 0 || !strings.Contains(out, "--since") {
		t.Errorf("help report: exit %d\n%s%s", code, out, stderr)
	}
	db := filepath.Join(t.TempDir(), "missing.db")
	for _, args := range [][]string{{"report", "--debug", "--db", db}, {"db", "stats", "--debug", "--db", db}, {"--debug", "report", "--db", db}} {
		code, _, stderr := runCLI(args...)
		if code != 1 || strings.Contains(stderr, "flag provided but not defined") {
			t.Errorf("%v: exit %d, stderr %q (want the missing-DB error, not a flag error)", args, code, stderr)
		}
	}
	for _, cmd := range []string{"run", "report", "top", "check", "db"} {
		_, out, _ := runCLI(cmd, "--help")
		if !strings.Contains(out, "--debug") {
			t.Errorf("%s --help does not list --debug", cmd)
		}
		if strings.Contains(out, "--db-stats bwtracker") {
			t.Errorf("%s --help has a garbled placeholder:\n%s", cmd, out)
		}
	}

	exit := cli.OsExiter
	defer func() { cli.OsExiter = exit }()
	var got int
	cli.OsExiter = func(c int) { got = c }
	_, _, stderr = runCLI("db", "foo")
	if got != 2 || !strings.Contains(stderr, "bwtracker db --help") {
		t.Errorf("db foo: exit %d, stderr %q", got, stderr)
	}
}

// TestReportTopFooterIsWholeWindow: with --top the footer states the whole
// window's totals and how many rows were left out, not the shown rows' sum.
func TestReportTopFooterIsWholeWindow(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var samples []store.Sample
	for i, b := range []uint64{1000, 2000, 4000} {
		samples = append(samples, store.Sample{ProcessKey: store.ProcessKey{PID: uint32(10 + i), StartNS: 1, Comm: "p"}, RemoteIP: "::1", Protocol: "tcp", TxBytes: b, RxBytes: 1})
	}
	err = s.Write(t.Context(), time.Now().Add(-time.Minute), samples)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI("report", "--db", db, "--top", "1", "--no-resolve", "--by", "process")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// 7000 B sent in all (6.8 KiB), 3 received; only the 4000 B row shown.
	if !strings.Contains(out, "1 of 3 rows shown") || !strings.Contains(out, "2 more") || !strings.Contains(out, "sent 6.8 KiB, received 3 B") {
		t.Fatalf("footer does not state the whole window:\n%s", out)
	}
	code, out, _ = runCLI("report", "--db", db, "--top", "1", "--format", "json", "--by", "process")
	if code != 0 || strings.Count(out, `"pid"`) != 1 || !strings.Contains(out, `"tx_bytes": 4000`) {
		t.Fatalf("json --top 1:\n%s", out)
	}
}

// TestReportTableDefaults: a table states its window and shows 20 rows
// unless --top is given, saying how many more there are; JSON gives all.
func TestReportTableDefaults(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var samples []store.Sample
	for i := 0; i < 25; i++ {
		samples = append(samples, store.Sample{ProcessKey: store.ProcessKey{PID: uint32(100 + i), StartNS: 1, Comm: "p"}, RemoteIP: "::1", Protocol: "udp", TxBytes: uint64(1000 + i)})
	}
	err = s.Write(t.Context(), time.Now().Add(-time.Minute), samples)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI("report", "--db", db, "--no-resolve", "--by", "process")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(first, "last 24 h: ") || !strings.Contains(first, " – ") {
		t.Errorf("first line does not state the window: %q", first)
	}
	if !strings.Contains(out, "20 of 25 rows shown") || !strings.Contains(out, "5 more: use --top 0 for all") {
		t.Errorf("default table:\n%s", out)
	}
	code, out, _ = runCLI("report", "--db", db, "--format", "json", "--by", "process")
	if code != 0 || strings.Count(out, `"pid"`) != 25 {
		t.Errorf("json gives every row: exit %d, %d rows", code, strings.Count(out, `"pid"`))
	}
	code, out, _ = runCLI("report", "--db", db, "--no-resolve", "--since", "2h", "--until", "1h")
	if code != 0 || !strings.HasPrefix(out, "window: ") {
		t.Errorf("explicit window: %d %q", code, out)
	}
}
