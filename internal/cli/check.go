package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/store"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "say whether this kernel and these privileges can run the tracker, and why not",
		Description: `Checks BTF, which hook backends exist and actually load here (it loads and
verifies the programs without attaching them), what --hook auto picks, the
cgroup v2 mount, privileges and the database directory. Exit status 0 only
when ` + "`bwtracker run`" + ` would work.

Example:
   sudo bwtracker check`,
		Flags: []cli.Flag{dbFlag()},
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			ok := true
			say := func(good bool, what, detail string) {
				mark := "ok  "
				if !good {
					mark = "FAIL"
				}
				fmt.Fprintf(w, "[%s] %-22s %s\n", mark, what, detail)
			}
			say(true, "kernel", kernelRelease())
			p := bpf.ProbeKernel()
			if p.BTF {
				say(true, "BTF", bpf.BTFPath)
			} else {
				ok = false
				say(false, "BTF", fmt.Sprintf("%s missing (%v): needs a kernel with CONFIG_DEBUG_INFO_BTF=y", bpf.BTFPath, p.BTFErr))
			}
			miss := missingCaps()
			if len(miss) == 0 {
				say(true, "privileges", "CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN present")
			} else {
				ok = false
				say(false, "privileges", "missing "+strings.Join(miss, ", ")+": run as root (sudo bwtracker ...)")
			}
			if root, err := bpf.CgroupV2Root(); err == nil {
				say(true, "cgroup v2", root+" (UDP peer hooks attach here)")
			} else {
				ok = false
				say(false, "cgroup v2", err.Error())
			}
			loads := map[bpf.Backend]bool{}
			for _, b := range []bpf.Backend{bpf.Tracepoint, bpf.Fentry} {
				if _, err := bpf.Select(b, p); err != nil {
					say(false, "backend "+string(b), "not available: "+err.Error())
					continue
				}
				if len(miss) > 0 {
					say(false, "backend "+string(b), "exists in this kernel; cannot test loading without privileges")
					continue
				}
				t, err := bpf.Load(bpf.Options{Hook: b, NoAttach: true, Log: newLogger(c)})
				if err != nil {
					say(false, "backend "+string(b), "exists but does not load: "+err.Error())
					continue
				}
				t.Close()
				loads[b] = true
				say(true, "backend "+string(b), "loads")
			}
			auto, err := bpf.Select(bpf.Auto, p)
			switch {
			case err != nil:
				ok = false
				say(false, "--hook auto", err.Error())
			case len(miss) == 0 && !loads[auto]:
				ok = false
				say(false, "--hook auto", fmt.Sprintf("would pick %s, which does not load here", auto))
			default:
				say(true, "--hook auto", "picks "+string(auto))
			}
			dir := filepath.Dir(c.String(flagDB))
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				say(true, "database dir", dir)
			} else if err != nil && os.IsNotExist(err) {
				say(true, "database dir", dir+" (will be created, mode 0700)")
			} else {
				ok = false
				say(false, "database dir", fmt.Sprintf("%s: %v", dir, err))
			}
			if _, err := os.Stat(c.String(flagDB)); err == nil {
				if st, err := store.Open(c.String(flagDB), store.Options{ReadOnly: true}); err != nil {
					ok = false
					say(false, "database", err.Error())
				} else {
					say(true, "database", fmt.Sprintf("%s (%d bytes)", st.Path(), st.Size()))
					st.Close()
				}
			}
			if !ok {
				return cli.Exit("bwtracker run would not work here (see FAIL lines above)", 1)
			}
			fmt.Fprintln(w, "bwtracker run would work here.")
			return nil
		},
	}
}
