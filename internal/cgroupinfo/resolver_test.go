package cgroupinfo

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeClock is a manual clock for the rate limit.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestResolverOnPlainDirs walks an ordinary directory tree laid out like a
// cgroup hierarchy: the walk and cache logic do not care that it is not
// cgroupfs, so this runs without root.
func TestResolverOnPlainDirs(t *testing.T) {
	root := t.TempDir()
	nginx := filepath.Join(root, "system.slice", "nginx.service")
	docker := filepath.Join(root, "system.slice", "docker-"+hexA+".scope")
	for _, d := range []string{nginx, docker} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r, err := New(Options{Root: root, Now: clk.Now, RescanEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}

	got, ok := r.Resolve(ino(t, nginx))
	if !ok || got.Service != "nginx.service" || got.Path != "/system.slice/nginx.service" {
		t.Fatalf("nginx: got %+v, %v", got, ok)
	}
	got, ok = r.Resolve(ino(t, docker))
	if !ok || got.ContainerID != hexA || got.Runtime != RuntimeDocker {
		t.Fatalf("docker: got %+v, %v", got, ok)
	}
	if rootInfo, ok := r.Resolve(ino(t, root)); !ok || rootInfo.Path != "/" {
		t.Fatalf("root: got %+v, %v", rootInfo, ok)
	}
	if n := r.Scans(); n != 1 {
		t.Fatalf("hits must not rescan: %d scans", n)
	}

	// A new cgroup appears: the first miss within the rate limit does not
	// walk, a miss after it does.
	late := filepath.Join(root, "system.slice", "late.service")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Resolve(ino(t, late)); ok {
		t.Fatal("resolved within the rate limit")
	}
	if n := r.Scans(); n != 1 {
		t.Fatalf("rate limit broken: %d scans", n)
	}
	clk.Add(2 * time.Second)
	if got, ok := r.Resolve(ino(t, late)); !ok || got.Service != "late.service" {
		t.Fatalf("late: got %+v, %v", got, ok)
	}

	// The cgroup is removed: the id keeps its name.
	lateID := ino(t, late)
	if err := os.Remove(late); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	if err := r.Rescan(); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Resolve(lateID); !ok || got.Service != "late.service" {
		t.Fatalf("removed cgroup forgot its name: %+v, %v", got, ok)
	}

	// ResolveMany: one walk at most for any number of unknown ids.
	before := r.Scans()
	clk.Add(2 * time.Second)
	m := r.ResolveMany([]uint64{ino(t, nginx), 1 << 60, 1<<60 + 1, 1<<60 + 2})
	if len(m) != 1 || r.Scans() != before+1 {
		t.Fatalf("ResolveMany: %d found, %d walks", len(m), r.Scans()-before)
	}

	// ResolveMany (the collector's per-flush call) walks inside the rate
	// limit for an id it never looked for: a short-lived cgroup's bytes may
	// be in one flush only. Ids it already missed wait for the limit.
	// (A plain file system may hand the removed late.service's inode to
	// the next directory; cgroupfs never reuses an id during a boot.)
	if err := os.Mkdir(filepath.Join(root, "system.slice", "spare.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	brief := filepath.Join(root, "system.slice", "brief.service")
	if err := os.Mkdir(brief, 0o755); err != nil {
		t.Fatal(err)
	}
	if ino(t, brief) == lateID {
		t.Skip("SKIPPED: the file system reused an inode twice")
	}
	before = r.Scans()
	if m := r.ResolveMany([]uint64{ino(t, brief)}); m[ino(t, brief)].Service != "brief.service" || r.Scans() != before+1 {
		t.Fatalf("new id within the rate limit: %+v, %d walks", m, r.Scans()-before)
	}
	if m := r.ResolveMany([]uint64{1 << 60, 1<<60 + 1}); len(m) != 0 || r.Scans() != before+1 {
		t.Fatalf("ids already missed walked again within the rate limit: %+v, %d walks", m, r.Scans()-before)
	}
}

func TestResolverBounded(t *testing.T) {
	root := t.TempDir()
	r, err := New(Options{Root: root, MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 1000; i++ {
		r.Add(Info{ID: i, Path: fmt.Sprintf("/x%d", i)})
		r.lookup(1) // keep id 1 hot
	}
	if n := r.Len(); n > 100 {
		t.Fatalf("cache holds %d > 100", n)
	}
	if _, ok := r.lookup(1); !ok {
		t.Fatal("hot id evicted")
	}
	if _, ok := r.lookup(1000); !ok {
		t.Fatal("newest id evicted")
	}
	if _, ok := r.lookup(2); ok {
		t.Fatal("cold id kept")
	}
}

func TestResolverConcurrent(t *testing.T) {
	root := t.TempDir()
	for i := 0; i < 20; i++ {
		if err := os.MkdirAll(filepath.Join(root, "system.slice", fmt.Sprintf("s%d.service", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(Options{Root: root, RescanEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	id := ino(t, filepath.Join(root, "system.slice", "s7.service"))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if got, ok := r.Resolve(id); !ok || got.Service != "s7.service" {
					t.Errorf("got %+v %v", got, ok)
					return
				}
				r.Resolve(uint64(1<<62 + i))
			}
		}()
	}
	wg.Wait()
}

// TestResolverRealCgroup creates a real cgroup v2 child, moves a process
// into it and checks that both the walk (by id, as the BPF programs report
// it) and ResolvePID name it, and that the name survives the cgroup.
func TestResolverRealCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: TestResolverRealCgroup needs root to create a cgroup v2 directory; run `sudo go test ./internal/cgroupinfo/`")
	}
	mnt, err := Cgroup2Mount()
	if err != nil {
		t.Skipf("SKIPPED: no cgroup2 mount: %v", err)
	}
	name := "bwtracker-test-" + strconv.FormatUint(rand.Uint64(), 36)
	dir := filepath.Join(mnt, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("SKIPPED: cannot create cgroup %s: %v", dir, err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			_ = os.Remove(dir)
		}
	})
	id := ino(t, dir)
	t.Logf("cgroup2 mount %s, test cgroup %s id %d", mnt, dir, id)

	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Root() != mnt {
		t.Fatalf("root %q, want %q", r.Root(), mnt)
	}
	got, ok := r.Resolve(id)
	if !ok || got.Path != "/"+name || got.ID != id {
		t.Fatalf("Resolve(%d) = %+v, %v; want path /%s", id, got, ok, name)
	}

	// A process in the cgroup: ResolvePID reads /proc/PID/cgroup.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move pid into cgroup: %v", err)
	}
	r2, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pinfo, err := r2.ResolvePID(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pinfo.Path != "/"+name || pinfo.ID != id {
		t.Fatalf("ResolvePID = %+v; want path /%s id %d", pinfo, name, id)
	}
	if r2.Scans() != 0 {
		t.Fatalf("ResolvePID walked the hierarchy")
	}
	if got, ok := r2.Resolve(id); !ok || got.Path != "/"+name {
		t.Fatalf("ResolvePID did not cache: %+v %v", got, ok)
	}

	// The process leaves and the cgroup is removed: the name stays.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil {
			removed = true
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remove cgroup: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Rescan(); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Resolve(id); !ok || got.Path != "/"+name {
		t.Fatalf("after rmdir: %+v %v", got, ok)
	}
}

// BenchmarkWalk: one full walk of a hierarchy of 2000 cgroups (the cost of
// a cache miss, at most once per RescanEvery).
func BenchmarkWalk(b *testing.B) {
	root := b.TempDir()
	for i := 0; i < 100; i++ {
		for j := 0; j < 20; j++ {
			if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("s%d.slice", i), fmt.Sprintf("u%d.service", j)), 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	r, err := New(Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.Rescan(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveHit(b *testing.B) {
	r, err := New(Options{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	r.Add(Info{ID: 42, Path: "/system.slice/nginx.service", Service: "nginx.service"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Resolve(42)
	}
}
