package integration

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/testenv"
)

// procStatus reads the Cap* and NoNewPrivs lines of /proc/PID[/task/TID]/status.
func procStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && (strings.HasPrefix(k, "Cap") || k == "NoNewPrivs") {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// After attach the daemon keeps only CAP_SYS_PTRACE (bit 19) on this kernel
// (>= 6.5), in every set and on every thread, with no_new_privs; counting,
// draining and the clean stop still work without the rest.
func TestPrivilegesDroppedAfterAttach(t *testing.T) {
	self := procStatus(t, "/proc/self/status")
	if self["CapEff"] != "000001ffffffffff" && self["CapEff"] != "000001fffeffffff" {
		t.Skipf("SKIPPED: the test runs with CapEff %s, not root's full set", self["CapEff"])
	}
	d := startDaemon(t, "1s", "--listen", "127.0.0.1:19313")
	pid := d.cmd.Process.Pid
	const want = "0000000000080000" // CAP_SYS_PTRACE
	st := procStatus(t, "/proc/"+strconv.Itoa(pid)+"/status")
	t.Logf("CapEff before (test process): %s; daemon after attach: %v", self["CapEff"], st)
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if st[k] != want {
			t.Errorf("%s = %s, want %s (CAP_SYS_PTRACE only)", k, st[k], want)
		}
	}
	if st["CapInh"] != "0000000000000000" || st["CapAmb"] != "0000000000000000" || st["NoNewPrivs"] != "1" {
		t.Errorf("inheritable/ambient not empty or no_new_privs unset: %v", st)
	}
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/status")
	if len(tasks) < 2 {
		t.Fatalf("daemon threads: %v", tasks)
	}
	for _, ts := range tasks {
		if s := procStatus(t, ts); s["CapEff"] != want || s["NoNewPrivs"] != "1" {
			t.Errorf("thread %s: %v", ts, s)
		}
	}
	if !strings.Contains(d.log(), "privileges dropped after attach") || !strings.Contains(d.log(), "kept=cap_sys_ptrace") {
		t.Errorf("no log line saying what was kept:\n%s", d.log())
	}

	const up, down = 1_000_003, 70_001
	srv := startChild(t, "tcp-server", "127.0.0.1:0", strconv.Itoa(down))
	port := srv.waitReady()
	cl := startChild(t, "tcp-client", net.JoinHostPort("127.0.0.1", port), strconv.Itoa(up))
	cl.wait()
	srv.wait()
	d.stop()
	c := forPID(d.report("process"), cl.pid())
	if len(c) != 1 {
		t.Fatalf("client rows: %s", dump(c))
	}
	mustEqual(t, "client tx with dropped privileges", c[0].TX, up)
	mustEqual(t, "client rx with dropped privileges", c[0].RX, down)
	if c[0].Exe == "" {
		t.Errorf("exe not resolved after the drop: %+v", c[0])
	}
}

// Under the systemd unit's capability set (bounding set CAP_BPF,
// CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_PTRACE; no CAP_SETPCAP to lower it
// further) the drop must still work: it used to fail with "lowering the
// capability bounding set: operation not permitted".
func TestPrivilegesDroppedUnderUnitCaps(t *testing.T) {
	bin := bwtrackerBin(t)
	capsh, err := exec.LookPath("capsh")
	if err != nil {
		testenv.Missing(t, "capsh", "apt-get install libcap2-bin")
	}
	var drop []string
	for v := 0; v <= 40; v++ {
		switch v {
		case 12, 19, 38, 39: // net_admin, sys_ptrace, perfmon, bpf
			continue
		}
		drop = append(drop, strconv.Itoa(v))
	}
	db := filepath.Join(t.TempDir(), "bw.db")
	var logs lockedBuf
	logs.mu, logs.buf = &sync.Mutex{}, &bytes.Buffer{}
	cmd := exec.Command(capsh, "--drop="+strings.Join(drop, ","), "--", "-c", "exec "+bin+" run --no-web --db "+db)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	log := func() string { logs.mu.Lock(); defer logs.mu.Unlock(); return logs.buf.String() }
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(log(), "msg=tracking") {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start under the unit's capabilities:\n%s", log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := procStatus(t, "/proc/"+strconv.Itoa(cmd.Process.Pid)+"/status")
	t.Logf("under the unit's bounding set: %v", st)
	if st["CapEff"] != "0000000000080000" || st["CapPrm"] != "0000000000080000" || st["NoNewPrivs"] != "1" {
		t.Errorf("after attach: %v", st)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, log())
	}
}
