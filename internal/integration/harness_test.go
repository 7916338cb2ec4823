// Package integration runs the real bwtracker binary (real BPF programs,
// real SQLite file) against traffic its own child processes generate, and
// asserts exact byte counts read back through `bwtracker report --format
// json`. Needs root; skips loudly otherwise.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"github.com/bwtracker/bwtracker/internal/testenv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("BWT_CHILD"); mode != "" {
		childMain(mode, os.Args[1:])
	}
	os.Exit(m.Run())
}

// binary finds the bwtracker binary under test.
func bwtrackerBin(t testing.TB) string {
	t.Helper()
	testenv.NeedRoot(t, "integration tests load BPF programs")
	if b := os.Getenv("BWTRACKER_BIN"); b != "" {
		return b
	}
	b, _ := filepath.Abs("../../bwtracker")
	if _, err := os.Stat(b); err != nil {
		testenv.Missing(t, "the bwtracker binary", "run `make` first or set BWTRACKER_BIN")
	}
	return b
}

// expectedComm is the kernel's name for our re-executed children.
func expectedComm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

type daemon struct {
	t      testing.TB
	bin    string
	db     string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

type lockedBuf struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// startDaemon runs `bwtracker run` on a fresh database and waits until it
// tracks.
func startDaemon(t testing.TB, interval string, extra ...string) *daemon {
	t.Helper()
	return startDaemonOn(t, filepath.Join(t.TempDir(), "bw.db"), interval, extra...)
}

// startDaemonOn is startDaemon on a given database (a restart test passes
// the previous daemon's).
func startDaemonOn(t testing.TB, db, interval string, extra ...string) *daemon {
	t.Helper()
	bin := bwtrackerBin(t)
	d := &daemon{t: t, bin: bin, db: db, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	args := append([]string{"run", "--db", d.db, "--interval", interval}, extra...)
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stderr = lockedBuf{d.mu, d.stderr}
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.log(), "msg=tracking") {
			t.Cleanup(func() {
				if d.cmd.ProcessState == nil {
					d.cmd.Process.Kill()
					d.cmd.Wait()
				}
			})
			return d
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
	t.Fatalf("daemon did not start:\n%s", d.log())
	return nil
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// stop sends SIGTERM and requires exit status 0.
func (d *daemon) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Fatalf("daemon exit: %v\n%s", err, d.log())
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		d.t.Fatalf("daemon did not stop after SIGTERM\n%s", d.log())
	}
}

type row struct {
	PID      uint32 `json:"pid"`
	Comm     string `json:"comm"`
	Exe      string `json:"exe"`
	RemoteIP string `json:"remote_ip"`
	Protocol string `json:"protocol"`
	TX       uint64 `json:"tx_bytes"`
	RX       uint64 `json:"rx_bytes"`
}

// reportJSON runs `bwtracker report --format json --by by` on the daemon's
// DB and decodes its output into out.
func (d *daemon) reportJSON(out any, by string, extra ...string) {
	d.t.Helper()
	args := append([]string{"report", "--db", d.db, "--since", "1h", "--by", by, "--format", "json"}, extra...)
	b, err := exec.Command(d.bin, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		d.t.Fatalf("report --by %s: %v\n%s", by, err, stderr)
	}
	if err := json.Unmarshal(b, out); err != nil {
		d.t.Fatalf("report output is not JSON: %v\n%s", err, b)
	}
}

// report returns the rows of `report --by by`.
func (d *daemon) report(by string, extra ...string) []row {
	d.t.Helper()
	var rows []row
	d.reportJSON(&rows, by, extra...)
	return rows
}

// reportRaw is report with rows as generic maps (for any --by fields).
func (d *daemon) reportRaw(by string, extra ...string) []map[string]any {
	d.t.Helper()
	var rows []map[string]any
	d.reportJSON(&rows, by, extra...)
	return rows
}

// forPID keeps the rows of one process.
func forPID(rows []row, pid int) []row {
	var out []row
	for _, r := range rows {
		if int(r.PID) == pid {
			out = append(out, r)
		}
	}
	return out
}

func sum(rows []row) (tx, rx uint64) {
	for _, r := range rows {
		tx += r.TX
		rx += r.RX
	}
	return
}

// child is a running traffic generator.
type child struct {
	t     testing.TB
	cmd   *exec.Cmd
	lines chan string
	res   result
	ready string
}

func startChild(t testing.TB, mode string, args ...string) *child {
	t.Helper()
	return startChildCmd(t, childCmd(os.Args[0], mode, args...))
}

// childCmd runs bin (this test binary, or a copy under another name) as
// the child `mode`.
func childCmd(bin, mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BWT_CHILD="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// startChildCmd starts cmd and reads its stdout lines.
func startChildCmd(t testing.TB, cmd *exec.Cmd) *child {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// waitReady returns what the child printed after READY (a port).
func (c *child) waitReady() string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok || !strings.HasPrefix(l, "READY ") {
			c.t.Fatalf("child %v: expected READY, got %q", c.cmd.Args, l)
		}
		c.ready = strings.TrimPrefix(l, "READY ")
		return c.ready
	case <-time.After(10 * time.Second):
		c.t.Fatalf("child %v not ready", c.cmd.Args)
	}
	return ""
}

// wait waits for the child's RESULT and exit.
func (c *child) wait() result {
	c.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				if err := c.cmd.Wait(); err != nil {
					c.t.Fatalf("child %v: %v", c.cmd.Args, err)
				}
				return c.res
			}
			if s, ok := strings.CutPrefix(l, "RESULT "); ok {
				if err := json.Unmarshal([]byte(s), &c.res); err != nil {
					c.t.Fatal(err)
				}
			}
		case <-timeout:
			c.cmd.Process.Kill()
			c.t.Fatalf("child %v timed out", c.cmd.Args)
		}
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func mustEqual(t testing.TB, what string, got, want uint64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d bytes, want exactly %d", what, got, want)
	}
}

func dump(rows []row) string {
	b, _ := json.MarshalIndent(rows, "", " ")
	return string(b)
}
