package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Guarding the file. A writer Open refuses paths SQLite cannot use (empty,
// too long, a directory), files owned by another user (they could read the
// history and rewrite it) and files with the immutable or append-only
// attribute (SQLite would fail, or SIGBUS on an -shm it cannot extend);
// files of ours readable by group or others are repaired to 0600 (Repairs
// lists them). The same goes for the -wal, -shm and .lock files.
//
// While running, Guard (called by the collector before each flush) notices
// the database file deleted or replaced (its device/inode no longer the
// one opened) and the -wal or -shm unlinked under the open connection, and
// recovers: a deleted database is rebuilt at its path from the open
// connection, which still sees the whole history (VACUUM INTO); a replaced
// one has the old history saved beside it (PATH.orphaned-UNIXTIME) and the
// new file opened (checked like any writer Open); an unlinked WAL is
// checkpointed and the files reopened. Readers opened with Reader follow.
//
// Readers inside the daemon must never open and close a descriptor of the
// live file outside SQLite: POSIX advisory locks belong to the process, so
// that close drops the writer's SQLite locks, and the next process that
// closes the database believes it is the last one and deletes the WAL and
// SHM under the daemon (new rows then live only in an unlinked file). Open
// for readers therefore checks access with access(2), never open+close.

// MaxPathLen is the longest database path (absolute) accepted. SQLite's
// unix VFS limits full path names to 512 bytes, and it appends "-journal"
// or "-wal" to the name; beyond that it fails with a misleading "out of
// memory (14)".
const MaxPathLen = 500

// CheckpointEvery is how often the daemon copies the WAL into the main
// file (a PASSIVE checkpoint: it never waits for readers). What only the
// WAL holds is what a damaged or truncated WAL can cost; SQLite's own
// automatic checkpoint runs only once the WAL reaches ~4 MiB.
const CheckpointEvery = time.Minute

// ValidatePath says what is wrong with path as a database path.
func ValidatePath(path string) error {
	if path == "" {
		return &Error{Path: "''", Op: "open", Err: errors.New("empty path"), Hint: "pass --db with a file path, or leave --db out to use " + DefaultPath}
	}
	if strings.IndexByte(path, 0) >= 0 {
		return &Error{Path: fmt.Sprintf("%q", path), Op: "open", Err: errors.New("path contains a NUL byte"), Hint: "pass --db with a file path"}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return &Error{Path: path, Op: "open", Err: err}
	}
	if len(abs) > MaxPathLen {
		return &Error{Path: abs[:40] + "...", Op: "open", Err: fmt.Errorf("path is %d bytes long (absolute); SQLite accepts at most %d", len(abs), MaxPathLen),
			Hint: "choose a shorter --db path"}
	}
	return nil
}

// checkOwner refuses an existing file owned by another user and returns
// true when it repaired a file of ours that group or others could read.
func checkOwner(p string) error {
	_, err := checkFile(p)
	return err
}

func checkFile(p string) (repaired bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &Error{Path: p, Op: "stat", Err: err, Hint: permHint(err)}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return false, &Error{Path: p, Op: "open", Err: errors.New("is a directory"), Hint: "--db takes a file path, e.g. " + filepath.Join(p, "bwtracker.db")}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, &Error{Path: p, Op: "open", Err: errors.New("not a regular file"), Hint: "--db takes a file path"}
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return false, &Error{Path: p, Op: "check owner", Err: fmt.Errorf("owned by uid %d, not by this user (uid %d)", st.Uid, uid),
			Hint: fmt.Sprintf("another user could read the history and rewrite it; if the file is yours run `sudo chown %d:%d %s && sudo chmod 600 %s`, otherwise move it aside", uid, os.Getegid(), p, p)}
	}
	if st.Mode&0o077 != 0 {
		if err := unix.Chmod(p, st.Mode&0o700); err != nil {
			return false, &Error{Path: p, Op: "chmod 600", Err: err, Hint: fmt.Sprintf("the file is readable by others: run `sudo chmod 600 %s`", p)}
		}
		repaired = true
	}
	if attrs := fileAttrs(p); attrs&(fsImmutableFL|fsAppendFL) != 0 {
		return false, &Error{Path: p, Op: "open", Err: errors.New("the file has the immutable or append-only attribute"),
			Hint: fmt.Sprintf("SQLite cannot write it: run `sudo chattr -i -a %s`", p)}
	}
	return repaired, nil
}

// fileAttrs returns the inode flags (chattr) of p, 0 when unknown. Only
// called before SQLite opens the file (see the package note on POSIX
// locks).
func fileAttrs(p string) int {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	v, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return 0
	}
	return v
}

// Inode flags from linux/fs.h (not in x/sys/unix).
const (
	fsImmutableFL = 0x00000010
	fsAppendFL    = 0x00000020
)

// fileID is a file's identity.
type fileID struct{ dev, ino uint64 }

func statID(p string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fileID{}, err
	}
	return fileID{st.Dev, st.Ino}, nil
}

// WALLoss says that committed flushes are missing from the database.
type WALLoss struct {
	Newest time.Time // newest flush in the database (zero when none)
	Marked time.Time // newest flush committed, per the lock file
}

func (w *WALLoss) String() string {
	newest := "none"
	if !w.Newest.IsZero() {
		newest = w.Newest.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("the database ends at %s but flushes up to %s were committed: SQLite dropped WAL frames at open (a truncated or damaged -wal file), or the file was replaced by an older copy; the traffic of that time is lost",
		newest, w.Marked.UTC().Format(time.RFC3339Nano))
}

// WALLoss reports committed flushes missing at open (nil when none).
func (s *Store) WALLoss() *WALLoss { return s.walLoss }

// Repairs lists the files whose mode Open tightened to 0600.
func (s *Store) Repairs() []string { return s.repairs }

// checkMarker compares the newest flush with the lock file's marker.
func (s *Store) checkMarker(ctx context.Context) error {
	if s.lock == nil || s.lock.flushed == 0 {
		return nil
	}
	var newest int64
	if err := s.sql.QueryRowContext(ctx, "SELECT coalesce(max(ts_ms), 0) FROM flushes").Scan(&newest); err != nil {
		return s.classify("read", err)
	}
	if newest < s.lock.flushed {
		w := &WALLoss{Marked: time.UnixMilli(s.lock.flushed)}
		if newest > 0 {
			w.Newest = time.UnixMilli(newest)
		}
		s.walLoss = w
	}
	return nil
}

// markFlushed records a committed flush in the lock file (Write calls it).
func (s *Store) markFlushed(tsMs int64) {
	if s.lock != nil {
		s.lock.mark(tsMs) // best effort: only the WAL-loss check reads it
	}
}

// Checkpoint copies the WAL into the main file without waiting for readers
// (PASSIVE). The daemon calls it every CheckpointEvery.
func (s *Store) Checkpoint(ctx context.Context) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.readOnly || s.sql == nil {
		return nil
	}
	if _, err := s.sql.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return s.classify("checkpoint", err)
	}
	return nil
}

// Reader opens a read-only Store on the writer's file for use inside the
// same process (the daemon's API). Its connections go through SQLite
// only, and Guard reopens it when it recovers the file.
func (s *Store) Reader() (*Store, error) {
	r := &Store{path: s.path, readOnly: true}
	r.resetCaches()
	if err := r.openHandle(); err != nil {
		return nil, err
	}
	s.gate.Lock()
	s.readers = append(s.readers, r)
	s.gate.Unlock()
	return r, nil
}

// GuardEvent says what Guard found and did.
type GuardEvent struct {
	What string // "deleted", "replaced", "wal unlinked"
	Msg  string // what was done, for the log
}

// Guard checks that the database file is still the one open and recovers
// when it is not (see the package note). It returns nil, nil when all is
// well. Call it from the goroutine that writes.
func (s *Store) Guard(ctx context.Context) (*GuardEvent, error) {
	if s.readOnly {
		return nil, nil
	}
	if s.sql == nil { // a previous recovery could not open the file
		if err := s.reopenAll(); err != nil {
			return nil, err
		}
		return &GuardEvent{What: "reopened", Msg: "database opened again after a failed recovery"}, nil
	}
	id, err := statID(s.path)
	switch {
	case errors.Is(err, unix.ENOENT):
		return s.recover(ctx, "deleted")
	case err != nil:
		return nil, &Error{Path: s.path, Op: "stat", Err: err}
	case id != s.id:
		return s.recover(ctx, "replaced")
	}
	if time.Since(s.fdScan) >= time.Second {
		s.fdScan = time.Now()
		if len(unlinkedSidecars(s.path)) > 0 {
			return s.recover(ctx, "wal unlinked")
		}
	}
	return nil, nil
}

// unlinkedSidecars lists this process's descriptors of PATH-wal / PATH-shm
// whose file was unlinked.
func unlinkedSidecars(path string) []string {
	abs, _ := filepath.Abs(path)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		for _, sfx := range []string{"-wal", "-shm"} {
			if l == abs+sfx+" (deleted)" {
				out = append(out, abs+sfx)
			}
		}
	}
	return out
}

// ourSidecars returns the identities of PATH-wal / PATH-shm as open now.
func ourSidecars(path string) map[string]fileID {
	out := map[string]fileID{}
	for _, sfx := range []string{"-wal", "-shm"} {
		if id, err := statID(path + sfx); err == nil {
			out[path+sfx] = id
		}
	}
	return out
}

func (s *Store) recover(ctx context.Context, what string) (*GuardEvent, error) {
	for _, r := range s.readers {
		r.gate.Lock()
		defer r.gate.Unlock()
	}
	s.gate.Lock()
	defer s.gate.Unlock()
	stamp := time.Now().Unix()
	ev := &GuardEvent{What: what}
	var restore string
	switch what {
	case "deleted":
		// The open connection still reads the unlinked file: copy it all.
		restore = fmt.Sprintf("%s.restore-%d", s.path, stamp)
		if err := s.vacuumInto(ctx, restore); err != nil {
			return nil, err
		}
		ev.Msg = "rebuilt it at its path from the open connection: no history lost"
	case "replaced":
		saved := fmt.Sprintf("%s.orphaned-%d", s.path, stamp)
		if err := s.vacuumInto(ctx, saved); err != nil {
			return nil, err
		}
		ev.Msg = "saved the history written so far to " + saved + " and opened the new file"
	default:
		if _, err := s.sql.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return nil, s.classify("checkpoint", err)
		}
		ev.Msg = "checkpointed the WAL into the database and reopened it"
	}
	old := ourSidecars(s.path)
	s.closeHandles()
	// Our old -wal/-shm left at the path (a reader in another process
	// kept them alive) must not be applied to another file.
	for p, id := range old {
		if now, err := statID(p); err == nil && now == id && what != "wal unlinked" {
			os.Rename(p, fmt.Sprintf("%s.orphaned-%d", p, stamp))
		}
	}
	if restore != "" {
		if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
			if err := os.Rename(restore, s.path); err != nil {
				return nil, &Error{Path: s.path, Op: "restore", Err: err, Hint: "the history is in " + restore}
			}
		} else {
			ev.Msg = "a new file appeared meanwhile; the history is in " + restore
		}
	}
	if err := s.reopenLocked(); err != nil {
		return ev, err
	}
	return ev, nil
}

// vacuumInto writes a compact copy of the open database to dst (0600).
func (s *Store) vacuumInto(ctx context.Context, dst string) error {
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &Error{Path: s.path, Op: "save history to " + dst, Err: err}
	}
	f.Close()
	if _, err := s.sql.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		os.Remove(dst)
		return s.classify("save history to "+dst, err)
	}
	return nil
}

func (s *Store) closeHandles() {
	for _, r := range s.readers {
		if r.sql != nil {
			r.sql.Close()
			r.sql, r.db = nil, nil
		}
	}
	if s.sql != nil {
		s.sql.Close()
		s.sql, s.db = nil, nil
	}
}

func (s *Store) reopenAll() error {
	for _, r := range s.readers {
		r.gate.Lock()
		defer r.gate.Unlock()
	}
	s.gate.Lock()
	defer s.gate.Unlock()
	return s.reopenLocked()
}

// reopenLocked opens the writer and its readers again (gates held).
func (s *Store) reopenLocked() error {
	if _, err := checkFile(s.path); err != nil {
		return err
	}
	if err := s.openHandle(); err != nil {
		return err
	}
	s.resetCaches()
	for _, r := range s.readers {
		if r.closed {
			continue
		}
		if err := r.openHandle(); err != nil {
			return err
		}
	}
	return nil
}
