package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	"golang.org/x/sys/unix"
)

// TestMain lets a test re-execute this binary as another process
// (BWT_STORE_CHILD=open-close PATH: open the database read-write with plain
// SQLite and close it, as any second process would).
func TestMain(m *testing.M) {
	if os.Getenv("BWT_STORE_CHILD") == "open-close" {
		db, err := sql.Open("sqlite", "file:"+os.Args[len(os.Args)-1]+"?_pragma=busy_timeout(2000)")
		if err == nil {
			var n int
			err = db.QueryRow("SELECT count(*) FROM samples").Scan(&n)
			db.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func sample(pid uint32, tx uint64) []Sample {
	return []Sample{{ProcessKey: ProcessKey{PID: pid, StartNS: 1, Comm: "x"}, RemoteIP: "198.18.0.1", Protocol: "tcp", TxBytes: tx}}
}

func totalTx(t *testing.T, path string) uint64 {
	t.Helper()
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Totals(context.Background(), Query{By: []string{DimProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, row := range rows {
		n += row.TxBytes
	}
	return n
}

func TestSecondWriterRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(p, Options{})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v", err)
	}
	if le.PID != os.Getpid() || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) || !strings.Contains(err.Error(), "another --db") {
		t.Fatalf("message must name the file, the pid and what to do: %v", err)
	}
	if pid, err := LockHolder(p); err != nil || pid != os.Getpid() {
		t.Fatalf("LockHolder = %d, %v", pid, err)
	}
	w.Close()
	if pid, _ := LockHolder(p); pid != 0 {
		t.Fatalf("lock still held after Close: %d", pid)
	}
	w2, err := Open(p, Options{})
	if err != nil {
		t.Fatalf("writer after Close: %v", err)
	}
	w2.Close()
}

// The bug behind "WAL deleted under the daemon": a read-only open inside
// the writer's process used to open+close a descriptor of the file, which
// dropped the writer's POSIX locks; the next process to close the database
// then took the EXCLUSIVE lock and deleted the WAL and SHM.
func TestReaderInWriterProcessKeepsLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if err := w.Write(ctx, time.Now(), sample(1, 100)); err != nil {
		t.Fatal(err)
	}
	// Readers in the writer's process: both kinds, opened and closed.
	r, err := w.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Totals(ctx, Query{By: []string{DimProtocol}}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	ro, err := Open(p, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	// Another process opens and closes the database.
	cmd := exec.Command(os.Args[0], "-test.run=^$", p)
	cmd.Env = append(os.Environ(), "BWT_STORE_CHILD=open-close")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(p + sfx); err != nil {
			t.Fatalf("%s gone after another process closed the database: %v", sfx, err)
		}
	}
	if u := unlinkedSidecars(p); len(u) > 0 {
		t.Fatalf("writer holds unlinked files: %v", u)
	}
	if err := w.Write(ctx, time.Now(), sample(1, 23)); err != nil {
		t.Fatal(err)
	}
	if n := totalTx(t, p); n != 123 {
		t.Fatalf("a new reader sees %d bytes, want 123", n)
	}
}

func TestPathErrors(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("a", 250), strings.Repeat("b", 250), "bw.db")
	for _, c := range []struct{ path, want string }{
		{"", "empty path"},
		{long, "at most 500"},
		{dir, "is a directory"},
	} {
		for _, ro := range []bool{false, true} {
			_, err := Open(c.path, Options{ReadOnly: ro})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open(%.30q, ro=%v): %v, want %q", c.path, ro, err, c.want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, strings.Repeat("a", 250))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused long path left something behind: %v", err)
	}
}

func TestForeignOrOpenFileRefusedOrRepaired(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	// Ours but readable by others: repaired.
	os.Chmod(p, 0o644)
	w, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 || len(w.Repairs()) != 1 {
		t.Errorf("mode %v, repairs %v", fi.Mode(), w.Repairs())
	}
	w.Close()
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	for _, f := range []string{p, p + "-wal", LockPath(p)} {
		if _, err := os.Stat(f); err != nil {
			os.WriteFile(f, nil, 0o600)
		}
		os.Chown(f, 65534, 65534)
		_, err = Open(p, Options{})
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "chown") {
			t.Errorf("%s owned by nobody: %v", f, err)
		}
		os.Chown(f, 0, 0)
	}
}

func TestWALLossDetected(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := w.Write(ctx, t0, sample(1, 10)); err != nil {
		t.Fatal(err)
	}
	w.Close() // checkpointed: the main file holds t0
	w, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w.WALLoss() != nil {
		t.Fatalf("false alarm: %v", w.WALLoss())
	}
	if err := w.Write(ctx, t0.Add(time.Second), sample(1, 20)); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash that leaves a truncated WAL: copy the main file
	// and the lock file as they are now, without the WAL.
	crash := filepath.Join(t.TempDir(), "bw.db")
	for _, sfx := range []string{"", lockSuffix} {
		b, err := os.ReadFile(p + sfx)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(crash+sfx, b, 0o600)
	}
	os.WriteFile(crash+"-wal", []byte("garbage"), 0o600)
	w.Close()
	c, err := Open(crash, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := c.WALLoss()
	if l == nil || !l.Newest.Equal(t0) || !l.Marked.Equal(t0.Add(time.Second)) || !strings.Contains(l.String(), "dropped WAL frames") {
		t.Fatalf("WAL loss not detected: %v", l)
	}
}

func TestGuardRecoversDeletedAndReplacedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := w.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if err := w.Write(ctx, time.Now(), sample(1, 1000)); err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Guard(ctx); ev != nil || err != nil {
		t.Fatalf("Guard on a healthy file: %v %v", ev, err)
	}
	// Deleted: rebuilt from the open connection, nothing lost.
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(p + sfx)
	}
	ev, err := w.Guard(ctx)
	if err != nil || ev == nil || ev.What != "deleted" {
		t.Fatalf("Guard after delete: %+v %v", ev, err)
	}
	if err := w.Write(ctx, time.Now(), sample(1, 1)); err != nil {
		t.Fatal(err)
	}
	if n := totalTx(t, p); n != 1001 {
		t.Fatalf("after delete + recovery: %d bytes, want 1001", n)
	}
	rows, err := r.Totals(ctx, Query{By: []string{DimProtocol}})
	if err != nil || len(rows) != 1 || rows[0].TxBytes != 1001 {
		t.Fatalf("reader after recovery: %+v %v", rows, err)
	}
	// Replaced by another database: old history saved aside, new one used.
	other := filepath.Join(dir, "other.db")
	o, err := Open(other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.Write(ctx, time.Now(), sample(2, 5))
	o.Close()
	if err := os.Rename(other, p); err != nil {
		t.Fatal(err)
	}
	ev, err = w.Guard(ctx)
	if err != nil || ev == nil || ev.What != "replaced" || !strings.Contains(ev.Msg, ".orphaned-") {
		t.Fatalf("Guard after replace: %+v %v", ev, err)
	}
	if err := w.Write(ctx, time.Now(), sample(2, 1)); err != nil {
		t.Fatal(err)
	}
	if n := totalTx(t, p); n != 6 {
		t.Fatalf("replaced file: %d bytes, want 6", n)
	}
	saved, _ := filepath.Glob(p + ".orphaned-*")
	if len(saved) != 1 || totalTx(t, saved[0]) != 1001 {
		t.Fatalf("old history not saved: %v", saved)
	}
}

func TestReadOnlyMountIsClearError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	p := filepath.Join(mnt, "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(context.Background(), time.Now(), sample(1, 1))
	w.Close()
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, filepath.Join(mnt, "new.db"), filepath.Join(mnt, "sub", "new.db")} {
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), "writable file system") {
			t.Errorf("writer on a read-only mount (%s): %v", path, err)
		}
	}
}

// An immutable -shm used to crash the daemon with SIGBUS (SQLite maps it
// and cannot extend it): refused at start with the fix.
func TestImmutableSidecarRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chattr +i needs root")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("no chattr")
	}
	p := filepath.Join(t.TempDir(), "bw.db")
	w, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	for _, f := range []string{p + "-shm", p + "-wal", p} {
		os.WriteFile(f+".tmp", nil, 0o600)
		if _, err := os.Stat(f); err != nil {
			os.Rename(f+".tmp", f)
		}
		os.Remove(f + ".tmp")
		if out, err := exec.Command("chattr", "+i", f).CombinedOutput(); err != nil {
			t.Skipf("chattr: %v %s", err, out)
		}
		_, err := Open(p, Options{})
		exec.Command("chattr", "-i", f).Run()
		if err == nil || !strings.Contains(err.Error(), "immutable") || !strings.Contains(err.Error(), "chattr -i") {
			t.Errorf("immutable %s: %v", f, err)
		}
	}
}
