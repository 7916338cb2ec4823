// Package procinfo resolves a process identity (pid, start time) to its
// executable path, command line and app from /proc, cached. It checks the
// start time so that a reused PID is never mistaken for the process that
// had it (nor a reused parent PID for the parent).
//
// The app rule (what `report --by app` groups by: the executable's name,
// an interpreter's script/module/jar, children of the same executable
// folded into their parent's app) is defined once, in app.go.
package procinfo

import (
	"bytes"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
)

// Key is a process identity as the kernel reports it.
type Key struct {
	PID     uint32
	StartNS uint64 // start_boottime, ns
}

// Info is what /proc (or an exec event) told us.
type Info struct {
	Exe     string
	Cmdline string // argv joined by spaces; " " = read, but empty
	// App is the app rule's name (app.go), folded into the parent's app;
	// "" when nothing is known (the caller falls back to the comm).
	App string
	// PPID and ParentTicks (its /proc starttime) name the parent, as read
	// at exec or at the first lookup; 0 when unknown.
	PPID        uint32
	ParentTicks uint64
	argv        []string // from /proc/PID/cmdline, until the app is named
	commName    string   // from /proc/PID/stat
}

// tickKey names a process as /proc does: pid and starttime in ticks.
type tickKey struct {
	pid   uint32
	ticks uint64
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's starttime. It is 100
// on every Linux architecture bwtracker builds for.
const clockTicks = 100

const tickNS = uint64(1_000_000_000 / clockTicks)

// Resolver caches Info per Key.
type Resolver struct {
	mu    sync.Mutex
	proc  string
	cache map[Key]Info
	// apps caches the folded app of processes met as parents.
	apps map[tickKey]string
	max  int
}

// New returns a resolver reading procRoot ("" = /proc).
func New(procRoot string) *Resolver {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &Resolver{proc: procRoot, cache: map[Key]Info{}, apps: map[tickKey]string{}, max: 65536}
}

// Remember records what an exec event said (used when the process is gone
// before /proc can be read). The latest exec wins: a shell script or a
// wrapper that execs the real program ends up named by the program. A
// relative path (./bwtracker) is made absolute from /proc/PID/exe, else
// the process's cwd; the parent PID is read now, while the process is
// new, so a short-lived child still folds into its parent's app.
func (r *Resolver) Remember(k Key, exe string) {
	in := Info{Exe: r.absExe(k.PID, exe)}
	dir := r.proc + "/" + strconv.FormatUint(uint64(k.PID), 10)
	if st, err := os.ReadFile(dir + "/stat"); err == nil {
		if start, ok := StartTicks(st); ok && SameStart(start, k.StartNS) {
			in.PPID, in.ParentTicks = r.parentOf(st, start)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.put(k, in)
}

// absExe makes an exec event's relative path absolute.
func (r *Resolver) absExe(pid uint32, exe string) string {
	if exe == "" || path.IsAbs(exe) {
		return exe
	}
	dir := r.proc + "/" + strconv.FormatUint(uint64(pid), 10)
	if l, err := os.Readlink(dir + "/exe"); err == nil && path.IsAbs(l) {
		return strings.TrimSuffix(l, " (deleted)")
	}
	if cwd, err := os.Readlink(dir + "/cwd"); err == nil && path.IsAbs(cwd) {
		return path.Join(cwd, exe)
	}
	return exe
}

// parentOf reads the parent's pid from a stat line and the parent's start
// ticks from its /proc entry; none when that PID now belongs to a process
// younger than the child (the parent is gone and its PID reused).
func (r *Resolver) parentOf(stat []byte, childTicks uint64) (uint32, uint64) {
	ppid, ok := PPID(stat)
	if !ok || ppid == 0 {
		return 0, 0
	}
	pst, err := os.ReadFile(r.proc + "/" + strconv.FormatUint(uint64(ppid), 10) + "/stat")
	if err != nil {
		return 0, 0
	}
	t, ok := StartTicks(pst)
	if !ok || t > childTicks {
		return 0, 0
	}
	return ppid, t
}

func (r *Resolver) put(k Key, in Info) {
	if len(r.cache) >= r.max {
		// Drop everything rather than grow without bound; live processes
		// are re-read from /proc on their next flush.
		r.cache = map[Key]Info{}
	}
	r.cache[k] = in
}

// Lookup returns the process's exe and cmdline. A process that is gone (or
// whose PID now belongs to another process) yields what the cache or an exec
// event knew, possibly nothing.
func (r *Resolver) Lookup(k Key) Info {
	r.mu.Lock()
	in, ok := r.cache[k]
	r.mu.Unlock()
	if ok && in.Cmdline != "" {
		return in
	}
	fresh, alive := r.read(k)
	if !alive {
		if ok && in.App == "" && in.Exe != "" {
			// Gone: name it from its exec event and its parent.
			in.App = r.fold(in, AppName(in.Exe, nil, ""), 0)
			r.mu.Lock()
			r.put(k, in)
			r.mu.Unlock()
		}
		return in
	}
	if fresh.Exe == "" {
		fresh.Exe = in.Exe
	}
	if fresh.PPID == 0 {
		fresh.PPID, fresh.ParentTicks = in.PPID, in.ParentTicks
	}
	fresh.App = r.fold(fresh, AppName(fresh.Exe, fresh.argv, fresh.commName), 0)
	fresh.argv, fresh.commName = nil, ""
	r.mu.Lock()
	r.put(k, fresh)
	r.mu.Unlock()
	return fresh
}

// fold applies the app rule's folding: while the parent runs the same
// executable, the process takes the parent's (folded) app unless its own
// names another script. depth counts the ancestors walked.
func (r *Resolver) fold(in Info, own string, depth int) string {
	if in.PPID <= 1 || in.Exe == "" || depth >= maxFold {
		return own
	}
	pk := tickKey{in.PPID, in.ParentTicks}
	r.mu.Lock()
	papp, cached := r.apps[pk]
	r.mu.Unlock()
	if !cached {
		p, alive := r.readTicks(in.PPID, in.ParentTicks)
		if !alive || p.Exe != in.Exe {
			papp = "" // another program (or gone): no folding
		} else {
			papp = r.fold(p, AppName(p.Exe, p.argv, p.commName), depth+1)
		}
		r.mu.Lock()
		if len(r.apps) >= r.max {
			r.apps = map[tickKey]string{}
		}
		r.apps[pk] = papp
		r.mu.Unlock()
	}
	return Fold(own, papp)
}

// read reads /proc/PID if it still is the process k.
func (r *Resolver) read(k Key) (Info, bool) {
	return r.readMatch(k.PID, func(ticks uint64) bool { return SameStart(ticks, k.StartNS) })
}

// readTicks reads /proc/PID if it still is the process that started at
// ticks (0: any).
func (r *Resolver) readTicks(pid uint32, ticks uint64) (Info, bool) {
	return r.readMatch(pid, func(t uint64) bool { return ticks == 0 || t == ticks })
}

func (r *Resolver) readMatch(pid uint32, same func(ticks uint64) bool) (Info, bool) {
	dir := r.proc + "/" + strconv.FormatUint(uint64(pid), 10)
	st, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Info{}, false
	}
	start, ok := StartTicks(st)
	if !ok || !same(start) {
		return Info{}, false
	}
	var in Info
	in.PPID, in.ParentTicks = r.parentOf(st, start)
	if i, j := bytes.IndexByte(st, '('), bytes.LastIndexByte(st, ')'); i >= 0 && j > i {
		in.commName = string(st[i+1 : j])
	}
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		in.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if cl, err := os.ReadFile(dir + "/cmdline"); err == nil {
		cl = bytes.TrimRight(cl, "\x00")
		if len(cl) > 0 {
			in.argv = strings.Split(string(cl), "\x00")
		}
		in.Cmdline = string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
	}
	// Kernel threads and zombies have no cmdline; mark as read anyway.
	if in.Cmdline == "" {
		in.Cmdline = " "
	}
	return in, true
}

// StartTicks parses field 22 (starttime, clock ticks since boot) of
// /proc/PID/stat. The comm field (2) may contain spaces and parentheses, so
// fields are counted from the last ')'.
func StartTicks(stat []byte) (uint64, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); starttime is field 22 -> f[19].
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// PPID parses field 4 (ppid) of /proc/PID/stat.
func PPID(stat []byte) (uint32, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[1], 10, 32)
	return uint32(v), err == nil
}

// SameStart says whether a /proc starttime (ticks) is the kernel's
// start_boottime (ns), which /proc truncates to ticks.
func SameStart(ticks, startNS uint64) bool {
	return startNS/tickNS == ticks
}
