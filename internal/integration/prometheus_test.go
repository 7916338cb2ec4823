package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

// Ports of this file's tests (19500-19599 belong to them).
const (
	promDaemonPort = 19510
	promServerPort = 19511
)

func init() {
	benchModes["paced-send"] = pacedSend
	benchModes["sink"] = sink
}

// pacedSend prints READY, waits for "go" on stdin (the test moves it into
// its cgroup meanwhile), connects to args[0], reads the greeting and sends 4 KiB every 10 ms
// until stdin says "stop"; then it closes and reports what it sent.
func pacedSend(args []string) (result, error) {
	var r result
	fmt.Println("READY waiting")
	in := bufio.NewReader(os.Stdin)
	if line, _ := in.ReadString('\n'); strings.TrimSpace(line) != "go" {
		return r, fmt.Errorf("expected go, got %q", line)
	}
	stop := make(chan struct{})
	go func() {
		in.ReadString('\n')
		close(stop)
	}()
	c, err := net.Dial("tcp", args[0])
	if err != nil {
		return r, err
	}
	defer c.Close()
	buf := make([]byte, 4096)
	n, err := io.ReadFull(c, buf[:greeting])
	r.RX = uint64(n)
	if err != nil {
		return r, err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return r, nil
		case <-tick.C:
			n, err := c.Write(buf)
			r.TX += uint64(n)
			if err != nil {
				return r, err
			}
		}
	}
}

// greeting is what the sink sends first and the sender reads before it
// sends: traffic both ways, so every dashboard panel has data.
const greeting = 1000

// sink listens on 127.0.0.1, prints READY PORT, accepts one connection,
// sends the greeting, reads the connection to its end and reports.
func sink(args []string) (result, error) {
	var r result
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	c, err := ln.Accept()
	if err != nil {
		return r, err
	}
	w, err := c.Write(make([]byte, greeting))
	r.TX = uint64(w)
	if err != nil {
		return r, err
	}
	n, err := io.Copy(io.Discard, c)
	r.RX = uint64(n)
	return r, err
}

// requireTool finds a program the test needs. Missing, it fails the test in
// CI (CI=true) or when the test dependencies were meant to be installed
// (BWTRACKER_WITH_TEST_DEPS=1, which makes scripts/deps.sh install them), and
// skips loudly otherwise.
func requireTool(t *testing.T, name, debPkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not installed (Debian package %s; `BWTRACKER_WITH_TEST_DEPS=1 ./scripts/deps.sh` installs it)", name, debPkg)
	if os.Getenv("CI") == "true" || os.Getenv("BWTRACKER_WITH_TEST_DEPS") == "1" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// namedBinary links (or copies) the test binary to dir/name, so the
// children started from it have their own executable name, hence their own
// exe label in /metrics, whatever else runs on the machine.
func namedBinary(t *testing.T, dir, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.Link(self, dst); err == nil {
		return dst
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// lineChild is a child whose stdin the test writes and whose stdout lines
// it reads.
type lineChild struct {
	*child
	stdin io.WriteCloser
}

func startNamedChild(t *testing.T, bin, mode string, args ...string) *lineChild {
	t.Helper()
	cmd := childCmd(bin, mode, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := startChildCmd(t, cmd)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return &lineChild{c, stdin}
}

func moveToCgroup(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("moving pid %d into %s: %v", pid, dir, err)
	}
}

// promAPI queries a Prometheus server's HTTP API.
type promAPI struct {
	t    *testing.T
	base string
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() float64 {
	v, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// get GETs path with params and decodes the "data" member into out.
func (p promAPI) get(path string, params url.Values, out any) error {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: HTTP %d, not JSON: %s", path, resp.StatusCode, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s %v: %s: %s", path, params, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// query runs an instant PromQL query and returns its vector (a scalar
// result comes back as one sample without labels).
func (p promAPI) query(q string) ([]promSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var v []promSample
		err := json.Unmarshal(data.Result, &v)
		return v, err
	case "scalar":
		var s [2]any
		err := json.Unmarshal(data.Result, &s)
		return []promSample{{Value: s}}, err
	}
	return nil, fmt.Errorf("query %s: result type %s", q, data.ResultType)
}

// waitValue polls q until cond holds for its single sample's value, and
// fails with the last value seen after timeout.
func (p promAPI) waitValue(what, q string, timeout time.Duration, cond func(float64) bool) float64 {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no sample"
	for {
		v, err := p.query(q)
		switch {
		case err != nil:
			last = err.Error()
		case len(v) == 1:
			if f := v[0].float(); cond(f) {
				return f
			}
			last = fmt.Sprintf("%v", v[0].Value[1])
		case len(v) > 1:
			last = fmt.Sprintf("%d samples: %v", len(v), v)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s never held within %s; last: %s", what, q, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestPrometheusEndToEnd: Debian's real prometheus scrapes a daemon started
// with --listen and --auth-token-file through the shipped example config
// (deploy/prometheus/prometheus.yml, targets and paths rewritten) and its
// rules. Two children of the test, each with its own executable name, one in
// a systemd-service-like cgroup and one in a docker-like scope, move known
// bytes over TCP; Prometheus's query API must return exactly those bytes in
// bwtracker_bytes_total, a non-zero rate() while they flow, data for every
// query of the Grafana dashboard, and every rule must evaluate cleanly.
func TestPrometheusEndToEnd(t *testing.T) {
	bwtrackerBin(t) // root and binary, else skip
	promBin := requireTool(t, "prometheus", "prometheus")
	root, err := cgroupinfo.Cgroup2Mount()
	if err != nil {
		t.Fatalf("no cgroup v2: %v", err)
	}
	tmp := t.TempDir()
	os.Chmod(tmp, 0o755)
	tag := randHex(2)
	token := "prom-e2e-" + randHex(16)
	tokFile := filepath.Join(tmp, "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", promDaemonPort)
	// The receiver runs in a pod of a fake Kubernetes node (k8s_test.go),
	// so the fleet guide's namespace/workload queries have data.
	node := filepath.Join(tmp, "node")
	pod := fakePod{ns: "bwtprom", name: "sink-7c5ddbdf54-x7k2p", uid: randUID(), container: "sink", id: randHex(32), workload: "deployment/sink"}
	pod.layout(t, node)
	d := startDaemon(t, "200ms", "--listen", listen, "--auth-token-file", tokFile,
		"--kubelet-root", filepath.Join(node, "kubelet"), "--pod-log-root", filepath.Join(node, "pods"),
		"--container-log-root", filepath.Join(node, "containers"))
	defer d.stop()

	// Without the token /metrics refuses: Prometheus must be sending it.
	if resp, err := http.Get("http://" + listen + "/metrics"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("/metrics without token: HTTP %d, want 401", resp.StatusCode)
		}
	}

	// Cgroups: a service for the sender, the pod's container (cgroupfs
	// driver) for the receiver.
	slice := filepath.Join(root, "bwtprom.slice")
	svcName := "bwtprom-" + tag + ".service"
	svcDir := filepath.Join(slice, svcName)
	if err := os.MkdirAll(svcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(svcDir); os.Remove(slice) })
	cid := pod.id
	ctrDir := makeCgroup(t, root, pod.cgroupPath())

	// Prometheus from the shipped example configuration.
	cfgPath := writePromConfig(t, tmp, listen, tokFile)
	if pt, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(pt, "check", "config", cfgPath).CombinedOutput(); err != nil {
			t.Fatalf("promtool check config on the rewritten example: %v\n%s", err, out)
		}
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", promServerPort)
	prom := exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(tmp, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	promLog := lockedBuf{&sync.Mutex{}, &bytes.Buffer{}}
	prom.Stdout, prom.Stderr = promLog, promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Process.Kill()
		prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	api := promAPI{t, "http://" + promAddr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(api.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) || prom.ProcessState != nil {
			t.Fatalf("prometheus not ready: %v\n%s", err, promLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	api.waitValue("the bwtracker target is scraped with the token", `up{job="bwtracker"}`, 20*time.Second,
		func(v float64) bool { return v == 1 })

	// Traffic: sender (service cgroup) -> sink (docker scope).
	txName, rxName := "bwtprom-tx-"+tag, "bwtprom-rx-"+tag
	snk := startNamedChild(t, namedBinary(t, tmp, rxName), "sink")
	port := snk.waitReady()
	moveToCgroup(t, ctrDir, snk.pid())
	snd := startNamedChild(t, namedBinary(t, tmp, txName), "paced-send", "127.0.0.1:"+port)
	snd.waitReady()
	moveToCgroup(t, svcDir, snd.pid())
	io.WriteString(snd.stdin, "go\n")

	txSel := fmt.Sprintf(`bwtracker_bytes_total{job="bwtracker",exe=%q,direction="tx"}`, txName)
	rxSel := fmt.Sprintf(`bwtracker_bytes_total{job="bwtracker",exe=%q,direction="rx"}`, rxName)
	r := api.waitValue("upload rate while sending", "sum(rate("+txSel+"[5s]))", 20*time.Second,
		func(v float64) bool { return v > 0 })
	t.Logf("rate() of %s while sending: %.0f B/s (the child sends at most 400 KiB/s)", txName, r)
	api.waitValue("download rate while sending", "sum(rate("+rxSel+"[5s]))", 10*time.Second,
		func(v float64) bool { return v > 0 })

	// The dashboard and the fleet guide's queries, while traffic flows.
	checkDashboardQueries(t, api)
	checkGuideQueries(t, api)

	io.WriteString(snd.stdin, "stop\n")
	sent := snd.wait()
	got := snk.wait()
	if sent.TX == 0 || got.RX != sent.TX || sent.RX != greeting || got.TX != greeting {
		t.Fatalf("children: sender tx %d rx %d, receiver tx %d rx %d", sent.TX, sent.RX, got.TX, got.RX)
	}
	exact := func(n uint64) func(float64) bool { return func(v float64) bool { return v == float64(n) } }
	api.waitValue("bytes sent by "+txName, "sum("+txSel+")", 15*time.Second, exact(sent.TX))
	api.waitValue("bytes received by "+rxName, "sum("+rxSel+")", 15*time.Second, exact(got.RX))
	api.waitValue("bytes received by "+txName, fmt.Sprintf(`sum(bwtracker_bytes_total{exe=%q,direction="rx"})`, txName), 15*time.Second, exact(sent.RX))
	api.waitValue("bytes sent by "+rxName, fmt.Sprintf(`sum(bwtracker_bytes_total{exe=%q,direction="tx"})`, rxName), 15*time.Second, exact(got.TX))
	t.Logf("Prometheus has exactly %d bytes %s -> %s and %d back", sent.TX, txName, rxName, got.TX)

	// Labels: the service, and the container and pod, protocol tcp.
	v, err := api.query(fmt.Sprintf(`bwtracker_bytes_total{exe=~%q}`, txName+"|"+rxName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v {
		m := s.Metric
		if m["exe"] == txName && (m["service"] != svcName || m["container"] != "" || m["protocol"] != "tcp") {
			t.Errorf("sender series labels %v: want service=%s, no container, protocol=tcp", m, svcName)
		}
		if m["exe"] == txName && (m["namespace"] != "" || m["pod"] != "" || m["workload"] != "") {
			t.Errorf("sender series labels %v: want no namespace, pod or workload", m)
		}
		if m["exe"] == rxName && (m["container"] != "kubernetes:"+cid[:12] || m["service"] != "" || m["protocol"] != "tcp" ||
			m["namespace"] != pod.ns || m["pod"] != pod.name || m["workload"] != pod.workload) {
			t.Errorf("receiver series labels %v: want container=kubernetes:%s, namespace=%s, pod=%s, workload=%s, no service, protocol=tcp",
				m, cid[:12], pod.ns, pod.name, pod.workload)
		}
	}

	// Every shipped rule evaluates without error against the real series.
	checkRulesHealthy(t, api)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writePromConfig rewrites deploy/prometheus/prometheus.yml for this test:
// 1s scrape and evaluation, the daemon as the only target, the test's token
// file, the shipped rules by absolute path, no Alertmanager.
func writePromConfig(t *testing.T, dir, target, tokFile string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("deploy/prometheus/prometheus.yml: %v", err)
	}
	global := cfg["global"].(map[string]any)
	global["scrape_interval"] = "1s"
	global["evaluation_interval"] = "1s"
	rules, _ := filepath.Abs("../../deploy/prometheus/bwtracker-rules.yml")
	cfg["rule_files"] = []string{rules}
	delete(cfg, "alerting")
	var job map[string]any
	for _, j := range cfg["scrape_configs"].([]any) {
		if m := j.(map[string]any); m["job_name"] == "bwtracker" {
			job = m
		}
	}
	if job == nil {
		t.Fatal("deploy/prometheus/prometheus.yml has no job_name: bwtracker")
	}
	auth := job["authorization"].(map[string]any)
	if auth["credentials_file"] == nil {
		t.Fatal("the example job must read its bearer token from authorization.credentials_file")
	}
	auth["credentials_file"] = tokFile
	job["static_configs"] = []any{map[string]any{"targets": []string{target}}}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkDashboardQueries runs the instance variable's query, then every
// panel query of the Grafana dashboard with the variables substituted as
// Grafana would (instance = the value the variable query found, top = its
// default, $__rate_interval = 4 scrape intervals, $__range = 1m), and
// requires each to return at least one sample with a number.
func checkDashboardQueries(t *testing.T, api promAPI) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/bwtracker-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name    string `json:"name"`
				Query   any    `json:"query"`
				Current struct {
					Value any `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"__rate_interval": "4s", "__range": "1m", "__interval": "1s"}
	labelValues := regexp.MustCompile(`^label_values\(([^,]+),\s*([a-zA-Z_]+)\)$`)
	for _, v := range dash.Templating.List {
		switch q := v.Query.(type) {
		case map[string]any:
			s, _ := q["query"].(string)
			m := labelValues.FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("variable %s: query %q is not label_values(metric, label)", v.Name, s)
			}
			var vals []string
			if err := api.get("/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}}, &vals); err != nil {
				t.Fatal(err)
			}
			if len(vals) == 0 {
				t.Fatalf("variable %s: %s returned no values", v.Name, s)
			}
			vars[v.Name] = strings.Join(vals, "|")
		case string:
			if cur, ok := v.Current.Value.(string); ok {
				vars[v.Name] = cur
			}
		}
	}
	varRe := regexp.MustCompile(`\$\{?([a-zA-Z_]+)\}?`)
	n, total := 0, 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			total++
			q := varRe.ReplaceAllStringFunc(tg.Expr, func(s string) string {
				name := varRe.FindStringSubmatch(s)[1]
				v, ok := vars[name]
				if !ok {
					t.Errorf("panel %q: no value for $%s", p.Title, name)
				}
				return v
			})
			// Wait a little: histogram and rate queries need two scrapes.
			deadline := time.Now().Add(10 * time.Second)
			for {
				v, err := api.query(q)
				if err == nil && len(v) > 0 && hasNumber(v) {
					n++
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("panel %q: %s returned no data (err %v, %v)", p.Title, q, err, v)
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	}
	t.Logf("%d of %d dashboard queries returned data (instance=%s)", n, total, vars["instance"])
}

func hasNumber(v []promSample) bool {
	for _, s := range v {
		if f, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64); err == nil && f == f {
			return true
		}
	}
	return false
}

// checkRulesHealthy waits until every rule of the loaded groups has been
// evaluated and requires health "ok".
func checkRulesHealthy(t *testing.T, api promAPI) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name           string `json:"name"`
					Health         string `json:"health"`
					LastError      string `json:"lastError"`
					LastEvaluation string `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := api.get("/api/v1/rules", url.Values{}, &data); err != nil {
			t.Fatal(err)
		}
		var pending, bad []string
		rules := 0
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				rules++
				switch {
				case r.Health == "unknown" || strings.HasPrefix(r.LastEvaluation, "0001-"):
					pending = append(pending, r.Name)
				case r.Health != "ok":
					bad = append(bad, fmt.Sprintf("%s: %s %s", r.Name, r.Health, r.LastError))
				}
			}
		}
		if len(bad) > 0 {
			t.Fatalf("rules failing: %v", bad)
		}
		if rules == 0 {
			t.Fatal("prometheus loaded no rules from deploy/prometheus/bwtracker-rules.yml")
		}
		if len(pending) == 0 {
			t.Logf("%d shipped rules evaluated, all healthy", rules)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules never evaluated: %v", pending)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (l lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// checkGuideQueries runs every line of the ```promql blocks of
// deploy/README.md (the fleet guide's central queries), as written, and
// requires each to return data.
func checkGuideQueries(t *testing.T, api promAPI) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.TrimSpace(line) == "```promql":
			in = true
		case in && strings.TrimSpace(line) == "```":
			in = false
		case in && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			qs = append(qs, strings.TrimSpace(line))
		}
	}
	if len(qs) == 0 {
		t.Fatal("deploy/README.md has no ```promql block")
	}
	for _, q := range qs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := api.query(q)
			if err == nil && len(v) > 0 && hasNumber(v) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("fleet guide query %s returned no data (err %v, %v)", q, err, v)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	t.Logf("%d fleet guide queries returned data", len(qs))
}
