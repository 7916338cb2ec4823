package api

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/store"
)

// appsEnv: two chromium processes (one app), a python script and a
// loopback peer, in the cgroup /lxc.payload.web.
func appsEnv(t *testing.T) *testEnv {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bw.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	samples := []store.Sample{
		{ProcessKey: store.ProcessKey{PID: 10, StartNS: 1, Comm: "chromium"}, Exe: "/usr/lib/chromium/chromium", App: "chromium", RemoteIP: "8.8.8.8", Protocol: "tcp", TxBytes: 100, RxBytes: 1000},
		{ProcessKey: store.ProcessKey{PID: 11, StartNS: 2, Comm: "chromium"}, Exe: "/usr/lib/chromium/chromium", App: "chromium", RemoteIP: "192.168.1.1", Protocol: "udp", TxBytes: 10, RxBytes: 20},
		{ProcessKey: store.ProcessKey{PID: 20, StartNS: 3, Comm: "python3"}, Exe: "/usr/bin/python3.11", App: "http.server (python3)", CgroupID: 9, RemoteIP: "127.0.0.1", Protocol: "tcp", TxBytes: 5, RxBytes: 7},
	}
	if err := st.Write(ctx, t0.Add(-time.Minute), samples); err != nil {
		t.Fatal(err)
	}
	if err := st.PutCgroups(ctx, []cgroupinfo.Info{{ID: 9, Path: "/lxc.payload.web"}}); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Now: func() time.Time { return t0 }, Version: "v-test"}, newFakeLive(liveSnapshot(t0)), st)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{h: h, st: st}
}

func TestProcessesByApp(t *testing.T) {
	e := appsEnv(t)
	got := decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?by=app"))
	want := []ProcessRow{
		{ProcessTotal: ProcessTotal{App: "chromium", TxBytes: 110, RxBytes: 1020}, Remotes: 2, Processes: 2},
		{ProcessTotal: ProcessTotal{App: "http.server (python3)", TxBytes: 5, RxBytes: 7}, Remotes: 1, Processes: 1},
	}
	if fmt.Sprint(got.Processes) != fmt.Sprint(want) {
		t.Errorf("by=app: %+v\nwant %+v", got.Processes, want)
	}
	// Expanding an app: its processes, each with its app.
	ps := decode[ProcessesResponse](t, e.do(t, "GET", "/api/processes?app=chromium"))
	if len(ps.Processes) != 2 || ps.Processes[0].App != "chromium" || ps.Processes[0].PID != 10 || ps.Processes[1].PID != 11 {
		t.Errorf("app=chromium: %+v", ps.Processes)
	}
}

func TestTotalsAndScopes(t *testing.T) {
	e := appsEnv(t)
	rows := decode[[]map[string]any](t, e.do(t, "GET", "/api/totals?by=app,scope"))
	got := fmt.Sprint(rows)
	want := "[map[app:chromium rx_bytes:1000 scope:internet tx_bytes:100] map[app:chromium rx_bytes:20 scope:lan tx_bytes:10] map[app:http.server (python3) rx_bytes:7 scope:loopback tx_bytes:5]]"
	if got != want {
		t.Errorf("totals by app,scope:\n%s\nwant\n%s", got, want)
	}
	rows = decode[[]map[string]any](t, e.do(t, "GET", "/api/totals?by=comm,cgroup&cgroup=/lxc.payload.web"))
	if fmt.Sprint(rows) != "[map[cgroup:/lxc.payload.web comm:python3 rx_bytes:7 tx_bytes:5]]" {
		t.Errorf("cgroup filter: %v", rows)
	}
	rows = decode[[]map[string]any](t, e.do(t, "GET", "/api/totals?scope=lan"))
	if fmt.Sprint(rows) != "[map[app:chromium rx_bytes:20 tx_bytes:10]]" {
		t.Errorf("default by app, scope=lan: %v", rows)
	}
	s := decode[SummaryResponse](t, e.do(t, "GET", "/api/summary"))
	if s.Apps != 2 || s.Processes != 3 || fmt.Sprint(s.Scopes) != "[{internet 100 1000} {lan 10 20} {loopback 5 7}]" {
		t.Errorf("summary: apps %d processes %d scopes %v", s.Apps, s.Processes, s.Scopes)
	}
	for _, q := range []string{"/api/totals?by=nope", "/api/totals?scope=mars", "/api/processes?by=exe", "/api/totals?app=%01", "/api/remotes?scope=space"} {
		rec := e.do(t, "GET", q)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", q, rec.Code, rec.Body.String())
		} else {
			t.Logf("%s: %s", q, errBody(t, rec.Body.Bytes()))
		}
	}
}
