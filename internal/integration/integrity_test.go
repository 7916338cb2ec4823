package integration

// The database and the daemon under faults: one writer per database,
// readers that never unlink the writer's WAL, kill -9 at random moments,
// a full disk.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	"golang.org/x/sys/unix"
)

func init() {
	benchModes["udp-repeat"] = func(args []string) (result, error) { return udpRepeat(atoi(args[0]), atoi(args[1])) }
}

// udpRepeat sends 64 bytes to n distinct loopback addresses every 100 ms
// for ms milliseconds (one database row per address and interval).
func udpRepeat(n, ms int) (result, error) {
	var r result
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return r, err
	}
	msg := make([]byte, 64)
	fmt.Println("READY spray")
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for time.Now().Before(end) {
		for i := 0; i < n; i++ {
			a := netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
			if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet4{Port: 9, Addr: a.As4()}); err == nil {
				r.TX += 64
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, nil
}

// txOf sums the tx bytes of the given pids in `report --by process`.
func txOf(d *daemon, pids map[int]bool) uint64 {
	var n uint64
	for _, r := range d.report("process", "--since", "24h") {
		if pids[int(r.PID)] {
			n += r.TX
		}
	}
	return n
}

// tcpTransfer sends n bytes from a new client child to a new server child
// and returns the client's pid.
func tcpTransfer(t *testing.T, n int) int {
	t.Helper()
	srv := startChild(t, "tcp-server", "127.0.0.1:0", "0")
	port := srv.waitReady()
	cli := startChild(t, "tcp-client", "127.0.0.1:"+port, strconv.Itoa(n))
	cr := cli.wait()
	srv.wait()
	mustEqual(t, "client's own tx", cr.TX, uint64(n))
	return cli.pid()
}

// waitTx polls report until the pids' tx reaches want.
func waitTx(t *testing.T, d *daemon, pids map[int]bool, want uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := txOf(d, pids)
		if got == want {
			return
		}
		if got > want {
			t.Fatalf("report shows %d bytes, more than the %d sent", got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("report shows %d bytes, want %d\n%s", got, want, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deletedFDs(pid int) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if strings.HasSuffix(l, "(deleted)") {
			out = append(out, l)
		}
	}
	return out
}

func integrityCheck(t *testing.T, db string) {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+db+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res string
	if err := c.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
}

// Two daemons on one database: the second is refused at once, naming the
// file and the pid; bytes are counted once (this used to report 20000000
// for a process that sent 10000000).
func TestSecondDaemonRefusedBytesOnce(t *testing.T) {
	d := startDaemon(t, "200ms", "--listen", "127.0.0.1:19210")
	start := time.Now()
	out, err := exec.Command(d.bin, "run", "--db", d.db, "--no-web").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("second run took %v to refuse", took)
	}
	msg := string(out)
	if !strings.Contains(msg, d.db) || !strings.Contains(msg, strconv.Itoa(d.cmd.Process.Pid)) || !strings.Contains(msg, "another --db") {
		t.Fatalf("refusal must name the file, the holder's pid and what to do:\n%s", msg)
	}
	if strings.Contains(msg, "goroutine") {
		t.Fatalf("stack trace:\n%s", msg)
	}
	pid := tcpTransfer(t, 10_000_000)
	d.stop()
	mustEqual(t, "tx of a 10,000,000-byte sender", txOf(d, map[int]bool{pid: true}), 10_000_000)
}

// With a daemon (web on) writing, `db vacuum`, a second `run`, `report`,
// `db stats` and `check` must leave its WAL and SHM alone; new traffic
// reaches `report`, and survives a kill -9.
func TestReadersAndRefusedWritersKeepTheWAL(t *testing.T) {
	d := startDaemon(t, "200ms", "--listen", "127.0.0.1:19211")
	pid := d.cmd.Process.Pid
	out, err := exec.Command(d.bin, "db", "vacuum", "--db", d.db).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), strconv.Itoa(pid)) || !strings.Contains(string(out), "stop that daemon first") {
		t.Fatalf("vacuum beside a daemon: %v\n%s", err, out)
	}
	exec.Command(d.bin, "run", "--db", d.db, "--no-web").Run()
	for _, args := range [][]string{
		{"report", "--db", d.db, "--since", "1h"},
		{"db", "stats", "--db", d.db},
		{"check", "--db", d.db, "--url", "http://127.0.0.1:19211"},
	} {
		if out, err := exec.Command(d.bin, args...).CombinedOutput(); err != nil && args[0] != "check" {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	// The API's read-only handle inside the daemon: query it too.
	for _, u := range []string{"/api/summary", "/api/history", "/api/status"} {
		if r, err := http.Get("http://127.0.0.1:19211" + u); err == nil {
			r.Body.Close()
		}
	}
	if del := deletedFDs(pid); len(del) > 0 {
		t.Fatalf("daemon holds unlinked files: %v", del)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(d.db + sfx); err != nil {
			t.Fatalf("%s gone: %v", sfx, err)
		}
	}
	cp := tcpTransfer(t, 1_234_567)
	waitTx(t, d, map[int]bool{cp: true}, 1_234_567)
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d2 := startDaemonOn(t, d.db, "200ms", "--no-web")
	mustEqual(t, "tx after kill -9 and restart", txOf(d2, map[int]bool{cp: true}), 1_234_567)
	d2.stop()
}

// killCycles is 20 in `make test`; `make soak` sets BWT_KILL_CYCLES=100.
func killCycles() int {
	if n, err := strconv.Atoi(os.Getenv("BWT_KILL_CYCLES")); err == nil && n > 0 {
		return n
	}
	return 20
}

// kill -9 at random moments: each restart continues the same file,
// integrity_check is ok, nothing is counted twice (total <= generated) and
// everything seen in `report` before the kill (so flushed) is still there.
// At most the last interval is lost per kill.
func TestKill9Cycles(t *testing.T) {
	const interval = 100 * time.Millisecond
	db := filepath.Join(t.TempDir(), "bw.db")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	pids := map[int]bool{}
	var generated, confirmed, prevLost, maxLoss, tail uint64
	var losses []uint64
	cycles := killCycles()
	for i := 0; i <= cycles; i++ {
		d := startDaemonOn(t, db, interval.String(), "--no-web")
		integrityCheck(t, db)
		got := txOf(d, pids)
		if got > generated {
			t.Fatalf("cycle %d: %d bytes in the database, only %d generated: counted twice", i, got, generated)
		}
		if got < confirmed {
			t.Fatalf("cycle %d: %d bytes in the database, but %d were flushed before the kill", i, got, confirmed)
		}
		if i > 0 {
			loss := generated - got - prevLost
			if loss > tail {
				t.Fatalf("cycle %d: lost %d bytes, more than the %d sent after the last confirmed flush", i, loss, tail)
			}
			losses = append(losses, loss)
			maxLoss = max(maxLoss, loss)
			prevLost = generated - got
		}
		if i == cycles {
			d.stop()
			break
		}
		// A: sent and seen in report (so flushed).
		a := 10_000 + rng.Intn(1_000_000)
		pids[tcpTransfer(t, a)] = true
		generated += uint64(a)
		waitTx(t, d, pids, generated-prevLost)
		confirmed = generated - prevLost
		// B: sent, then the daemon is killed 0..3 intervals later: during
		// a drain, a write, or idle.
		b := 10_000 + rng.Intn(1_000_000)
		pids[tcpTransfer(t, b)] = true
		generated += uint64(b)
		tail = uint64(b)
		time.Sleep(time.Duration(rng.Int63n(int64(3 * interval))))
		d.cmd.Process.Kill()
		d.cmd.Wait()
	}
	t.Logf("%d kill -9 cycles: generated %d bytes, stored %d, lost %d; loss per kill: max %d bytes, all %v",
		cycles, generated, generated-prevLost, prevLost, maxLoss, losses)
	fmt.Printf("SOAK kill9 cycles=%d generated=%d lost=%d max_loss_per_kill=%d losses=%v\n", cycles, generated, prevLost, maxLoss, losses)
}

// apiStatus fetches /api/status.
func apiStatus(t *testing.T, base string) map[string]any {
	t.Helper()
	r, err := http.Get(base + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var m map[string]any
	json.NewDecoder(r.Body).Decode(&m)
	return m
}

func dbState(t *testing.T, base string) map[string]any {
	m, _ := apiStatus(t, base)["db"].(map[string]any)
	return m
}

// fill writes a file until the file system is full.
func fill(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space") {
				t.Fatal(err)
			}
			return
		}
	}
}

// A full disk (a small tmpfs): the daemon keeps running and holds the rows,
// says so once, shows it in /api/status, /metrics and `check`; when space
// returns every held byte is written. Then SIGTERM while full: the daemon
// exits well inside 30 s and says exactly what was lost.
func TestDiskFull(t *testing.T) {
	bwtrackerBin(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o700)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=32m,mode=0700"); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	db := filepath.Join(mnt, "bw.db")
	const base = "http://127.0.0.1:19212"
	d := startDaemonOn(t, db, "200ms", "--listen", "127.0.0.1:19212")
	pre := tcpTransfer(t, 100_000)
	pids := map[int]bool{pre: true}
	waitTx(t, d, pids, 100_000)

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// New distinct remotes every interval: new endpoint and flow rows
	// need new pages, so writes fail.
	spray := startChild(t, "udp-repeat", "3000", "3000")
	spray.waitReady()
	deadline := time.Now().Add(20 * time.Second)
	for dbState(t, base)["state"] != "failing" {
		if time.Now().After(deadline) {
			t.Fatalf("writes never failed on a full disk: %v\n%s", apiStatus(t, base), d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	sr := spray.wait()
	cp := tcpTransfer(t, 2_000_000) // while full
	pids[cp] = true
	time.Sleep(time.Second)
	st := apiStatus(t, base)
	dbs := st["db"].(map[string]any)
	held := uint64(dbs["held_bytes"].(float64))
	if held < 2_000_000 || dbs["error"] == "" {
		t.Fatalf("while full: %v", dbs)
	}
	lastFlush, _ := time.Parse(time.RFC3339Nano, st["last_flush"].(string))
	time.Sleep(500 * time.Millisecond)
	if lf, _ := time.Parse(time.RFC3339Nano, apiStatus(t, base)["last_flush"].(string)); !lf.Equal(lastFlush) {
		t.Errorf("last_flush advanced while every write fails: %v -> %v", lastFlush, lf)
	}
	r, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var mb strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := r.Body.Read(buf)
		mb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	r.Body.Close()
	if !strings.Contains(mb.String(), "bwtracker_db_write_failing 1") || !strings.Contains(mb.String(), "bwtracker_db_backlog_bytes ") {
		t.Errorf("/metrics does not show the condition")
	}
	out, _ := exec.Command(d.bin, "check", "--db", db, "--url", base).CombinedOutput()
	if !strings.Contains(string(out), "FAILING") || !strings.Contains(string(out), "held in memory") {
		t.Errorf("check does not show the condition:\n%s", out)
	}
	if n := strings.Count(d.log(), "database writes failing"); n != 1 {
		t.Errorf("%d 'writes failing' lines for one outage, want 1:\n%s", n, d.log())
	}
	t.Logf("disk full: held %d bytes (%v samples)", held, dbs["held_samples"])

	// Space returns: every held byte is written.
	os.Remove(filler)
	deadline = time.Now().Add(30 * time.Second)
	for {
		s := dbState(t, base)
		if s["state"] == "ok" && s["held_bytes"].(float64) == 0 {
			if s["lost_bytes"].(float64) != 0 {
				t.Errorf("bytes lost with a backlog far below its bound: %v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog never written: %v\n%s", s, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(d.log(), "database writes resumed") {
		t.Errorf("no 'writes resumed' line:\n%s", d.log())
	}
	waitTx(t, d, pids, 2_100_000)
	spr := forPID(d.report("process", "--since", "24h"), spray.pid())
	if tx, _ := sum(spr); tx != sr.TX {
		t.Errorf("spray: %d bytes stored, %d sent", tx, sr.TX)
	}
	t.Logf("disk full: all %d held bytes written after space returned (spray %d + tcp 2000000)", held, sr.TX)

	// SIGTERM with the disk full and rows held.
	fill(t, filler)
	spray2 := startChild(t, "udp-repeat", "3000", "1500")
	spray2.waitReady()
	deadline = time.Now().Add(20 * time.Second)
	for dbState(t, base)["state"] != "failing" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	s2 := spray2.wait()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	err = d.cmd.Wait()
	took := time.Since(start)
	if took > 15*time.Second {
		t.Errorf("SIGTERM with the disk full took %v", took)
	}
	logs := d.log()
	if strings.Contains(logs, "all counted traffic written") {
		t.Errorf("claims all written with the disk full:\n%s", logs)
	}
	if err == nil || !strings.Contains(logs, "it is lost") || !strings.Contains(logs, "tx_bytes=") {
		t.Errorf("exit %v; the log must say exactly what was lost:\n%s", err, logs)
	}
	os.Remove(filler)
	d2 := startDaemonOn(t, db, "200ms", "--no-web")
	stored, _ := sum(forPID(d2.report("process", "--since", "24h"), spray2.pid()))
	d2.stop()
	var lostTx uint64
	for _, l := range strings.Split(logs, "\n") {
		if i := strings.Index(l, "it is lost"); i >= 0 {
			if j := strings.Index(l, " tx_bytes="); j >= 0 {
				lostTx, _ = strconv.ParseUint(strings.Fields(l[j+10:])[0], 10, 64)
			}
		}
	}
	// The log's figure covers every process's held traffic (other
	// daemons' tests run beside us): it must at least cover ours.
	if stored > s2.TX || stored+lostTx < s2.TX {
		t.Errorf("SIGTERM while full: stored %d + reported lost %d does not account for the %d sent", stored, lostTx, s2.TX)
	}
	t.Logf("SIGTERM while full: exited in %v; sent %d, stored %d, reported lost %d", took.Round(time.Millisecond), s2.TX, stored, lostTx)
}

// SIGHUP flushes and keeps running (it used to kill the daemon, rc 129,
// without the final write).
func TestSIGHUPFlushesAndKeepsRunning(t *testing.T) {
	d := startDaemon(t, "1h", "--no-web") // no periodic flush: only SIGHUP writes
	pid := tcpTransfer(t, 345_678)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitTx(t, d, map[int]bool{pid: true}, 345_678)
	if d.cmd.ProcessState != nil || d.cmd.Process.Signal(syscall.Signal(0)) != nil {
		t.Fatalf("daemon died on SIGHUP:\n%s", d.log())
	}
	pid2 := tcpTransfer(t, 1_000)
	d.stop()
	mustEqual(t, "tx written on SIGTERM after a SIGHUP", txOf(d, map[int]bool{pid2: true}), 1_000)
	if !strings.Contains(d.log(), "SIGHUP") {
		t.Errorf("no log line for the SIGHUP flush:\n%s", d.log())
	}
}

// The database file deleted under the running daemon: it says so loudly,
// rebuilds the file from its open connection and goes on; nothing of the
// history is lost and the stop message is true.
func TestDBDeletedWhileRunning(t *testing.T) {
	d := startDaemon(t, "200ms", "--listen", "127.0.0.1:19213")
	before := tcpTransfer(t, 500_000)
	pids := map[int]bool{before: true}
	waitTx(t, d, pids, 500_000)
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(d.db + sfx)
	}
	after := tcpTransfer(t, 250_000)
	pids[after] = true
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log(), "DATABASE FILE DELETED") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	waitTx(t, d, pids, 750_000) // a new `report` reads the file at the path
	if !strings.Contains(d.log(), "DATABASE FILE DELETED WHILE RUNNING") {
		t.Errorf("no loud log line:\n%s", d.log())
	}
	if ev := dbState(t, "http://127.0.0.1:19213")["file_events"]; ev != float64(1) {
		t.Errorf("file_events %v", ev)
	}
	if del := deletedFDs(d.cmd.Process.Pid); len(del) > 0 {
		t.Errorf("daemon still holds unlinked files: %v", del)
	}
	d.stop()
	mustEqual(t, "tx before and after the deletion", txOf(d, pids), 750_000)
	integrityCheck(t, d.db)
}

// The WAL made immutable while running (a read-only file): writes fail,
// the rows are held, and written once it is writable again.
func TestDBReadOnlyWhileRunning(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("SKIPPED: no chattr")
	}
	d := startDaemon(t, "200ms", "--listen", "127.0.0.1:19214")
	first := tcpTransfer(t, 100_000)
	pids := map[int]bool{first: true}
	waitTx(t, d, pids, 100_000)
	for _, f := range []string{d.db, d.db + "-wal"} {
		if out, err := exec.Command("chattr", "+i", f).CombinedOutput(); err != nil {
			t.Skipf("SKIPPED: chattr +i: %v %s", err, out)
		}
		defer exec.Command("chattr", "-i", f).Run()
	}
	held := tcpTransfer(t, 400_000)
	pids[held] = true
	deadline := time.Now().Add(10 * time.Second)
	for dbState(t, "http://127.0.0.1:19214")["state"] != "failing" {
		if time.Now().After(deadline) {
			t.Fatalf("writes to an immutable WAL did not fail: %v\n%s", apiStatus(t, "http://127.0.0.1:19214"), d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, f := range []string{d.db, d.db + "-wal"} {
		exec.Command("chattr", "-i", f).Run()
	}
	waitTx(t, d, pids, 500_000)
	d.stop()
	if !strings.Contains(d.log(), "database writes resumed") {
		t.Errorf("no resume line:\n%s", d.log())
	}
}
