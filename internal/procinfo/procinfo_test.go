package procinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStartTicks(t *testing.T) {
	stat := []byte("1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615")
	got, ok := StartTicks(stat)
	if !ok || got != 987654 {
		t.Fatalf("StartTicks = %d, %v", got, ok)
	}
	if _, ok := StartTicks([]byte("garbage")); ok {
		t.Fatal("garbage parsed")
	}
}

func TestReusedPIDNotMerged(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "stat"), []byte("42 (new) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0"), 0o644)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte("/usr/bin/new\x00--flag\x00"), 0o644)
	os.Symlink("/usr/bin/new", filepath.Join(dir, "exe"))
	r := New(root)
	// The process that had pid 42 before started at tick 100: /proc now
	// shows another process, whose details must not be borrowed.
	old := Key{PID: 42, StartNS: 100 * tickNS}
	r.Remember(old, "/usr/bin/old")
	if in := r.Lookup(old); in.Exe != "/usr/bin/old" || in.Cmdline != "" {
		t.Fatalf("old process got %+v", in)
	}
	cur := Key{PID: 42, StartNS: 500*tickNS + 12345}
	if in := r.Lookup(cur); in.Exe != "/usr/bin/new" || in.Cmdline != "/usr/bin/new --flag" {
		t.Fatalf("current process got %+v", in)
	}
}

func TestLookupSelf(t *testing.T) {
	r := New("")
	st, _ := os.ReadFile("/proc/self/stat")
	ticks, ok := StartTicks(st)
	if !ok {
		t.Fatal("cannot parse own stat")
	}
	in := r.Lookup(Key{PID: uint32(os.Getpid()), StartNS: ticks * tickNS})
	exe, _ := os.Executable()
	if in.Exe != exe {
		t.Fatalf("exe = %q, want %q", in.Exe, exe)
	}
}
