package cli

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capabilities run needs (numbers from linux/capability.h).
var neededCaps = []struct {
	name string
	bit  uint
}{
	{"CAP_BPF", 39},
	{"CAP_PERFMON", 38},
	{"CAP_NET_ADMIN", 12}, // cgroup sock_addr hooks for UDP peers
}

// missingCaps lists the capabilities the process lacks (none for root with
// a full set).
func missingCaps() []string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return []string{"(cannot read /proc/self/status)"}
	}
	defer f.Close()
	var eff uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	const capSysAdmin = 21
	var out []string
	for _, c := range neededCaps {
		if eff&(1<<c.bit) == 0 {
			// CAP_SYS_ADMIN stands in for CAP_BPF/CAP_PERFMON on old kernels.
			if (c.bit == 39 || c.bit == 38) && eff&(1<<capSysAdmin) != 0 {
				continue
			}
			out = append(out, c.name)
		}
	}
	return out
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
