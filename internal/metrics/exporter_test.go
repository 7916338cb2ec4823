package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// scrape GETs /metrics from a test server and parses the text format.
func scrape(t *testing.T, e *Exporter) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

type series struct {
	exe, service, container, dir, proto string
}

func bytesSeries(t *testing.T, fams map[string]*dto.MetricFamily) map[series]float64 {
	t.Helper()
	out := map[series]float64{}
	f := fams["bwtracker_bytes_total"]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		for _, forbidden := range []string{"pid", "remote", "remote_ip"} {
			if _, ok := l[forbidden]; ok {
				t.Fatalf("forbidden label %q", forbidden)
			}
		}
		s := series{l["exe"], l["service"], l["container"], l["direction"], l["protocol"]}
		if _, dup := out[s]; dup {
			t.Fatalf("duplicate series %+v", s)
		}
		out[s] = m.GetCounter().GetValue()
	}
	return out
}

func TestObserveExactValues(t *testing.T) {
	e := New(Options{NoRuntimeMetrics: true})
	e.Observe(t0, []Delta{
		{Comm: "curl", Exe: "/usr/bin/curl", Protocol: "tcp", TxBytes: 100, RxBytes: 123457},
		{Comm: "nginx", Exe: "/usr/sbin/nginx", Service: "nginx.service", Protocol: "tcp", TxBytes: 5000, RxBytes: 700},
		{Comm: "dig", Exe: "", Protocol: "udp", TxBytes: 40},
		{Comm: "app", Exe: "/app/server (deleted)", Container: "docker:3f4e5a6b7c8d", Protocol: "tcp", RxBytes: 9},
		{Comm: "envoy", Exe: "/usr/local/bin/envoy", Container: "containerd:0123456789ab", Namespace: "shop", Pod: "web-7c5ddbdf54-x7k2p",
			Workload: "deployment/web", Protocol: "tcp", TxBytes: 4321},
	})
	e.Observe(t0.Add(time.Second), []Delta{
		{Comm: "curl", Exe: "/usr/bin/curl", Protocol: "tcp", TxBytes: 1, RxBytes: 2},
		{Comm: "nginx", Exe: "/usr/sbin/nginx", Service: "nginx.service", Protocol: "tcp", TxBytes: 5},
	})

	// Exact text, as a Prometheus server would read it.
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	want := "# HELP bwtracker_bytes_total " + BytesHelp + `
# TYPE bwtracker_bytes_total counter
bwtracker_bytes_total{container="",direction="rx",exe="curl",namespace="",pod="",protocol="tcp",service="",workload=""} 123459
bwtracker_bytes_total{container="",direction="tx",exe="curl",namespace="",pod="",protocol="tcp",service="",workload=""} 101
bwtracker_bytes_total{container="",direction="rx",exe="nginx",namespace="",pod="",protocol="tcp",service="nginx.service",workload=""} 700
bwtracker_bytes_total{container="",direction="tx",exe="nginx",namespace="",pod="",protocol="tcp",service="nginx.service",workload=""} 5005
bwtracker_bytes_total{container="",direction="tx",exe="dig",namespace="",pod="",protocol="udp",service="",workload=""} 40
bwtracker_bytes_total{container="docker:3f4e5a6b7c8d",direction="rx",exe="server",namespace="",pod="",protocol="tcp",service="",workload=""} 9
bwtracker_bytes_total{container="containerd:0123456789ab",direction="tx",exe="envoy",namespace="shop",pod="web-7c5ddbdf54-x7k2p",protocol="tcp",service="",workload="deployment/web"} 4321
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "bwtracker_bytes_total"); err != nil {
		t.Fatal(err)
	}
}

func TestSelfMetrics(t *testing.T) {
	e := New(Options{NoRuntimeMetrics: true})
	e.SetDrops(map[string]uint64{"map_full": 3, "peer_unknown": 0})
	e.SetDrops(map[string]uint64{"map_full": 2}) // a lower value never lowers a counter
	e.SetMapUsage("flows", 120, 65536)
	e.ObserveDrain(3 * time.Millisecond)
	e.ObserveDBWrite(20*time.Millisecond, nil)
	e.ObserveDBWrite(40*time.Millisecond, errors.New("disk full"))
	e.SetDBSize(1 << 20)
	e.SetLastFlush(time.Unix(1700000000, 500_000_000))
	e.SetHook("fentry")
	e.SetHook("tracepoint") // only the last backend is reported
	e.SetBuildInfo("v1.2.3", "6.18.0")

	fams := scrape(t, e)
	get := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("%s missing", name)
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("%s%v missing", name, labels)
		return 0
	}
	checks := []struct {
		got, want float64
		what      string
	}{
		{get("bwtracker_drops_total", "cause", "map_full"), 3, "drops map_full"},
		{get("bwtracker_drops_total", "cause", "peer_unknown"), 0, "drops peer_unknown"},
		{get("bwtracker_map_entries", "map", "flows"), 120, "map entries"},
		{get("bwtracker_map_capacity", "map", "flows"), 65536, "map capacity"},
		{get("bwtracker_drain_duration_seconds"), 1, "drain count"},
		{get("bwtracker_db_write_duration_seconds"), 2, "db write count"},
		{get("bwtracker_db_write_errors_total"), 1, "db errors"},
		{get("bwtracker_db_size_bytes"), 1 << 20, "db size"},
		{get("bwtracker_last_flush_timestamp_seconds"), 1700000000.5, "last flush"},
		{get("bwtracker_hook_backend_info", "backend", "tracepoint"), 1, "hook"},
		{get("bwtracker_build_info", "version", "v1.2.3", "kernel", "6.18.0"), 1, "build info"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := len(fams["bwtracker_hook_backend_info"].GetMetric()); n != 1 {
		t.Errorf("%d hook backends exported, want 1", n)
	}
}

// TestCapWith500Names: 500 distinct executables, top 50 -> at most 51 exe
// series per (direction, protocol), and no byte lost or counted twice.
func TestCapWith500Names(t *testing.T) {
	e := New(Options{Top: 50, NoRuntimeMetrics: true})
	var total uint64
	demotedRounds := 0
	want := map[[2]string]uint64{} // (direction, protocol) -> bytes
	now := t0
	for round := 0; round < 20; round++ {
		var ds []Delta
		for i := 0; i < 500; i++ {
			proto := "tcp"
			if i%3 == 0 {
				proto = "udp"
			}
			// Skewed and shifting traffic so membership changes over the
			// rounds (demotions and promotions both happen).
			tx := uint64((i*7+round*131)%500 + 1)
			rx := uint64((i*13+round*17)%97 + (round%2)*i)
			ds = append(ds, Delta{Comm: fmt.Sprintf("proc%03d", i), Exe: fmt.Sprintf("/opt/bin/proc%03d", i),
				Protocol: proto, TxBytes: tx, RxBytes: rx})
			total += tx + rx
			want[[2]string{DirTx, proto}] += tx
			want[[2]string{DirRx, proto}] += rx
		}
		e.Observe(now, ds)
		now = now.Add(time.Second)

		got := bytesSeries(t, scrape(t, e))
		perGroup := map[[2]string]int{}
		sums := map[[2]string]float64{}
		var sum float64
		for s, v := range got {
			g := [2]string{s.dir, s.proto}
			perGroup[g]++
			sums[g] += v
			sum += v
		}
		for g, n := range perGroup {
			if n > 51 {
				t.Fatalf("round %d: %d series for %v, want <= 51", round, n, g)
			}
		}
		// Sum over exported series equals the total observed, except for
		// demoted sets whose frozen own-series values are not exported
		// (their bytes up to demotion are in the past of those series).
		frozen := e.frozenBytes()
		if frozen > 0 {
			demotedRounds++
		}
		if uint64(sum)+frozen != total {
			t.Fatalf("round %d: exported %v + frozen %d != observed %d", round, sum, frozen, total)
		}
		if round == 0 {
			// Nothing has been demoted yet: the exported sums are exact.
			for g, v := range want {
				if uint64(sums[g]) != v {
					t.Fatalf("round 0: %v exported %v, observed %d", g, sums[g], v)
				}
			}
		}
	}
	if demotedRounds == 0 {
		t.Fatal("the traffic pattern never demoted a label set; the test does not cover demotion")
	}
	if e.observedBytes() != total {
		t.Fatalf("observed %d, want %d", e.observedBytes(), total)
	}
}

// TestCapSteady: with steady traffic the top N are the busiest and the sum
// of the exported series is exactly what was observed.
func TestCapSteady(t *testing.T) {
	e := New(Options{Top: 50, NoRuntimeMetrics: true})
	var total uint64
	for round := 0; round < 5; round++ {
		var ds []Delta
		for i := 0; i < 500; i++ {
			ds = append(ds, Delta{Comm: fmt.Sprintf("p%03d", i), Protocol: "tcp", TxBytes: uint64(i + 1), RxBytes: uint64(2 * (i + 1))})
			total += uint64(3 * (i + 1))
		}
		e.Observe(t0.Add(time.Duration(round)*time.Second), ds)
	}
	got := bytesSeries(t, scrape(t, e))
	var sum float64
	exes := map[string]bool{}
	for s, v := range got {
		sum += v
		exes[s.exe] = true
	}
	if uint64(sum) != total {
		t.Fatalf("sum of series %v, observed %d", sum, total)
	}
	if len(exes) != 51 || !exes[OtherLabel] {
		t.Fatalf("%d exe values (other present: %v), want 50 + other", len(exes), exes[OtherLabel])
	}
	for i := 450; i < 500; i++ {
		if !exes[fmt.Sprintf("p%03d", i)] {
			t.Fatalf("p%03d (among the 50 busiest) has no own series", i)
		}
	}
	// other holds exactly the 450 quieter ones: 5 rounds x sum(1..450).
	wantOtherTx := float64(5 * 450 * 451 / 2)
	if v := got[series{OtherLabel, OtherLabel, OtherLabel, DirTx, "tcp"}]; v != wantOtherTx {
		t.Fatalf("other tx = %v, want %v", v, wantOtherTx)
	}
}

// TestDemotionKeepsCountersMonotonic: a demoted set's future bytes go to
// other, and when promoted again its series resumes from its old value.
func TestDemotionKeepsCountersMonotonic(t *testing.T) {
	e := New(Options{Top: 1, HalfLife: time.Second, Hysteresis: 1, NoRuntimeMetrics: true})
	a := Delta{Comm: "a", Protocol: "tcp", TxBytes: 1000}
	b := Delta{Comm: "b", Protocol: "tcp", TxBytes: 10}
	e.Observe(t0, []Delta{a, b})
	got := bytesSeries(t, scrape(t, e))
	if got[series{"a", "", "", DirTx, "tcp"}] != 1000 || got[series{OtherLabel, OtherLabel, OtherLabel, DirTx, "tcp"}] != 10 {
		t.Fatalf("round 1: %v", got)
	}
	// b becomes far busier: a is demoted, its bytes go to other.
	b.TxBytes, a.TxBytes = 100000, 5
	e.Observe(t0.Add(10*time.Second), []Delta{a, b})
	got = bytesSeries(t, scrape(t, e))
	if _, ok := got[series{"a", "", "", DirTx, "tcp"}]; ok {
		t.Fatalf("demoted a still exported: %v", got)
	}
	if got[series{"b", "", "", DirTx, "tcp"}] != 100000 || got[series{OtherLabel, OtherLabel, OtherLabel, DirTx, "tcp"}] != 15 {
		t.Fatalf("round 2: %v", got)
	}
	// a is busiest again: it comes back at 1000 (never lower), plus new bytes.
	a.TxBytes, b.TxBytes = 10000000, 1
	e.Observe(t0.Add(20*time.Second), []Delta{a, b})
	got = bytesSeries(t, scrape(t, e))
	if got[series{"a", "", "", DirTx, "tcp"}] != 1000+10000000 || got[series{OtherLabel, OtherLabel, OtherLabel, DirTx, "tcp"}] != 16 {
		t.Fatalf("round 3: %v", got)
	}
}

// TestHysteresis: a newcomer slightly busier than a member does not take
// its seat.
func TestHysteresis(t *testing.T) {
	e := New(Options{Top: 1, HalfLife: time.Hour, Hysteresis: 2, NoRuntimeMetrics: true})
	e.Observe(t0, []Delta{{Comm: "a", Protocol: "tcp", TxBytes: 100}})
	e.Observe(t0.Add(time.Second), []Delta{{Comm: "b", Protocol: "tcp", TxBytes: 150}})
	got := bytesSeries(t, scrape(t, e))
	if got[series{"a", "", "", DirTx, "tcp"}] != 100 || got[series{OtherLabel, OtherLabel, OtherLabel, DirTx, "tcp"}] != 150 {
		t.Fatalf("b displaced a within hysteresis: %v", got)
	}
}

func TestGracePeriodDrop(t *testing.T) {
	e := New(Options{Grace: 10 * time.Minute, NoRuntimeMetrics: true})
	e.Observe(t0, []Delta{
		{Comm: "shortlived", Protocol: "udp", TxBytes: 7},
		{Comm: "daemon", Protocol: "tcp", RxBytes: 11},
	})
	// daemon keeps moving bytes, shortlived is gone.
	for m := 1; m <= 9; m++ {
		e.Observe(t0.Add(time.Duration(m)*time.Minute), []Delta{{Comm: "daemon", Protocol: "tcp", RxBytes: 1}})
	}
	got := bytesSeries(t, scrape(t, e))
	if got[series{"shortlived", "", "", DirTx, "udp"}] != 7 {
		t.Fatalf("dropped before the grace period: %v", got)
	}
	e.Observe(t0.Add(10*time.Minute), []Delta{{Comm: "daemon", Protocol: "tcp", RxBytes: 1}})
	got = bytesSeries(t, scrape(t, e))
	if _, ok := got[series{"shortlived", "", "", DirTx, "udp"}]; ok {
		t.Fatalf("not dropped after the grace period: %v", got)
	}
	if got[series{"daemon", "", "", DirRx, "tcp"}] != 21 {
		t.Fatalf("daemon = %v, want 21", got[series{"daemon", "", "", DirRx, "tcp"}])
	}
	// An empty interval also ages label sets out.
	e.Observe(t0.Add(30*time.Minute), nil)
	if got = bytesSeries(t, scrape(t, e)); len(got) != 0 {
		t.Fatalf("idle sets not dropped: %v", got)
	}
}

func TestExeLabel(t *testing.T) {
	for _, tc := range []struct{ exe, comm, want string }{
		{"/usr/bin/curl", "curl", "curl"},
		{"", "kworker/0:1", "kworker/0:1"},
		{"/app/server (deleted)", "server", "server"},
		{"", "", "unknown"},
		{"/", "init", "init"},
		{"", "bad\xffname", "bad\uFFFDname"},
	} {
		if got := ExeLabel(tc.exe, tc.comm); got != tc.want {
			t.Errorf("ExeLabel(%q, %q) = %q, want %q", tc.exe, tc.comm, got, tc.want)
		}
	}
}

func TestHelpExplainsNoPID(t *testing.T) {
	for _, w := range []string{"no pid", "cardinality", "ebpf_exporter"} {
		if !strings.Contains(BytesHelp, w) {
			t.Errorf("help text does not mention %q", w)
		}
	}
}

func TestOtherNameCollision(t *testing.T) {
	e := New(Options{Top: 1, NoRuntimeMetrics: true})
	e.Observe(t0, []Delta{
		{Comm: "other", Service: "other", Container: "other", Protocol: "tcp", TxBytes: 5},
		{Comm: "x", Protocol: "tcp", TxBytes: 1},
	})
	got := bytesSeries(t, scrape(t, e)) // fails on a duplicate series
	if len(got) != 2 {
		t.Fatalf("%v", got)
	}
}

func TestConcurrentScrape(t *testing.T) {
	e := New(Options{Top: 5})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			e.Observe(t0.Add(time.Duration(i)*time.Second), []Delta{{Comm: fmt.Sprintf("p%d", i%20), Protocol: "tcp", TxBytes: uint64(i)}})
			e.SetDrops(map[string]uint64{"map_full": uint64(i)})
		}
	}()
	for i := 0; i < 20; i++ {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	<-done
}

// frozenBytes is what demoted label sets hold in their unexported series.
func (e *Exporter) frozenBytes() uint64 { return e.cap.Frozen() }

func (e *Exporter) observedBytes() uint64 { return e.cap.Observed() }
