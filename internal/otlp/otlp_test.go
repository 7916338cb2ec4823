package otlp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/metrics"
	"github.com/bwtracker/bwtracker/internal/otlp/otlptest"
)

// Ports of this package's tests (19520-19529).
const (
	portHTTP     = 19520
	portGRPC     = 19521
	portBacklog  = 19522
	portOverflow = 19523
	portCap      = 19524
)

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// run starts e.Run and returns a stop function that waits for it.
func run(t *testing.T, e *Exporter) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds; it fails with what() after 20s. It
// waits for an event, it does not time anything.
func waitFor(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// key names a point by its attributes, for comparisons.
func key(p otlptest.Point) string {
	var b strings.Builder
	for _, k := range []string{"process.executable.name", "process.executable.path", "service.name",
		"container.id", "k8s.pod.uid", "k8s.namespace.name", "k8s.pod.name", "k8s.container.name", "k8s.deployment.name",
		"network.transport", "network.io.direction"} {
		if v, ok := p.Attrs[k]; ok {
			fmt.Fprintf(&b, "%s=%s,", k, v)
		}
	}
	return b.String()
}

func lastValues(pts []otlptest.Point) map[string]int64 {
	out := map[string]int64{}
	for _, p := range pts {
		out[key(p)] = p.Value
	}
	return out
}

const ctrID = "3f4e5a6b7c8d9e0f3f4e5a6b7c8d9e0f3f4e5a6b7c8d9e0f3f4e5a6b7c8d9e0f"

var sample = []Delta{
	{Comm: "curl", Exe: "/usr/bin/curl", Service: "backup.service", Protocol: "tcp", TxBytes: 1000, RxBytes: 200},
	{Comm: "nginx", Exe: "/usr/sbin/nginx", ContainerID: ctrID, PodUID: "0c2b7a53-1d4e-4f55-9a61-1a2b3c4d5e6f",
		Namespace: "shop", Pod: "web-7c5ddbdf54-x7k2p", ContainerName: "nginx", WorkloadKind: "deployment", WorkloadName: "web", Protocol: "tcp", TxBytes: 5000},
	{Comm: "dig", Protocol: "udp", TxBytes: 40, RxBytes: 120},
}

// TestHTTPExportToCollectorReceiver: the Collector's own otlpreceiver gets
// process.network.io with the semantic-convention attributes, exact
// cumulative values, the resource, and the --otlp-header.
func TestHTTPExportToCollectorReceiver(t *testing.T) {
	rc := otlptest.Start(t, addr(portHTTP), false)
	e, err := New(context.Background(), Options{
		Endpoint: "http://" + addr(portHTTP), Interval: 50 * time.Millisecond,
		Headers: map[string]string{"Authorization": "Bearer s3cret"}, HostName: "node-7", Version: "v9",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(time.Unix(100, 0), sample)
	e.Observe(time.Unix(101, 0), []Delta{{Comm: "curl", Exe: "/usr/bin/curl", Service: "backup.service", Protocol: "tcp", TxBytes: 24}})
	stop := run(t, e)
	want := map[string]int64{
		"process.executable.name=curl,process.executable.path=/usr/bin/curl,service.name=backup.service,network.transport=tcp,network.io.direction=transmit,":                                                                                                                                                               1024,
		"process.executable.name=curl,process.executable.path=/usr/bin/curl,service.name=backup.service,network.transport=tcp,network.io.direction=receive,":                                                                                                                                                                200,
		"process.executable.name=nginx,process.executable.path=/usr/sbin/nginx,container.id=" + ctrID + ",k8s.pod.uid=0c2b7a53-1d4e-4f55-9a61-1a2b3c4d5e6f,k8s.namespace.name=shop,k8s.pod.name=web-7c5ddbdf54-x7k2p,k8s.container.name=nginx,k8s.deployment.name=web,network.transport=tcp,network.io.direction=transmit,": 5000,
		"process.executable.name=dig,network.transport=udp,network.io.direction=transmit,":                                                                                                                                                                                                                                  40,
		"process.executable.name=dig,network.transport=udp,network.io.direction=receive,":                                                                                                                                                                                                                                   120,
	}
	waitFor(t, func() string { return fmt.Sprintf("%v", lastValues(rc.Last())) },
		func() bool { return len(rc.Last()) == len(want) })
	stop()
	got := lastValues(rc.Last())
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	req := rc.Requests()[0]
	if a := req.Headers["authorization"]; len(a) != 1 || a[0] != "Bearer s3cret" {
		t.Errorf("authorization header at the receiver: %v", req.Headers)
	}
	p := req.Points[0]
	if p.Metric != MetricName || p.Unit != "By" || !p.Monotonic || p.Temporality != "Cumulative" {
		t.Errorf("point %+v: want %s, By, monotonic, cumulative", p, MetricName)
	}
	for k, v := range map[string]string{"host.name": "node-7", "service.name": "bwtracker", "service.version": "v9", "os.type": "linux"} {
		if p.Resource[k] != v {
			t.Errorf("resource %s = %q, want %q (%v)", k, p.Resource[k], v, p.Resource)
		}
	}
	if st := e.Status(); st.Exports == 0 || st.PointsSent == 0 || st.DroppedPoints != 0 || st.Temporality != TemporalityCumulative {
		t.Errorf("status %+v", st)
	}
}

// TestGRPCExport: the same over OTLP/gRPC.
func TestGRPCExport(t *testing.T) {
	rc := otlptest.Start(t, addr(portGRPC), true)
	e, err := New(context.Background(), Options{Endpoint: "http://" + addr(portGRPC), Protocol: ProtocolGRPC,
		Interval: 50 * time.Millisecond, Headers: map[string]string{"x-tenant": "blue"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(time.Unix(100, 0), sample[:1])
	run(t, e)
	waitFor(t, func() string { return fmt.Sprintf("%v", rc.Last()) }, func() bool { return len(rc.Last()) == 2 })
	got := lastValues(rc.Last())
	if got["process.executable.name=curl,process.executable.path=/usr/bin/curl,service.name=backup.service,network.transport=tcp,network.io.direction=transmit,"] != 1000 {
		t.Errorf("gRPC values %v", got)
	}
	if h := rc.Requests()[0].Headers["x-tenant"]; len(h) != 1 || h[0] != "blue" {
		t.Errorf("x-tenant header at the receiver: %v", rc.Requests()[0].Headers)
	}
}

// TestBacklogDeliversAfterOutage: with delta temporality every batch holds
// only its own interval's bytes, so the receiver must get every batch
// queued while it was down for the sums to add up exactly.
func TestBacklogDeliversAfterOutage(t *testing.T) {
	e, err := New(context.Background(), Options{Endpoint: "http://" + addr(portBacklog), Interval: 30 * time.Millisecond,
		Temporality: TemporalityDelta, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, e)
	var total int64
	// Receiver down: keep observing until several batches wait.
	for i := 0; e.Status().Backlog < 5 || e.Status().ExportErrors < 2; i++ {
		e.Observe(time.Unix(int64(100+i), 0), []Delta{{Comm: "curl", Exe: "/usr/bin/curl", Protocol: "tcp", TxBytes: uint64(1000 + i)}})
		total += int64(1000 + i)
		time.Sleep(10 * time.Millisecond)
		if i > 2000 {
			t.Fatalf("backlog never grew: %+v", e.Status())
		}
	}
	queued := e.Status()
	if queued.DroppedPoints != 0 || queued.LastError == "" {
		t.Fatalf("status while down: %+v", queued)
	}
	rc := otlptest.Start(t, addr(portBacklog), false)
	waitFor(t, func() string { return fmt.Sprintf("%+v", e.Status()) }, func() bool { return e.Status().Backlog == 0 })
	stop()
	var sum int64
	for _, p := range rc.Points() {
		if p.Temporality != "Delta" {
			t.Fatalf("point %+v is not delta", p)
		}
		sum += p.Value
	}
	if sum != total {
		t.Errorf("receiver got %d bytes in deltas, observed %d (backlog of %d batches while down)", sum, total, queued.Backlog)
	}
	st := e.Status()
	if st.DroppedPoints != 0 || st.PointsSent != uint64(len(rc.Points())) {
		t.Errorf("status %+v, receiver has %d points", st, len(rc.Points()))
	}
	t.Logf("%d batches queued during the outage, %d export errors, all %d bytes delivered in %d requests",
		queued.Backlog, st.ExportErrors, total, len(rc.Requests()))
}

// TestBacklogOverflowCounted: a full backlog drops the oldest batches and
// counts their points; Run returns on shutdown with the receiver still down.
func TestBacklogOverflowCounted(t *testing.T) {
	e, err := New(context.Background(), Options{Endpoint: "http://" + addr(portOverflow), Interval: 10 * time.Millisecond,
		Backlog: 3, MinBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(time.Unix(100, 0), sample)
	stop := run(t, e)
	waitFor(t, func() string { return fmt.Sprintf("%+v", e.Status()) }, func() bool { return e.Status().DroppedBatches >= 3 })
	st := e.Status()
	if st.Backlog > 3 || st.DroppedPoints != st.DroppedBatches*5 {
		t.Errorf("status %+v: backlog must stay <= 3 and each dropped batch holds 5 points", st)
	}
	stop()
	if st := e.Status(); st.Backlog != 0 || st.PointsSent != 0 {
		t.Errorf("after shutdown with the receiver down: %+v", st)
	}
}

// TestCardinalityCap: the metrics package's rule: Top groups with their own
// points, the rest in "other", and every byte in exactly one point.
func TestCardinalityCap(t *testing.T) {
	rc := otlptest.Start(t, addr(portCap), false)
	e, err := New(context.Background(), Options{Endpoint: "http://" + addr(portCap), Interval: 50 * time.Millisecond,
		Cap: metrics.CapOptions{Top: 3}})
	if err != nil {
		t.Fatal(err)
	}
	var deltas []Delta
	var total int64
	for i := 1; i <= 20; i++ {
		deltas = append(deltas, Delta{Comm: fmt.Sprintf("app%02d", i), Protocol: "tcp", TxBytes: uint64(i * 100)})
		total += int64(i * 100)
	}
	e.Observe(time.Unix(100, 0), deltas)
	run(t, e)
	waitFor(t, func() string { return fmt.Sprintf("%v", rc.Last()) }, func() bool { return len(rc.Last()) > 0 })
	got := lastValues(rc.Last())
	var sum int64
	for _, v := range got {
		sum += v
	}
	wantOther := total - 2000 - 1900 - 1800
	if len(got) != 4 || got["process.executable.name=other,network.transport=tcp,network.io.direction=transmit,"] != wantOther ||
		got["process.executable.name=app20,network.transport=tcp,network.io.direction=transmit,"] != 2000 || sum != total {
		t.Errorf("got %v: want app18..app20 and other=%d, sum %d", got, wantOther, total)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Endpoint: "collector:4318"},
		{Endpoint: "ftp://collector"},
		{Endpoint: "http://c:4318", Protocol: "http/json"},
		{Endpoint: "http://c:4318", Temporality: "sometimes"},
	} {
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	for _, h := range [][]string{{"novalue"}, {"=v"}, {"a b=c"}, {"k=v\nx"}} {
		if _, err := ParseHeaders(h); err == nil {
			t.Errorf("ParseHeaders(%q) accepted", h)
		}
	}
	m, err := ParseHeaders([]string{"Authorization=Bearer a=b", "x-k=v"})
	if err != nil || m["Authorization"] != "Bearer a=b" || m["x-k"] != "v" {
		t.Errorf("ParseHeaders: %v %v", m, err)
	}
	for in, want := range map[string]string{
		"http://c:4318":           "http://c:4318/v1/metrics",
		"https://c:4318/":         "https://c:4318/v1/metrics",
		"http://c:4318/otlp/v1/m": "http://c:4318/otlp/v1/m",
		"":                        "",
	} {
		if got, err := EndpointURL(in, ProtocolHTTP); err != nil || got != want {
			t.Errorf("EndpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
