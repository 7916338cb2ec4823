// Package procinfo resolves a process identity (pid, start time) to its
// executable path and command line from /proc, cached. It checks the start
// time so that a reused PID is never mistaken for the process that had it.
package procinfo

import (
	"bytes"
	"os"
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
	Cmdline string
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
	max   int
}

// New returns a resolver reading procRoot ("" = /proc).
func New(procRoot string) *Resolver {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &Resolver{proc: procRoot, cache: map[Key]Info{}, max: 65536}
}

// Remember records what an exec event said (used when the process is gone
// before /proc can be read). The latest exec wins: a shell script or a
// wrapper that execs the real program ends up named by the program.
func (r *Resolver) Remember(k Key, exe string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.put(k, Info{Exe: exe})
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
		return in
	}
	if fresh.Exe == "" {
		fresh.Exe = in.Exe
	}
	r.mu.Lock()
	r.put(k, fresh)
	r.mu.Unlock()
	return fresh
}

// read reads /proc/PID if it still is the process k.
func (r *Resolver) read(k Key) (Info, bool) {
	dir := r.proc + "/" + strconv.FormatUint(uint64(k.PID), 10)
	st, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Info{}, false
	}
	start, ok := StartTicks(st)
	if !ok || !SameStart(start, k.StartNS) {
		return Info{}, false
	}
	var in Info
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		in.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if cl, err := os.ReadFile(dir + "/cmdline"); err == nil {
		cl = bytes.TrimRight(cl, "\x00")
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

// SameStart says whether a /proc starttime (ticks) is the kernel's
// start_boottime (ns), which /proc truncates to ticks.
func SameStart(ticks, startNS uint64) bool {
	return startNS/tickNS == ticks
}
