package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// A database with three days of history, rolled up and pruned like the
// daemon does: the reports must add up to what was written.
func TestReportPeriodsDimsAndDBStats(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	st, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var tx, rx uint64
	for ts := now.Add(-72 * time.Hour); ts.Before(now); ts = ts.Add(7 * time.Minute) {
		s := []store.Sample{
			{ProcessKey: store.ProcessKey{PID: 10, StartNS: 1, Comm: "curl"}, Exe: "/usr/bin/curl", UID: 0, RemoteIP: "198.18.0.1", Protocol: "tcp", TxBytes: 100, RxBytes: 1000},
			{ProcessKey: store.ProcessKey{PID: 20, StartNS: 2, Comm: "wget"}, Exe: "/usr/bin/wget", UID: 0, RemoteIP: "198.18.0.2", Protocol: "udp", TxBytes: 10, RxBytes: 20},
		}
		if err := st.Write(context.Background(), ts, s); err != nil {
			t.Fatal(err)
		}
		tx += 110
		rx += 1020
	}
	if err := st.Maintain(context.Background(), now, store.DefaultRetention()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, stderr := runCLI("report", "--db", db, "--daily", "--format", "json")
	if code != 0 {
		t.Fatalf("--daily: %d %s", code, stderr)
	}
	var days []struct {
		Start time.Time      `json:"start"`
		Tx    uint64         `json:"tx_bytes"`
		Rx    uint64         `json:"rx_bytes"`
		Total uint64         `json:"total_bytes"`
		Top   map[string]any `json:"top"`
	}
	if err := json.Unmarshal([]byte(out), &days); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var gtx, grx uint64
	for _, d := range days {
		gtx += d.Tx
		grx += d.Rx
		if d.Top["app"] != "curl" { // the default grouping
			t.Errorf("top of %s: %v", d.Start, d.Top)
		}
	}
	if gtx != tx || grx != rx || len(days) < 3 || len(days) > 4 {
		t.Fatalf("daily: %d days, tx %d rx %d; want tx %d rx %d", len(days), gtx, grx, tx, rx)
	}

	code, out, _ = runCLI("report", "--db", db, "--by", "exe,user", "--since", "30d", "--format", "json")
	var rows []map[string]any
	json.Unmarshal([]byte(out), &rows)
	if code != 0 || len(rows) != 2 || rows[0]["exe"] != "/usr/bin/curl" || rows[0]["user"] != "root" || rows[0]["uid"] == nil {
		t.Fatalf("--by exe,user: %d %s", code, out)
	}

	code, out, _ = runCLI("report", "--db", db, "--top-days", "1", "--by", "process")
	if code != 0 || !strings.Contains(out, "curl[10]") || !strings.Contains(out, "1 top periods") {
		t.Fatalf("--top-days: %d\n%s", code, out)
	}
	code, out, _ = runCLI("report", "--db", db, "--period", "hour", "--by", "remote", "--no-resolve")
	if code != 0 || !strings.Contains(out, "198.18.0.1") || !strings.Contains(out, "TOP REMOTE") {
		t.Fatalf("--period hour --by remote: %d\n%s", code, out)
	}
	code, out, _ = runCLI("report", "--db", db, "--by", "remote", "--since", "30d", "--no-resolve")
	if code != 0 || !strings.Contains(out, "198.18.0.1") || !strings.Contains(out, "█") {
		t.Fatalf("--by remote table: %d\n%s", code, out)
	}

	code, out, stderr = runCLI("db", "stats", "--db", db, "--format", "json")
	var ds store.DBStats
	if code != 0 || json.Unmarshal([]byte(out), &ds) != nil || len(ds.Tiers) != 4 || ds.Tiers[1].Rows == 0 || ds.Tiers[3].Oldest == nil {
		t.Fatalf("db stats: %d %s %s", code, out, stderr)
	}
	code, out, _ = runCLI("db", "stats", "--db", db)
	if code != 0 || !strings.Contains(out, "TIER") || !strings.Contains(out, "auto-vacuum incremental") {
		t.Fatalf("db stats table: %d\n%s", code, out)
	}
	if code, out, _ = runCLI("report", "--db", db, "--db-stats"); code != 0 || !strings.Contains(out, "TIER") {
		t.Fatalf("report --db-stats: %d\n%s", code, out)
	}

	for _, args := range [][]string{
		{"report", "--db", db, "--period", "week"},
		{"report", "--db", db, "--daily", "--monthly"},
		{"report", "--db", db, "--top-days", "-1"},
		{"report", "--db", db, "--period", "5min", "--since", "2000-01-01"},
	} {
		if code, _, stderr := runCLI(args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, stderr)
		}
	}
}
