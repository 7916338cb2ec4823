package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// synth generates realistic-looking traffic: nProcs processes, each talking
// to a handful of its favourite remotes out of nRemotes (Zipf-ish), so
// about 10 flows per process exist; at any moment an active set of
// 3*perFlush flows is busy, churning a few flows per flush.
type synth struct {
	rng     *rand.Rand
	procs   []Sample
	flows   [][3]int // proc, remote, proto
	active  []int
	remotes []string
}

func newSynth(seed uint64, nProcs, nRemotes, perFlush int) *synth {
	g := &synth{rng: rand.New(rand.NewPCG(seed, seed+1))}
	for i := 0; i < nRemotes; i++ {
		if i%5 == 0 {
			g.remotes = append(g.remotes, fmt.Sprintf("2001:db8:%x::%x", i/256, i%256+1))
		} else {
			g.remotes = append(g.remotes, fmt.Sprintf("198.18.%d.%d", i/250, i%250+1))
		}
	}
	comms := []string{"firefox", "chrome", "curl", "sshd", "rsync", "apt", "systemd-resolve", "postgres", "nginx", "python3"}
	for i := 0; i < nProcs; i++ {
		c := comms[i%len(comms)]
		g.procs = append(g.procs, Sample{ProcessKey: ProcessKey{PID: uint32(1000 + i), StartNS: uint64(i) * 1e9, Comm: c},
			Exe: "/usr/bin/" + c, UID: uint32(i%4) * 1000, CgroupID: uint64(4000 + i%30)})
		for k := 0; k < 10; k++ {
			r := int(float64(nRemotes) * g.rng.Float64() * g.rng.Float64()) // skewed to popular remotes
			g.flows = append(g.flows, [3]int{i, r, g.rng.IntN(10) / 8})     // 80% tcp
		}
	}
	for len(g.active) < 3*perFlush {
		g.active = append(g.active, g.rng.IntN(len(g.flows)))
	}
	return g
}

var protos = []string{"tcp", "udp"}

// flush returns one interval's samples: perFlush distinct flows of the
// active set, covering `secs` seconds of traffic.
func (g *synth) flush(perFlush int, secs int) []Sample {
	for i := 0; i < 1+len(g.active)/50; i++ { // churn
		g.active[g.rng.IntN(len(g.active))] = g.rng.IntN(len(g.flows))
	}
	seen := map[int]bool{}
	out := make([]Sample, 0, perFlush)
	for tries := 0; len(out) < perFlush && tries < 4*perFlush; tries++ {
		f := g.active[g.rng.IntN(len(g.active))]
		if seen[f] {
			continue
		}
		seen[f] = true
		fl := g.flows[f]
		s := g.procs[fl[0]]
		s.RemoteIP, s.RemotePort, s.Protocol = g.remotes[fl[1]], 443, protos[fl[2]]
		s.TxBytes = uint64(g.rng.IntN(20000*secs) + 1)
		s.RxBytes = uint64(g.rng.IntN(200000 * secs))
		s.TxCalls, s.RxCalls = uint64(1+g.rng.IntN(5*secs)), uint64(g.rng.IntN(10*secs))
		out = append(out, s)
	}
	return out
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkWrite measures ingest through Store.Write (one transaction per
// flush, as the collector does) at a few flush sizes.
func BenchmarkWrite(b *testing.B) {
	for _, per := range []int{50, 1000, 5000} {
		b.Run(fmt.Sprintf("flush=%d", per), func(b *testing.B) {
			st := openTemp(b)
			g := newSynth(1, 200, 2000, per)
			flushes := make([][]Sample, 64)
			for i := range flushes {
				flushes[i] = g.flush(per, 1)
			}
			ts := time.Now().Add(-time.Duration(b.N) * time.Second)
			b.ResetTimer()
			rows := 0
			for i := 0; i < b.N; i++ {
				f := flushes[i%len(flushes)]
				if err := st.Write(context.Background(), ts.Add(time.Duration(i)*time.Second), f); err != nil {
					b.Fatal(err)
				}
				rows += len(f)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkRollup measures MaintainStep on one hour of 1 s samples.
func BenchmarkRollup(b *testing.B) {
	per := envInt("BENCH_FLOWS", 50)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openTemp(b)
		g := newSynth(2, 200, 2000, per)
		start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
		rows := 0
		for s := 0; s < 3600; s++ {
			f := g.flush(per, 1)
			rows += len(f)
			if err := st.Write(context.Background(), start.Add(time.Duration(s)*time.Second), f); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t0 := time.Now()
		maintainAll(b, st, start.Add(2*time.Hour), DefaultRetention(), RollupBatch)
		b.ReportMetric(float64(rows)/time.Since(t0).Seconds(), "rows/s")
	}
}

// serverSynth is a public server: one process talking to perHour new
// clients an hour, each client one row with its bytes (BENCH_CLIENTS_PER_HOUR).
type serverSynth struct {
	perHour int
	next    int
	frac    float64
}

func (g *serverSynth) flush(secs int) []Sample {
	g.frac += float64(g.perHour) * float64(secs) / 3600
	n := int(g.frac)
	g.frac -= float64(n)
	out := make([]Sample, n)
	for i := range out {
		c := g.next
		g.next++
		out[i] = Sample{ProcessKey: ProcessKey{PID: 80, StartNS: 1, Comm: "nginx"}, Exe: "/usr/sbin/nginx",
			RemoteIP: fmt.Sprintf("10.%d.%d.%d", c>>16&255, c>>8&255, c&255), RemotePort: 443, Protocol: "tcp",
			TxBytes: uint64(20000 + c%50000), RxBytes: uint64(800 + c%3000), TxCalls: 12, RxCalls: 4}
	}
	return out
}

// TestHistoryBench fills a database with 30 days of synthetic history
// through Write and the real rollup/prune code and prints ingest, rollup
// cost, size and query latencies. Opt-in (minutes): set
// BWTRACKER_BENCH_HISTORY=1; BWTRACKER_BENCH_DB keeps the file for
// scripts/bench-history.sh; BENCH_DAYS, BENCH_FLOWS (per second),
// BENCH_FULLRES_DAYS (days at 1 s interval, default 1; older days are
// written as one flush per minute holding the whole active set and a
// minute of bytes, which gives the rollup tiers the same rows as 60 flushes
// at 1 s) tune it.
func TestHistoryBench(t *testing.T) {
	if os.Getenv("BWTRACKER_BENCH_HISTORY") == "" {
		t.Skip("benchmark: set BWTRACKER_BENCH_HISTORY=1 (or run `make bench-history`)")
	}
	days := envInt("BENCH_DAYS", 30)
	per := envInt("BENCH_FLOWS", 50)
	full := envInt("BENCH_FULLRES_DAYS", 1)
	if os.Getenv("BENCH_FULLRES_DAYS") == "0" {
		full = 0
	}
	path := os.Getenv("BWTRACKER_BENCH_DB")
	if path == "" {
		path = filepath.Join(t.TempDir(), "bench.db")
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := newSynth(42, 200, 2000, per)
	var srv *serverSynth
	if cph := envInt("BENCH_CLIENTS_PER_HOUR", 0); cph > 0 && os.Getenv("BENCH_CLIENTS_PER_HOUR") != "" {
		srv = &serverSynth{perHour: cph}
	}
	end := time.Now().Truncate(time.Second)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	ret := DefaultRetention()
	var writeDur, rollDur, fullRollDur time.Duration
	var rows, fullRows, fullDays int64
	for d := 0; d < days; d++ {
		dayStart := start.Add(time.Duration(d) * 24 * time.Hour)
		step, fullRes := 60, d >= days-full
		if fullRes {
			step = 1
		}
		perFlush := per
		if !fullRes {
			// A minute of 1 s flushes touches (nearly) the whole active set:
			// one flush with all of it gives the 1m/1h/1d tiers the same rows.
			perFlush = len(g.active)
		}
		t0 := time.Now()
		var dayRows int64
		for s := step; s <= 86400; s += step {
			f := g.flush(perFlush, step)
			if srv != nil {
				f = srv.flush(step)
			}
			if err := st.Write(ctx, dayStart.Add(time.Duration(s)*time.Second), f); err != nil {
				t.Fatal(err)
			}
			dayRows += int64(len(f))
		}
		writeDur += time.Since(t0)
		rows += dayRows
		t1 := time.Now()
		maintainAll(t, st, dayStart.Add(24*time.Hour), ret, RollupBatch)
		rd := time.Since(t1)
		rollDur += rd
		if fullRes {
			fullRollDur += rd
			fullRows += dayRows
			fullDays++
		}
		if d%5 == 4 || fullRes {
			t.Logf("day %2d: %8d rows written, rollup+prune %v, file %.1f MiB", d+1, dayRows, rd.Round(time.Millisecond), float64(st.Size())/(1<<20))
		}
	}
	st.sql.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	t.Logf("ingest: %d rows in %v = %.0f rows/s through Write (%d-row flushes at 1 s, %d-row at 60 s)", rows, writeDur.Round(time.Millisecond), float64(rows)/writeDur.Seconds(), per, len(g.active))
	t.Logf("rollup+prune: %v in total; a 1 s-resolution day (%d rows) costs %v", rollDur.Round(time.Millisecond), fullRows/max(fullDays, 1), (fullRollDur / time.Duration(max(fullDays, 1))).Round(time.Millisecond))
	t.Logf("database after %d days: file %.1f MiB, %.1f MiB in pages (%d free pages)", days, float64(stats.FileBytes)/(1<<20), float64(stats.Pages*stats.PageSize)/(1<<20), stats.FreePages)
	for _, tr := range stats.Tiers {
		t.Logf("  tier %-3s %9d rows", tr.Name, tr.Rows)
	}
	t.Logf("  processes %d", stats.Processes)
	t.Logf("DB bytes per million samples written: %.0f (%d samples, %d file bytes)", float64(stats.FileBytes)/float64(rows)*1e6, rows, stats.FileBytes)

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	now := time.Now()
	var edges []time.Time
	for d := floorDay(now.Add(-30 * 24 * time.Hour)); !d.After(now); d = d.AddDate(0, 0, 1) {
		edges = append(edges, d)
	}
	edges = append(edges, floorDay(now).AddDate(0, 0, 1))
	timeIt := func(name string, fn func() (int, error)) {
		best := time.Duration(1 << 62)
		var n int
		for i := 0; i < 3; i++ {
			t0 := time.Now()
			var err error
			if n, err = fn(); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(t0))
		}
		t.Logf("query %-40s %4d rows in %v", name, n, best.Round(time.Millisecond))
	}
	timeIt("--period day (30 days)", func() (int, error) {
		p, err := ro.Periods(ctx, Query{By: []string{DimProcess}}, edges)
		return len(p), err
	})
	for _, by := range []string{DimProcess, DimExe, DimRemote} {
		timeIt("--by "+by+" --since 30d", func() (int, error) {
			r, err := ro.Totals(ctx, Query{Since: now.Add(-30 * 24 * time.Hour), By: []string{by}})
			return len(r), err
		})
	}
	timeIt("--by process --since 24h", func() (int, error) {
		r, err := ro.Totals(ctx, Query{Since: now.Add(-24 * time.Hour), By: []string{DimProcess}})
		return len(r), err
	})
	timeIt("--by process,remote --since 7d", func() (int, error) {
		r, err := ro.Totals(ctx, Query{Since: now.Add(-7 * 24 * time.Hour), By: []string{DimProcess, DimRemote}})
		return len(r), err
	})
}

func floorDay(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// BenchmarkWriteNewRemotes measures Write when every sample is a remote the
// store has never seen (a scanner, a busy DNS or game server): each row
// interns a new endpoint and a new flow. BWT_BENCH_NEW_PER_FLUSH sets the
// flush size (default 5000).
func BenchmarkWriteNewRemotes(b *testing.B) {
	per := envInt("BWT_BENCH_NEW_PER_FLUSH", 5000)
	st := openTemp(b)
	base := Sample{ProcessKey: ProcessKey{PID: 4242, StartNS: 1, Comm: "scanner"}, Exe: "/usr/bin/scanner", Protocol: "udp", RemotePort: 53}
	ts := time.Now().Add(-time.Duration(b.N) * time.Second)
	next := 0
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		f := make([]Sample, per)
		for k := range f {
			s := base
			n := next
			next++
			s.RemoteIP = fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
			s.TxBytes, s.TxCalls = 200, 1
			f[k] = s
		}
		if err := st.Write(context.Background(), ts.Add(time.Duration(i)*time.Second), f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*per), "cpu-µs/row")
}

// cpuTime is the CPU time this process used (a shared machine makes wall
// clock figures noisy).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
