// Package floor loads the overhead floor of `make bench` (ebpf/floor.bpf.c):
// a program on each of sock_send_length and sock_recv_length that only adds
// the length into a per-CPU array. Only the benchmark imports it.
package floor

import (
	"fmt"
	"os"

	_ "embed"

	"github.com/aquasecurity/libbpfgo"
	"golang.org/x/sys/unix"
)

//go:embed floor.bpf.o
var object []byte

// Floor is the loaded and attached floor programs.
type Floor struct {
	mod   *libbpfgo.Module
	links []*libbpfgo.BPFLink
}

// Attach loads the floor programs and attaches them (root). libbpf's
// messages are dropped unless they are warnings (the benchmark prints its
// table on the same terminal).
func Attach() (_ *Floor, err error) {
	libbpfgo.SetLoggerCbs(libbpfgo.Callbacks{
		Log: func(level int, msg string) {
			if level == libbpfgo.LibbpfWarnLevel {
				fmt.Fprint(os.Stderr, msg)
			}
		},
	})
	// As internal/bpf: an in-memory file, no RLIMIT_MEMLOCK bump.
	fd, err := unix.MemfdCreate("floor.bpf.o", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "floor.bpf.o")
	defer mf.Close()
	if _, err := mf.Write(object); err != nil {
		return nil, fmt.Errorf("writing the floor object: %w", err)
	}
	mod, err := libbpfgo.NewModuleFromFileArgs(libbpfgo.NewModuleArgs{
		BPFObjPath:      fmt.Sprintf("/proc/self/fd/%d", fd),
		SkipMemlockBump: true,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the floor object: %w", err)
	}
	f := &Floor{mod: mod}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if err := mod.BPFLoadObject(); err != nil {
		return nil, fmt.Errorf("loading the floor programs: %w", err)
	}
	for _, name := range []string{"floor_send", "floor_recv"} {
		p, err := mod.GetProgram(name)
		if err != nil {
			return nil, err
		}
		l, err := p.AttachGeneric()
		if err != nil {
			return nil, fmt.Errorf("attaching %s: %w", name, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// Close detaches and frees the programs.
func (f *Floor) Close() {
	for _, l := range f.links {
		l.Destroy()
	}
	f.links = nil
	if f.mod != nil {
		f.mod.Close()
		f.mod = nil
	}
}
