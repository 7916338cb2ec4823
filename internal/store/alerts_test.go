package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestKnownAppsSeededAndPersisted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	st, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ts := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	if err := st.Write(ctx, ts, []Sample{
		{ProcessKey: ProcessKey{PID: 1, StartNS: 1, Comm: "curl"}, Exe: "/usr/bin/curl", RemoteIP: "10.0.0.1", Protocol: "tcp", TxBytes: 10, RxBytes: 20},
		{ProcessKey: ProcessKey{PID: 2, StartNS: 2, Comm: "kworker"}, Protocol: "udp", TxBytes: 5},
	}); err != nil {
		t.Fatal(err)
	}
	// known_apps already exists (created empty on open): a fresh file has
	// nothing to seed; keys are added by the engine.
	if err := st.AddKnownApps(ctx, []string{"/usr/bin/curl", "comm:kworker"}, 1); err != nil {
		t.Fatal(err)
	}
	// Re-adding keeps one row.
	if err := st.AddKnownApps(ctx, []string{"/usr/bin/curl"}, 2); err != nil {
		t.Fatal(err)
	}
	maintainAll(t, st, time.Now(), DefaultRetention(), 1000)
	st.Close()

	// Drop the table: the next open seeds it from processes (an upgrade).
	st, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := st.KnownApps(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("known apps: %v %v", keys, err)
	}
	if _, err := st.sql.Exec("DROP TABLE known_apps"); err != nil {
		t.Fatal(err)
	}
	if err := st.migrateAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ = st.KnownApps(ctx)
	if len(keys) != 2 {
		t.Fatalf("seeded: %v", keys)
	}
	hours, err := st.AppHours(ctx, ts.Add(-time.Hour), time.Now())
	if err != nil || len(hours) != 2 {
		t.Fatalf("app hours: %+v %v", hours, err)
	}
	for _, h := range hours {
		if h.BucketMs != ts.UnixMilli() || (h.Exe == "/usr/bin/curl" && (h.TxBytes != 10 || h.RxBytes != 20)) {
			t.Errorf("hour row %+v", h)
		}
	}
}

func TestAlertHistoryBoundedUpsert(t *testing.T) {
	st := openTemp(t)
	ctx := context.Background()
	var recs []AlertRecord
	for i := 0; i < MaxAlertHistory+5; i++ {
		recs = append(recs, AlertRecord{ID: "a" + string(rune('0'+i%10)) + time.Duration(i).String(), Rule: "r", Kind: "threshold",
			Labels: map[string]string{"app": "x"}, Value: float64(i), StartedMs: int64(i)})
	}
	if err := st.SaveAlerts(ctx, recs); err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	last.EndedMs = 99999
	if err := st.SaveAlerts(ctx, []AlertRecord{last}); err != nil {
		t.Fatal(err)
	}
	got, err := st.RecentAlerts(ctx, 2*MaxAlertHistory)
	if err != nil || len(got) != MaxAlertHistory {
		t.Fatalf("%d %v", len(got), err)
	}
	if g := got[len(got)-1]; g.EndedMs != 99999 || g.Labels["app"] != "x" || got[0].StartedMs != 5 {
		t.Fatalf("%+v %+v", got[0], g)
	}
}
