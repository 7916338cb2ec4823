package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// base is a Monday 00:00 UTC; generated history starts here.
var base = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

type rec struct {
	ts time.Time
	s  Sample
}

var (
	testProcs = []ProcessKey{
		{PID: 100, StartNS: 1, Comm: "curl"},
		{PID: 200, StartNS: 2, Comm: "firefox"},
		{PID: 300, StartNS: 3, Comm: "sshd"},
		{PID: 100, StartNS: 9, Comm: "curl"}, // a reused pid
	}
	testRemotes = []string{"10.0.0.1", "10.0.0.2", "2001:db8::1", "198.18.0.9", ""}
	testProtos  = []string{"tcp", "udp", "icmp"}
)

// genHistory writes flushes every `every` (jittered) over [from, from+dur)
// and returns what it wrote.
func genHistory(t testing.TB, st *Store, rng *rand.Rand, from time.Time, dur, every time.Duration) []rec {
	t.Helper()
	ctx := context.Background()
	var out []rec
	for ts := from.Add(every); ts.Before(from.Add(dur)); ts = ts.Add(every + time.Duration(rng.IntN(1000))*time.Millisecond) {
		var batch []Sample
		seen := map[string]bool{}
		for n := 1 + rng.IntN(4); n > 0; n-- {
			pk := testProcs[rng.IntN(len(testProcs))]
			s := Sample{ProcessKey: pk, Exe: "/usr/bin/" + pk.Comm, UID: pk.PID % 3 * 500,
				CgroupID: uint64(pk.PID), RemoteIP: testRemotes[rng.IntN(len(testRemotes))],
				RemotePort: uint16(rng.IntN(3) + 443), Protocol: testProtos[rng.IntN(len(testProtos))],
				TxBytes: uint64(rng.IntN(100000)), RxBytes: uint64(rng.IntN(1000000)), TxCalls: 1 + uint64(rng.IntN(9)), RxCalls: uint64(rng.IntN(9))}
			k := fmt.Sprint(s.ProcessKey, s.RemoteIP, s.RemotePort, s.Protocol)
			if seen[k] {
				continue
			}
			seen[k] = true
			batch = append(batch, s)
		}
		if err := st.Write(ctx, ts, batch); err != nil {
			t.Fatal(err)
		}
		for _, s := range batch {
			out = append(out, rec{ts, s})
		}
	}
	return out
}

type key struct {
	pk     ProcessKey
	remote string
	proto  string
}

// want sums the raw records in [s, u) per (process, remote, protocol).
func want(recs []rec, s, u time.Time) map[key][4]uint64 {
	m := map[key][4]uint64{}
	for _, r := range recs {
		if r.ts.Before(s) || !r.ts.Before(u) {
			continue
		}
		k := key{r.s.ProcessKey, r.s.RemoteIP, r.s.Protocol}
		v := m[k]
		v[0] += r.s.TxBytes
		v[1] += r.s.RxBytes
		v[2] += r.s.TxCalls
		v[3] += r.s.RxCalls
		m[k] = v
	}
	return m
}

func got(t testing.TB, st *Store, s, u time.Time) map[key][4]uint64 {
	t.Helper()
	rows, err := st.Totals(context.Background(), Query{Since: s, Until: u, By: []string{DimProcess, DimRemote, DimProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	m := map[key][4]uint64{}
	for _, r := range rows {
		k := key{ProcessKey{r.PID, r.StartNS, r.Comm}, r.RemoteIP, r.Protocol}
		if _, dup := m[k]; dup {
			t.Fatalf("duplicate row %v", k)
		}
		m[k] = [4]uint64{r.TxBytes, r.RxBytes, r.TxCalls, r.RxCalls}
	}
	return m
}

func checkWindow(t testing.TB, st *Store, recs []rec, s, u time.Time) {
	t.Helper()
	w, g := want(recs, s, u), got(t, st, s, u)
	if len(w) != len(g) {
		t.Fatalf("window %s..%s: %d groups, want %d", s.Format(time.RFC3339Nano), u.Format(time.RFC3339Nano), len(g), len(w))
	}
	for k, v := range w {
		if g[k] != v {
			t.Fatalf("window %s..%s: %v = %v, want %v", s.Format(time.RFC3339Nano), u.Format(time.RFC3339Nano), k, g[k], v)
		}
	}
}

func openTemp(t testing.TB) *Store {
	t.Helper()
	st, err := Open(filepath.Join(t.TempDir(), "bw.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func maintainAll(t testing.TB, st *Store, now time.Time, ret Retention, batch int) {
	t.Helper()
	for i := 0; ; i++ {
		r, err := st.MaintainStep(context.Background(), now, ret, batch)
		if err != nil {
			t.Fatal(err)
		}
		if r.Done {
			return
		}
		if i > 100000 {
			t.Fatal("maintenance does not finish")
		}
	}
}

func randWindow(rng *rand.Rand, from time.Time, span time.Duration, align time.Duration) (time.Time, time.Time) {
	a := from.Add(time.Duration(rng.Int64N(int64(span))))
	b := a.Add(time.Duration(rng.Int64N(int64(span)/2) + 1))
	if align > 0 {
		a, b = a.Truncate(align), b.Truncate(align)
		if !b.After(a) {
			b = a.Add(align)
		}
	}
	return a, b
}

// Totals over any window equal the sum of the raw samples that fed them,
// before and after rollup, with the window served by several tiers.
func TestTotalsEqualRawSumAcrossTiers(t *testing.T) {
	st := openTemp(t)
	rng := rand.New(rand.NewPCG(1, 2))
	recs := genHistory(t, st, rng, base, 3*24*time.Hour, 97*time.Second)
	end := base.Add(3 * 24 * time.Hour)
	keepAll := Retention{}
	check := func(n int) {
		for i := 0; i < n; i++ {
			s, u := randWindow(rng, base.Add(-time.Hour), 3*24*time.Hour, 0)
			checkWindow(t, st, recs, s, u)
		}
		checkWindow(t, st, recs, time.Time{}, time.Time{}.Add(1))
		checkWindow(t, st, recs, base, end)
		checkWindow(t, st, recs, base.Add(-24*time.Hour), end.Add(24*time.Hour))
	}
	check(15) // raw only, nothing rolled up
	// Half rolled up: the rest is read from raw rows above the watermark.
	if _, err := st.MaintainStep(context.Background(), end, keepAll, len(recs)/2); err != nil {
		t.Fatal(err)
	}
	check(15)
	maintainAll(t, st, end, keepAll, 997)
	check(30)

	// Every tier holds the same sums as raw.
	for _, tr := range Tiers {
		var tx, rx int64
		if err := st.sql.QueryRow("SELECT sum(tx_bytes), sum(rx_bytes) FROM "+tr.Table).Scan(&tx, &rx); err != nil {
			t.Fatal(err)
		}
		w := want(recs, time.Time{}, end.Add(time.Hour))
		var wtx, wrx uint64
		for _, v := range w {
			wtx += v[0]
			wrx += v[1]
		}
		if uint64(tx) != wtx || uint64(rx) != wrx {
			t.Fatalf("tier %s: tx %d rx %d, want %d %d", tr.Name, tx, rx, wtx, wrx)
		}
	}

	// A late write (a flush retried after a DB error) into buckets already
	// rolled up is counted once.
	late := base.Add(5*time.Hour + 17*time.Second)
	ls := Sample{ProcessKey: testProcs[0], Protocol: "tcp", RemoteIP: "10.0.0.1", TxBytes: 123, RxBytes: 456, TxCalls: 1, RxCalls: 1}
	if err := st.Write(context.Background(), late, []Sample{ls}); err != nil {
		t.Fatal(err)
	}
	recs = append(recs, rec{late, ls})
	check(10)
	maintainAll(t, st, end, keepAll, 1000)
	check(20)
}

// After pruning, windows still equal raw sums wherever the kept tiers can
// resolve them: anywhere in the raw day, on minutes within the 1m week, on
// hours beyond.
func TestTotalsAfterPruning(t *testing.T) {
	st := openTemp(t)
	rng := rand.New(rand.NewPCG(3, 4))
	recs := genHistory(t, st, rng, base, 4*24*time.Hour, 127*time.Second)
	now := base.Add(4 * 24 * time.Hour)
	ret := Retention{Raw: 24 * time.Hour, Minute: 2 * 24 * time.Hour, Hour: 3 * 24 * time.Hour, Day: 0}
	var before int64
	if err := st.sql.QueryRow("SELECT count(*) FROM samples").Scan(&before); err != nil {
		t.Fatal(err)
	}
	maintainAll(t, st, now, ret, 5000)
	var after int64
	if err := st.sql.QueryRow("SELECT count(*) FROM samples").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after >= before/3 {
		t.Fatalf("raw rows %d -> %d: pruning did not give back rows", before, after)
	}
	rawFrom := now.Add(-24 * time.Hour)
	for i := 0; i < 12; i++ {
		s, u := randWindow(rng, rawFrom, 23*time.Hour, 0)
		checkWindow(t, st, recs, s, u)
	}
	for i := 0; i < 12; i++ {
		s, u := randWindow(rng, now.Add(-2*24*time.Hour), 47*time.Hour, time.Minute)
		checkWindow(t, st, recs, s, u)
	}
	for i := 0; i < 12; i++ {
		s, u := randWindow(rng, now.Add(-3*24*time.Hour), 70*time.Hour, time.Hour)
		checkWindow(t, st, recs, s, u)
	}
	// Day 0 only survives in the day tier.
	checkWindow(t, st, recs, base, base.Add(24*time.Hour))
	checkWindow(t, st, recs, base, now)
	checkWindow(t, st, recs, time.Time{}, now.Add(time.Hour))

	// Series at 1h steps equal raw sums per hour; daily Periods likewise.
	pts, err := st.Series(context.Background(), Query{Since: now.Add(-3 * 24 * time.Hour)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		var tx, rx uint64
		for _, v := range want(recs, time.UnixMilli(p.TsMs), time.UnixMilli(p.TsMs).Add(time.Hour)) {
			tx += v[0]
			rx += v[1]
		}
		if p.TxBytes != tx || p.RxBytes != rx {
			t.Fatalf("series %s: %d/%d want %d/%d", time.UnixMilli(p.TsMs).UTC(), p.TxBytes, p.RxBytes, tx, rx)
		}
	}
	if len(pts) < 70 {
		t.Fatalf("series has %d points", len(pts))
	}
	var edges []time.Time
	for d := base; !d.After(now); d = d.Add(24 * time.Hour) {
		edges = append(edges, d)
	}
	per, err := st.Periods(context.Background(), Query{}, edges)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range per {
		w := want(recs, p.Start, p.End)
		var tx, rx uint64
		top := map[ProcessKey]uint64{}
		for k, v := range w {
			tx += v[0]
			rx += v[1]
			top[k.pk] += v[0] + v[1]
		}
		if p.TxBytes != tx || p.RxBytes != rx {
			t.Fatalf("period %s: %d/%d want %d/%d", p.Start, p.TxBytes, p.RxBytes, tx, rx)
		}
		pk := ProcessKey{p.Top.PID, p.Top.StartNS, p.Top.Comm}
		for k, v := range top {
			if v > top[pk] {
				t.Fatalf("period %s: top %v (%d) but %v has %d", p.Start, pk, top[pk], k, v)
			}
		}
	}

	// Rows older than every tier's retention are gone from every tier.
	now2 := now.Add(10 * 24 * time.Hour)
	maintainAll(t, st, now2, Retention{Raw: time.Hour, Minute: time.Hour, Hour: time.Hour, Day: 24 * time.Hour}, 5000)
	for _, tr := range Tiers {
		var n int64
		if err := st.sql.QueryRow("SELECT count(*) FROM " + tr.Table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("tier %s keeps %d rows past retention", tr.Name, n)
		}
	}
	var procs int64
	if err := st.sql.QueryRow("SELECT count(*) FROM processes").Scan(&procs); err != nil {
		t.Fatal(err)
	}
	if procs != 0 {
		t.Errorf("%d process rows kept past every retention", procs)
	}
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.AutoVacuum != "incremental" {
		t.Errorf("auto_vacuum = %s, want incremental", stats.AutoVacuum)
	}
	if stats.FreePages > 2*VacuumPages {
		t.Errorf("%d free pages left after pruning: incremental vacuum did not run", stats.FreePages)
	}
}

// A rollup cancelled just before it commits leaves nothing behind; the
// next one redoes it in full.
func TestRollupCancelledResumes(t *testing.T) {
	st := openTemp(t)
	rng := rand.New(rand.NewPCG(5, 6))
	recs := genHistory(t, st, rng, base, 12*time.Hour, 37*time.Second)
	end := base.Add(12 * time.Hour)
	defer func(h func(context.Context) error) { rollupHook = h }(rollupHook)
	calls := 0
	rollupHook = func(ctx context.Context) error {
		calls++
		if calls%3 == 0 {
			return context.Canceled
		}
		return nil
	}
	fails := 0
	for i := 0; i < 10000; i++ {
		r, err := st.MaintainStep(context.Background(), end, Retention{}, 501)
		if errors.Is(err, context.Canceled) {
			fails++
			assertRollupConsistent(t, st)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Done {
			break
		}
	}
	if fails == 0 {
		t.Fatal("no rollup was interrupted")
	}
	rollupHook = func(ctx context.Context) error { return ctx.Err() }
	// A real context cancelled mid-way.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.MaintainStep(ctx, end, Retention{}, 100); err == nil {
		t.Fatal("cancelled context: no error")
	}
	assertRollupConsistent(t, st)
	assertFullyRolled(t, st, recs)
	for i := 0; i < 20; i++ {
		s, u := randWindow(rng, base, 12*time.Hour, 0)
		checkWindow(t, st, recs, s, u)
	}
}

// assertRollupConsistent: every tier holds exactly the raw rows up to the
// watermark.
func assertRollupConsistent(t testing.TB, st *Store) {
	t.Helper()
	w, _, err := metaInt(context.Background(), st.sql, metaRolledID)
	if err != nil {
		t.Fatal(err)
	}
	var rtx, rrx, rtc int64
	if err := st.sql.QueryRow("SELECT coalesce(sum(tx_bytes),0), coalesce(sum(rx_bytes),0), coalesce(sum(tx_calls),0) FROM samples WHERE id <= ?", w).Scan(&rtx, &rrx, &rtc); err != nil {
		t.Fatal(err)
	}
	for _, tr := range Tiers[1:] {
		var tx, rx, tc int64
		if err := st.sql.QueryRow("SELECT coalesce(sum(tx_bytes),0), coalesce(sum(rx_bytes),0), coalesce(sum(tx_calls),0) FROM "+tr.Table).Scan(&tx, &rx, &tc); err != nil {
			t.Fatal(err)
		}
		if tx != rtx || rx != rrx || tc != rtc {
			t.Fatalf("tier %s after interruption: %d/%d/%d, raw up to watermark %d: %d/%d/%d", tr.Name, tx, rx, tc, w, rtx, rrx, rtc)
		}
	}
}

func assertFullyRolled(t testing.TB, st *Store, recs []rec) {
	t.Helper()
	maintainAll(t, st, base.Add(365*24*time.Hour), Retention{}, 777)
	var wtx uint64
	for _, r := range recs {
		wtx += r.s.TxBytes
	}
	for _, tr := range Tiers {
		var tx uint64
		if err := st.sql.QueryRow("SELECT coalesce(sum(tx_bytes),0) FROM " + tr.Table).Scan(&tx); err != nil {
			t.Fatal(err)
		}
		if tx != wtx {
			t.Fatalf("tier %s: tx %d, want %d (double counted or lost)", tr.Name, tx, wtx)
		}
	}
}

const childEnv = "BWTRACKER_ROLLUP_CHILD_DB"

// TestRollupKilledResumes kills a process mid-rollup (SIGKILL, no cleanup)
// several times and checks the tiers never double count or lose rows.
func TestRollupKilledResumes(t *testing.T) {
	if db := os.Getenv(childEnv); db != "" {
		rollupChild(db)
		return
	}
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	path := filepath.Join(t.TempDir(), "bw.db")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	recs := genHistory(t, st, rng, base, 24*time.Hour, 29*time.Second)
	st.Close()
	kills := 0
	for round := 0; round < 6; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRollupKilledResumes$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rng.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil {
			kills++
		}
		st, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		assertRollupConsistent(t, st)
		st.Close()
	}
	if kills == 0 {
		t.Fatal("the child finished before it could be killed")
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	assertFullyRolled(t, st, recs)
	w, _, _ := metaInt(context.Background(), st.sql, metaRolledID)
	t.Logf("killed %d times mid-rollup; resumed to watermark %d", kills, w)
}

// rollupChild rolls up slowly (tiny batches, a pause before each commit)
// until killed.
func rollupChild(path string) {
	st, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	rollupHook = func(ctx context.Context) error {
		time.Sleep(3 * time.Millisecond)
		return nil
	}
	for {
		r, err := st.MaintainStep(context.Background(), base.Add(48*time.Hour), Retention{}, 50)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if r.Done {
			os.Exit(0)
		}
	}
}

// plan never overlaps, never leaves gaps where data exists, and uses
// coarse tiers for the middle of long windows.
func TestPlan(t *testing.T) {
	h := time.Hour.Milliseconds()
	m := time.Minute.Milliseconds()
	d := 24 * h
	st := tierState{exists: []bool{true, true, true, true}, avail: []int64{100*d + 5*m, 95*d + 7*m, 20*d + 3*h, 0}}
	// Nothing kept before day 10 (a pruned day tier): the plan may skip that.
	pruned := tierState{exists: []bool{true, true, true, true}, avail: []int64{100*d + 5*m, 95*d + 7*m, 20*d + 3*h, 10 * d}}
	for _, st := range []tierState{st, pruned} {
		for _, c := range []struct{ s, u int64 }{{0, 101 * d}, {10*d + 5, 100*d + 9*m + 7}, {95*d + 3, 95*d + 9*m}, {100*d + 5*m + 1, 100*d + 5*m + 2}, {3, 4}} {
			segs := st.plan(c.s, c.u, 3)
			pos := c.s
			for _, sg := range segs {
				if sg.a < pos {
					t.Fatalf("plan(%d,%d) overlaps: %+v", c.s, c.u, segs)
				}
				// A gap is fine only where no tier has data.
				for i, a := range st.avail {
					if sg.a > pos && st.exists[i] && a < sg.a {
						t.Fatalf("plan(%d,%d) skips [%d,%d) but tier %d has data from %d: %+v", c.s, c.u, pos, sg.a, i, a, segs)
					}
				}
				if st.avail[sg.tier] > sg.a {
					t.Fatalf("plan(%d,%d) reads tier %d before it has data: %+v", c.s, c.u, sg.tier, segs)
				}
				if sg.tier > 0 && sg.b != c.u && sg.b%sizeMs(sg.tier) != 0 {
					t.Fatalf("plan(%d,%d): tier %d segment ends inside a bucket: %+v", c.s, c.u, sg.tier, segs)
				}
				pos = sg.b
			}
			if pos != c.u && !(len(segs) == 0 && c.u <= 10*d && st.avail[3] == 10*d) {
				t.Fatalf("plan(%d,%d) ends at %d: %+v", c.s, c.u, pos, segs)
			}
		}
	}
	if segs := pruned.plan(0, 11*d, 3); len(segs) == 0 || segs[0].a != 10*d {
		t.Fatalf("pruned plan does not start where data does: %+v", segs)
	}
	segs := st.plan(0, 101*d, 3)
	if len(segs) > 8 {
		t.Fatalf("plan of 101 days has %d segments: %+v", len(segs), segs)
	}
	if segs[0].tier != 3 {
		t.Fatalf("long window does not start on the day tier: %+v", segs)
	}
}
