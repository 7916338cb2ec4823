package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/store"
)

// matrixProc is one seeded process with everything a dimension or a filter
// can see of it.
type matrixProc struct {
	pk        store.ProcessKey
	exe       string
	uid       uint32
	cgroup    uint64
	service   string
	container string
	// Kubernetes names (cgroup 105 only).
	namespace, pod, workload string
	app                      string
	cgroupDir                string
}

const (
	matrixContainerID  = "3f4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"
	matrixContainerID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	matrixPodUID       = "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b"
)

var matrixProcs = []matrixProc{
	{store.ProcessKey{PID: 11, StartNS: 1, Comm: "curl"}, "/usr/bin/curl", 0, 101, "nginx.service", "", "", "", "", "curl", "/system.slice/nginx.service"},
	{store.ProcessKey{PID: 12, StartNS: 2, Comm: "wget"}, "/usr/bin/wget", 1000, 102, "", "docker:3f4e5a6b7c8d", "", "", "", "wget", "/system.slice/docker-" + matrixContainerID + ".scope"},
	{store.ProcessKey{PID: 13, StartNS: 3, Comm: "sshd"}, "/usr/sbin/sshd", 0, 103, "sshd.service", "", "", "", "", "sshd", "/system.slice/sshd.service"},
	{store.ProcessKey{PID: 14, StartNS: 4, Comm: "curl"}, "/opt/curl", 1000, 101, "nginx.service", "", "", "", "", "fetch.sh (bash)", "/system.slice/nginx.service"},
	{store.ProcessKey{PID: 15, StartNS: 5, Comm: "dig"}, "", 65534, 104, "", "", "", "", "", "", ""}, // cgroup never named; app from comm
	{store.ProcessKey{PID: 16, StartNS: 6, Comm: "envoy"}, "/usr/bin/envoy", 101, 105, "", "containerd:" + matrixContainerID2[:12],
		"shop", "web-7c5ddbdf54-x7k2p", "deployment/web", "envoy", matrixPodCgroup},
}

// matrixPodCgroup is cgroup 105's path.
var matrixPodCgroup = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(matrixPodUID, "-", "_") +
	".slice/cri-containerd-" + matrixContainerID2 + ".scope"

// matrixScope is the seeded store's scope classifier (fixed, so the host's
// own networks do not matter).
func matrixScope(ip string) string {
	switch ip {
	case "127.0.0.1":
		return "loopback"
	case "198.18.0.1":
		return "lan"
	case "":
		return "unknown"
	}
	return "internet"
}

// matrixNames are the DNS names seeded for remotes: name, domain (two
// names of one domain, one remote without a name).
var matrixNames = map[string][2]string{
	"198.18.0.1": {"www.example.com", "example.com"},
	"198.18.0.2": {"api.example.com", "example.com"},
}

type matrixRec struct {
	ts     time.Time
	p      matrixProc
	remote string
	proto  string
	tx, rx uint64
}

// fields is what a report row of dimension d shows of r (JSON names),
// without "user" (a name looked up on this machine; uid is compared).
func (r matrixRec) fields(d string) map[string]any {
	switch d {
	case store.DimProcess:
		return map[string]any{"pid": float64(r.p.pk.PID), "comm": r.p.pk.Comm, "exe": r.p.exe}
	case store.DimExe:
		return map[string]any{"exe": r.p.exe}
	case store.DimUser:
		return map[string]any{"uid": float64(r.p.uid)}
	case store.DimService:
		return map[string]any{"service": r.p.service}
	case store.DimContainer:
		return map[string]any{"container": r.p.container}
	case store.DimNamespace:
		return map[string]any{"namespace": r.p.namespace}
	case store.DimPod:
		return map[string]any{"pod": r.p.pod}
	case store.DimWorkload:
		return map[string]any{"workload": r.p.workload}
	case store.DimRemote:
		return map[string]any{"remote_ip": r.remote, "remote_name": matrixNames[r.remote][0]}
	case store.DimDomain:
		return map[string]any{"domain": matrixNames[r.remote][1]}
	case store.DimProtocol:
		return map[string]any{"protocol": r.proto}
	case store.DimPort:
		return map[string]any{"remote_port": float64(matrixPort(r.remote))}
	case store.DimNetNS:
		return map[string]any{"netns": float64(matrixNetNS(r.p))}
	case store.DimApp:
		app := r.p.app
		if app == "" {
			app = r.p.pk.Comm
		}
		return map[string]any{"app": app}
	case store.DimComm:
		return map[string]any{"comm": r.p.pk.Comm}
	case store.DimCgroup:
		return map[string]any{"cgroup": r.p.cgroupDir}
	case store.DimScope:
		return map[string]any{"scope": matrixScope(r.remote)}
	}
	panic(d)
}

// matrixPort is the one remote port of each remote, and matrixNetNS the
// one network namespace of each process, so rollup rows never mix them.
func matrixPort(remote string) uint16 {
	return map[string]uint16{"198.18.0.1": 443, "198.18.0.2": 53, "2001:db8::7": 8443}[remote]
}

func matrixNetNS(p matrixProc) uint32 { return 4026531000 + p.pk.PID%2 }

func groupKey(m map[string]any) string {
	var ks []string
	for k, v := range m {
		if k == "tx_bytes" || k == "rx_bytes" || k == "user" {
			continue
		}
		ks = append(ks, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

func (r matrixRec) key(by []string) string {
	m := map[string]any{}
	for _, d := range by {
		for k, v := range r.fields(d) {
			m[k] = v
		}
	}
	return groupKey(m)
}

type matrixFilter struct {
	name string
	args []string
	keep func(matrixRec) bool
}

var matrixFilters = []matrixFilter{
	{"none", nil, func(matrixRec) bool { return true }},
	{"pid", []string{"--pid", "12"}, func(r matrixRec) bool { return r.p.pk.PID == 12 }},
	{"comm", []string{"--comm", "curl"}, func(r matrixRec) bool { return r.p.pk.Comm == "curl" }},
	{"service", []string{"--service", "nginx.service"}, func(r matrixRec) bool { return r.p.service == "nginx.service" }},
	{"container", []string{"--container", "docker:3f4e5a6b7c8d"}, func(r matrixRec) bool { return r.p.cgroup == 102 }},
	{"container-id", []string{"--container", matrixContainerID}, func(r matrixRec) bool { return r.p.cgroup == 102 }},
	{"namespace", []string{"--namespace", "shop"}, func(r matrixRec) bool { return r.p.namespace == "shop" }},
	{"pod", []string{"--pod", "web-7c5ddbdf54-x7k2p"}, func(r matrixRec) bool { return r.p.pod != "" }},
	{"pod-uid", []string{"--pod", matrixPodUID}, func(r matrixRec) bool { return r.p.pod != "" }},
	{"comm+service", []string{"--comm", "curl", "--service", "nginx.service"}, func(r matrixRec) bool {
		return r.p.pk.Comm == "curl" && r.p.service == "nginx.service"
	}},
	{"port", []string{"--port", "53"}, func(r matrixRec) bool { return matrixPort(r.remote) == 53 }},
	{"netns+comm", []string{"--netns", "4026531001", "--comm", "curl"}, func(r matrixRec) bool {
		return matrixNetNS(r.p) == 4026531001 && r.p.pk.Comm == "curl"
	}},
	{"app", []string{"--app", "fetch.sh (bash)"}, func(r matrixRec) bool { return r.p.app == "fetch.sh (bash)" }},
	{"app-from-comm", []string{"--app", "dig"}, func(r matrixRec) bool { return r.p.pk.Comm == "dig" }},
	{"cgroup", []string{"--cgroup", "/system.slice/sshd.service"}, func(r matrixRec) bool { return r.p.cgroup == 103 }},
	{"scope", []string{"--scope", "internet"}, func(r matrixRec) bool { return matrixScope(r.remote) == "internet" }},
	{"app+scope", []string{"--app", "curl", "--scope", "loopback"}, func(r matrixRec) bool {
		return r.p.app == "curl" && matrixScope(r.remote) == "loopback"
	}},
}

// seedMatrix writes 40 days of flushes, rolls up and prunes like the
// daemon. Every flush is in the first quarter hour of its hour so that the
// hour tier's buckets fall in the same local day or month as their raw
// samples in any time zone (offsets are multiples of 15 minutes).
func seedMatrix(t *testing.T, db string, now time.Time) []matrixRec {
	st, err := store.Open(db, store.Options{Scope: matrixScope})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.PutCgroups(ctx, []cgroupinfo.Info{
		{ID: 101, Path: "/system.slice/nginx.service", Service: "nginx.service"},
		{ID: 102, Path: "/system.slice/docker-" + matrixContainerID + ".scope", ContainerID: matrixContainerID, Runtime: "docker"},
		{ID: 103, Path: "/system.slice/sshd.service", Service: "sshd.service"},
		{ID: 105, Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(matrixPodUID, "-", "_") +
			".slice/cri-containerd-" + matrixContainerID2 + ".scope", ContainerID: matrixContainerID2, Runtime: "containerd", PodUID: matrixPodUID,
			Namespace: "shop", Pod: "web-7c5ddbdf54-x7k2p", ContainerName: "envoy", WorkloadKind: "deployment", WorkloadName: "web"},
	}); err != nil {
		t.Fatal(err)
	}
	var names []store.NameRecord
	for ip, n := range matrixNames {
		names = append(names, store.NameRecord{NetNS: 1, IP: ip, Name: n[0], Domain: n[1], FirstSeen: now, LastSeen: now, Expires: now})
	}
	if err := st.PutNames(ctx, names); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	remotes := []string{"198.18.0.1", "198.18.0.2", "2001:db8::7", "127.0.0.1", ""}
	protos := []string{"tcp", "udp", "icmp"}
	var recs []matrixRec
	start := now.Add(-40 * 24 * time.Hour).Truncate(time.Hour)
	for h := start; h.Before(now); h = h.Add(time.Hour) {
		// Two flushes an hour over the last 3 hours (5-minute rows), one
		// before that.
		n := 1
		if now.Sub(h) < 3*time.Hour {
			n = 2
		}
		for i := 0; i < n; i++ {
			ts := h.Add(time.Duration(rng.IntN(15*60_000)) * time.Millisecond)
			if !ts.Before(now) {
				continue
			}
			var batch []store.Sample
			seen := map[string]bool{}
			for k := 1 + rng.IntN(4); k > 0; k-- {
				r := matrixRec{ts: ts, p: matrixProcs[rng.IntN(len(matrixProcs))], remote: remotes[rng.IntN(len(remotes))],
					proto: protos[rng.IntN(len(protos))], tx: 1 + uint64(rng.IntN(100000)), rx: uint64(rng.IntN(1000000))}
				fk := fmt.Sprint(r.p.pk, r.remote, r.proto)
				if seen[fk] {
					continue
				}
				seen[fk] = true
				recs = append(recs, r)
				batch = append(batch, store.Sample{ProcessKey: r.p.pk, Exe: r.p.exe, App: r.p.app, UID: r.p.uid, CgroupID: r.p.cgroup,
					RemoteIP: r.remote, RemotePort: matrixPort(r.remote), NetNS: matrixNetNS(r.p), Protocol: r.proto, TxBytes: r.tx, RxBytes: r.rx, TxCalls: 1, RxCalls: 1})
			}
			if err := st.Write(ctx, ts, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Maintain(ctx, now, store.DefaultRetention()); err != nil {
		t.Fatal(err)
	}
	return recs
}

// sums groups the records in [s, u) that keep selects.
func sums(recs []matrixRec, s, u time.Time, by []string, keep func(matrixRec) bool) map[string][2]uint64 {
	m := map[string][2]uint64{}
	for _, r := range recs {
		if r.ts.Before(s) || !r.ts.Before(u) || !keep(r) {
			continue
		}
		k := r.key(by)
		v := m[k]
		v[0] += r.tx
		v[1] += r.rx
		m[k] = v
	}
	return m
}

type matrixPeriod struct {
	Start time.Time      `json:"start"`
	End   time.Time      `json:"end"`
	Tx    uint64         `json:"tx_bytes"`
	Rx    uint64         `json:"rx_bytes"`
	Total uint64         `json:"total_bytes"`
	Top   map[string]any `json:"top"`
}

// Every report mode x every dimension x every filter over one seeded store:
// each cell must equal the sum of the raw records it covers.
func TestReportMatrix(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	now := time.Now()
	recs := seedMatrix(t, db, now)
	dims := append(store.Dimensions(), "process,remote,protocol", "service,container", "namespace,pod,workload", "app,scope", "app,comm,cgroup")
	modes := []struct {
		name  string
		args  []string
		since time.Duration
	}{
		{"totals", nil, 41 * 24 * time.Hour},
		{"totals-raw", nil, 3 * time.Hour},
		{"5min", []string{"--period", "5min"}, 3 * time.Hour},
		{"hour", []string{"--period", "hour"}, 3 * 24 * time.Hour},
		{"day", []string{"--daily"}, 41 * 24 * time.Hour},
		{"month", []string{"--period", "month"}, 41 * 24 * time.Hour},
		{"top-days", []string{"--top-days", "5"}, 41 * 24 * time.Hour},
	}
	cells := 0
	for _, m := range modes {
		for _, dim := range dims {
			by := splitList([]string{dim})
			for _, f := range matrixFilters {
				name := m.name + "/" + dim + "/" + f.name
				since := now.Add(-m.since).Truncate(time.Minute)
				args := append([]string{"report", "--db", db, "--format", "json", "--by", dim, "--since", since.Format(time.RFC3339)}, m.args...)
				args = append(args, f.args...)
				code, out, stderr := runCLI(args...)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", name, code, stderr)
				}
				cells++
				if m.name == "totals" || m.name == "totals-raw" {
					checkTotals(t, name, out, sums(recs, since, now.Add(time.Hour), by, f.keep))
					continue
				}
				var ps []matrixPeriod
				if err := json.Unmarshal([]byte(out), &ps); err != nil {
					t.Fatalf("%s: %v: %s", name, err, out)
				}
				var tx, rx uint64
				for _, p := range ps {
					checkPeriod(t, name, p, sums(recs, p.Start, p.End, by, f.keep))
					tx += p.Tx
					rx += p.Rx
				}
				if m.name == "top-days" {
					checkTopDays(t, name, ps, recs, since, now, by, f.keep)
					continue
				}
				// The periods cover the window: together they hold every
				// record from the first period's start on.
				var wtx, wrx uint64
				if len(ps) > 0 {
					for _, v := range sums(recs, ps[0].Start, now.Add(time.Hour), by, f.keep) {
						wtx += v[0]
						wrx += v[1]
					}
				}
				if tx != wtx || rx != wrx || (wtx > 0 && len(ps) == 0) {
					t.Fatalf("%s: periods sum to tx %d rx %d, want %d %d", name, tx, rx, wtx, wrx)
				}
			}
		}
	}
	t.Logf("%d cells checked over %d records", cells, len(recs))
}

func checkTotals(t *testing.T, name, out string, want map[string][2]uint64) {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%s: %v: %s", name, err, out)
	}
	if len(rows) != len(want) {
		t.Fatalf("%s: %d rows, want %d\n%s", name, len(rows), len(want), out)
	}
	for _, r := range rows {
		k := groupKey(r)
		w, ok := want[k]
		if !ok {
			t.Fatalf("%s: unexpected row %s", name, k)
		}
		if uint64(r["tx_bytes"].(float64)) != w[0] || uint64(r["rx_bytes"].(float64)) != w[1] {
			t.Fatalf("%s: %s = tx %v rx %v, want %d %d", name, k, r["tx_bytes"], r["rx_bytes"], w[0], w[1])
		}
	}
}

func checkPeriod(t *testing.T, name string, p matrixPeriod, want map[string][2]uint64) {
	t.Helper()
	var tx, rx uint64
	bestK, best := "", [2]uint64{}
	for k, v := range want {
		tx += v[0]
		rx += v[1]
		if v[0]+v[1] > best[0]+best[1] || (v[0]+v[1] == best[0]+best[1] && k < bestK) {
			bestK, best = k, v
		}
	}
	if p.Tx != tx || p.Rx != rx || p.Total != tx+rx {
		t.Fatalf("%s: period %s: tx %d rx %d total %d, want %d %d", name, p.Start, p.Tx, p.Rx, p.Total, tx, rx)
	}
	if tx+rx == 0 {
		t.Fatalf("%s: empty period %s listed", name, p.Start)
	}
	topTx, topRx := uint64(p.Top["tx_bytes"].(float64)), uint64(p.Top["rx_bytes"].(float64))
	if topTx != best[0] || topRx != best[1] {
		t.Fatalf("%s: period %s: top %v, want %s = %v", name, p.Start, p.Top, bestK, best)
	}
	// Ties in the top's total are broken by the store's order, not the
	// test's: only the sums are compared then.
	ties := 0
	for _, v := range want {
		if v[0]+v[1] == best[0]+best[1] {
			ties++
		}
	}
	if k := groupKey(p.Top); ties == 1 && k != bestK {
		t.Fatalf("%s: period %s: top is %s, want %s", name, p.Start, k, bestK)
	}
}

// checkTopDays: the listed days are the largest local days of the window,
// largest first.
func checkTopDays(t *testing.T, name string, ps []matrixPeriod, recs []matrixRec, since, now time.Time, by []string, keep func(matrixRec) bool) {
	t.Helper()
	var days []uint64
	y, mo, d := since.Local().Date()
	for day := time.Date(y, mo, d, 0, 0, 0, 0, time.Local); day.Before(now); day = day.AddDate(0, 0, 1) {
		var tot uint64
		for _, v := range sums(recs, day, day.AddDate(0, 0, 1), by, keep) {
			tot += v[0] + v[1]
		}
		if tot > 0 {
			days = append(days, tot)
		}
	}
	sort.Slice(days, func(i, j int) bool { return days[i] > days[j] })
	if len(days) > 5 {
		days = days[:5]
	}
	if len(ps) != len(days) {
		t.Fatalf("%s: %d days listed, want %d", name, len(ps), len(days))
	}
	for i, p := range ps {
		if p.Total != days[i] || p.End.Sub(p.Start) < 23*time.Hour {
			t.Fatalf("%s: day %d (%s..%s) total %d, want %d", name, i, p.Start, p.End, p.Total, days[i])
		}
	}
}
