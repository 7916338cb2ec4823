package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/store"
)

// fakeLive is a Live whose snapshots the test publishes.
type fakeLive struct {
	mu     sync.Mutex
	snap   live.Snapshot
	status live.Status
	subs   map[chan live.Snapshot]bool
}

func newFakeLive(snap live.Snapshot) *fakeLive {
	return &fakeLive{snap: snap, subs: map[chan live.Snapshot]bool{},
		status: live.Status{Version: "test", Hook: "tracepoint", Kernel: "6.18.0", Started: snap.Time.Add(-time.Hour),
			Interval: time.Second, Drops: map[string]uint64{"map_full": 0}, MapCap: 16384}}
}

func (f *fakeLive) Snapshot() live.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeLive) Status() live.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeLive) Subscribe() (<-chan live.Snapshot, func()) {
	ch := make(chan live.Snapshot, 4)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		})
	}
}

func (f *fakeLive) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// publish sets the snapshot and hands it to subscribers (dropping it for a
// full one, like the collector).
func (f *fakeLive) publish(s live.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
	for ch := range f.subs {
		select {
		case ch <- s:
		default:
		}
	}
}

// Known rows. t0 is the test's "now"; every window is relative to it.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	keyCurl    = store.ProcessKey{PID: 4242, StartNS: 1_000_000, Comm: "curl"}
	keyFirefox = store.ProcessKey{PID: 777, StartNS: 2_000_000, Comm: "firefox"}
	keySSHD    = store.ProcessKey{PID: 55, StartNS: 3_000_000, Comm: "sshd"}
)

type seedRow struct {
	ago time.Duration
	s   store.Sample
}

var seedRows = []seedRow{
	{10 * time.Minute, store.Sample{ProcessKey: keyCurl, Exe: "/usr/bin/curl", UID: 1000, CgroupID: 42, RemoteIP: "198.18.0.10", RemotePort: 443, Protocol: "tcp", TxBytes: 1234, RxBytes: 987654, TxCalls: 2, RxCalls: 30}},
	{5 * time.Minute, store.Sample{ProcessKey: keyCurl, Exe: "/usr/bin/curl", UID: 1000, CgroupID: 42, RemoteIP: "198.18.0.11", RemotePort: 53, Protocol: "udp", TxBytes: 100, RxBytes: 200, TxCalls: 1, RxCalls: 1}},
	{4 * time.Minute, store.Sample{ProcessKey: keyCurl, Exe: "/usr/bin/curl", UID: 1000, CgroupID: 42, RemoteIP: "198.18.0.10", RemotePort: 443, Protocol: "tcp", TxBytes: 66, RxBytes: 34, TxCalls: 1, RxCalls: 1}},
	{30 * time.Minute, store.Sample{ProcessKey: keyFirefox, Exe: "/usr/lib/firefox/firefox", UID: 1000, RemoteIP: "2001:db8::1", RemotePort: 443, Protocol: "tcp", TxBytes: 5555555, RxBytes: 66666666, TxCalls: 50, RxCalls: 500}},
	{30 * time.Minute, store.Sample{ProcessKey: keyFirefox, Exe: "/usr/lib/firefox/firefox", UID: 1000, RemoteIP: "198.18.0.10", RemotePort: 443, Protocol: "tcp", TxBytes: 10, RxBytes: 20, TxCalls: 1, RxCalls: 1}},
	{2 * time.Hour, store.Sample{ProcessKey: keyFirefox, Exe: "/usr/lib/firefox/firefox", UID: 1000, RemoteIP: "2001:db8::1", RemotePort: 443, Protocol: "tcp", TxBytes: 1000, RxBytes: 2000, TxCalls: 1, RxCalls: 2}},
	{48 * time.Hour, store.Sample{ProcessKey: keySSHD, Exe: "/usr/sbin/sshd", UID: 0, RemoteIP: "198.18.0.99", RemotePort: 50000, Protocol: "tcp", TxBytes: 777, RxBytes: 888, TxCalls: 1, RxCalls: 1}},
}

// Expected totals of curl in the last hour (and 24 h): 1234+100+66, 987654+200+34.
const (
	curlTx = 1400
	curlRx = 987888
)

const seedPodUID = "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b"

func seedStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bw.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	// One flush per distinct timestamp, like the collector.
	byTs := map[time.Duration][]store.Sample{}
	var order []time.Duration
	for _, r := range seedRows {
		if _, ok := byTs[r.ago]; !ok {
			order = append(order, r.ago)
		}
		byTs[r.ago] = append(byTs[r.ago], r.s)
	}
	for _, ago := range order {
		if err := st.Write(ctx, t0.Add(-ago), byTs[ago]); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutCgroups(ctx, []cgroupinfo.Info{{ID: 42, Path: "/system.slice/fetch.service", Service: "fetch.service",
		// Kubernetes names too (a store does not check they fit the path).
		PodUID: seedPodUID, Namespace: "shop", Pod: "fetch-0", WorkloadKind: "statefulset", WorkloadName: "fetch"}}); err != nil {
		t.Fatal(err)
	}
	return st
}

func liveSnapshot(at time.Time) live.Snapshot {
	return live.Snapshot{
		Time: at, Interval: time.Second, TxRate: 2048, RxRate: 1 << 20, TxBytes: curlTx + 5555565, RxBytes: curlRx + 66666686,
		Processes: []live.ProcRate{
			{PID: 777, StartNS: 2_000_000, Comm: "firefox", Exe: "/usr/lib/firefox/firefox", UID: 1000, TxRate: 1024, RxRate: 900000, TxBytes: 5555565, RxBytes: 66666686, Remotes: 2, LastSeen: at},
			{PID: 4242, StartNS: 1_000_000, Comm: "curl", Exe: "/usr/bin/curl", UID: 1000, TxRate: 1024, RxRate: 148576, TxBytes: curlTx, RxBytes: curlRx, Remotes: 2, LastSeen: at},
			{PID: 9, StartNS: 5, Comm: "idle", Exe: "/bin/idle", TxRate: 0, RxRate: 0, TxBytes: 1, RxBytes: 1, LastSeen: at.Add(-time.Minute)},
		},
	}
}

type testEnv struct {
	h    http.Handler
	live *fakeLive
	st   *store.Store
}

func newEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	st := seedStore(t)
	live := newFakeLive(liveSnapshot(t0))
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	if cfg.Version == "" {
		cfg.Version = "v-test"
	}
	h, err := New(cfg, live, st)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{h: h, live: live, st: st}
}

// do runs one request with a Host the server accepts unless hdr says
// otherwise.
func (e *testEnv) do(t testing.TB, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = "127.0.0.1:8080"
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, rec.Body.String())
	}
	return v
}

// The real store satisfies the API's interfaces (cli/run.go checks the
// collector: this package stays cgo-free).
var (
	_ Querier   = (*store.Store)(nil)
	_ sizer     = (*store.Store)(nil)
	_ runLister = (*store.Store)(nil)
)
