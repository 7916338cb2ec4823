package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/apiclient"
	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/store"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "say whether this kernel and these privileges can run the tracker, and why not",
		Description: `Checks BTF, which hook backends exist and actually load here (it loads and
verifies the programs without attaching them), what --hook auto picks, the
cgroup v2 mount, privileges, the database directory and which kubelet
directories name Kubernetes pods (--kubelet-root, --pod-log-root,
--container-log-root, as for run; information only). Exit status 0 only
when ` + "`bwtracker run`" + ` would work.

Example:
   sudo bwtracker check`,
		Flags: append([]cli.Flag{
			dbFlag(),
			&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:8080", Usage: "where a running daemon serves its API (to show its drop counters)"},
			&cli.StringFlag{Name: "token", EnvVars: apiclient.TokenEnvVars, Usage: "the daemon's --auth-token, if it has one"},
		}, k8sFlags()...),
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
			// info: a fact that does not stop run from working (e.g. the
			// backend that auto does not pick).
			info := func(what, detail string) { fmt.Fprintf(w, "[info] %-22s %s\n", what, detail) }
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
			dnsState := "" // the DNS answer capture with the auto backend (bpf/dns.go)
			auto, err := bpf.Select(bpf.Auto, p)
			for _, b := range []bpf.Backend{bpf.Tracepoint, bpf.Fentry} {
				// A backend that auto does not pick is only information:
				// run works with the other one.
				bad := func(detail string) {
					if err == nil && b != auto {
						info("backend "+string(b), detail+" (not needed: auto picks "+string(auto)+")")
						return
					}
					say(false, "backend "+string(b), detail)
				}
				if _, err := bpf.Select(b, p); err != nil {
					bad("not available: " + err.Error())
					continue
				}
				if len(miss) > 0 {
					bad("exists in this kernel; cannot test loading without privileges")
					continue
				}
				t, err := bpf.Load(bpf.Options{Hook: b, NoAttach: true, Log: newLogger(c)})
				if err != nil {
					bad("exists but does not load: " + err.Error())
					continue
				}
				if b == auto {
					_, dnsState = t.DNSCapture()
				}
				t.Close()
				loads[b] = true
				say(true, "backend "+string(b), "loads")
			}
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
			// Kubernetes names: information only (most hosts are no node).
			info("kubernetes names", k8sResolver(c, newLogger(c)).Describe())
			switch dnsState {
			case "":
			case "loads (not attached)":
				say(true, "dns names", "the cgroup_skb ingress program capturing DNS answers loads (run attaches it at the cgroup v2 root)")
			default: // optional: names fall back to reverse DNS
				info("dns names", dnsState)
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
					holder := "no daemon writing it"
					if pid, _ := store.LockHolder(c.String(flagDB)); pid > 0 {
						holder = fmt.Sprintf("written by pid %d", pid)
					}
					say(true, "database", fmt.Sprintf("%s (%d bytes, %s)", st.Path(), st.Size(), holder))
					st.Close()
				}
			}
			daemonStatus(c, say)
			if !ok {
				return cli.Exit("bwtracker run would not work here (see FAIL lines above)", 1)
			}
			fmt.Fprintln(w, "bwtracker run would work here.")
			return nil
		},
	}
}

// daemonStatus reports a running daemon's backend and drop counters.
func daemonStatus(c *cli.Context, say func(bool, string, string)) {
	cl, err := apiclient.New(c.String("url"), c.String("token"), 2*time.Second)
	if err != nil {
		say(false, "running daemon", "--url "+err.Error())
		return
	}
	st, err := cl.Status(c.Context)
	var nd *apiclient.NoDaemonError
	switch {
	case errors.As(err, &nd):
		say(true, "running daemon", "none answering at "+c.String("url"))
		return
	case err != nil:
		say(false, "running daemon", err.Error())
		return
	}
	if d := st.DB; d.State != "" { // a daemon older than DBState leaves it empty
		switch {
		case d.State == "failing":
			say(false, "database writes", fmt.Sprintf("FAILING since %s (%s): %d bytes (%d samples) held in memory, %d bytes lost so far; last successful write %s; free disk space or fix the file",
				d.FailingSince.Local().Format(time.DateTime), d.Error, d.HeldBytes, d.HeldSamples, d.LostBytes, st.LastFlush.Local().Format(time.DateTime)))
		case d.LostBytes > 0:
			say(false, "database writes", fmt.Sprintf("ok now, but %d bytes (%d samples) were lost while writes failed", d.LostBytes, d.LostSamples))
		default:
			say(true, "database writes", fmt.Sprintf("ok (last %s, %d bytes waiting)", st.LastFlush.Local().Format(time.DateTime), d.HeldBytes))
		}
	}
	var total uint64
	var parts []string
	for k, v := range st.Drops {
		total += v
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(parts)
	var detail []string
	for k, v := range st.DetailLost {
		if v > 0 {
			detail = append(detail, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(detail)
	msg := "backend " + st.Hook
	if total == 0 {
		msg += ", no bytes lost"
	} else {
		msg += ", BYTES LOST: " + strings.Join(parts, " ")
	}
	if len(detail) > 0 {
		msg += "; detail lost, bytes kept: " + strings.Join(detail, " ") + " (raise --map-entries or shorten --interval for the full remote breakdown)"
	}
	say(total == 0, "running daemon", msg)
}
