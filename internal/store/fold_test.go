package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// foldHistory writes two hours from base: a server process talking to n
// remotes in each hour (remote i has 1000+i bytes sent per flush, so the
// largest are the highest-numbered; every 7th over udp too, ports differ
// per remote), and a client process with 3 remotes. It returns the records.
func foldHistory(t *testing.T, st *Store, n int) []rec {
	t.Helper()
	srv := ProcessKey{PID: 80, StartNS: 1, Comm: "nginx"}
	cli := ProcessKey{PID: 90, StartNS: 2, Comm: "curl"}
	var out []rec
	for h := 0; h < 2; h++ {
		for f := 0; f < 4; f++ {
			ts := base.Add(time.Duration(h)*time.Hour + time.Duration(f)*10*time.Minute + 5*time.Second)
			var batch []Sample
			for i := 0; i < n; i++ {
				s := Sample{ProcessKey: srv, Exe: "/usr/sbin/nginx", CgroupID: 7, NetNS: 4026531840,
					RemoteIP: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), RemotePort: uint16(30000 + i), Protocol: "tcp",
					TxBytes: uint64(1000 + i + h), RxBytes: uint64(10 + f), TxCalls: 2, RxCalls: 1}
				batch = append(batch, s)
				if i%7 == 0 {
					s.Protocol, s.TxBytes = "udp", 5
					batch = append(batch, s)
				}
			}
			for i := 0; i < 3; i++ {
				batch = append(batch, Sample{ProcessKey: cli, Exe: "/usr/bin/curl", CgroupID: 8, NetNS: 4026532000,
					RemoteIP: fmt.Sprintf("198.18.0.%d", i+1), RemotePort: 443, Protocol: "tcp", TxBytes: 50, RxBytes: 5000, TxCalls: 1, RxCalls: 3})
			}
			if err := st.Write(context.Background(), ts, batch); err != nil {
				t.Fatal(err)
			}
			for _, s := range batch {
				out = append(out, rec{ts, s})
			}
		}
	}
	return out
}

func totalsBy(t *testing.T, st *Store, q Query) []Row {
	t.Helper()
	rows, err := st.Totals(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// sumBy sums the records in [s, u) per key.
func sumBy(recs []rec, s, u time.Time, key func(Sample) string) map[string][4]uint64 {
	m := map[string][4]uint64{}
	for _, r := range recs {
		if r.ts.Before(s) || !r.ts.Before(u) {
			continue
		}
		k := key(r.s)
		v := m[k]
		v[0] += r.s.TxBytes
		v[1] += r.s.RxBytes
		v[2] += r.s.TxCalls
		v[3] += r.s.RxCalls
		m[k] = v
	}
	return m
}

func rowSums(r Row) [4]uint64 { return [4]uint64{r.TxBytes, r.RxBytes, r.TxCalls, r.RxCalls} }

func tierRows(t *testing.T, st *Store, table string, bucket int64) (rows, others int) {
	t.Helper()
	err := st.sql.QueryRow("SELECT count(*), count(*) FILTER (WHERE e.ip = ?) FROM "+table+" r JOIN endpoints e ON e.id = r.endpoint_id WHERE bucket_ms = ?",
		OtherRemotes, bucket).Scan(&rows, &others)
	if err != nil {
		t.Fatal(err)
	}
	return rows, others
}

// Folding the 1h and 1d tiers keeps the Keep largest remotes of each
// process and bucket, sums the rest into "(other remotes)" rows, and
// leaves every per-process (and per-protocol) total exactly as it was.
func TestFoldKeepsTotalsExact(t *testing.T) {
	st := openTemp(t)
	const n = 300
	recs := foldHistory(t, st, n)
	ctx := context.Background()
	s, u := base, base.Add(2*time.Hour)
	byProc := func(r Sample) string { return r.Comm }
	// Before any rollup (raw), after rollup, fold and with only the coarse
	// tiers left: per-process totals are the raw sums.
	check := func(when string, q Query) {
		t.Helper()
		w := sumBy(recs, q.Since, q.Until, byProc)
		q.By = []string{DimProcess}
		rows := totalsBy(t, st, q)
		if len(rows) != len(w) {
			t.Fatalf("%s: %d process rows, want %d", when, len(rows), len(w))
		}
		for _, r := range rows {
			if rowSums(r) != w[r.Comm] {
				t.Fatalf("%s: %s = %v, want %v", when, r.Comm, rowSums(r), w[r.Comm])
			}
		}
	}
	check("raw", Query{Since: s, Until: u})
	maintainAll(t, st, base.Add(26*time.Hour), DefaultRetention(), 500)
	for i := 2; i <= 3; i++ {
		var b int64
		if i == 2 {
			b = base.UnixMilli()
		} else {
			b = base.Truncate(24 * time.Hour).UnixMilli()
		}
		rows, others := tierRows(t, st, Tiers[i].Table, b)
		// nginx: Keep own rows + one other row per protocol; curl: 3 rows.
		if want := Tiers[i].Keep + 2 + 3; rows != want || others != 2 {
			t.Fatalf("tier %s bucket %d: %d rows (%d other), want %d (2 other)", Tiers[i].Name, b, rows, others, want)
		}
	}
	// The aligned window is served by the 1h tier; the unaligned ones mix
	// tiers; the whole day by the 1d tier.
	check("1h", Query{Since: s, Until: u})
	check("1m+1h", Query{Since: s.Add(7 * time.Minute), Until: u.Add(-3 * time.Minute)})
	check("1d", Query{Since: base.Truncate(24 * time.Hour), Until: base.Truncate(24 * time.Hour).Add(24 * time.Hour)})

	// --by remote: the Keep largest remotes exact, "(other remotes)" the
	// exact remainder; --by protocol unchanged.
	q := Query{Since: s, Until: s.Add(time.Hour), By: []string{DimProcess, DimRemote}, PID: 80}
	rows := totalsBy(t, st, q)
	var nginx []rec
	for _, r := range recs {
		if r.s.PID == 80 {
			nginx = append(nginx, r)
		}
	}
	// Folding ranks endpoints (remote, protocol); --by remote sums the
	// kept endpoints of an address.
	w := sumBy(nginx, q.Since, q.Until, func(r Sample) string { return r.RemoteIP + "/" + r.Protocol })
	var eps []string
	for ep := range w {
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(a, b int) bool {
		ta, tb := w[eps[a]][0]+w[eps[a]][1], w[eps[b]][0]+w[eps[b]][1]
		if ta != tb {
			return ta > tb
		}
		return eps[a] < eps[b]
	})
	keep := Tiers[2].Keep
	wantIP := map[string][4]uint64{}
	for k, ep := range eps {
		ip := strings.Split(ep, "/")[0]
		if k >= keep {
			ip = OtherRemotes
		}
		v := wantIP[ip]
		for j := range v {
			v[j] += w[ep][j]
		}
		wantIP[ip] = v
	}
	if len(rows) != len(wantIP) || len(rows) != keep+1 {
		t.Fatalf("--by remote over a folded hour: %d rows, want %d", len(rows), keep+1)
	}
	for _, r := range rows {
		if rowSums(r) != wantIP[r.RemoteIP] {
			t.Fatalf("remote %s = %v, want %v", r.RemoteIP, rowSums(r), wantIP[r.RemoteIP])
		}
	}
	wp := sumBy(recs, s, u, func(r Sample) string { return r.Comm + "/" + r.Protocol })
	for _, r := range totalsBy(t, st, Query{Since: s, Until: u, By: []string{DimProcess, DimProtocol}}) {
		if rowSums(r) != wp[r.Comm+"/"+r.Protocol] {
			t.Fatalf("--by process,protocol %s/%s = %v, want %v", r.Comm, r.Protocol, rowSums(r), wp[r.Comm+"/"+r.Protocol])
		}
	}
	// The 1m tier keeps every remote.
	if rows := totalsBy(t, st, Query{Since: s, Until: s.Add(59 * time.Minute), By: []string{DimRemote}, PID: 80}); len(rows) != n {
		t.Fatalf("1m tier: %d remotes, want %d", len(rows), n)
	}

	// A late flush into the folded hour is rolled up and folded again.
	late := Sample{ProcessKey: ProcessKey{PID: 80, StartNS: 1, Comm: "nginx"}, Exe: "/usr/sbin/nginx", CgroupID: 7,
		RemoteIP: "10.9.9.9", RemotePort: 1, Protocol: "tcp", TxBytes: 1 << 24, TxCalls: 1}
	lateTs := base.Add(30 * time.Minute)
	if err := st.Write(ctx, lateTs, []Sample{late}); err != nil {
		t.Fatal(err)
	}
	recs = append(recs, rec{lateTs, late})
	maintainAll(t, st, base.Add(26*time.Hour), DefaultRetention(), 500)
	if rows, others := tierRows(t, st, Tiers[2].Table, base.UnixMilli()); rows != keep+2+3 || others != 2 {
		t.Fatalf("after a late flush: %d rows (%d other), want %d", rows, others, keep+2+3)
	}
	check("1h after late flush", Query{Since: s, Until: u})
	rows = totalsBy(t, st, Query{Since: s, Until: s.Add(time.Hour), By: []string{DimRemote}, PID: 80, Top: 1})
	if len(rows) != 1 || rows[0].RemoteIP != "10.9.9.9" {
		t.Fatalf("the late big remote is not the top row: %+v", rows)
	}
}

// Once the 1m tier no longer holds them, endpoints that only folded rows
// summed up are pruned, endpoints a kept row names stay (reports still name
// them), and writes after the prune intern them afresh.
func TestFoldPrunesFoldedEndpoints(t *testing.T) {
	st := openTemp(t)
	recs := foldHistory(t, st, 300)
	ret := Retention{Raw: 2 * time.Hour, Minute: 3 * time.Hour, Hour: 30 * 24 * time.Hour, Day: 60 * 24 * time.Hour}
	now := base.Add(2 * 24 * time.Hour)
	maintainAll(t, st, now, ret, 500)
	var eps int
	if err := st.sql.QueryRow("SELECT count(*) FROM endpoints WHERE ip <> ?", OtherRemotes).Scan(&eps); err != nil {
		t.Fatal(err)
	}
	// Kept: the top 100 of the day (a superset of each hour's top 25) of
	// nginx over tcp, curl's 3.
	if eps != 100+3 {
		t.Fatalf("%d endpoints left after pruning, want 103", eps)
	}
	var flows int
	if err := st.sql.QueryRow("SELECT count(*) FROM flows").Scan(&flows); err != nil {
		t.Fatal(err)
	}
	if flows != 0 {
		t.Fatalf("%d flows left, want 0 (no raw samples left)", flows)
	}
	s, u := base, base.Add(2*time.Hour)
	w := sumBy(recs, s, u, func(r Sample) string { return r.Comm })
	// No row may lose its endpoint (the remote join would drop its bytes).
	byRemote := map[string][4]uint64{}
	for _, r := range totalsBy(t, st, Query{Since: s, Until: u, By: []string{DimProcess, DimRemote}}) {
		v := byRemote[r.Comm]
		for k, x := range rowSums(r) {
			v[k] += x
		}
		byRemote[r.Comm] = v
	}
	for _, r := range totalsBy(t, st, Query{Since: s, Until: u, By: []string{DimProcess}}) {
		if rowSums(r) != w[r.Comm] || byRemote[r.Comm] != w[r.Comm] {
			t.Fatalf("after pruning endpoints: %s = %v (by remote %v), want %v", r.Comm, rowSums(r), byRemote[r.Comm], w[r.Comm])
		}
	}
	// The writer's caches still hold the pruned ids: a new flush to the
	// same remotes must intern them again.
	ts := now.Add(-time.Minute)
	batch := []Sample{{ProcessKey: ProcessKey{PID: 80, StartNS: 1, Comm: "nginx"}, RemoteIP: "10.1.0.1", RemotePort: 5, Protocol: "tcp", TxBytes: 77, TxCalls: 1}}
	if err := st.Write(context.Background(), ts, batch); err != nil {
		t.Fatal(err)
	}
	rows := totalsBy(t, st, Query{Since: ts.Add(-time.Second), Until: ts.Add(time.Second), By: []string{DimRemote}})
	if len(rows) != 1 || rows[0].RemoteIP != "10.1.0.1" || rows[0].TxBytes != 77 {
		t.Fatalf("write after pruning: %+v", rows)
	}
}

// Rollup rows keep the remote port and netns when every sample agreed and
// say 0 when they mixed; --by port and --by netns group by them, and the
// Port and NetNS filters select them, over raw and rolled-up windows.
func TestPortAndNetnsDims(t *testing.T) {
	st := openTemp(t)
	ctx := context.Background()
	pk := ProcessKey{PID: 5, StartNS: 1, Comm: "app"}
	w := func(ts time.Time, ip string, port uint16, netns uint32, tx uint64) {
		t.Helper()
		if err := st.Write(ctx, ts, []Sample{{ProcessKey: pk, RemoteIP: ip, RemotePort: port, Protocol: "tcp", NetNS: netns, TxBytes: tx, TxCalls: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := base.Add(10 * time.Second)
	w(t0, "10.0.0.1", 443, 111, 100)
	w(t0.Add(time.Second), "10.0.0.1", 443, 111, 10)
	w(t0.Add(2*time.Second), "10.0.0.2", 80, 111, 1)
	w(t0.Add(3*time.Second), "10.0.0.2", 8080, 111, 2) // mixes ports in its rollup row
	w(t0.Add(4*time.Second), "10.0.0.3", 53, 222, 1000)
	type pn struct {
		port  uint16
		netns uint32
	}
	rowsOf := func(q Query) map[pn]uint64 {
		t.Helper()
		q.Since, q.Until = base, base.Add(time.Minute)
		m := map[pn]uint64{}
		for _, r := range totalsBy(t, st, q) {
			m[pn{r.RemotePort, r.NetNS}] += r.TxBytes
		}
		return m
	}
	eq := func(what string, got, want map[pn]uint64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	eq("raw --by port,netns", rowsOf(Query{By: []string{DimPort, DimNetNS}}), map[pn]uint64{{443, 111}: 110, {80, 111}: 1, {8080, 111}: 2, {53, 222}: 1000})
	eq("raw --port 443", rowsOf(Query{By: []string{DimPort}, Port: 443}), map[pn]uint64{{443, 0}: 110})
	eq("raw --netns 222", rowsOf(Query{By: []string{DimNetNS}, NetNS: 222}), map[pn]uint64{{0, 222}: 1000})
	maintainAll(t, st, base.Add(time.Hour), DefaultRetention(), 500)
	// [base, base+1m) is now one 1m bucket.
	eq("1m --by port,netns", rowsOf(Query{By: []string{DimPort, DimNetNS}}), map[pn]uint64{{443, 111}: 110, {0, 111}: 3, {53, 222}: 1000})
	eq("1m --port 443", rowsOf(Query{By: []string{DimPort}, Port: 443}), map[pn]uint64{{443, 0}: 110})
	eq("1m --netns 111", rowsOf(Query{By: []string{DimNetNS}, NetNS: 111}), map[pn]uint64{{0, 111}: 113})
	eq("1m --by remote,port", rowsOf(Query{By: []string{DimRemote, DimPort}}), map[pn]uint64{{443, 0}: 110, {0, 0}: 3, {53, 0}: 1000})
}

// A schema 2 file (rollup rows without remote_port and netns, endpoints
// without kept marks) is read by a read-only open as port 0 / netns 0 and
// converted by the writer in place; its old hour and day buckets are then
// folded like new ones.
func TestMigrateSchema2AddsPortNetns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := foldHistory(t, st, 60)
	maintainAll(t, st, base.Add(3*time.Hour), DefaultRetention(), 500)
	// Back to schema 2: drop the new columns, forget the fold watermarks
	// and rebuild the (folded) hour and day tiers unfolded from the 1m tier.
	for _, q := range []string{
		"DELETE FROM meta WHERE key LIKE 'fold.%'",
		"DELETE FROM rollup_1h", "DELETE FROM rollup_1d",
		"INSERT INTO rollup_1h (bucket_ms, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls) SELECT bucket_ms - bucket_ms % 3600000, proc_id, endpoint_id, cgroup_id, sum(tx_bytes), sum(rx_bytes), sum(tx_calls), sum(rx_calls) FROM rollup_1m GROUP BY 1, 2, 3, 4",
		"INSERT INTO rollup_1d (bucket_ms, proc_id, endpoint_id, cgroup_id, tx_bytes, rx_bytes, tx_calls, rx_calls) SELECT bucket_ms - bucket_ms % 86400000, proc_id, endpoint_id, cgroup_id, sum(tx_bytes), sum(rx_bytes), sum(tx_calls), sum(rx_calls) FROM rollup_1m GROUP BY 1, 2, 3, 4",
		"DELETE FROM endpoints WHERE ip = '" + OtherRemotes + "'",
		"ALTER TABLE rollup_1m DROP COLUMN remote_port", "ALTER TABLE rollup_1m DROP COLUMN netns",
		"ALTER TABLE rollup_1h DROP COLUMN remote_port", "ALTER TABLE rollup_1h DROP COLUMN netns",
		"ALTER TABLE rollup_1d DROP COLUMN remote_port", "ALTER TABLE rollup_1d DROP COLUMN netns",
		"ALTER TABLE endpoints DROP COLUMN kept_1h_ms", "ALTER TABLE endpoints DROP COLUMN kept_1d_ms",
		"UPDATE meta SET value = '2' WHERE key = 'schema_version'",
	} {
		if _, err := st.sql.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st.Close()
	s, u := base, base.Add(2*time.Hour)
	wantProc := sumBy(recs, s, u, func(r Sample) string { return r.Comm })
	checkProc := func(when string, st *Store) {
		t.Helper()
		for _, r := range totalsBy(t, st, Query{Since: s, Until: u, By: []string{DimProcess, DimPort, DimNetNS}}) {
			if rowSums(r) != wantProc[r.Comm] || r.RemotePort != 0 || r.NetNS != 0 {
				t.Fatalf("%s: %+v, want sums %v with port 0 netns 0", when, r, wantProc[r.Comm])
			}
		}
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	checkProc("read-only schema 2", ro)
	ro.Close()

	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range addedColumns {
		if ok, err := hasColumn(context.Background(), st.sql, c.table, c.column); err != nil || !ok {
			t.Fatalf("%s.%s not added (%v)", c.table, c.column, err)
		}
	}
	checkProc("converted", st)
	if rows, _ := tierRows(t, st, "rollup_1h", base.UnixMilli()); rows != 60+9+3 {
		t.Fatalf("unfolded hour before maintenance: %d rows", rows)
	}
	maintainAll(t, st, base.Add(3*time.Hour), DefaultRetention(), 500)
	if rows, others := tierRows(t, st, "rollup_1h", base.UnixMilli()); rows != 25+2+3 || others != 2 {
		t.Fatalf("old hour after maintenance: %d rows (%d other), want 30 (2 other)", rows, others)
	}
	checkProc("converted and folded", st)
}
