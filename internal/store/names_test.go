package store

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testDomain(n string) string {
	parts := strings.Split(n, ".")
	if len(parts) < 2 {
		return n
	}
	return strings.Join(parts[len(parts)-2:], ".")
}

func TestNamesInRemoteAndDomain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "n.db")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().Add(-time.Hour)
	curl := ProcessKey{PID: 10, StartNS: 1, Comm: "curl"}
	ff := ProcessKey{PID: 20, StartNS: 2, Comm: "firefox"}
	if err := st.Write(ctx, now, []Sample{
		{ProcessKey: curl, RemoteIP: "192.0.2.1", Protocol: "tcp", TxBytes: 100, RxBytes: 1000, NetNS: 7},
		{ProcessKey: curl, RemoteIP: "192.0.2.2", Protocol: "tcp", TxBytes: 10, RxBytes: 20, NetNS: 7},
		{ProcessKey: ff, RemoteIP: "192.0.2.1", Protocol: "udp", TxBytes: 1, RxBytes: 2, NetNS: 7},
		{ProcessKey: ff, RemoteIP: "198.51.100.9", Protocol: "tcp", TxBytes: 5, RxBytes: 5, NetNS: 7},
		{ProcessKey: ff, RemoteIP: "203.0.113.3", Protocol: "tcp", TxBytes: 7, RxBytes: 0, NetNS: 7},
	}); err != nil {
		t.Fatal(err)
	}
	// Before any name: remote_name and domain are empty.
	rows, err := st.Totals(ctx, Query{By: []string{DimRemote}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.RemoteName != "" {
			t.Fatalf("named without answers: %+v", r)
		}
	}
	if err := st.PutNames(ctx, []NameRecord{
		{NetNS: 7, IP: "192.0.2.1", Name: "old.example.com", Domain: "example.com", FirstSeen: now, LastSeen: now, Expires: now},
		{NetNS: 8, IP: "192.0.2.1", Name: "www.example.com", Domain: "example.com", FirstSeen: now, LastSeen: now.Add(time.Second), Expires: now},
		{NetNS: 7, IP: "192.0.2.2", Name: "img.example.com", Domain: "example.com", FirstSeen: now, LastSeen: now, Expires: now},
		{NetNS: 7, IP: "198.51.100.9", Name: "api.other.org", Domain: "other.org", FirstSeen: now, LastSeen: now, Expires: now},
	}); err != nil {
		t.Fatal(err)
	}
	// The upsert keeps the first seen and advances the last seen.
	if err := st.PutNames(ctx, []NameRecord{{NetNS: 7, IP: "192.0.2.2", Name: "img.example.com", Domain: "example.com",
		FirstSeen: now.Add(time.Minute), LastSeen: now.Add(time.Minute), Expires: now.Add(2 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	rows, err = st.Totals(ctx, Query{By: []string{DimRemote}})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, r := range rows {
		names[r.RemoteIP] = r.RemoteName
	}
	if names["192.0.2.1"] != "www.example.com" || names["192.0.2.2"] != "img.example.com" || names["198.51.100.9"] != "api.other.org" || names["203.0.113.3"] != "" {
		t.Fatalf("names %v", names)
	}
	// A reverse-DNS result names the domain of a remote no answer named.
	if err := st.SaveReverseNames(ctx, map[string]string{"203.0.113.3": "host3.rdns.net", "192.0.2.99": ""}, testDomain); err != nil {
		t.Fatal(err)
	}
	rows, err = st.Totals(ctx, Query{By: []string{DimDomain}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, r := range rows {
		got[r.Domain] = r.Total()
	}
	want := map[string]uint64{"example.com": 1133, "other.org": 10, "rdns.net": 7}
	if len(got) != len(want) {
		t.Fatalf("by domain %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("by domain %v, want %v", got, want)
		}
	}
	rows, err = st.Totals(ctx, Query{By: []string{DimProcess, DimDomain, DimProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0].Comm != "curl" || rows[0].Domain != "example.com" || rows[0].Total() != 1130 {
		t.Fatalf("by process,domain,protocol %+v", rows)
	}
	// Rolled-up history keeps its names.
	if err := st.Maintain(ctx, time.Now(), DefaultRetention()); err != nil {
		t.Fatal(err)
	}
	recs, err := st.LoadNames(ctx, 10)
	if err != nil || len(recs) != 4 || recs[len(recs)-1].Name != "img.example.com" || !recs[len(recs)-1].FirstSeen.Equal(time.UnixMilli(now.UnixMilli())) {
		t.Fatalf("LoadNames %+v %v", recs, err)
	}
	st.Close()

	// A reader (report) sees the names and caches reverse names itself.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rows, err = ro.Totals(ctx, Query{By: []string{DimRemote, DimProtocol}, Since: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].RemoteIP != "192.0.2.1" || rows[0].RemoteName != "www.example.com" {
		t.Fatalf("%+v", rows[0])
	}
	if err := ro.SaveReverseNames(ctx, map[string]string{"198.18.0.1": "bench.example"}, testDomain); err != nil {
		t.Fatal(err)
	}
	rn, err := ro.ReverseNames(ctx, []string{"198.18.0.1", "203.0.113.3", "192.0.2.99", "10.9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rn) != 3 || rn["198.18.0.1"].Name != "bench.example" || rn["192.0.2.99"].Name != "" || rn["203.0.113.3"].Resolved.IsZero() {
		t.Fatalf("%+v", rn)
	}
}

// A file written by a daemon older than the name tables still reports.
func TestNamesMissingTables(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, time.Now(), []Sample{{ProcessKey: ProcessKey{PID: 1, StartNS: 1, Comm: "a"}, RemoteIP: "192.0.2.1", Protocol: "tcp", TxBytes: 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.sql.Exec("DROP TABLE dns_names; DROP TABLE rdns_cache"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rows, err := ro.Totals(ctx, Query{By: []string{DimRemote, DimDomain}})
	if err != nil || len(rows) != 1 || rows[0].RemoteIP != "192.0.2.1" || rows[0].RemoteName != "" || rows[0].Domain != "" || rows[0].TxBytes != 3 {
		t.Fatalf("%+v %v", rows, err)
	}
	if rn, err := ro.ReverseNames(ctx, []string{"192.0.2.1"}); err != nil || len(rn) != 0 {
		t.Fatalf("%v %v", rn, err)
	}
}

func TestNamesCapPrunes(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "c.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer func(n int) { namesCap = n }(namesCap)
	namesCap = 100
	base := time.Now()
	var recs []NameRecord
	for i := 0; i < namesCap+50; i++ {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		recs = append(recs, NameRecord{NetNS: 1, IP: "10.0.0." + strconv.Itoa(i), Name: "h.example", Domain: "example", FirstSeen: ts, LastSeen: ts, Expires: ts})
	}
	if err := st.PutNames(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var n int
	var oldest string
	if err := st.sql.QueryRow("SELECT count(*), min(ip) FROM dns_names").Scan(&n, &oldest); err != nil {
		t.Fatal(err)
	}
	if n != namesCap {
		t.Fatalf("%d rows after pruning, want %d", n, namesCap)
	}
	var gone int
	st.sql.QueryRow("SELECT count(*) FROM dns_names WHERE ip = '10.0.0.49'").Scan(&gone)
	if gone != 0 {
		t.Fatal("the least recently seen name was kept")
	}
}
