package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/otlp/otlptest"
)

const (
	otlpReceiverPort = 19530
	otlpDaemonPort   = 19531
)

// TestOTLPEndToEnd: the daemon exports over OTLP/HTTP to the OpenTelemetry
// Collector's own otlpreceiver built into the test. Two children with their
// own executable names (a sender in a service cgroup, a receiver in a
// docker scope) move known bytes; the receiver must get exactly those bytes
// under process.network.io with the semantic-convention attributes, and
// after an outage of the receiver the daemon's backlog must deliver the
// batches collected meanwhile.
func TestOTLPEndToEnd(t *testing.T) {
	bwtrackerBin(t)
	root, err := cgroupinfo.Cgroup2Mount()
	if err != nil {
		t.Fatalf("no cgroup v2: %v", err)
	}
	tmp := t.TempDir()
	os.Chmod(tmp, 0o755)
	tag := randHex(2)
	rc := otlptest.Start(t, fmt.Sprintf("127.0.0.1:%d", otlpReceiverPort), false)
	listen := fmt.Sprintf("127.0.0.1:%d", otlpDaemonPort)
	d := startDaemon(t, "100ms", "--listen", listen,
		"--otlp-endpoint", fmt.Sprintf("http://127.0.0.1:%d", otlpReceiverPort),
		"--otlp-interval", "200ms", "--otlp-header", "Authorization=Bearer otlp-"+tag)

	slice := filepath.Join(root, "bwtotlp.slice")
	svcName := "bwtotlp-" + tag + ".service"
	svcDir := filepath.Join(slice, svcName)
	cid := randHex(32)
	ctrDir := filepath.Join(slice, "docker-"+cid+".scope")
	for _, dir := range []string{svcDir, ctrDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Remove(svcDir); os.Remove(ctrDir); os.Remove(slice) })

	txName, rxName := "bwtotlp-tx-"+tag, "bwtotlp-rx-"+tag
	txPath := namedBinary(t, tmp, txName)
	snk := startNamedChild(t, namedBinary(t, tmp, rxName), "sink")
	port := snk.waitReady()
	moveToCgroup(t, ctrDir, snk.pid())
	snd := startNamedChild(t, txPath, "paced-send", "127.0.0.1:"+port)
	snd.waitReady()
	moveToCgroup(t, svcDir, snd.pid())
	io.WriteString(snd.stdin, "go\n")

	find := func(pts []otlptest.Point, exe, dir string) (otlptest.Point, bool) {
		for i := len(pts) - 1; i >= 0; i-- {
			p := pts[i]
			if p.Metric == "process.network.io" && p.Attrs["process.executable.name"] == exe && p.Attrs["network.io.direction"] == dir {
				return p, true
			}
		}
		return otlptest.Point{}, false
	}
	waitUntil(t, "the sender's bytes reach the receiver", func() bool {
		p, ok := find(rc.Points(), txName, "transmit")
		return ok && p.Value > 0
	})

	// Outage: the receiver goes away while the child keeps sending.
	rc.Stop()
	outageStart := time.Now()
	waitUntil(t, "exports fail and batches queue up", func() bool {
		st := otlpStatus(t, listen)
		return st.ExportErrors > 0 && st.Backlog >= 3
	})
	io.WriteString(snd.stdin, "stop\n")
	sent := snd.wait()
	got := snk.wait()
	if sent.TX == 0 || got.RX != sent.TX || sent.RX != greeting || got.TX != greeting {
		t.Fatalf("children: sender tx %d rx %d, receiver tx %d rx %d", sent.TX, sent.RX, got.TX, got.RX)
	}
	time.Sleep(500 * time.Millisecond) // a few more batches with the final counts
	queued := otlpStatus(t, listen)
	outageEnd := time.Now()
	before := len(rc.Requests())
	rc.Restart()
	waitUntil(t, "the backlog is delivered", func() bool { return otlpStatus(t, listen).Backlog == 0 })

	pts := rc.Points()
	var duringOutage int
	for _, p := range pts {
		if p.Attrs["process.executable.name"] == txName && p.Time.After(outageStart) && p.Time.Before(outageEnd) {
			duringOutage++
		}
	}
	if duringOutage < 2 {
		t.Errorf("only %d points of %s stamped during the outage arrived: the backlog was not delivered", duringOutage, txName)
	}
	after := len(rc.Requests()) - before
	t.Logf("outage %.1fs: %d batches queued, %d export errors; after restart %d requests delivered %d points from the outage",
		outageEnd.Sub(outageStart).Seconds(), queued.Backlog, queued.ExportErrors, after, duringOutage)

	// Exact bytes and attributes (cumulative: the last point is the total).
	check := func(exe, dir string, want uint64, attrs map[string]string) {
		t.Helper()
		var p otlptest.Point
		waitUntil(t, fmt.Sprintf("%s %s = %d", exe, dir, want), func() bool {
			var ok bool
			p, ok = find(rc.Points(), exe, dir)
			return ok && p.Value == int64(want)
		})
		if p.Unit != "By" || !p.Monotonic || p.Temporality != "Cumulative" {
			t.Errorf("%s: unit %q monotonic %v temporality %s", exe, p.Unit, p.Monotonic, p.Temporality)
		}
		for k, v := range attrs {
			if p.Attrs[k] != v {
				t.Errorf("%s %s: attribute %s = %q, want %q (all: %v)", exe, dir, k, p.Attrs[k], v, p.Attrs)
			}
		}
		for _, k := range []string{"pid", "process.pid", "network.peer.address"} {
			if _, ok := p.Attrs[k]; ok {
				t.Errorf("%s: unbounded attribute %s exported", exe, k)
			}
		}
		host, _ := os.Hostname()
		if p.Resource["service.name"] != "bwtracker" || p.Resource["host.name"] != host {
			t.Errorf("resource %v: want service.name=bwtracker host.name=%s", p.Resource, host)
		}
	}
	check(txName, "transmit", sent.TX, map[string]string{
		"process.executable.path": txPath, "service.name": svcName, "network.transport": "tcp"})
	check(txName, "receive", sent.RX, map[string]string{"service.name": svcName})
	check(rxName, "receive", got.RX, map[string]string{
		"container.id": cid, "network.transport": "tcp", "process.executable.path": filepath.Join(tmp, rxName)})
	check(rxName, "transmit", got.TX, map[string]string{"container.id": cid})
	if p, _ := find(rc.Points(), txName, "transmit"); p.Attrs["container.id"] != "" {
		t.Errorf("sender has a container.id: %v", p.Attrs)
	}
	for _, r := range rc.Requests() {
		if a := r.Headers["authorization"]; len(a) != 1 || a[0] != "Bearer otlp-"+tag {
			t.Fatalf("--otlp-header did not arrive: %v", r.Headers)
		}
	}
	t.Logf("receiver has exactly %d bytes transmit for %s and receive for %s", sent.TX, txName, rxName)

	// The self metrics count what failed.
	req, _ := http.NewRequest("GET", "http://"+listen+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"bwtracker_otlp_exports_total", "bwtracker_otlp_export_errors_total", "bwtracker_otlp_dropped_points_total 0", "bwtracker_otlp_backlog_batches"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	d.stop()
}

type otlpState struct {
	Exports       uint64 `json:"exports"`
	ExportErrors  uint64 `json:"export_errors"`
	DroppedPoints uint64 `json:"dropped_points"`
	Backlog       int    `json:"backlog_batches"`
}

func otlpStatus(t *testing.T, listen string) otlpState {
	t.Helper()
	resp, err := http.Get("http://" + listen + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Exports map[string]otlpState `json:"exports"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	o, ok := st.Exports["otlp"]
	if !ok {
		t.Fatalf("/api/status has no exports.otlp")
	}
	return o
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
