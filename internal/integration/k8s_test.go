package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/testenv"
)

// fakePod is one pod of the fake node: how the kubelet and containerd
// would lay it out, and the real cgroup its process runs in.
type fakePod struct {
	ns, name, uid, container, id string
	systemd                      bool // cgroup driver: systemd (else cgroupfs)
	n                            int  // bytes its process sends (and receives)
	workload                     string
}

// cgroupPath is the pod container's cgroup below the cgroup2 root, as the
// kubelet with that driver and containerd name it.
func (p fakePod) cgroupPath() []string {
	if p.systemd {
		u := strings.ReplaceAll(p.uid, "-", "_")
		return []string{"kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod" + u + ".slice", "cri-containerd-" + p.id + ".scope"}
	}
	return []string{"kubepods", "burstable", "pod" + p.uid, p.id}
}

func randUID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// layout writes the pod's kubelet directory, log directory and log link
// under root (kubelet/, pods/, containers/ stand for /var/lib/kubelet,
// /var/log/pods and /var/log/containers).
func (p fakePod) layout(t *testing.T, root string) {
	t.Helper()
	logDir := filepath.Join(root, "pods", p.ns+"_"+p.name+"_"+p.uid)
	podDir := filepath.Join(root, "kubelet", "pods", p.uid)
	files := map[string]string{
		filepath.Join(logDir, p.container, "0.log"): "",
		// The sandbox's pause container has no log directory; an init
		// container that ran does.
		filepath.Join(logDir, "init-config", "0.log"):                                                     "",
		filepath.Join(podDir, "etc-hosts"):                                                                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.244.0.7\t" + p.name + "\n",
		filepath.Join(podDir, "containers", p.container, randHex(4)):                                      "",
		filepath.Join(podDir, "volumes", "kubernetes.io~projected", "kube-api-access-x7k2p", "namespace"): p.ns,
	}
	for f, s := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "containers", p.name+"_"+p.ns+"_"+p.container+"-"+p.id+".log")
	if err := os.Symlink(filepath.Join(logDir, p.container, "0.log"), link); err != nil {
		t.Fatal(err)
	}
}

// makeCgroup creates the pod's cgroup directories under the cgroup2 root
// and removes what it created when the test ends (innermost first; a
// directory that another cgroup still uses stays).
func makeCgroup(t *testing.T, root string, comps []string) string {
	t.Helper()
	dir := root
	var made []string
	for _, c := range comps {
		dir = filepath.Join(dir, c)
		if _, err := os.Stat(dir); err == nil {
			continue
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("create cgroup %s: %v", dir, err)
		}
		made = append(made, dir)
	}
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			for k := 0; k < 50 && os.Remove(made[i]) != nil; k++ {
				time.Sleep(20 * time.Millisecond) // the child's exit may still be in flight
			}
		}
	})
	return dir
}

// runInCgroup starts the netns-loop child, moves it into cgroup dir, lets
// it send n bytes to itself over loopback in its own network namespace, and
// returns its pid once it exited.
func runInCgroup(t *testing.T, dir string, n int) int {
	t.Helper()
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
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("move pid %d into %s: %v", pid, dir, err)
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
		t.Fatalf("child result %s, want tx=rx=%d", res, n)
	}
	return pid
}

// Two pods on a fake node, one per cgroup driver (cgroupfs:
// kubepods/burstable/pod<uid>/<id>; systemd + containerd:
// kubepods.slice/.../kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope),
// each with a real process in a real cgroup of that name: `report --by
// namespace,pod,workload` shows each pod's exact bytes under its names,
// and so do the API filters, /api/current and /metrics.
func TestKubernetesPodNames(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.Missing(t, "unshare", "apt-get install util-linux")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip", "apt-get install iproute2")
	}
	cgRoot, err := cgroupinfo.Cgroup2Mount()
	if err != nil {
		t.Skipf("SKIPPED: no cgroup v2: %v", err)
	}
	for _, v := range []struct {
		name string
		// which of kubelet/, pods/, containers/ the daemon is given
		kubelet, podLogs, contLogs bool
	}{
		{"log dirs", false, true, true},
		{"kubelet dir only", true, false, false},
	} {
		t.Run(v.name, func(t *testing.T) {
			node := t.TempDir()
			arg := func(on bool, dir string) string {
				if on {
					return filepath.Join(node, dir)
				}
				return "-"
			}
			testPodNames(t, cgRoot, node, "--kubelet-root", arg(v.kubelet, "kubelet"),
				"--pod-log-root", arg(v.podLogs, "pods"), "--container-log-root", arg(v.contLogs, "containers"))
		})
	}
}

func testPodNames(t *testing.T, cgRoot, node string, flags ...string) {
	pods := []fakePod{
		{ns: "shop", name: "web-7c5ddbdf54-x7k2p", uid: randUID(), container: "app", id: randHex(32), n: 654_321, workload: "deployment/web"},
		{ns: "data", name: "pg-0", uid: randUID(), container: "postgres", id: randHex(32), systemd: true, n: 212_121, workload: "statefulset/pg"},
	}
	for _, p := range pods {
		p.layout(t, node)
	}
	const listen = "127.0.0.1:18150"
	d := startDaemon(t, "200ms", append([]string{"--listen", listen}, flags...)...)

	pids := map[string]int{}
	for _, p := range pods {
		dir := makeCgroup(t, cgRoot, p.cgroupPath())
		pids[p.name] = runInCgroup(t, dir, p.n)
	}

	// While the daemon runs: /metrics has each pod's series with its
	// names, exactly its bytes (only the test's process is in that
	// container), and the API filters by namespace and pod.
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range pods {
		want := fmt.Sprintf("namespace=%s pod=%s workload=%s container=kubernetes:%s tx=%d rx=%d", p.ns, p.name, p.workload, p.id[:12], p.n, p.n)
		if p.systemd {
			want = strings.Replace(want, "kubernetes:", "containerd:", 1)
		}
		var got string
		for time.Now().Before(deadline) {
			if got = podSeries(t, "http://"+listen+"/metrics", p.name); got == want {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got != want {
			t.Errorf("/metrics for pod %s:\n got %s\nwant %s", p.name, got, want)
		}
		var pr struct {
			Processes []struct {
				PID     uint32 `json:"pid"`
				TxBytes uint64 `json:"tx_bytes"`
				RxBytes uint64 `json:"rx_bytes"`
			} `json:"processes"`
		}
		for _, q := range []string{"namespace=" + p.ns, "pod=" + p.name, "pod=" + p.uid} {
			getJSON(t, "http://"+listen+"/api/processes?since=1h&"+q, &pr)
			if len(pr.Processes) != 1 || int(pr.Processes[0].PID) != pids[p.name] || pr.Processes[0].TxBytes != uint64(p.n) || pr.Processes[0].RxBytes != uint64(p.n) {
				t.Errorf("/api/processes?%s = %+v, want only pid %d with tx=rx=%d", q, pr.Processes, pids[p.name], p.n)
			}
		}
		var cur struct {
			Processes []struct {
				PID       uint32 `json:"pid"`
				Namespace string `json:"namespace"`
				Pod       string `json:"pod"`
				Workload  string `json:"workload"`
			} `json:"processes"`
		}
		getJSON(t, "http://"+listen+"/api/current", &cur)
		found := false
		for _, c := range cur.Processes {
			if int(c.PID) == pids[p.name] {
				found = true
				if c.Namespace != p.ns || c.Pod != p.name || c.Workload != p.workload {
					t.Errorf("/api/current pid %d: %+v, want %s %s %s", c.PID, c, p.ns, p.name, p.workload)
				}
			}
		}
		if !found {
			t.Errorf("/api/current lacks pid %d", pids[p.name])
		}
	}
	d.stop()

	// The report, from the SQLite file alone.
	rows := d.reportRaw("namespace,pod,workload")
	for _, p := range pods {
		var hits []map[string]any
		for _, r := range rows {
			if r["pod"] == p.name {
				hits = append(hits, r)
			}
		}
		if len(hits) != 1 {
			t.Errorf("pod %s: %d rows in report --by namespace,pod,workload: %v", p.name, len(hits), rows)
			continue
		}
		r := hits[0]
		if r["namespace"] != p.ns || r["workload"] != p.workload {
			t.Errorf("pod %s row %v: want namespace %s workload %s", p.name, r, p.ns, p.workload)
		}
		mustEqual(t, p.name+" tx", uint64(r["tx_bytes"].(float64)), uint64(p.n))
		mustEqual(t, p.name+" rx", uint64(r["rx_bytes"].(float64)), uint64(p.n))
	}
	// With the process too, and filtered by pod: the one process, exactly.
	for _, p := range pods {
		rows := d.reportRaw("process,namespace,pod,workload", "--pod", p.name)
		if len(rows) != 1 || int(rows[0]["pid"].(float64)) != pids[p.name] || rows[0]["namespace"] != p.ns ||
			uint64(rows[0]["tx_bytes"].(float64)) != uint64(p.n) || uint64(rows[0]["rx_bytes"].(float64)) != uint64(p.n) {
			t.Errorf("report --pod %s: %v, want pid %d tx=rx=%d", p.name, rows, pids[p.name], p.n)
		}
	}
}

// podSeries summarises the bwtracker_bytes_total series of pod: its
// names and container, and tx/rx; "" when there are none.
func podSeries(t *testing.T, url, pod string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var names string
	var tx, rx float64
	n := 0
	for _, m := range fams["bwtracker_bytes_total"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["pod"] != pod {
			continue
		}
		n++
		names = fmt.Sprintf("namespace=%s pod=%s workload=%s container=%s", l["namespace"], l["pod"], l["workload"], l["container"])
		if l["direction"] == "tx" {
			tx += m.GetCounter().GetValue()
		} else {
			rx += m.GetCounter().GetValue()
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%s tx=%.0f rx=%.0f", names, tx, rx)
}
