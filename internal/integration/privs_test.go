package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
