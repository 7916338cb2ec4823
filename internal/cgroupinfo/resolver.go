package cgroupinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for Options.
const (
	DefaultMaxEntries  = 65536
	DefaultRescanEvery = time.Second
)

// ErrNoCgroup2 means no cgroup2 file system is mounted (a v1-only host).
var ErrNoCgroup2 = errors.New("no cgroup2 mount in /proc/self/mountinfo: container and service attribution needs cgroup v2 (mount it, or boot with systemd.unified_cgroup_hierarchy=1)")

// FindCgroup2Mount returns the mount point of the cgroup2 file system from
// the content of a mountinfo file (proc(5)): /sys/fs/cgroup on a pure v2
// host, /sys/fs/cgroup/unified on a hybrid one.
//
// When several are mounted, the one closest to the real root of the
// hierarchy wins. Inside a container with a private cgroup namespace (the
// default for Kubernetes pods on cgroup v2) the container's own
// /sys/fs/cgroup shows root "/" while the host's hierarchy, bind-mounted by a
// hostPath volume, shows a root like "/../../..": that one is preferred,
// since BPF reports cgroup ids of the whole host. Bind mounts of a subtree
// ("/system.slice") rank last.
func FindCgroup2Mount(mountinfo io.Reader) (string, error) {
	best, bestRank := "", 0
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		rf := strings.Fields(right)
		lf := strings.Fields(left)
		if len(rf) < 1 || rf[0] != "cgroup2" || len(lf) < 5 {
			continue
		}
		rank := mountRootRank(unescapeMountinfo(lf[3]))
		// ">=": of equal rank the later mount wins, as it shadows earlier
		// ones at the same mount point.
		if best == "" || rank >= bestRank {
			best, bestRank = unescapeMountinfo(lf[4]), rank
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	if best == "" {
		return "", ErrNoCgroup2
	}
	return best, nil
}

// mountRootRank is higher for a mount root nearer the hierarchy's real root:
// each leading ".." counts +1, each other component -1.
func mountRootRank(root string) int {
	rank := 0
	for _, c := range strings.Split(strings.Trim(root, "/"), "/") {
		switch c {
		case "":
		case "..":
			rank++
		default:
			rank--
		}
	}
	return rank
}

// unescapeMountinfo undoes the octal escapes (\040 for space ...) that the
// kernel writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Cgroup2Mount finds the cgroup2 mount of this process from
// /proc/self/mountinfo.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	return FindCgroup2Mount(f)
}

// Options configure a Resolver. The zero value is usable.
type Options struct {
	// Root is the cgroup2 mount point; empty means find it with
	// Cgroup2Mount.
	Root string
	// ProcRoot is where proc is mounted ("/proc" when empty).
	ProcRoot string
	// MaxEntries bounds the cache (DefaultMaxEntries when 0). When it is
	// exceeded the least recently used tenth is forgotten.
	MaxEntries int
	// RescanEvery is the least time between two walks of the hierarchy
	// caused by unknown ids (DefaultRescanEvery when 0; negative: no limit).
	RescanEvery time.Duration
	// Now is the clock (time.Now when nil); tests set it.
	Now func() time.Time
}

type entry struct {
	info Info
	used uint64 // value of Resolver.tick at the last lookup
}

// Resolver maps cgroup v2 ids to Info. It is safe for concurrent use.
//
// Ids are cached forever (up to MaxEntries, least recently used out
// first): the kernel does not reuse a cgroup id during one boot, and a
// process that exited, or whose cgroup was removed after it sent its last
// byte, keeps the name it had.
type Resolver struct {
	root        string
	procRoot    string
	maxEntries  int
	rescanEvery time.Duration
	now         func() time.Time

	mu    sync.Mutex
	cache map[uint64]*entry
	tick  uint64

	scanMu   sync.Mutex // one walk at a time
	lastScan time.Time
	scans    uint64
	// missed holds ids a walk did not find (guarded by scanMu). An id
	// seen for the first time walks even inside RescanEvery: a
	// short-lived cgroup's traffic may be in one flush only, and a
	// rate-limited miss then would leave it unnamed for good. Ids are
	// not reused during a boot, so each new id forces at most one walk.
	missed map[uint64]struct{}
}

// New returns a Resolver over the cgroup2 hierarchy at opts.Root (found from
// /proc/self/mountinfo when empty). It does not walk the hierarchy until the
// first unknown id.
func New(opts Options) (*Resolver, error) {
	r := &Resolver{
		root:        opts.Root,
		procRoot:    opts.ProcRoot,
		maxEntries:  opts.MaxEntries,
		rescanEvery: opts.RescanEvery,
		now:         opts.Now,
		cache:       make(map[uint64]*entry),
		missed:      make(map[uint64]struct{}),
	}
	if r.root == "" {
		root, err := Cgroup2Mount()
		if err != nil {
			return nil, err
		}
		r.root = root
	}
	if r.procRoot == "" {
		r.procRoot = "/proc"
	}
	if r.maxEntries <= 0 {
		r.maxEntries = DefaultMaxEntries
	}
	if r.rescanEvery == 0 {
		r.rescanEvery = DefaultRescanEvery
	}
	if r.now == nil {
		r.now = time.Now
	}
	st, err := os.Stat(r.root)
	if err != nil {
		return nil, fmt.Errorf("cgroup2 mount %s: %w", r.root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("cgroup2 mount %s is not a directory", r.root)
	}
	return r, nil
}

// Root is the cgroup2 mount point the Resolver walks.
func (r *Resolver) Root() string { return r.root }

// Scans is how many times the hierarchy has been walked (for tests and
// self metrics).
func (r *Resolver) Scans() uint64 {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	return r.scans
}

// Len is the number of cached ids.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cache)
}

// Resolve returns the Info of cgroup id. On a cache miss it walks the
// hierarchy, at most once per RescanEvery; ok is false when the id is still
// unknown (a cgroup created and removed between two walks, or a rate-limited
// miss: a later call may succeed).
func (r *Resolver) Resolve(id uint64) (Info, bool) {
	if info, ok := r.lookup(id); ok {
		return info, true
	}
	if !r.rescan(false) {
		return Info{ID: id}, false
	}
	if info, ok := r.lookup(id); ok {
		return info, true
	}
	return Info{ID: id}, false
}

// ResolveMany resolves several ids with at most one walk; ids not found are
// absent from the result.
func (r *Resolver) ResolveMany(ids []uint64) map[uint64]Info {
	out := make(map[uint64]Info, len(ids))
	var missing []uint64
	for _, id := range ids {
		if info, ok := r.lookup(id); ok {
			out[id] = info
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 && r.rescanFor(missing) {
		for _, id := range missing {
			if info, ok := r.lookup(id); ok {
				out[id] = info
			}
		}
	}
	return out
}

// rescanFor walks for the missing ids: always when one of them was never
// looked for before, else under the rate limit. Ids still unknown after the
// walk are remembered (bounded: the set is cleared past maxEntries).
func (r *Resolver) rescanFor(missing []uint64) bool {
	r.scanMu.Lock()
	force := false
	for _, id := range missing {
		if _, ok := r.missed[id]; !ok {
			force = true
			break
		}
	}
	r.scanMu.Unlock()
	if !r.rescan(force) {
		return false
	}
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	for _, id := range missing {
		if _, ok := r.lookup(id); !ok {
			if len(r.missed) >= r.maxEntries {
				clear(r.missed)
			}
			r.missed[id] = struct{}{}
		}
	}
	return true
}

// ResolvePID reads the cgroup v2 path of a live process from
// /proc/PID/cgroup and caches it under the id of its directory. It works
// for a process whose cgroup directory is already gone too (the id is then
// 0 and nothing is cached).
func (r *Resolver) ResolvePID(pid int) (Info, error) {
	b, err := os.ReadFile(filepath.Join(r.procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return Info{}, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	path, ok := ParseProcCgroup(string(b))
	if !ok {
		return Info{}, fmt.Errorf("cgroup of pid %d: no cgroup v2 (\"0::\") line in /proc/%d/cgroup", pid, pid)
	}
	info := Parse(path)
	if strings.HasPrefix(path, "/..") {
		// The process is outside our cgroup namespace: the path is
		// relative to our namespace root and cannot be joined to the mount.
		// Parse still names its unit, container and pod.
		return info, nil
	}
	if ino, err := inode(filepath.Join(r.root, filepath.FromSlash(path))); err == nil {
		info.ID = ino
		r.store(info)
	}
	return info, nil
}

// Add caches an Info that the caller learned elsewhere (for example from a
// process it saw while it was alive); an id already cached is not changed.
func (r *Resolver) Add(info Info) {
	if info.ID == 0 {
		return
	}
	r.store(info)
}

func (r *Resolver) lookup(id uint64) (Info, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[id]
	if !ok {
		return Info{}, false
	}
	r.tick++
	e.used = r.tick
	return e.info, true
}

func (r *Resolver) store(infos ...Info) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, info := range infos {
		r.tick++
		if e, ok := r.cache[info.ID]; ok {
			e.used = r.tick
			continue
		}
		r.cache[info.ID] = &entry{info: info, used: r.tick}
	}
	r.evictLocked()
}

// evictLocked forgets the least recently used tenth when the cache is over
// its bound, so eviction work is amortised.
func (r *Resolver) evictLocked() {
	if len(r.cache) <= r.maxEntries {
		return
	}
	type kv struct {
		id   uint64
		used uint64
	}
	all := make([]kv, 0, len(r.cache))
	for id, e := range r.cache {
		all = append(all, kv{id, e.used})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used < all[j].used })
	drop := len(r.cache) - r.maxEntries + r.maxEntries/10
	if drop > len(all) {
		drop = len(all)
	}
	for _, x := range all[:drop] {
		delete(r.cache, x.id)
	}
}

// Rescan walks the hierarchy now, ignoring the rate limit.
func (r *Resolver) Rescan() error {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	return r.walkLocked()
}

// rescan walks the hierarchy unless one happened within RescanEvery; it
// reports whether it walked.
func (r *Resolver) rescan(force bool) bool {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	now := r.now()
	if !force && r.rescanEvery > 0 && !r.lastScan.IsZero() && now.Sub(r.lastScan) < r.rescanEvery {
		return false
	}
	_ = r.walkLocked() // a partial walk still caches what it saw
	return true
}

func (r *Resolver) walkLocked() error {
	r.lastScan = r.now()
	r.scans++
	var found []Info
	err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed during the walk: skip it, keep going.
			if d != nil && d.IsDir() && p != r.root {
				return fs.SkipDir
			}
			if p == r.root {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fs.SkipDir
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(r.root, p)
		if err != nil {
			return nil
		}
		if rel == "." {
			rel = ""
		}
		info := Parse("/" + filepath.ToSlash(rel))
		info.ID = st.Ino
		found = append(found, info)
		return nil
	})
	r.store(found...)
	if err != nil {
		return fmt.Errorf("walk cgroup2 hierarchy %s: %w", r.root, err)
	}
	return nil
}

func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
