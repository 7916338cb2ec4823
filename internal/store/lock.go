package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The writer lock. Exactly one process writes a database: a writer Open
// takes flock(2) LOCK_EX on PATH.lock (beside the file, mode 0600) before
// it touches the database, and holds it until Close. flock belongs to the
// open file description, not to the process, so unlike SQLite's POSIX
// advisory locks it is not dropped when some other descriptor of the same
// file is closed, and it goes away by itself when the holder dies (kill -9
// included): no stale-lock clean-up. The file is never unlinked (unlinking
// a lock file races with the next locker).
//
// The lock file also holds, at fixed offsets and rewritten in place (so it
// never needs a new disk block, also on a full disk):
//
//	pid=<holder pid>
//	flushed=<ts_ms of the newest flush committed through this lock>
//
// The "flushed" marker is written after each commit; at open a database
// whose newest flush is older than the marker lost committed transactions
// (a truncated or damaged WAL that SQLite recovered by dropping frames, or
// the file replaced by an older copy), and Open reports it (WALLoss).

// lockSuffix names the lock file beside the database.
const lockSuffix = ".lock"

// LockPath is the writer lock file of the database at path.
func LockPath(path string) string { return path + lockSuffix }

// ErrLocked is wrapped when another process holds the writer lock.
var ErrLocked = errors.New("locked by another writer")

// LockedError says which process holds the writer lock.
type LockedError struct {
	Path string
	PID  int // 0 when the lock file does not say
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", e.PID)); err == nil {
			who += " (" + strings.TrimSpace(string(comm)) + ")"
		}
	}
	return fmt.Sprintf("database %s is in use: %s holds its writer lock %s; a database has exactly one writer: stop that daemon first (e.g. `sudo systemctl stop bwtracker` or `sudo kill %s`), or pass another --db",
		e.Path, who, LockPath(e.Path), pidOrQ(e.PID))
}

func pidOrQ(pid int) string {
	if pid > 0 {
		return strconv.Itoa(pid)
	}
	return "<pid>"
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// lockRecord is the fixed-width content of the lock file.
const (
	lockPIDOff     = 0
	lockPIDLen     = len("pid=") + 10 + 1
	lockFlushedOff = lockPIDLen
	lockFlushedLen = len("flushed=") + 20 + 1
)

// writerLock is a held writer lock.
type writerLock struct {
	f       *os.File
	flushed int64
}

// acquireLock takes the writer lock of the database at path without
// waiting. The lock file must be ours (see checkOwner).
func acquireLock(path string) (*writerLock, error) {
	lp := LockPath(path)
	if err := checkOwner(lp); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, &Error{Path: path, Op: "open lock file " + lp, Err: err, Hint: permHint(err)}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := LockHolder(path)
			return nil, &LockedError{Path: path, PID: pid}
		}
		return nil, &Error{Path: path, Op: "lock " + lp, Err: err}
	}
	l := &writerLock{f: f}
	l.flushed, _ = readLockField(f, lockFlushedOff, "flushed=")
	pid := fmt.Sprintf("pid=%-10d\n", os.Getpid())
	if _, err := f.WriteAt([]byte(pid), lockPIDOff); err != nil {
		f.Close()
		return nil, &Error{Path: path, Op: "write lock file " + lp, Err: err, Hint: "free some disk space or choose another --db"}
	}
	if l.flushed == 0 {
		if err := l.mark(0); err != nil {
			f.Close()
			return nil, &Error{Path: path, Op: "write lock file " + lp, Err: err, Hint: "free some disk space or choose another --db"}
		}
	}
	return l, nil
}

// mark records tsMs as the newest committed flush (in place, no new block).
func (l *writerLock) mark(tsMs int64) error {
	if tsMs < l.flushed {
		return nil
	}
	l.flushed = tsMs
	_, err := l.f.WriteAt([]byte(fmt.Sprintf("flushed=%-20d\n", tsMs)), int64(lockFlushedOff))
	return err
}

func (l *writerLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // drops the flock
		l.f = nil
	}
}

func readLockField(f *os.File, off int, key string) (int64, error) {
	buf := make([]byte, len(key)+21)
	n, _ := f.ReadAt(buf, int64(off))
	s, ok := strings.CutPrefix(string(buf[:n]), key)
	if !ok {
		return 0, errors.New("no " + key)
	}
	s, _, _ = strings.Cut(s, "\n")
	return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
}

// LockHolder returns the PID of the process holding the writer lock of the
// database at path, or 0 when none holds it. It reads /proc/locks (the
// FLOCK entry on the lock file's inode) and never takes the lock itself, so
// probing cannot make a starting writer fail.
func LockHolder(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(LockPath(path), &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, err
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, err
	}
	// "1: FLOCK  ADVISORY  WRITE 12345 00:2a:1234 0 EOF"
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			pid, _ := strconv.Atoi(f[4])
			return pid, nil
		}
	}
	return 0, nil
}
