package cli

import (
	"encoding/json"
	"fmt"
	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/testenv"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI serves /api/current and /api/remotes like `bwtracker run` does.
type fakeAPI struct {
	token   string
	hits    atomic.Int64
	remotes atomic.Int64
	// withConns: the snapshot lists connections (a daemon with the live
	// connection view) and /api/status answers.
	withConns bool
}

var fakeStarted = time.Now().Add(-time.Hour).Truncate(time.Minute)

// conns is the "connections" member of a process in /api/current.
func (f *fakeAPI) conns(pid int) string {
	if !f.withConns {
		return ""
	}
	switch pid {
	case 101:
		return `,"connections":[{"remote_ip":"198.18.0.7","remote_port":443,"protocol":"tcp","tx_bytes_per_sec":100,"rx_bytes_per_sec":4000,"tx_bytes":1000,"rx_bytes":400000}]`
	case 202:
		return `,"connections":[{"remote_ip":"198.18.0.8","remote_name":"mirror.example.org","remote_port":873,"protocol":"tcp","tx_bytes_per_sec":9000,"rx_bytes_per_sec":1000,"tx_bytes":9000000,"rx_bytes":999},` +
			`{"remote_ip":"2001:db8::2","remote_port":0,"protocol":"udp","tx_bytes_per_sec":0,"rx_bytes_per_sec":0,"tx_bytes":1,"rx_bytes":1}]`
	}
	return ""
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"missing or wrong token"}`)
		return
	}
	switch r.URL.Path {
	case "/api/current":
		n := f.hits.Add(1)
		fmt.Fprintf(w, `{"time":"2026-03-02T10:00:00Z","interval_ms":1000,"tx_bytes_per_sec":%d,"rx_bytes_per_sec":5000,"tx_bytes":1,"rx_bytes":2,"process_count":3,
"processes":[
 {"pid":101,"start_ns":11,"comm":"curl","exe":"/usr/bin/curl","uid":0,"cgroup_id":5,"tx_bytes_per_sec":100,"rx_bytes_per_sec":4000,"tx_bytes":1000,"rx_bytes":400000,"remotes":1,"last_seen":"2026-03-02T10:00:00Z"%s},
 {"pid":202,"start_ns":22,"comm":"rsync","exe":"/usr/bin/rsync","uid":1000,"cgroup_id":6,"tx_bytes_per_sec":%d,"rx_bytes_per_sec":1000,"tx_bytes":9000000,"rx_bytes":1000,"remotes":2,"last_seen":"2026-03-02T10:00:00Z"%s},
 {"pid":303,"start_ns":33,"comm":"sshd","exe":"/usr/sbin/sshd","uid":0,"cgroup_id":7,"tx_bytes_per_sec":0,"rx_bytes_per_sec":0,"tx_bytes":5,"rx_bytes":6,"remotes":1,"last_seen":"2026-03-02T09:59:00Z"}
]}`, 9000+n, f.conns(101), 9000+n, f.conns(202))
	case "/api/status":
		if !f.withConns {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"not found"}`)
			return
		}
		fmt.Fprintf(w, `{"version":"test","started":%q}`, fakeStarted.Format(time.RFC3339))
	case "/api/remotes":
		f.remotes.Add(1)
		switch r.URL.Query().Get("pid") {
		case "101":
			fmt.Fprint(w, `{"remotes":[{"remote_ip":"198.18.0.7","protocol":"tcp","tx_bytes":1000,"rx_bytes":400000}]}`)
		case "202":
			fmt.Fprint(w, `{"remotes":[{"remote_ip":"198.18.0.8","protocol":"tcp","tx_bytes":9000000,"rx_bytes":1000},{"remote_ip":"2001:db8::2","protocol":"udp","tx_bytes":1,"rx_bytes":1}]}`)
		default:
			fmt.Fprint(w, `{"remotes":[]}`)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"not found"}`)
	}
}

func TestTopOnceJSON(t *testing.T) {
	api := &fakeAPI{token: "s3cret"}
	srv := httptest.NewServer(api)
	defer srv.Close()
	code, out, stderr := runCLI("top", "--once", "--format", "json", "--url", srv.URL, "--token", "s3cret", "--sort", "rx")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var snap struct {
		Time      time.Time                `json:"time"`
		Processes []map[string]interface{} `json:"processes"`
	}
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(snap.Processes) != 3 || snap.Processes[0]["comm"] != "curl" || snap.Processes[0]["rx_bytes_per_sec"].(float64) != 4000 {
		t.Fatalf("sorted by rx: %s", out)
	}
	for _, k := range []string{"pid", "start_ns", "comm", "exe", "uid", "tx_bytes_per_sec", "rx_bytes_per_sec", "tx_bytes", "rx_bytes", "remotes"} {
		if _, ok := snap.Processes[0][k]; !ok {
			t.Errorf("snapshot lacks %q: %v", k, snap.Processes[0])
		}
	}
	code, out, _ = runCLI("top", "--once", "--format", "json", "--url", srv.URL, "--token", "s3cret", "--sort", "tx")
	if code != 0 || !strings.Contains(out, `"comm": "rsync"`) || strings.Index(out, "rsync") > strings.Index(out, "curl") {
		t.Fatalf("sorted by tx: %s", out)
	}
	// sshd has had no traffic for a minute: hidden by default (--idle 5s),
	// shown with --idle 0.
	code, out, _ = runCLI("top", "--once", "--url", srv.URL, "--token", "s3cret")
	if code != 0 || !strings.Contains(out, "RECEIVING") || !strings.Contains(out, "TOTAL") || !strings.Contains(out, "2 processes") ||
		strings.Contains(out, "sshd") || !strings.Contains(out, "1 idle processes hidden") {
		t.Fatalf("table: %d %s", code, out)
	}
	code, out, _ = runCLI("top", "--once", "--idle", "0", "--url", srv.URL, "--token", "s3cret")
	if code != 0 || !strings.Contains(out, "3 processes") || !strings.Contains(out, "sshd") {
		t.Fatalf("table --idle 0: %d %s", code, out)
	}
	if code, _, _ := runCLI("top", "--once", "--idle", "-1s", "--url", srv.URL); code != 2 {
		t.Fatalf("--idle -1s: exit %d, want 2", code)
	}

	// Wrong token: says what to do.
	code, _, stderr = runCLI("top", "--once", "--url", srv.URL)
	if code != 1 || !strings.Contains(stderr, "--token") {
		t.Fatalf("no token: exit %d, %q", code, stderr)
	}

	// One token variable for every command; the old name still works, with
	// a deprecation line.
	t.Setenv("BWTRACKER_TOKEN", "s3cret")
	if code, _, stderr = runCLI("top", "--once", "--url", srv.URL); code != 0 || strings.Contains(stderr, "deprecated") {
		t.Fatalf("BWTRACKER_TOKEN: exit %d, %q", code, stderr)
	}
	t.Setenv("BWTRACKER_TOKEN", "")
	os.Unsetenv("BWTRACKER_TOKEN") // t.Setenv restores it
	t.Setenv("BWTRACKER_AUTH_TOKEN", "s3cret")
	if code, _, stderr = runCLI("top", "--once", "--url", srv.URL); code != 0 || !strings.Contains(stderr, "BWTRACKER_AUTH_TOKEN is deprecated: set BWTRACKER_TOKEN") {
		t.Fatalf("BWTRACKER_AUTH_TOKEN: exit %d, %q", code, stderr)
	}
}

func TestTopNoDaemonSaysHowToStartOne(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, args := range [][]string{{"top", "--once", "--url", "http://" + addr}, {"top", "--url", "http://" + addr}} {
		code, _, stderr := runCLI(args...)
		if code != 1 || !strings.Contains(stderr, "sudo bwtracker run") {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	for _, args := range [][]string{{"top", "--url", "ftp://x"}, {"top", "--sort", "pid"}, {"top", "--interval", "1ms"}, {"top", "--once", "--format", "xml"}} {
		if code, _, stderr := runCLI(args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, stderr)
		}
	}
}

// bwtrackerBin returns the binary under test: $BWTRACKER_BIN, or one built
// into a temp dir.
func bwtrackerBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("BWTRACKER_BIN"); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "internal", "bpf", "bwtracker.bpf.o")); err != nil {
		testenv.Missing(t, "internal/bpf/bwtracker.bpf.o", "run `make` first (or set BWTRACKER_BIN)")
	}
	bin := filepath.Join(t.TempDir(), "bwtracker")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/bwtracker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_LDFLAGS=-l:libbpf.a -l:libelf.a -l:libz.a")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestTopInTmux drives the real binary in a tmux pane: rows appear, keys
// re-sort, the selected process's remotes show, q quits.
func TestTopInTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		testenv.Missing(t, "tmux (to drive `bwtracker top` interactively)", "apt-get install tmux")
	}
	bin := bwtrackerBin(t)
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	sock := fmt.Sprintf("bwt-test-%d", os.Getpid())
	tm := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		return string(out), err
	}
	defer tm("kill-server")
	cmdline := fmt.Sprintf("TERM=xterm-256color %s top --by process --no-resolve --idle 0 --interval 200ms --url %s; echo EXITED $?; sleep 30", bin, srv.URL)
	if out, err := tm("new-session", "-d", "-s", "top", "-x", "150", "-y", "40", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	capture := func() string {
		out, _ := tm("capture-pane", "-p", "-t", "top")
		return out
	}
	waitFor := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := capture()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; screen:\n%s", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	rowOf := func(screen, comm string) int {
		for i, l := range strings.Split(screen, "\n") {
			if strings.Contains(l, " "+comm+" ") {
				return i
			}
		}
		return -1
	}
	screen := waitFor("process rows", func(s string) bool {
		return rowOf(s, "curl") > 0 && rowOf(s, "rsync") > 0 && rowOf(s, "sshd") > 0
	})
	if !strings.Contains(screen, "sort: total") {
		t.Fatalf("header:\n%s", screen)
	}
	// Sort by received: curl (4000/s) above rsync.
	tm("send-keys", "-t", "top", "r")
	waitFor("rx order", func(s string) bool {
		return strings.Contains(s, "sort: rx") && rowOf(s, "curl") < rowOf(s, "rsync")
	})
	// Sort by sent: rsync first and selected, its remotes listed.
	tm("send-keys", "-t", "top", "t")
	waitFor("tx order and rsync's remotes", func(s string) bool {
		return strings.Contains(s, "sort: tx") && rowOf(s, "rsync") < rowOf(s, "curl") && strings.Contains(s, "198.18.0.8") && strings.Contains(s, "2001:db8::2")
	})
	// Move the selection down to curl: its remote shows.
	tm("send-keys", "-t", "top", "Down")
	waitFor("curl's remote", func(s string) bool { return strings.Contains(s, "198.18.0.7") })
	// It keeps refreshing (every 200ms here).
	before := api.hits.Load()
	waitFor("refreshes", func(string) bool { return api.hits.Load() >= before+3 })
	tm("send-keys", "-t", "top", "q")
	screen = waitFor("exit", func(s string) bool { return strings.Contains(s, "EXITED") })
	if !strings.Contains(screen, "EXITED 0") {
		t.Fatalf("top did not exit 0 on q:\n%s", screen)
	}
}

func TestTopMarksProcessesWithFiringAlerts(t *testing.T) {
	p := liveProc{PID: 7, Comm: "rsync", Exe: "/usr/bin/rsync", Service: "backup.service"}
	firing := []alerts.Alert{
		{Rule: "big", Labels: map[string]string{"app": "rsync"}},
		{Rule: "quota", Labels: map[string]string{"service": "backup.service"}},
		{Rule: "other", Labels: map[string]string{"app": "curl"}},
		{Rule: "new", Labels: map[string]string{"app": "rsync", "exe": "/tmp/rsync"}},
		{Rule: "nolabels", Labels: map[string]string{"user": "root"}},
	}
	got := alertRules(p, firing)
	if strings.Join(got, ",") != "big,quota" {
		t.Fatalf("got %v", got)
	}
}

// tmuxTop runs the real binary's `top` against api in a detached tmux pane
// of w x h cells.
type tmuxTop struct {
	t    *testing.T
	tmux string
	sock string
}

func startTmuxTop(t *testing.T, srvURL string, w, h int) *tmuxTop {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		testenv.Missing(t, "tmux (to drive `bwtracker top` interactively)", "apt-get install tmux")
	}
	bin := bwtrackerBin(t)
	tt := &tmuxTop{t: t, tmux: tmux, sock: fmt.Sprintf("bwt-test-%d-%s", os.Getpid(), t.Name())}
	t.Cleanup(func() { tt.cmd("kill-server") })
	cmdline := fmt.Sprintf("TERM=xterm-256color %s top --by process --no-resolve --idle 0 --interval 200ms --url %s; echo EXITED $?; sleep 30", bin, srvURL)
	if out, err := tt.cmd("new-session", "-d", "-s", "top", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h), cmdline); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	return tt
}

func (tt *tmuxTop) cmd(args ...string) (string, error) {
	out, err := exec.Command(tt.tmux, append([]string{"-L", tt.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	return string(out), err
}

func (tt *tmuxTop) keys(k ...string) { tt.cmd(append([]string{"send-keys", "-t", "top"}, k...)...) }

func (tt *tmuxTop) screen() string {
	out, _ := tt.cmd("capture-pane", "-p", "-t", "top")
	return out
}

// waitFor polls the pane until ok (10 s at most: a deadline for a hang,
// not a timing assertion).
func (tt *tmuxTop) waitFor(what string, ok func(string) bool) string {
	tt.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := tt.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tt.t.Fatalf("waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lineWith(screen, s string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestTopKeysInTmux: the header (total rates, totals since the daemon
// started, how many rows), the USER column, the connection view with
// remote names and ports, and each key: ? help, p pause, u units, g group.
func TestTopKeysInTmux(t *testing.T) {
	api := &fakeAPI{withConns: true}
	srv := httptest.NewServer(api)
	defer srv.Close()
	tt := startTmuxTop(t, srv.URL, 130, 40)
	s := tt.waitFor("rows and header", func(s string) bool {
		return strings.Contains(s, " rsync ") && strings.Contains(s, "since daemon start "+fakeStarted.Format("15:04"))
	})
	for _, want := range []string{"3 processes", "sending", "receiving", "USER", "SENDING", "RECEIVING", "sent 1 B, received 2 B"} {
		if !strings.Contains(s, want) {
			t.Errorf("screen lacks %q:\n%s", want, s)
		}
	}
	// Column order: SENDING before RECEIVING, SENT before RECEIVED.
	hdr := lineWith(s, "SENDING")
	if !(strings.Index(hdr, "SENDING") < strings.Index(hdr, "RECEIVING") && strings.Index(hdr, "SENT") < strings.Index(hdr, "RECEIVED")) {
		t.Errorf("column order: %q", hdr)
	}
	if !strings.Contains(lineWith(s, " curl "), "root") {
		t.Errorf("USER of curl (uid 0): %q", lineWith(s, " curl "))
	}
	// The first row (rsync, busiest) is selected: its connections, with
	// the name it resolved, the port, and "*" for many ports.
	tt.waitFor("rsync's connections", func(s string) bool {
		l := lineWith(s, "mirror.example.org")
		return strings.Contains(l, "873") && strings.Contains(l, "tcp") && strings.Contains(l, "8.8 KiB/s") &&
			strings.Contains(lineWith(s, "2001:db8::2"), "*")
	})
	tt.keys("Down")
	tt.waitFor("curl's connection", func(s string) bool { return strings.Contains(lineWith(s, "198.18.0.7"), "443") })

	// ? shows the help over the view; any key closes it.
	tt.keys("?")
	tt.waitFor("help", func(s string) bool { return strings.Contains(s, "this help (any key closes it)") })
	tt.keys("x")
	tt.waitFor("help closed", func(s string) bool { return !strings.Contains(s, "this help") && strings.Contains(s, " rsync ") })

	// u: bits.
	tt.keys("u")
	tt.waitFor("bits", func(s string) bool { return strings.Contains(lineWith(s, " curl "), "32 kbit/s") })
	tt.keys("u")
	tt.waitFor("bytes", func(s string) bool { return strings.Contains(lineWith(s, " curl "), "3.9 KiB/s") })

	// g: one row per app, with the number of processes.
	tt.keys("g")
	s = tt.waitFor("grouped", func(s string) bool {
		return strings.Contains(s, "PROCS") && strings.Contains(s, "3 apps of 3 processes")
	})
	if !strings.Contains(s, " APP ") {
		t.Errorf("grouped header:\n%s", s)
	}
	tt.keys("g")
	tt.waitFor("ungrouped", func(s string) bool { return strings.Contains(s, "3 processes") && strings.Contains(s, "PID  USER") })

	// p: paused, no more fetches; p again resumes.
	tt.keys("p")
	tt.waitFor("paused", func(s string) bool { return strings.Contains(s, "PAUSED") })
	time.Sleep(300 * time.Millisecond) // a fetch in flight lands
	before := api.hits.Load()
	time.Sleep(time.Second) // five intervals
	if got := api.hits.Load(); got != before {
		t.Errorf("paused but fetched %d more snapshots", got-before)
	}
	tt.keys("p")
	tt.waitFor("resumed", func(s string) bool { return !strings.Contains(s, "PAUSED") && api.hits.Load() >= before+2 })
	tt.keys("q")
	if s := tt.waitFor("exit", func(s string) bool { return strings.Contains(s, "EXITED") }); !strings.Contains(s, "EXITED 0") {
		t.Fatalf("top did not exit 0 on q:\n%s", s)
	}
}
