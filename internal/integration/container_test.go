package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/bwtracker/bwtracker/internal/testenv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

func init() {
	benchModes["netns-loop"] = func(args []string) (result, error) { return netnsLoop(atoi(args[0])) }
}

// netnsLoop waits for "go" on stdin (the test moves it into its cgroup
// meanwhile), brings up lo in its own network namespace, and sends n bytes
// to itself over TCP.
func netnsLoop(n int) (result, error) {
	var r result
	fmt.Println("READY waiting")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "go" {
		return r, fmt.Errorf("expected go, got %q", line)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return r, fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	got := make(chan int64)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		k, _ := io.Copy(io.Discard, c)
		got <- k
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return r, err
	}
	w, err := c.Write(make([]byte, n))
	if err != nil {
		return r, err
	}
	c.Close()
	r.TX = uint64(w)
	r.RX = uint64(<-got)
	return r, nil
}

// A home-made container: a process in a new cgroup v2 child named like a
// docker scope and in a new network namespace moves known bytes; they must
// appear under that container's name and the process, exactly.
func TestContainerCgroupAndNetns(t *testing.T) {
	d := startDaemon(t, "200ms")
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.Missing(t, "unshare", "apt-get install util-linux")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip", "apt-get install iproute2")
	}
	root, err := cgroupinfo.Cgroup2Mount()
	if err != nil {
		t.Skipf("SKIPPED: no cgroup v2: %v", err)
	}
	rnd := make([]byte, 32)
	rand.Read(rnd)
	id := hex.EncodeToString(rnd)
	slice := filepath.Join(root, "bwtrackertest.slice")
	scope := filepath.Join(slice, "docker-"+id+".scope")
	if err := os.MkdirAll(scope, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(slice)
	defer os.Remove(scope)

	const n = 777_777
	cmd := exec.Command("unshare", "--net", os.Args[0], strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "BWT_CHILD=netns-loop")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY") {
		t.Fatalf("child not ready: %q", sc.Text())
	}
	pid := cmd.Process.Pid // unshare execs the child: same pid
	if err := os.WriteFile(filepath.Join(scope, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	var res string
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			res = s
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(res, fmt.Sprintf(`"tx":%d,"rx":%d`, n, n)) {
		t.Fatalf("child result %s", res)
	}
	// The cgroup may go now: the daemon resolved its name while it existed.
	d.stop()
	want := "docker:" + id[:12]
	rows := d.reportRaw("container,process")
	var found bool
	for _, r := range rows {
		if int(r["pid"].(float64)) != pid {
			continue
		}
		found = true
		if r["container"] != want || uint64(r["tx_bytes"].(float64)) != n || uint64(r["rx_bytes"].(float64)) != n {
			t.Errorf("row %v: want container %s, tx=rx=%d", r, want, n)
		}
	}
	if !found {
		t.Fatalf("pid %d not in report", pid)
	}
	rows = d.reportRaw("container")
	for _, r := range rows {
		if r["container"] == want {
			mustEqual(t, "container tx", uint64(r["tx_bytes"].(float64)), n)
			mustEqual(t, "container rx", uint64(r["rx_bytes"].(float64)), n)
			return
		}
	}
	t.Fatalf("container %s not in report --by container", want)
}
