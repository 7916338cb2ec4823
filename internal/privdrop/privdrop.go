// Package privdrop gives up the daemon's privileges once its BPF programs
// are loaded and attached (ebpf_exporter's --capabilities.keep=none is the
// model): every capability it no longer needs leaves the effective,
// permitted, inheritable and ambient sets, and no_new_privs is set, on every
// thread of the process. The bounding set is lowered too when the process
// holds CAP_SETPCAP (plain root); under a service manager that already
// bounds it (the systemd unit, a Kubernetes securityContext) it stays as
// given, and no_new_privs keeps an exec from gaining anything.
//
// What stays (Needed), found by dropping everything and seeing what fails:
//
//   - CAP_SYS_PTRACE, when held: readlink(/proc/PID/exe) of other users'
//     processes that started before the daemon (the kernel checks ptrace
//     read access); without it those rows show their comm instead of the
//     executable. Processes started later are named from exec events.
//   - CAP_BPF, only on kernels before 6.5: with unprivileged BPF disabled
//     (the default) they check CAP_BPF on every bpf() call, also the map
//     lookups, deletes and map-in-map swaps of each drain. Linux 6.5
//     (commit "bpf: move unprivileged checks into map_create() and
//     bpf_prog_load()") checks it only when creating maps and programs, so
//     draining existing maps through their descriptors needs nothing.
//   - CAP_NET_BIND_SERVICE, when held and the listen port is below 1024 (the
//     web listener binds after the drop).
//
// Everything else goes, CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN included:
// attached programs and open map descriptors keep working, detaching on
// shutdown is closing the links. The database is owned by root, so plain
// uid 0 without CAP_DAC_OVERRIDE still opens it.
//
// Capabilities are per thread in Linux and a Go program (with cgo, libbpf)
// has many threads, so this uses libcap's Go package
// (kernel.org/pub/linux/libs/security/libcap/cap, by the libcap
// maintainer): its psx mechanism applies capset and prctl to all threads
// at once, which golang.org/x/sys/unix (one thread) and
// syscall.AllThreadsSyscall (refused when cgo is on) cannot.
package privdrop

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Options say what the daemon still does after the drop.
type Options struct {
	// Kernel is the release (uname -r); "" reads it.
	Kernel string
	// ListenPort is the web listener's port (0: none).
	ListenPort int
}

// Needed lists the capabilities kept after attach (see the package doc),
// limited to those the process holds.
func Needed(o Options) []cap.Value {
	have := cap.GetProc()
	var keep []cap.Value
	add := func(v cap.Value) {
		if ok, _ := have.GetFlag(cap.Permitted, v); ok {
			keep = append(keep, v)
		}
	}
	add(cap.SYS_PTRACE)
	if o.Kernel == "" {
		o.Kernel = release()
	}
	if !kernelAtLeast(o.Kernel, 6, 5) {
		add(cap.BPF)
		add(cap.SYS_ADMIN) // stands in for CAP_BPF before 5.8
	}
	if o.ListenPort > 0 && o.ListenPort < 1024 {
		add(cap.NET_BIND_SERVICE)
	}
	return keep
}

// Drop keeps only keep (effective and permitted), clears the inheritable
// and ambient sets, lowers the bounding set to keep and sets no_new_privs,
// on all threads. It returns the effective set before and after as
// /proc/PID/status CapEff shows them.
func Drop(keep []cap.Value) (before, after string, err error) {
	before = capEff()
	// no_new_privs first: it needs no privilege and stays whatever fails
	// below.
	if _, err := cap.Prctlw(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return before, capEff(), fmt.Errorf("setting no_new_privs: %w", err)
	}
	// The bounding set needs CAP_SETPCAP, so it goes while we still have
	// it. Under a service manager that already bounds the set (the systemd
	// unit, a Kubernetes securityContext) CAP_SETPCAP is not there: the
	// given bounding set stays, and no_new_privs keeps any exec from
	// gaining more than the permitted set left below.
	if ok, _ := cap.GetProc().GetFlag(cap.Effective, cap.SETPCAP); ok {
		if err := lowerBounding(keep); err != nil {
			return before, capEff(), err
		}
	}
	set := cap.NewSet()
	if err := set.SetFlag(cap.Permitted, true, keep...); err != nil {
		return before, capEff(), err
	}
	if err := set.SetFlag(cap.Effective, true, keep...); err != nil {
		return before, capEff(), err
	}
	if err := set.SetProc(); err != nil {
		return before, capEff(), fmt.Errorf("dropping capabilities: %w", err)
	}
	return before, capEff(), nil
}

// lowerBounding removes everything but keep from the bounding set (and
// clears the inheritable and ambient sets).
func lowerBounding(keep []cap.Value) error {
	iab := cap.NewIAB()
	kept := map[cap.Value]bool{}
	for _, v := range keep {
		kept[v] = true
	}
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if !kept[v] {
			if err := iab.SetVector(cap.Bound, true, v); err != nil {
				return fmt.Errorf("building the bounding set: %w", err)
			}
		}
	}
	if err := iab.SetProc(); err != nil {
		return fmt.Errorf("lowering the capability bounding set: %w", err)
	}
	return nil
}

// Names is keep as "cap_sys_ptrace,..." ("none" when empty).
func Names(keep []cap.Value) string {
	if len(keep) == 0 {
		return "none"
	}
	s := make([]string, len(keep))
	for i, v := range keep {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

// capEff is the CapEff line of /proc/self/status (the thread group
// leader's, as ps and the tests read it).
func capEff() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func release() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// kernelAtLeast compares a release such as "6.18.44-fc" with major.minor;
// an unreadable release counts as old (keeping more is the safe side).
func kernelAtLeast(rel string, major, minor int) bool {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	mi, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
