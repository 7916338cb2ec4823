package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

// v1DDL is the schema 1 layout as GORM and tiers.go created it.
const v1DDL = "CREATE TABLE `processes` (`id` integer PRIMARY KEY AUTOINCREMENT,`pid` integer NOT NULL,`start_ns` integer NOT NULL,`comm` text NOT NULL,`exe` text NOT NULL DEFAULT \"\",`cmdline` text NOT NULL DEFAULT \"\",`uid` integer NOT NULL DEFAULT 0,`first_seen_ms` integer NOT NULL,`last_seen_ms` integer NOT NULL);" +
	"CREATE INDEX `idx_processes_last_seen` ON `processes`(`last_seen_ms`);" +
	"CREATE UNIQUE INDEX `idx_proc_identity` ON `processes`(`pid`,`start_ns`,`comm`);" +
	"CREATE TABLE `samples` (`id` integer PRIMARY KEY AUTOINCREMENT,`ts_ms` integer NOT NULL,`proc_id` integer NOT NULL,`cgroup_id` integer NOT NULL DEFAULT 0,`netns` integer NOT NULL DEFAULT 0,`remote_ip` text NOT NULL DEFAULT \"\",`remote_port` integer NOT NULL DEFAULT 0,`protocol` text NOT NULL,`tx_bytes` integer NOT NULL DEFAULT 0,`rx_bytes` integer NOT NULL DEFAULT 0,`tx_calls` integer NOT NULL DEFAULT 0,`rx_calls` integer NOT NULL DEFAULT 0);" +
	"CREATE INDEX `idx_samples_ts` ON `samples`(`ts_ms`);" +
	"CREATE INDEX `idx_samples_proc_ts` ON `samples`(`proc_id`,`ts_ms`);" +
	"CREATE TABLE `meta` (`key` text,`value` text NOT NULL,PRIMARY KEY (`key`));" +
	"CREATE TABLE `cgroups` (`id` integer,`path` text NOT NULL DEFAULT \"\",`service` text NOT NULL DEFAULT \"\",`user_unit` text NOT NULL DEFAULT \"\",`container` text NOT NULL DEFAULT \"\",`container_id` text NOT NULL DEFAULT \"\",`runtime` text NOT NULL DEFAULT \"\",`pod_uid` text NOT NULL DEFAULT \"\",`seen_ms` integer NOT NULL,PRIMARY KEY (`id`));"

const v1RollupDDL = ` (bucket_ms INTEGER NOT NULL, proc_id INTEGER NOT NULL, remote_ip TEXT NOT NULL, protocol TEXT NOT NULL,
  cgroup_id INTEGER NOT NULL, tx_bytes INTEGER NOT NULL, rx_bytes INTEGER NOT NULL, tx_calls INTEGER NOT NULL, rx_calls INTEGER NOT NULL,
  PRIMARY KEY (bucket_ms, proc_id, remote_ip, protocol, cgroup_id)) WITHOUT ROWID;`

// A schema 1 file is refused by readers with a next step and converted by
// the writer: same totals before and after rollup, ids keep growing.
func TestMigrateSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ddl := v1DDL
	for _, tr := range Tiers[1:] {
		ddl += "CREATE TABLE " + tr.Table + v1RollupDDL
	}
	t1 := base.Add(30 * time.Second).UnixMilli()
	t2 := base.Add(90 * time.Second).UnixMilli()
	ddl += `INSERT INTO processes (id, pid, start_ns, comm, exe, first_seen_ms, last_seen_ms) VALUES (1, 100, 1, 'curl', '/usr/bin/curl', 0, 0), (2, 200, 2, 'sshd', '/usr/sbin/sshd', 0, 0);`
	// Ids 1-3 one flush at t1, 4-5 at t2, 6 a late flush at t1; 1-3
	// are rolled up.
	ddl += fmtRows(t1, t2)
	for _, tr := range Tiers[1:] {
		ddl += "INSERT INTO " + tr.Table + ` SELECT ts_ms - ts_ms % ` + itoa(tr.Size.Milliseconds()) +
			`, proc_id, remote_ip, protocol, cgroup_id, sum(tx_bytes), sum(rx_bytes), sum(tx_calls), sum(rx_calls) FROM samples WHERE id <= 3 GROUP BY 1, 2, 3, 4, 5;`
	}
	ddl += `INSERT INTO meta VALUES ('schema_version', '1'), ('rollup.raw_id', '3');`
	// A cgroup named before the Kubernetes columns existed.
	ddl += `INSERT INTO cgroups (id, path, service, seen_ms) VALUES (77, '/system.slice/a.service', 'a.service', 1);`
	for _, q := range strings.Split(strings.TrimSuffix(ddl, ";"), ";") {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "bwtracker run") {
		t.Fatalf("read-only open of schema 1: %v", err)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	check := func(stage string) {
		t.Helper()
		rows, err := st.Totals(ctx, Query{By: []string{DimProcess, DimRemote, DimProtocol}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][4]uint64{}
		for _, r := range rows {
			got[r.Comm+" "+r.RemoteIP+" "+r.Protocol] = [4]uint64{r.TxBytes, r.RxBytes, r.TxCalls, r.RxCalls}
		}
		want := map[string][4]uint64{
			"curl 10.0.0.1 tcp":    {1 + 6, 10 + 60, 1, 1},
			"curl 2001:db8::1 udp": {2 + 4, 20 + 40, 2, 0},
			"sshd 10.0.0.1 tcp":    {3 + 5, 30 + 50, 1, 2},
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", stage, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %s = %v, want %v", stage, k, got[k], v)
			}
		}
		// The window [t2, ...) holds only the t2 flush.
		rows, err = st.Totals(ctx, Query{Since: time.UnixMilli(t2), By: []string{DimProtocol}})
		if err != nil || len(rows) != 2 || rows[0].TxBytes+rows[1].TxBytes != 4+5 {
			t.Fatalf("%s: window at t2: %+v %v", stage, rows, err)
		}
	}
	check("converted")
	// The cgroups table got the Kubernetes columns; the old row keeps its
	// names and has none of the new ones; a new row has them.
	var kcols int
	st.sql.QueryRow("SELECT count(*) FROM pragma_table_info('cgroups') WHERE name IN ('namespace', 'pod', 'container_name', 'workload')").Scan(&kcols)
	if kcols != 4 {
		t.Fatalf("cgroups has %d of the 4 Kubernetes columns", kcols)
	}
	if err := st.PutCgroups(ctx, []cgroupinfo.Info{{ID: 78, Path: "/kubepods/pod1", PodUID: "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b",
		Namespace: "shop", Pod: "web-0", ContainerName: "app", WorkloadKind: "statefulset", WorkloadName: "web"}}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int]string{77: "a.service    ", 78: " shop web-0 app statefulset/web"} {
		var svc, ns, pod, cn, wl string
		if err := st.sql.QueryRow("SELECT service, namespace, pod, container_name, workload FROM cgroups WHERE id = ?", id).Scan(&svc, &ns, &pod, &cn, &wl); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join([]string{svc, ns, pod, cn, wl}, " "); got != want {
			t.Errorf("cgroup %d: %q, want %q", id, got, want)
		}
	}
	var flushes int
	st.sql.QueryRow("SELECT count(*) FROM flushes").Scan(&flushes)
	if flushes != 3 {
		t.Fatalf("%d flushes, want 3", flushes)
	}
	var ver string
	st.sql.QueryRow("SELECT value FROM meta WHERE key = 'schema_version'").Scan(&ver)
	if ver != itoa(SchemaVersion) {
		t.Fatalf("schema_version %s", ver)
	}
	maintainAll(t, st, base.Add(time.Hour), Retention{}, 2)
	check("rolled up")
	if err := st.Write(ctx, time.UnixMilli(t2), []Sample{{ProcessKey: ProcessKey{PID: 300, StartNS: 3, Comm: "new"}, RemoteIP: "10.0.0.9", Protocol: "tcp", TxBytes: 1}}); err != nil {
		t.Fatal(err)
	}
	var maxID int64
	st.sql.QueryRow("SELECT max(id) FROM samples").Scan(&maxID)
	if maxID != 7 {
		t.Fatalf("new sample id %d, want 7", maxID)
	}
}

func fmtRows(t1, t2 int64) string {
	a, b := itoa(t1), itoa(t2)
	return `INSERT INTO samples (id, ts_ms, proc_id, cgroup_id, remote_ip, remote_port, protocol, tx_bytes, rx_bytes, tx_calls, rx_calls) VALUES
 (1, ` + a + `, 1, 7, '10.0.0.1', 443, 'tcp', 1, 10, 1, 0),
 (2, ` + a + `, 1, 7, '2001:db8::1', 53, 'udp', 2, 20, 1, 0),
 (3, ` + a + `, 2, 8, '10.0.0.1', 22, 'tcp', 3, 30, 0, 1),
 (4, ` + b + `, 1, 7, '2001:db8::1', 53, 'udp', 4, 40, 1, 0),
 (5, ` + b + `, 2, 8, '10.0.0.1', 22, 'tcp', 5, 50, 1, 1),
 (6, ` + a + `, 1, 7, '10.0.0.1', 443, 'tcp', 6, 60, 0, 1);`
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
