package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/store"
)

// Benchmarks of the two hot endpoints over real HTTP on loopback, reporting
// p50/p99 latency per request (sequential client):
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/api/
//
// Targets (issue 3): /api/current p99 <= 5 ms with 1,000 processes,
// /api/history p99 <= 50 ms over 24 h of 1 s data.

func bigSnapshot(at time.Time, n int) live.Snapshot {
	s := live.Snapshot{Time: at, Interval: time.Second}
	for i := range n {
		p := live.ProcRate{
			PID: uint32(1000 + i), StartNS: uint64(i) * 1e9, Comm: fmt.Sprintf("proc-%04d", i),
			Exe: fmt.Sprintf("/usr/lib/some/longer/path/to/binary-%04d", i), UID: uint32(i % 7),
			TxRate: float64((i * 7919) % 100000), RxRate: float64((i * 104729) % 1000000),
			TxBytes: uint64(i) * 123456, RxBytes: uint64(i) * 654321, Remotes: i % 20, LastSeen: at,
		}
		s.TxRate += p.TxRate
		s.RxRate += p.RxRate
		s.Processes = append(s.Processes, p)
	}
	return s
}

// latencies runs do b.N times and reports p50/p99 in milliseconds.
func latencies(b *testing.B, do func() error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := do(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return err
}

func BenchmarkCurrent1000(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		name := "same-snapshot"
		if fresh {
			name = "new-snapshot-each-request"
		}
		b.Run(name, func(b *testing.B) {
			live := newFakeLive(bigSnapshot(t0, 1000))
			h, err := New(Config{Now: func() time.Time { return t0 }}, live, nil)
			if err != nil {
				b.Fatal(err)
			}
			base := serveTest(b, h)
			client := &http.Client{}
			snap := bigSnapshot(t0, 1000)
			i := 0
			latencies(b, func() error {
				if fresh {
					// What the collector does once per interval: a new
					// snapshot, so the encoding cache misses.
					i++
					snap.Time = t0.Add(time.Duration(i) * time.Second)
					live.publish(snap)
				}
				return get(client, base+"/api/current")
			})
		})
	}
}

var (
	benchDBOnce sync.Once
	benchDBDir  string // created by benchStore; the only thing TestMain removes
	benchDBPath string
	benchDBErr  error
)

// benchStore is 24 h of 1 s flushes, 5 processes talking to 2 remotes each
// every second (864,000 samples), written through store.Write like the
// collector does, then rolled up with store.Maintain as the daemon does in
// the background. It is built once per test binary run.
func benchStore(b *testing.B) *store.Store {
	benchDBOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bwtracker-bench-")
		if err != nil {
			benchDBErr = err
			return
		}
		benchDBDir = dir
		benchDBPath = filepath.Join(dir, "bench.db")
		st, err := store.Open(benchDBPath, store.Options{})
		if err != nil {
			benchDBErr = err
			return
		}
		defer st.Close()
		ctx := context.Background()
		start := time.Now()
		procs := []store.ProcessKey{keyCurl, keyFirefox, keySSHD, {PID: 100, StartNS: 1, Comm: "chrome"}, {PID: 200, StartNS: 2, Comm: "systemd-resolve"}}
		batch := make([]store.Sample, 2*len(procs))
		for sec := 86400; sec > 0; sec-- {
			for i, k := range procs {
				for r := range 2 {
					batch[2*i+r] = store.Sample{ProcessKey: k, Exe: "/usr/bin/" + k.Comm, RemoteIP: fmt.Sprintf("198.18.%d.%d", i, r), RemotePort: 443,
						Protocol: "tcp", TxBytes: uint64(100 + sec%1000), RxBytes: uint64(1000 + sec%10000), TxCalls: 1, RxCalls: 1}
				}
			}
			if err := st.Write(ctx, t0.Add(-time.Duration(sec)*time.Second), batch); err != nil {
				benchDBErr = err
				return
			}
		}
		seeded := time.Since(start)
		for {
			r, err := st.MaintainStep(ctx, t0, store.DefaultRetention(), store.RollupBatch)
			if err != nil {
				benchDBErr = err
				return
			}
			if r.Done {
				break
			}
		}
		fmt.Fprintf(os.Stderr, "bench: seeded 24 h x 1 s x %d flows in %s, rolled up in %s\n", len(batch), seeded.Round(time.Millisecond), (time.Since(start) - seeded).Round(time.Millisecond))
	})
	if benchDBErr != nil {
		b.Fatal(benchDBErr)
	}
	st, err := store.Open(benchDBPath, store.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func BenchmarkHistory24h(b *testing.B) {
	st := benchStore(b)
	h, err := New(Config{Now: func() time.Time { return t0 }}, newFakeLive(bigSnapshot(t0, 10)), st)
	if err != nil {
		b.Fatal(err)
	}
	base := serveTest(b, h)
	client := &http.Client{}
	for _, q := range []string{"since=24h", "since=24h&pid=777", "since=1h", "since=5m&step=1s"} {
		b.Run(q, func(b *testing.B) {
			latencies(b, func() error { return get(client, base+"/api/history?"+q) })
		})
	}
}

func TestMain(m *testing.M) {
	// The server logs each start at info; keep test and benchmark output
	// readable (warnings and errors still show).
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := m.Run()
	if benchDBDir != "" && strings.HasPrefix(filepath.Base(benchDBDir), "bwtracker-bench-") {
		os.RemoveAll(benchDBDir)
	}
	os.Exit(code)
}
