// Package deploy holds no code: its tests validate the systemd unit, the
// install scripts, the Kubernetes manifests, the Grafana dashboard and the
// Prometheus example config and rules as far as this machine allows (no
// systemd as PID 1, no cluster, no Grafana).
//
// Tools used when present, skipped loudly when not (the tests install
// nothing): systemd-analyze (Debian systemd), shellcheck (Debian
// shellcheck), node + deploy/kubernetes/validate/node_modules (npm ci there).
// promtool (Debian prometheus) is required in CI (CI=true or
// BWTRACKER_WITH_TEST_DEPS=1): missing, those tests fail instead of skipping.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/bwtracker/bwtracker/internal/testenv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/bwtracker/bwtracker/internal/k8s"
	"github.com/bwtracker/bwtracker/internal/metrics"
)

const (
	unitPath      = "systemd/bwtracker.service"
	manifestPath  = "kubernetes/bwtracker.yaml"
	dashboardPath = "grafana/bwtracker-dashboard.json"
)

// ---------------------------------------------------------------- systemd

// unitFile parses a unit into section -> key -> values (repeated keys
// accumulate, as systemd does for list settings).
func unitFile(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	sec := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = line[1 : len(line)-1]
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, i+1, line)
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

func TestUnitHardening(t *testing.T) {
	u := unitFile(t, unitPath)
	svc := u["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	want := map[string]string{
		"ExecStart":               "/usr/local/bin/bwtracker run --db /var/lib/bwtracker/bwtracker.db",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"ReadWritePaths":          "/var/lib/bwtracker",
		"StateDirectory":          "bwtracker",
		"StateDirectoryMode":      "0700",
		"UMask":                   "0077",
		"ProtectKernelModules":    "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"Restart":                 "on-failure",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"CapabilityBoundingSet":   "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE",
		"AmbientCapabilities":     "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE",
		"ProtectControlGroups":    "yes",
		"ProtectKernelTunables":   "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictNamespaces":      "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"RestrictRealtime":        "yes",
		"TimeoutStopSec":          "30",
		"KillSignal":              "SIGTERM",
		"Type":                    "simple",
		"RestartSec":              "5",
	}
	for k, v := range want {
		got := svc[k]
		if len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	for k := range svc {
		if _, ok := want[k]; !ok {
			t.Errorf("[Service] %s is set but not checked by this test: add it to the table", k)
		}
	}
	// Capabilities the daemon must never hold in this unit.
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_DAC_OVERRIDE", "CAP_SYS_MODULE"} {
		if strings.Contains(svc["CapabilityBoundingSet"][0], c) {
			t.Errorf("bounding set holds %s", c)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}

// TestUnitSystemdAnalyzeVerify runs systemd-analyze verify on the unit in a
// scratch root that holds the unit, a stand-in binary at ExecStart's path and
// a copy of the host's systemd units (verify loads the default dependencies).
// Any warning about the unit fails the test, since verify exits 0 on unknown
// keys.
func TestUnitSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze (the unit cannot be verified)", "apt-get install systemd")
	}
	sysUnits := ""
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			sysUnits = d
			break
		}
	}
	if sysUnits == "" {
		testenv.Missing(t, "a systemd unit directory with sysinit.target", "apt-get install systemd")
	}
	root := t.TempDir()
	mustCopyDir(t, sysUnits, filepath.Join(root, "usr/lib/systemd/system"))
	bin := filepath.Join(root, "usr/local/bin/bwtracker")
	mustWrite(t, bin, "#!/bin/sh\nexit 0\n", 0o755)
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unitDst := filepath.Join(root, "etc/systemd/system/bwtracker.service")
	mustWrite(t, unitDst, string(unit), 0o644)

	cmd := exec.Command(sa, "verify", "--man=no", "--root="+root, unitDst)
	out, err := cmd.CombinedOutput()
	t.Logf("systemd-analyze verify: %s", bytes.TrimSpace(out))
	if err != nil {
		t.Fatalf("systemd-analyze verify failed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "bwtracker.service") {
			t.Errorf("systemd-analyze complains about the unit: %s", line)
		}
	}
}

// ---------------------------------------------------------------- scripts

func TestScriptsShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		testenv.Missing(t, "shellcheck (scripts cannot be linted)", "apt-get install shellcheck")
	}
	out, err := exec.Command(sc, "../scripts/install.sh", "../scripts/uninstall.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// TestInstallUninstall stages an install with DESTDIR and PREFIX and checks
// the files, modes and the rewritten ExecStart, then that uninstall keeps
// the database unless --purge.
func TestInstallUninstall(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("SKIPPED: no bash")
	}
	tmp := t.TempDir()
	stub := filepath.Join(tmp, "bwtracker-stub")
	mustWrite(t, stub, "#!/bin/sh\necho stub\n", 0o755)
	dest := filepath.Join(tmp, "root")
	env := append(os.Environ(), "DESTDIR="+dest, "PREFIX=/opt/bwt", "BWTRACKER_BIN="+stub)
	run := func(script string, args ...string) string {
		t.Helper()
		cmd := exec.Command("bash", append([]string{"../scripts/" + script}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, out)
		}
		return string(out)
	}
	run("install.sh")

	mode := func(p string) os.FileMode {
		t.Helper()
		st, err := os.Stat(filepath.Join(dest, p))
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode()
	}
	if m := mode("opt/bwt/bin/bwtracker"); m.Perm() != 0o755 {
		t.Errorf("binary mode %v", m)
	}
	if m := mode("etc/systemd/system/bwtracker.service"); m.Perm() != 0o644 {
		t.Errorf("unit mode %v", m)
	}
	if m := mode("var/lib/bwtracker"); !m.IsDir() || m.Perm() != 0o700 {
		t.Errorf("state dir mode %v, want drwx------", m)
	}
	u := unitFile(t, filepath.Join(dest, "etc/systemd/system/bwtracker.service"))
	if got := u["Service"]["ExecStart"]; len(got) != 1 || got[0] != "/opt/bwt/bin/bwtracker run --db /var/lib/bwtracker/bwtracker.db" {
		t.Errorf("ExecStart after PREFIX=/opt/bwt: %q", got)
	}

	db := filepath.Join(dest, "var/lib/bwtracker/bwtracker.db")
	mustWrite(t, db, "data", 0o600)
	out := run("uninstall.sh")
	if !strings.Contains(out, "kept") {
		t.Errorf("uninstall did not say it kept the DB:\n%s", out)
	}
	for _, p := range []string{"opt/bwt/bin/bwtracker", "etc/systemd/system/bwtracker.service"} {
		if _, err := os.Stat(filepath.Join(dest, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there after uninstall", p)
		}
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("uninstall without --purge removed the DB: %v", err)
	}
	run("uninstall.sh", "--purge")
	if _, err := os.Stat(filepath.Join(dest, "var/lib/bwtracker")); !os.IsNotExist(err) {
		t.Errorf("--purge kept the DB dir")
	}

	// Usage errors exit 2; a missing binary fails with a hint.
	cmd := exec.Command("bash", "../scripts/install.sh", "--bogus")
	cmd.Env = env
	if err := cmd.Run(); exitCode(err) != 2 {
		t.Errorf("install.sh --bogus: exit %d, want 2", exitCode(err))
	}
	cmd = exec.Command("bash", "../scripts/install.sh")
	cmd.Env = append(env, "BWTRACKER_BIN="+filepath.Join(tmp, "missing"))
	if out, err := cmd.CombinedOutput(); exitCode(err) != 1 || !strings.Contains(string(out), "make") {
		t.Errorf("install.sh without a binary: exit %d, %s", exitCode(err), out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// ------------------------------------------------------------- kubernetes

func manifests(t *testing.T) map[string]*yaml.Node {
	t.Helper()
	f, err := os.Open(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	out := map[string]*yaml.Node{}
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", manifestPath, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		var meta struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		if err := doc.Decode(&meta); err != nil {
			t.Fatal(err)
		}
		out[meta.Kind+"/"+meta.Metadata.Name] = doc.Content[0]
	}
	return out
}

// k8s types: only the fields this test asserts on. KnownFields catches a
// misspelt key among them.
type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	Args            []string `yaml:"args"`
	SecurityContext struct {
		Privileged               *bool `yaml:"privileged"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type daemonSet struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				HostPID     bool        `yaml:"hostPID"`
				HostNetwork bool        `yaml:"hostNetwork"`
				Containers  []container `yaml:"containers"`
				Volumes     []struct {
					Name     string `yaml:"name"`
					HostPath *struct {
						Path string `yaml:"path"`
					} `yaml:"hostPath"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestKubernetesManifestStructure(t *testing.T) {
	docs := manifests(t)
	for _, want := range []string{"Namespace/bwtracker", "ServiceAccount/bwtracker", "DaemonSet/bwtracker", "Service/bwtracker"} {
		if docs[want] == nil {
			t.Fatalf("%s missing from %s (have %v)", want, manifestPath, keys(docs))
		}
	}
	for name, n := range docs {
		var base struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		if err := n.Decode(&base); err != nil {
			t.Fatal(err)
		}
		if base.APIVersion == "" || base.Kind == "" || base.Metadata.Name == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required", name)
		}
		if base.Kind != "Namespace" && base.Metadata.Namespace != "bwtracker" {
			t.Errorf("%s: namespace %q, want bwtracker", name, base.Metadata.Namespace)
		}
	}

	var ds daemonSet
	if err := docs["DaemonSet/bwtracker"].Decode(&ds); err != nil {
		t.Fatal(err)
	}
	ps := ds.Spec.Template.Spec
	if !ps.HostPID {
		t.Error("DaemonSet needs hostPID: true")
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template labels", k, v)
		}
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem {
		t.Error("container must be privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true")
	}
	if strings.Join(sc.Capabilities.Drop, ",") != "ALL" {
		t.Errorf("capabilities.drop = %v, want [ALL]", sc.Capabilities.Drop)
	}
	add := append([]string(nil), sc.Capabilities.Add...)
	sort.Strings(add)
	if strings.Join(add, ",") != "BPF,NET_ADMIN,PERFMON,SYS_PTRACE" {
		t.Errorf("capabilities.add = %v, want BPF PERFMON NET_ADMIN SYS_PTRACE (same as the systemd unit)", add)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"run", "--listen 0.0.0.0:8080", "--auth-token-file /etc/bwtracker/auth/token", "--db /var/lib/bwtracker/bwtracker.db"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports = %+v, want 8080", c.Ports)
	}

	mounts := map[string]struct {
		path string
		ro   bool
	}{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = struct {
			path string
			ro   bool
		}{m.MountPath, m.ReadOnly}
	}
	vols := map[string]string{}
	secret := ""
	for _, v := range ps.Volumes {
		if v.HostPath != nil {
			vols[v.Name] = v.HostPath.Path
		}
		if v.Secret != nil {
			secret = v.Secret.SecretName
			vols[v.Name] = "secret:" + v.Secret.SecretName
		}
	}
	for _, w := range []struct {
		vol, host, mount string
		ro               bool
	}{
		{"cgroup", "/sys/fs/cgroup", "/sys/fs/cgroup", true},
		{"btf", "/sys/kernel/btf", "/sys/kernel/btf", true},
		// Kubernetes names (internal/k8s), at the paths its flags default to.
		{"pod-logs", k8s.DefaultPodLogRoot, k8s.DefaultPodLogRoot, true},
		{"container-logs", k8s.DefaultContainerLogRoot, k8s.DefaultContainerLogRoot, true},
		{"kubelet-pods", k8s.DefaultKubeletRoot + "/pods", k8s.DefaultKubeletRoot + "/pods", true},
		{"db", "/var/lib/bwtracker", "/var/lib/bwtracker", false},
		{"auth", "secret:bwtracker-auth", "/etc/bwtracker/auth", true},
	} {
		if vols[w.vol] != w.host {
			t.Errorf("volume %s = %q, want %q", w.vol, vols[w.vol], w.host)
		}
		m, ok := mounts[w.vol]
		if !ok || m.path != w.mount || m.ro != w.ro {
			t.Errorf("mount %s = %+v, want %s readOnly=%v", w.vol, m, w.mount, w.ro)
		}
	}
	if secret == "" {
		t.Error("no Secret volume for the auth token")
	}

	var svc struct {
		Metadata struct {
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	if err := docs["Service/bwtracker"].Decode(&svc); err != nil {
		t.Fatal(err)
	}
	a := svc.Metadata.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "8080" || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("Service scrape annotations = %v", a)
	}
	for k, v := range svc.Spec.Selector {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s selects no DaemonSet pod", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort != c.Ports[0].Name {
		t.Errorf("Service ports = %+v", svc.Spec.Ports)
	}
}

// TestKubernetesManifestSchema validates every document against the
// Kubernetes OpenAPI schemas bundled in the npm package kubernetes-models
// (run `npm ci` in deploy/kubernetes/validate first; .ci/run does).
func TestKubernetesManifestSchema(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node (manifests cannot be schema-checked)", "apt-get install nodejs npm")
	}
	if _, err := os.Stat("kubernetes/validate/node_modules/kubernetes-models"); err != nil {
		testenv.Missing(t, "the npm package kubernetes-models", "run `npm ci` in deploy/kubernetes/validate")
	}
	cmd := exec.Command(node, "validate.mjs", "../bwtracker.yaml")
	cmd.Dir = "kubernetes/validate"
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("schema check failed: %v", err)
	}
}

// ---------------------------------------------------------------- grafana

// exporterMetrics returns the metric names the exporter defines and the
// label names of each, by gathering from a real Exporter with every setter
// called once.
func exporterMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	e := metrics.New(metrics.Options{NoRuntimeMetrics: true})
	e.Observe(time.Unix(1, 0), []metrics.Delta{{Comm: "x", Protocol: "tcp", TxBytes: 1, RxBytes: 1}})
	e.SetDrops(map[string]uint64{"map_full": 1})
	e.SetMapUsage("flows", 1, 2)
	e.ObserveDrain(time.Millisecond)
	e.ObserveDBWrite(time.Millisecond, nil)
	e.SetDBSize(1)
	e.SetLastFlush(time.Unix(1, 0))
	e.SetHook("tracepoint")
	e.SetBuildInfo("v", "k")
	fams, err := e.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	add := func(name string, labels map[string]bool) { out[name] = labels }
	for _, f := range fams {
		labels := map[string]bool{"instance": true, "job": true}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		add(f.GetName(), labels)
		if f.GetType() == dto.MetricType_HISTOGRAM {
			hl := map[string]bool{"le": true}
			for k := range labels {
				hl[k] = true
			}
			add(f.GetName()+"_bucket", hl)
			add(f.GetName()+"_sum", labels)
			add(f.GetName()+"_count", labels)
		}
	}
	return out
}

var (
	metricRe   = regexp.MustCompile(`\b[a-zA-Z_:][a-zA-Z0-9_:]*\b`)
	byRe       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	selectorRe = regexp.MustCompile(`(bwtracker_[a-zA-Z0-9_]+)\s*\{([^}]*)\}`)
)

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatal("dashboard needs a title, a uid and panels")
	}
	known := exporterMetrics(t)

	var exprs []string
	ids := map[float64]bool{}
	titles := map[string]bool{}
	for _, raw := range dash.Panels {
		var p struct {
			ID      float64          `json:"id"`
			Type    string           `json:"type"`
			Title   string           `json:"title"`
			GridPos map[string]int   `json:"gridPos"`
			Targets []map[string]any `json:"targets"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if ids[p.ID] {
			t.Errorf("duplicate panel id %v", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.GridPos["w"] == 0 || p.GridPos["h"] == 0 {
			t.Errorf("panel %v: needs a title and a gridPos", p.ID)
		}
		titles[p.Title] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			e, _ := tg["expr"].(string)
			if e == "" {
				t.Errorf("panel %q: target without expr", p.Title)
			}
			exprs = append(exprs, e)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, _ := q["query"].(string); s != "" {
				exprs = append(exprs, s)
			}
		}
	}

	used := map[string]bool{}
	for _, e := range exprs {
		// Strip strings and Grafana variables/ranges before looking for names.
		bare := regexp.MustCompile(`"[^"]*"|\[[^\]]*\]|\$[a-zA-Z_]+`).ReplaceAllString(e, `""`)
		for _, name := range metricRe.FindAllString(bare, -1) {
			if !strings.HasPrefix(name, "bwtracker_") {
				continue
			}
			if known[name] == nil {
				t.Errorf("expr uses %s, which the exporter does not define: %s", name, e)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_total")] = true
		}
		// by (...) labels must exist on some metric of the expression.
		var exprLabels = map[string]bool{}
		for _, name := range metricRe.FindAllString(bare, -1) {
			for l := range known[name] {
				exprLabels[l] = true
			}
		}
		for _, m := range byRe.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !exprLabels[l] {
					t.Errorf("expr groups by %q, a label none of its metrics has: %s", l, e)
				}
			}
		}
		for _, m := range selectorRe.FindAllStringSubmatch(e, -1) {
			for _, lm := range matcherRe.FindAllStringSubmatch(m[2], -1) {
				if known[m[1]] != nil && !known[m[1]][lm[1]] {
					t.Errorf("%s has no label %q: %s", m[1], lm[1], e)
				}
			}
		}
		if strings.Contains(e, "pid") || strings.Contains(e, "remote") {
			t.Errorf("expr refers to pid/remote labels, which do not exist: %s", e)
		}
	}
	// The panels the issue asks for.
	if !used["bwtracker_bytes"] || !used["bwtracker_drops"] {
		t.Errorf("dashboard must chart bwtracker_bytes_total and bwtracker_drops_total (uses %v)", keys(used))
	}
	for _, want := range []string{"Top executables — upload", "Top executables — download", "Top services — upload",
		"Top services — download", "Top containers — upload", "Top containers — download",
		"Top workloads — upload", "Top workloads — download", "Drops by cause"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}

// ---------------------------------------------------------------- helpers

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustWrite(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// mustCopyDir copies a tree of directories, regular files and symlinks (not
// followed) into dst.
func mustCopyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
