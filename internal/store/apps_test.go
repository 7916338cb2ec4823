package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func appScope(ip string) string {
	if ip == "127.0.0.1" {
		return "loopback"
	}
	return "internet"
}

// A file from before processes.app and endpoints.scope: a reader groups by
// comm (and an empty scope) until a writer converts it, which names apps
// from the stored exe and command line and classifies the old endpoints.
func TestMigrateAppsScopes(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := Open(db, Options{Scope: appScope})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute)
	err = s.Write(ctx, ts, []Sample{
		{ProcessKey: ProcessKey{PID: 1, StartNS: 1, Comm: "python3"}, Exe: "/usr/bin/python3.11", Cmdline: "python3 -m http.server 8000", RemoteIP: "127.0.0.1", Protocol: "tcp", TxBytes: 10, RxBytes: 1},
		{ProcessKey: ProcessKey{PID: 2, StartNS: 2, Comm: "python3"}, Exe: "/usr/bin/python3.11", Cmdline: "python3 /srv/sync.py", RemoteIP: "8.8.8.8", Protocol: "udp", TxBytes: 20, RxBytes: 2},
		{ProcessKey: ProcessKey{PID: 3, StartNS: 3, Comm: "kworker/0:1"}, RemoteIP: "8.8.8.8", Protocol: "udp", TxBytes: 40, RxBytes: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"ALTER TABLE processes DROP COLUMN app", "ALTER TABLE endpoints DROP COLUMN scope"} {
		if _, err := s.sql.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	totals := func(by ...string) string {
		t.Helper()
		r, err := Open(db, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows, err := r.Totals(ctx, Query{By: by})
		if err != nil {
			t.Fatal(err)
		}
		var out string
		for _, row := range rows {
			out += fmt.Sprintf("[%s|%s %d/%d]", row.App, row.Scope, row.TxBytes, row.RxBytes)
		}
		rows, err = r.Totals(ctx, Query{By: []string{DimApp}, App: "python3", Scope: "internet"})
		if err != nil {
			t.Fatal(err)
		}
		return out + fmt.Sprintf(" filtered:%d", len(rows))
	}
	if got, want := totals(DimApp, DimScope), "[kworker/0:1| 40/4][python3| 30/3] filtered:0"; got != want {
		t.Errorf("old file, read-only: %s, want %s", got, want)
	}
	s, err = Open(db, Options{Scope: appScope}) // the writer converts it
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got, want := totals(DimApp, DimScope), "[kworker/0:1|internet 40/4][sync.py (python3)|internet 20/2][http.server (python3)|loopback 10/1] filtered:0"; got != want {
		t.Errorf("converted: %s, want %s", got, want)
	}
}
