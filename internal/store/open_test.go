package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	p := filepath.Join(dir, "bw.db")
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("db mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	var mode string
	s.sql.QueryRow("PRAGMA journal_mode").Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode %q", mode)
	}
}

func TestOpenErrorsNameFileAndNextStep(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.db")
	_, err := Open(missing, Options{ReadOnly: true})
	var se *Error
	if !errors.As(err, &se) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "bwtracker run") {
		t.Fatalf("missing db: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("this is not sqlite ", 500)), 0o600)
	_, err = Open(garbage, Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), garbage) || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("corrupt db: %v", err)
	}
	other := filepath.Join(dir, "other.db")
	s, err := Open(other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.sql.Exec("DROP TABLE samples")
	s.Close()
	if _, err = Open(other, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a bwtracker database") {
		t.Fatalf("foreign db: %v", err)
	}
	if _, err = Open(dir, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("dir as db: %v", err)
	}
}

func TestUnreadableDB(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	p := filepath.Join(t.TempDir(), "bw.db")
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Chmod(p, 0)
	_, err = Open(p, Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "sudo") {
		t.Fatalf("unreadable: %v", err)
	}
}

func TestLockedDBIsClearError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Hold an exclusive lock from another connection, as a stuck writer
	// would (a raw connection: a second Store would not get the writer lock).
	lock, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	conn, err := lock.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = w.Write(ctx, time.Now(), []Sample{{ProcessKey: ProcessKey{PID: 1, StartNS: 1, Comm: "x"}, Protocol: "tcp", TxBytes: 1}})
	if err == nil {
		t.Fatal("write under an exclusive lock succeeded")
	}
	if !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the file: %v", err)
	}
}

func TestWriteAndTotals(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "bw.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	curl := ProcessKey{PID: 100, StartNS: 5, Comm: "curl"}
	reused := ProcessKey{PID: 100, StartNS: 999, Comm: "curl"} // same pid, later process
	var batch []Sample
	for i := 0; i < 150; i++ { // more rows than one INSERT chunk
		batch = append(batch, Sample{ProcessKey: curl, Exe: "/usr/bin/curl", RemoteIP: "198.18.0.1", RemotePort: uint16(1000 + i), Protocol: "tcp", TxBytes: 10, RxBytes: 1000})
	}
	if err := s.Write(ctx, t0, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, t0.Add(time.Second), []Sample{
		{ProcessKey: curl, RemoteIP: "2001:db8::1", Protocol: "udp", TxBytes: 7},
		{ProcessKey: reused, Exe: "/usr/bin/curl", RemoteIP: "198.18.0.1", Protocol: "tcp", RxBytes: 5},
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Totals(ctx, Query{By: []string{DimProcess}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("reused pid merged: %+v", rows)
	}
	if rows[0].StartNS != 5 || rows[0].TxBytes != 1507 || rows[0].RxBytes != 150000 || rows[0].Exe != "/usr/bin/curl" {
		t.Errorf("first row %+v", rows[0])
	}
	if rows[1].StartNS != 999 || rows[1].RxBytes != 5 {
		t.Errorf("second row %+v", rows[1])
	}
	rows, _ = s.Totals(ctx, Query{By: []string{DimRemote, DimProtocol}, Since: t0.Add(time.Second)})
	if len(rows) != 2 || rows[0].RemoteIP != "2001:db8::1" || rows[0].TxBytes != 7 {
		t.Errorf("window/by remote: %+v", rows)
	}
	rows, _ = s.Totals(ctx, Query{By: []string{DimProtocol}, Top: 1})
	if len(rows) != 1 || rows[0].Protocol != "tcp" {
		t.Errorf("top 1: %+v", rows)
	}
	if _, err := s.Totals(ctx, Query{By: []string{"nonsense"}}); err == nil || !strings.Contains(err.Error(), "valid are") {
		t.Errorf("bad dim: %v", err)
	}
}
