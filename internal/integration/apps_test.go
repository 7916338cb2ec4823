package integration

// The app rule with real processes (internal/procinfo/app.go) and the
// scope of loopback traffic (internal/netscope).

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bwtracker/bwtracker/internal/testenv"
)

func init() {
	// tcp-sink BIND N: accept N connections, read each to EOF, close.
	benchModes["tcp-sink"] = func(args []string) (result, error) {
		var r result
		ap := netip.MustParseAddrPort(args[0])
		fam, sa := sockaddr(ap)
		fd, err := unix.Socket(fam, unix.SOCK_STREAM, 0)
		if err != nil {
			return r, err
		}
		if err := unix.Bind(fd, sa); err != nil {
			return r, err
		}
		if err := unix.Listen(fd, 128); err != nil {
			return r, err
		}
		fmt.Printf("READY %d\n", boundPort(fd))
		for n := atoi(args[1]); n > 0; n-- {
			c, _, err := unix.Accept(fd)
			if err != nil {
				return r, err
			}
			if err := readAll(c, &r); err != nil {
				return r, err
			}
			unix.Close(c)
		}
		return r, nil
	}
}

// poolPy starts 4 multiprocessing workers with the spawn method: each is
// `python3 -c 'from multiprocessing.spawn import spawn_main; ...'`, a
// command line that names no script, whose parent is pool.py. Each sends
// its own number of bytes to the sink and stays until the daemon has read
// its /proc entry.
const poolPy = `import multiprocessing as mp, socket, sys, time

def work(port, n, done):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x" * n)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()
    done.wait(30)

if __name__ == "__main__":
    mp.set_start_method("spawn")
    port = int(sys.argv[1])
    done = mp.Event()
    ps = [mp.Process(target=work, args=(port, int(n), done)) for n in sys.argv[2:]]
    for p in ps:
        p.start()
    print("PIDS " + " ".join(str(p.pid) for p in ps), flush=True)
    sys.stdin.readline()
    done.set()
    for p in ps:
        p.join()
`

func TestAppFoldsSpawnedWorkers(t *testing.T) {
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		testenv.Missing(t, "python3", "apt-get install python3")
	}
	sizes := []uint64{100_001, 200_002, 300_003, 400_004}
	var want uint64
	args := []string{}
	for _, n := range sizes {
		want += n
		args = append(args, strconv.FormatUint(n, 10))
	}
	script := filepath.Join(t.TempDir(), "pool.py")
	if err := os.WriteFile(script, []byte(poolPy), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "200ms", "--no-web")
	sink := startChild(t, "tcp-sink", "127.0.0.1:0", "4")
	port := sink.waitReady()
	cmd := exec.Command(py, append([]string{script, port}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	pool := startChildCmd(t, cmd)
	var pids []int
	select {
	case l := <-pool.lines:
		f, ok := strings.CutPrefix(l, "PIDS ")
		if !ok {
			t.Fatalf("pool.py printed %q", l)
		}
		for _, s := range strings.Fields(f) {
			pids = append(pids, atoi(s))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("pool.py did not start its workers")
	}
	sr := sink.wait()
	mustEqual(t, "sink rx", sr.RX, want)
	// The workers are still there: wait for two flushes to name them.
	time.Sleep(600 * time.Millisecond)
	stdin.Close()
	pool.wait()
	d.stop()

	byApp := d.reportRaw("app")
	var got []map[string]any
	for _, r := range byApp {
		if strings.HasPrefix(r["app"].(string), "pool.py") {
			got = append(got, r)
		}
	}
	if len(got) != 1 || got[0]["app"] != "pool.py (python3)" {
		t.Fatalf("want one app row \"pool.py (python3)\", got %v (all: %v)", got, byApp)
	}
	mustEqual(t, "app tx", uint64(got[0]["tx_bytes"].(float64)), want)
	mustEqual(t, "app rx", uint64(got[0]["rx_bytes"].(float64)), 0)

	procs := d.report("process", "--app", "pool.py (python3)")
	if len(procs) != 4 {
		t.Fatalf("want the 4 workers as process rows of the app, got:\n%s", dump(procs))
	}
	for i, pid := range pids {
		rs := forPID(procs, pid)
		if len(rs) != 1 {
			t.Fatalf("worker %d (pid %d): rows\n%s", i, pid, dump(procs))
		}
		mustEqual(t, fmt.Sprintf("worker %d tx", pid), rs[0].TX, sizes[i])
	}
}

// Loopback traffic is scope "loopback", whatever --lan-cidr says.
func TestScopeLoopback(t *testing.T) {
	d := startDaemon(t, "200ms", "--no-web", "--lan-cidr", "198.18.0.0/15", "--lan-cidr", "10.99.0.0/16")
	srv := startChild(t, "tcp-server", "127.0.0.1:0", "54321")
	port := srv.waitReady()
	cli := startChild(t, "tcp-client", "127.0.0.1:"+port, "123457")
	cr := cli.wait()
	srv.wait()
	mustEqual(t, "client's own tx", cr.TX, 123457)
	mustEqual(t, "client's own rx", cr.RX, 54321)
	d.stop()
	pid := strconv.Itoa(cli.pid())
	rows := d.reportRaw("scope", "--pid", pid)
	if len(rows) != 1 || rows[0]["scope"] != "loopback" {
		t.Fatalf("--by scope of the client: %v", rows)
	}
	mustEqual(t, "loopback tx", uint64(rows[0]["tx_bytes"].(float64)), 123457)
	mustEqual(t, "loopback rx", uint64(rows[0]["rx_bytes"].(float64)), 54321)
	if rows := d.reportRaw("scope", "--pid", pid, "--scope", "internet"); len(rows) != 0 {
		t.Fatalf("--scope internet: %v", rows)
	}
	rows = d.reportRaw("app,scope", "--pid", pid, "--scope", "loopback")
	if len(rows) != 1 || rows[0]["app"] != filepath.Base(os.Args[0]) || rows[0]["scope"] != "loopback" {
		t.Fatalf("--by app,scope: %v", rows)
	}
}
