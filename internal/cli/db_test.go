package cli

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"

	"github.com/bwtracker/bwtracker/internal/store"
)

// A database with free pages: vacuum must shrink it, never grow it (it
// used to print e.g. "302 KiB -> 390 KiB": the WAL of the new copy was
// counted on top of the old file).
func TestVacuumCompacts(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		var batch []store.Sample
		for j := 0; j < 200; j++ {
			batch = append(batch, store.Sample{ProcessKey: store.ProcessKey{PID: uint32(j), StartNS: 1, Comm: "x"}, RemoteIP: fmt.Sprintf("198.18.%d.%d", i, j), Protocol: "udp", TxBytes: 1})
		}
		if err := s.Write(t.Context(), time.Now().Add(-time.Hour), batch); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Empty the samples table behind the store's back (plain SQL on the
	// closed file), leaving free pages for vacuum to give back.
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("DELETE FROM samples"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	before := fileSize(db)
	code, out, stderr := runCLI("db", "vacuum", "--db", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	after := fileSize(db)
	if after >= before {
		t.Fatalf("vacuum did not shrink the file: %d -> %d bytes (%s)", before, after, out)
	}
	if !strings.Contains(out, db+": ") || !strings.Contains(out, " -> ") {
		t.Fatalf("output %q", out)
	}
	t.Logf("%s", out)
}

// While a writer holds the database, vacuum refuses and names the holder.
func TestVacuumRefusedWhileWriterRuns(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bw.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, _, stderr := runCLI("db", "vacuum", "--db", db)
	if code != 1 || !strings.Contains(stderr, db) || !strings.Contains(stderr, fmt.Sprint(os.Getpid())) || !strings.Contains(stderr, "stop that daemon first") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(db + sfx); err != nil {
			t.Errorf("refused vacuum removed %s: %v", sfx, err)
		}
	}
}

func TestEmptyDBPathIsUsageError(t *testing.T) {
	for _, args := range [][]string{{"run", "--db", "", "--no-web"}, {"db", "vacuum", "--db", ""}} {
		code, _, stderr := runCLI(args...)
		if code != 2 || !strings.Contains(stderr, "--db ''") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
	code, _, stderr := runCLI("report", "--db", "")
	if code != 1 || !strings.Contains(stderr, "empty path") {
		t.Errorf("report --db '': exit %d: %s", code, stderr)
	}
}

func fileSize(p string) int64 {
	var n int64
	for _, sfx := range []string{"", "-wal"} {
		if fi, err := os.Stat(p + sfx); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func TestRunIntervalBounds(t *testing.T) {
	for _, v := range []string{"0", "-1s", "5ms", "2h", "1000000h", "soon"} {
		code, _, stderr := runCLI("run", "--db", filepath.Join(t.TempDir(), "x.db"), "--no-web", "--interval", v)
		if code != 2 || strings.Contains(stderr, "goroutine") || !strings.Contains(stderr, "interval") {
			t.Errorf("--interval %s: exit %d: %s", v, code, stderr)
		}
	}
}
