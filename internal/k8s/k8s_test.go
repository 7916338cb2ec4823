package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

func TestWorkloadFromPodName(t *testing.T) {
	for _, tc := range []struct {
		pod  string
		want Workload
	}{
		{"web-7c5ddbdf54-x7k2p", Workload{Kind: KindDeployment, Name: "web", ReplicaSet: "web-7c5ddbdf54"}},
		{"coredns-5d78c9869d-8xbq4", Workload{Kind: KindDeployment, Name: "coredns", ReplicaSet: "coredns-5d78c9869d"}},
		{"my-api-server-6b9f8c4d5-qwz2x", Workload{Kind: KindDeployment, Name: "my-api-server", ReplicaSet: "my-api-server-6b9f8c4d5"}},
		{"backup-29383920-q8zl4", Workload{Kind: KindCronJob, Name: "backup", Job: "backup-29383920"}},
		{"work-3-h5k9z", Workload{Kind: KindJob, Name: "work"}},
		{"db-0", Workload{Kind: KindStatefulSet, Name: "db"}},
		{"redis-cluster-12", Workload{Kind: KindStatefulSet, Name: "redis-cluster"}},
		{"kube-proxy-x7k2p", Workload{Name: "kube-proxy"}},
		{"calico-node-4bz9w", Workload{Name: "calico-node"}},
		{"nginx", Workload{}},
		{"kube-apiserver-node1", Workload{}},
		{"web-01", Workload{}},               // leading zero: not an ordinal
		{"web-x7k2a", Workload{}},            // 'a' is not in the random alphabet
		{"-x7k2p", Workload{}},               // no base
		{"a-b-x7k2p", Workload{Name: "a-b"}}, // "b" is too short for a hash
	} {
		if got := WorkloadFromPodName(tc.pod); got != tc.want {
			t.Errorf("WorkloadFromPodName(%q) = %+v, want %+v", tc.pod, got, tc.want)
		}
	}
	if s := (Workload{Kind: KindDeployment, Name: "web"}).String(); s != "deployment/web" {
		t.Errorf("String = %q", s)
	}
	if s := (Workload{Name: "kube-proxy"}).String(); s != "kube-proxy" {
		t.Errorf("String = %q", s)
	}
	if s := (Workload{}).String(); s != "" {
		t.Errorf("String = %q", s)
	}
}

func TestParseNames(t *testing.T) {
	ns, pod, uid, ok := parsePodLogDir("default_web-7c5ddbdf54-x7k2p_6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b")
	if !ok || ns != "default" || pod != "web-7c5ddbdf54-x7k2p" || uid != "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b" {
		t.Errorf("parsePodLogDir = %q %q %q %v", ns, pod, uid, ok)
	}
	for _, bad := range []string{"default_web", "a_b_c_d", "Default_web_6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b", "default_web_notauid"} {
		if _, _, _, ok := parsePodLogDir(bad); ok {
			t.Errorf("parsePodLogDir(%q) accepted", bad)
		}
	}
	id := strings.Repeat("ab", 32)
	p, n, c, gotID, ok := parseContainerLog("web-0_prod_istio-proxy-" + id + ".log")
	if !ok || p != "web-0" || n != "prod" || c != "istio-proxy" || gotID != id {
		t.Errorf("parseContainerLog = %q %q %q %q %v", p, n, c, gotID, ok)
	}
	for _, bad := range []string{"web-0_prod_app-" + id, "web-0_prod_app.log", "web-0_prod_app-xyz.log", "x_y.log"} {
		if _, _, _, _, ok := parseContainerLog(bad); ok {
			t.Errorf("parseContainerLog(%q) accepted", bad)
		}
	}
}

func TestHostsName(t *testing.T) {
	managed := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.1.5\tweb-7c5ddbdf54-x7k2p\n\n# Entries added by HostAliases.\n1.2.3.4\tfoo.local\n"
	if got := hostsName([]byte(managed)); got != "web-7c5ddbdf54-x7k2p" {
		t.Errorf("hostsName = %q", got)
	}
	sub := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.244.1.6\tdb-0.db.prod.svc.cluster.local\tdb-0\n"
	if got := hostsName([]byte(sub)); got != "db-0" {
		t.Errorf("hostsName (subdomain) = %q", got)
	}
	if got := hostsName([]byte("# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n10.0.0.1 node1\n")); got != "" {
		t.Errorf("host network hosts = %q, want empty", got)
	}
	if got := hostsName([]byte("127.0.0.1 localhost\n10.0.0.1 node1\n")); got != "" {
		t.Errorf("unmanaged hosts = %q, want empty", got)
	}
}

// fakeNode is a node layout as the kubelet writes it.
type fakeNode struct {
	t                          *testing.T
	kubelet, podLogs, contLogs string
}

func newFakeNode(t *testing.T) *fakeNode {
	d := t.TempDir()
	n := &fakeNode{t, filepath.Join(d, "kubelet"), filepath.Join(d, "pods"), filepath.Join(d, "containers")}
	for _, p := range []string{n.kubelet, n.podLogs, n.contLogs} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *fakeNode) mkdir(p string) {
	if err := os.MkdirAll(p, 0o755); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) write(p, s string) {
	n.mkdir(filepath.Dir(p))
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// pod lays out a pod with log dirs, symlinks and a kubelet pod dir.
func (n *fakeNode) pod(ns, name, uid string, containers map[string]string) {
	dir := filepath.Join(n.podLogs, ns+"_"+name+"_"+uid)
	for cname, id := range containers {
		n.write(filepath.Join(dir, cname, "0.log"), "")
		if id != "" {
			if err := os.Symlink(filepath.Join(dir, cname, "0.log"), filepath.Join(n.contLogs, name+"_"+ns+"_"+cname+"-"+id+".log")); err != nil {
				n.t.Fatal(err)
			}
		}
		n.mkdir(filepath.Join(n.kubelet, "pods", uid, "containers", cname))
	}
	n.write(filepath.Join(n.kubelet, "pods", uid, "etc-hosts"), "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.1.2.3\t"+name+"\n")
	n.write(filepath.Join(n.kubelet, "pods", uid, "volumes", "kubernetes.io~projected", "kube-api-access-x7k2p", "namespace"), ns)
}

func (n *fakeNode) resolver(now *time.Time) *Resolver {
	return New(Options{KubeletRoot: n.kubelet, PodLogRoot: n.podLogs, ContainerLogRoot: n.contLogs, Now: func() time.Time { return *now }})
}

const (
	uidA = "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b"
	uidB = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	uidC = "11111111-2222-4333-8444-555555555555"
)

var (
	idApp   = strings.Repeat("a1", 32)
	idProxy = strings.Repeat("b2", 32)
	idDB    = strings.Repeat("c3", 32)
)

func TestResolverFromLogDirs(t *testing.T) {
	n := newFakeNode(t)
	n.pod("shop", "web-7c5ddbdf54-x7k2p", uidA, map[string]string{"app": idApp, "istio-proxy": idProxy, "init-db": ""})
	n.pod("prod", "db-0", uidB, map[string]string{"postgres": idDB})
	now := time.Unix(1000, 0)
	r := n.resolver(&now)

	got, ok := r.Lookup(uidA, idProxy)
	want := Names{Namespace: "shop", Pod: "web-7c5ddbdf54-x7k2p", Container: "istio-proxy",
		Workload: Workload{Kind: KindDeployment, Name: "web", ReplicaSet: "web-7c5ddbdf54"}}
	if !ok || got != want {
		t.Errorf("Lookup(A, proxy) = %+v, %v; want %+v", got, ok, want)
	}
	if got, _ := r.Lookup(uidA, idApp); got.Container != "app" {
		t.Errorf("container = %q, want app", got.Container)
	}
	// Pod-level cgroup (no container id): names the pod, not a container
	// (it has three).
	if got, ok := r.Lookup(uidA, ""); !ok || got.Container != "" || got.Pod != "web-7c5ddbdf54-x7k2p" {
		t.Errorf("Lookup(A, \"\") = %+v, %v", got, ok)
	}
	// One container: named without the id.
	if got, ok := r.Lookup(uidB, ""); !ok || got.Container != "postgres" || got.Workload.String() != "statefulset/db" {
		t.Errorf("Lookup(B) = %+v, %v", got, ok)
	}
	if s := r.Scans(); s != 1 {
		t.Errorf("%d scans, want 1 (all known after the first)", s)
	}

	// A new pod appears: the next miss after RescanEvery finds it; one
	// within RescanEvery does not read the directories again.
	n.pod("batch", "backup-29383920-q8zl4", uidC, map[string]string{"backup": strings.Repeat("d4", 32)})
	if _, ok := r.Lookup(uidC, ""); ok {
		t.Error("found a new pod without a rescan")
	}
	if s := r.Scans(); s != 1 {
		t.Errorf("%d scans, want 1 (rate limited)", s)
	}
	now = now.Add(DefaultRescanEvery)
	got, ok = r.Lookup(uidC, "")
	if !ok || got.Namespace != "batch" || got.Workload.String() != "cronjob/backup" || got.Container != "backup" {
		t.Errorf("Lookup(C) = %+v, %v", got, ok)
	}

	// The pod is deleted: still named (traffic counted before it went).
	if err := os.RemoveAll(filepath.Join(n.podLogs, "prod_db-0_"+uidB)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(n.kubelet, "pods", uidB))
	now = now.Add(DefaultRescanEvery)
	r.Rescan()
	if got, ok := r.Lookup(uidB, idDB); !ok || got.Pod != "db-0" || got.Container != "postgres" {
		t.Errorf("deleted pod: %+v, %v", got, ok)
	}
}

// A container that has no log link (a sandbox's pause container) is not
// looked for again within MissTTL, so it does not cost a reading every
// RescanEvery.
func TestResolverMissTTL(t *testing.T) {
	n := newFakeNode(t)
	n.pod("shop", "web-7c5ddbdf54-x7k2p", uidA, map[string]string{"app": idApp, "istio-proxy": idProxy})
	now := time.Unix(1000, 0)
	r := n.resolver(&now)
	pause := strings.Repeat("e5", 32)
	if got, ok := r.Lookup(uidA, pause); !ok || got.Pod != "web-7c5ddbdf54-x7k2p" || got.Container != "" {
		t.Errorf("Lookup(pause) = %+v, %v", got, ok)
	}
	now = now.Add(DefaultRescanEvery)
	r.Lookup(uidA, pause)
	r.Lookup("99999999-2222-4333-8444-555555555555", "")
	if s := r.Scans(); s != 2 {
		t.Errorf("%d scans, want 2 (the pause miss is remembered; the unknown pod is new)", s)
	}
	now = now.Add(DefaultRescanEvery)
	r.Lookup("99999999-2222-4333-8444-555555555555", "")
	if s := r.Scans(); s != 2 {
		t.Errorf("%d scans, want 2 (unknown pod remembered)", s)
	}
	now = now.Add(DefaultMissTTL)
	r.Lookup(uidA, pause)
	if s := r.Scans(); s != 3 {
		t.Errorf("%d scans, want 3 (miss expired)", s)
	}
}

func TestResolverKubeletFallback(t *testing.T) {
	n := newFakeNode(t)
	n.pod("shop", "web-7c5ddbdf54-x7k2p", uidA, map[string]string{"app": idApp})
	// Only the kubelet's directory is left (e.g. the DaemonSet does not
	// mount /var/log).
	os.RemoveAll(n.podLogs)
	os.RemoveAll(n.contLogs)
	now := time.Unix(1000, 0)
	r := n.resolver(&now)
	got, ok := r.Lookup(uidA, idApp)
	want := Names{Namespace: "shop", Pod: "web-7c5ddbdf54-x7k2p", Container: "app",
		Workload: Workload{Kind: KindDeployment, Name: "web", ReplicaSet: "web-7c5ddbdf54"}}
	if !ok || got != want {
		t.Errorf("Lookup = %+v, %v; want %+v", got, ok, want)
	}
	// Nothing at all: unknown, no error.
	r2 := New(Options{KubeletRoot: "-", PodLogRoot: filepath.Join(t.TempDir(), "none"), ContainerLogRoot: "-"})
	if _, ok := r2.Lookup(uidA, ""); ok {
		t.Error("found a pod on an empty node")
	}
}

func TestResolverBound(t *testing.T) {
	n := newFakeNode(t)
	now := time.Unix(1000, 0)
	r := New(Options{KubeletRoot: "-", PodLogRoot: n.podLogs, ContainerLogRoot: n.contLogs, MaxPods: 3, RescanEvery: -1, Now: func() time.Time { return now }})
	uids := []string{
		"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
		"00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004",
		"00000000-0000-4000-8000-000000000005",
	}
	for i, uid := range uids {
		// Pods come and go: only the newest is on disk at each scan.
		os.RemoveAll(n.podLogs)
		n.pod("ns", "p-"+string(rune('a'+i)), uid, map[string]string{"c": ""})
		if _, ok := r.Lookup(uid, ""); !ok {
			t.Fatalf("pod %d not found", i)
		}
	}
	if l := r.Len(); l != 3 {
		t.Errorf("%d pods remembered, want MaxPods=3", l)
	}
	if _, ok := r.Lookup(uids[4], ""); !ok {
		t.Error("newest pod forgotten")
	}
}

func TestDescribe(t *testing.T) {
	n := newFakeNode(t)
	n.pod("shop", "web-7c5ddbdf54-x7k2p", uidA, map[string]string{"app": idApp, "istio-proxy": idProxy})
	n.pod("prod", "db-0", uidB, map[string]string{"postgres": idDB})
	got := New(Options{KubeletRoot: n.kubelet, PodLogRoot: n.podLogs, ContainerLogRoot: "-"}).Describe()
	want := n.podLogs + ": 2 pods; " + filepath.Join(n.kubelet, "pods") + ": 2 pod directories"
	if got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	got = New(Options{KubeletRoot: "-", PodLogRoot: filepath.Join(n.podLogs, "nope"), ContainerLogRoot: n.contLogs}).Describe()
	want = filepath.Join(n.podLogs, "nope") + ": absent; " + n.contLogs + ": 3 container links"
	if got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

type fakeCgroups map[uint64]cgroupinfo.Info

func (f fakeCgroups) ResolveMany(ids []uint64) map[uint64]cgroupinfo.Info {
	out := map[uint64]cgroupinfo.Info{}
	for _, id := range ids {
		if in, ok := f[id]; ok {
			out[id] = in
		}
	}
	return out
}

func TestCgroupsEnrich(t *testing.T) {
	n := newFakeNode(t)
	n.pod("shop", "web-7c5ddbdf54-x7k2p", uidA, map[string]string{"app": idApp, "istio-proxy": idProxy})
	sysd := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uidA, "-", "_") + ".slice/cri-containerd-" + idApp + ".scope"
	cgfs := "/kubepods/burstable/pod" + uidA + "/" + idProxy
	inner := fakeCgroups{1: cgroupinfo.Parse(sysd), 2: cgroupinfo.Parse(cgfs), 3: cgroupinfo.Parse("/system.slice/nginx.service")}
	now := time.Unix(1000, 0)
	c := Cgroups{Inner: inner, K8s: n.resolver(&now)}
	got := c.ResolveMany([]uint64{1, 2, 3, 4})
	if len(got) != 3 {
		t.Fatalf("%d infos, want 3", len(got))
	}
	for id, wantC := range map[uint64]string{1: "app", 2: "istio-proxy"} {
		in := got[id]
		if in.Namespace != "shop" || in.Pod != "web-7c5ddbdf54-x7k2p" || in.ContainerName != wantC || in.Workload() != "deployment/web" {
			t.Errorf("id %d: %+v", id, in)
		}
	}
	if in := got[3]; in.Namespace != "" || in.Pod != "" || in.Service != "nginx.service" {
		t.Errorf("non-pod cgroup changed: %+v", in)
	}
}

// BenchmarkRescan reads a node of 110 pods with 3 containers each.
func BenchmarkRescan(b *testing.B) {
	d := b.TempDir()
	n := &fakeNode{nil, filepath.Join(d, "kubelet"), filepath.Join(d, "pods"), filepath.Join(d, "containers")}
	os.MkdirAll(n.contLogs, 0o755)
	for i := 0; i < 110; i++ {
		uid := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		cs := map[string]string{}
		for j := 0; j < 3; j++ {
			cs[string(rune('a'+j))] = strings.Repeat(string("0123456789abcdef"[j]), 48) + uid[:8] + strings.Repeat("0", 8)
		}
		dir := filepath.Join(n.podLogs, "ns_pod-"+uid[:8]+"_"+uid)
		for cname, id := range cs {
			os.MkdirAll(filepath.Join(dir, cname), 0o755)
			os.Symlink(filepath.Join(dir, cname, "0.log"), filepath.Join(n.contLogs, "pod-"+uid[:8]+"_ns_"+cname+"-"+id+".log"))
		}
	}
	r := New(Options{KubeletRoot: "-", PodLogRoot: n.podLogs, ContainerLogRoot: n.contLogs})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Rescan()
	}
	b.StopTimer()
	if r.Len() != 110 {
		b.Fatalf("%d pods, want 110", r.Len())
	}
}
