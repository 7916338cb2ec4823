package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{"report", "--db", db, "--since", "yesterday"},
		{"report", "--db", db, "--since", "1h", "--until", "2h"},
		{"report", "--db", db, "--top", "-3"},
		{"report", "--db", db, "--no-such-flag"},
		{"report", "stray-arg"},
		{"run", "--interval", "1ms"},
		{"run", "--hook", "kprobe"},
		{"run", "--listen", "0.0.0.0:8080"},
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
