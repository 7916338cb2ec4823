package alerts

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// TestCalendarAndNewAppOnARealStore: the quota starts from what a real
// SQLite store already has today, and new-app keys and the alert history
// go through the store's tables.
func TestCalendarAndNewAppOnARealStore(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	st, err := store.Open(p, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	start := periodStart(CalendarDay, now)
	if now.Sub(start) < 2*time.Minute {
		t.Skip("too close to midnight for a calendar-day test")
	}
	// Earlier today: rsync sent 3000 bytes in two flushes, curl 5000.
	for i, ts := range []time.Time{now.Add(-time.Minute), now.Add(-30 * time.Second)} {
		if err := st.Write(ctx, ts, []store.Sample{
			{ProcessKey: store.ProcessKey{PID: 10, StartNS: 1, Comm: "rsync"}, Exe: "/usr/bin/rsync", RemoteIP: "10.0.0.1", Protocol: "tcp", TxBytes: 1500},
			{ProcessKey: store.ProcessKey{PID: 11, StartNS: uint64(i), Comm: "curl"}, Exe: "/usr/bin/curl", RemoteIP: "10.0.0.2", Protocol: "tcp", TxBytes: 2500},
		}); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := store.Open(p, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	e := New(Options{Store: st, History: ro})
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.SetConfig(Config{Rules: []Rule{
		mustRule(t, "name=quota;app=rsync;dir=tx;above=3100;over=calendar-day"),
		mustRule(t, "name=newprog;kind=new-app"),
	}}, "test")
	for i := 0; i < 500; i++ {
		e.mu.Lock()
		ready := e.rules[0].baseReady
		e.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.Observe(now.Add(time.Second), []Delta{{Comm: "rsync", Exe: "/usr/bin/rsync", TxBytes: 99}})
	if f := firing(e); len(f) != 1 || f[0].Rule != "newprog" {
		t.Fatalf("3099 bytes today: %+v", f)
	}
	e.Observe(now.Add(2*time.Second), []Delta{{Comm: "rsync", Exe: "/usr/bin/rsync", TxBytes: 2}})
	var quota *Alert
	for _, a := range firing(e) {
		if a.Rule == "quota" {
			quota = &a
		}
	}
	if quota == nil || quota.Value != 3101 || quota.Labels["app"] != "rsync" {
		t.Fatalf("quota: %+v", firing(e))
	}
	e.Close(time.Second)
	keys, _ := st.KnownApps(ctx)
	recs, _ := st.RecentAlerts(ctx, 10)
	if fmt.Sprint(keys) != "[/usr/bin/rsync]" || len(recs) != 2 {
		t.Fatalf("persisted: keys %v, %d alerts", keys, len(recs))
	}
}
