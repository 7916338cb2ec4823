package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/api"
	"github.com/bwtracker/bwtracker/internal/apiclient"
	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
	"github.com/bwtracker/bwtracker/internal/collector"
	"github.com/bwtracker/bwtracker/internal/dnsnames"
	"github.com/bwtracker/bwtracker/internal/k8s"
	"github.com/bwtracker/bwtracker/internal/metrics"
	"github.com/bwtracker/bwtracker/internal/netscope"
	"github.com/bwtracker/bwtracker/internal/privdrop"
	"github.com/bwtracker/bwtracker/internal/procinfo"
	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/internal/version"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "track every process's network traffic (the daemon; needs root)",
		UsageText: "sudo bwtracker run [--db PATH] [--interval 1s] [--hook auto|tracepoint|fentry]",
		Description: `Loads the eBPF programs, drains their counters every --interval into the
database and serves the API and dashboard. Stops cleanly on SIGINT/SIGTERM:
everything counted up to the signal is written before it exits.

Needs root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN. See ` + "`bwtracker check`" + `.

Examples:
   sudo bwtracker run
   sudo bwtracker run --db /tmp/bw.db --interval 100ms
   sudo bwtracker run --hook tracepoint --debug
   sudo bwtracker run --rules /etc/bwtracker/rules.yaml
   sudo bwtracker run --alert 'name=big-upload;comm=rsync;dir=tx;above=5MiB;over=1m'

SIGHUP reloads --rules (as does any change to the file); a bad file is
logged and the previous rules stay active.`,
		Flags: append([]cli.Flag{
			dbFlag(),
			&cli.DurationFlag{Name: "interval", Value: time.Second, EnvVars: []string{"BWTRACKER_INTERVAL"}, Usage: "how often to drain the kernel counters and write the database (10ms to 1h)"},
			&cli.StringFlag{Name: "hook", Value: "auto", Usage: "hook backend: auto (probe the kernel), tracepoint (Linux >= 6.4) or fentry (5.17 - 6.3)"},
			&cli.BoolFlag{Name: "no-dns-names", Usage: "do not capture the DNS answers local processes receive (remote names then come from reverse DNS in report only)"},
			&cli.UintFlag{Name: "map-entries", Value: 0, Usage: "capacity of each kernel flow map (flows per interval; 0 = 32768, fewer on machines with many CPUs so the per-CPU maps stay within 64 MiB). Flows beyond it keep their bytes in a per-process overflow entry (remote shown as \"(overflow)\"): totals stay exact, only the remote breakdown is lost"},
			&cli.StringFlag{Name: "listen", Value: api.DefaultListen, EnvVars: []string{"BWTRACKER_LISTEN"}, Usage: "`ADDR:PORT` of the web dashboard, REST API and /metrics; a non-loopback address requires --auth-token"},
			&cli.BoolFlag{Name: "no-web", Usage: "do not serve the dashboard, API or metrics"},
			&cli.StringFlag{Name: "auth-token", EnvVars: apiclient.TokenEnvVars, Usage: "require `TOKEN` as \"Authorization: Bearer TOKEN\" on every API, stream and metrics request. On the command line every local user sees it in ps: prefer --auth-token-file or the environment variable"},
			&cli.StringFlag{Name: "auth-token-file", Usage: "read the auth token from `FILE` (first line; the file must not be readable by group or others: chmod 600)"},
			&cli.StringFlag{Name: "tls-cert-file", Usage: "serve HTTPS (TLS 1.2+) with this PEM certificate `FILE` (chain, leaf first); with --tls-key-file"},
			&cli.StringFlag{Name: "tls-key-file", Usage: "PEM private key `FILE` of --tls-cert-file (mode 0600)"},
			&cli.StringFlag{Name: "tls-client-ca", Usage: "require client certificates signed by the CA(s) in this PEM `FILE` (mutual TLS); the token is still checked"},
			&cli.IntFlag{Name: "metrics-top", Value: metrics.DefaultTop, Usage: "Prometheus /metrics: label sets (exe, service, container, protocol) with their own series; the rest are summed into exe=\"other\". There are no pid or remote-address labels: one series per process or peer would swamp Prometheus (ebpf_exporter's maintainers refused per-PID labels for this reason)"},
			&cli.StringFlag{Name: "rules", EnvVars: []string{"BWTRACKER_RULES"}, Usage: "alert rules and sinks from YAML `FILE` (see README, Alerts); reloaded on SIGHUP and when the file changes; a bad file is refused and the previous rules stay"},
			&cli.StringSliceFlag{Name: "alert", Usage: "a one-line alert `RULE`, e.g. 'name=big;comm=rsync;dir=tx;above=5MiB;over=1m' (repeatable; added to --rules)"},
			&cli.StringFlag{Name: "cpu-profile", Hidden: true, Usage: "debug: write a Go CPU profile of the whole run to `FILE` (go tool pprof)"},
			&cli.StringSliceFlag{Name: "allowed-host", Usage: "extra `NAME` accepted in the Host header (DNS-rebinding protection accepts only the listen address and localhost by default)"},
			&cli.StringSliceFlag{Name: "lan-cidr", Usage: "a network `CIDR` whose addresses count as scope \"lan\" (repeatable or comma-separated; replaces the default: RFC 1918, ULA and this host's interface networks; link-local always counts)"},
		}, append(append(retentionFlags(), otlpFlags()...), k8sFlags()...)...),
		Action: runDaemon,
	}
}

func runDaemon(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("run takes no arguments (got %q)", c.Args().First())
	}
	if c.String(flagDB) == "" {
		return usagef("--db '': give a file path, or leave --db out to use %s", store.DefaultPath)
	}
	interval := c.Duration("interval")
	if interval < 10*time.Millisecond || interval > time.Hour {
		return usagef("--interval %s: must be between 10ms and 1h", interval)
	}
	hook := bpf.Backend(c.String("hook"))
	switch hook {
	case bpf.Auto, bpf.Tracepoint, bpf.Fentry:
	default:
		return usagef("--hook %q: valid are auto, tracepoint, fentry", hook)
	}
	entries := c.Uint("map-entries")
	if n := c.Int("metrics-top"); n < 1 || n > 10000 {
		return usagef("--metrics-top %d: must be between 1 and 10000", n)
	}
	if entries != 0 && (entries < 64 || entries > 1<<22) {
		return usagef("--map-entries %d: must be 0 (automatic) or between 64 and 4194304", entries)
	}
	ret, err := retentionFromFlags(c)
	if err != nil {
		return err
	}
	otlpOpts, otlpOn, err := otlpOptions(c)
	if err != nil {
		return err
	}
	var webCfg *api.Config
	if !c.Bool("no-web") {
		cfg, err := webConfig(c)
		if err != nil {
			return err
		}
		webCfg = &cfg
	}
	loader, err := alertsFromFlags(c)
	if err != nil {
		return err
	}
	lan, err := netscope.ParseCIDRs(c.StringSlice("lan-cidr"))
	if err != nil {
		return usagef("--lan-cidr: %v", err)
	}
	log := newLogger(c)
	if f := c.String("cpu-profile"); f != "" {
		stopProf, err := startCPUProfile(f)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer stopProf()
	}
	if webCfg != nil && tokenOnCommandLine(os.Args[1:]) {
		log.Warn("--auth-token on the command line is visible to every local user (ps, /proc/PID/cmdline): use --auth-token-file FILE (mode 0600) or the " + apiclient.TokenEnv + " environment variable")
	}
	if webCfg != nil && webCfg.TLS == nil && !isLoopbackListen(webCfg.Listen) {
		log.Warn("serving plain HTTP on a non-loopback address: the token and the traffic data cross the network in the clear; give --tls-cert-file and --tls-key-file", "listen", webCfg.Listen)
	}
	if miss := missingCaps(); len(miss) > 0 {
		return cli.Exit(fmt.Sprintf("run needs root or the capabilities %s (missing: %s): try `sudo bwtracker run`",
			"CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN", strings.Join(miss, ", ")), 1)
	}
	// The writer lock comes first: a second daemon on this file stops here,
	// before it touches the database.
	st, err := store.Open(c.String(flagDB), store.Options{Scope: netscope.New(lan).Classify})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer st.Close()
	for _, p := range st.Repairs() {
		log.Warn("database file was readable by other users; made it 0600", "file", p)
	}
	if l := st.WALLoss(); l != nil {
		log.Error("DATABASE LOST COMMITTED FLUSHES AT OPEN", "db", st.Path(), "detail", l.String())
	}

	tr, err := bpf.Load(bpf.Options{Hook: hook, MapEntries: uint32(entries), SelfTGID: uint32(os.Getpid()), Log: log, NoDNS: c.Bool("no-dns-names")})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer tr.Close()
	// Attached: from here on the daemon needs almost no privilege
	// (internal/privdrop says what stays and why).
	port := 0
	if webCfg != nil {
		if _, p, err := net.SplitHostPort(webCfg.Listen); err == nil {
			port, _ = strconv.Atoi(p)
		}
	}
	keep := privdrop.Needed(privdrop.Options{ListenPort: port})
	before, after, err := privdrop.Drop(keep)
	if err != nil {
		return cli.Exit(fmt.Sprintf("dropping privileges after attach: %v", err), 1)
	}
	log.Info("privileges dropped after attach", "kept", privdrop.Names(keep), "cap_eff_before", before, "cap_eff_after", after, "no_new_privs", true)

	cfgCol := collector.Config{Interval: interval, Version: version.Version, Kernel: kernelRelease(), Log: log}
	if on, why := tr.DNSCapture(); on {
		cfgCol.Names = dnsnames.NewTable()
		if err := collector.LoadNames(c.Context, cfgCol.Names, st, dnsnames.DefaultMaxEntries/2); err != nil {
			log.Warn("reading stored DNS names", "err", err)
		}
		log.Info("naming remotes by the DNS answers processes receive", "capture", why)
	}
	if cg, err := cgroupinfo.New(cgroupinfo.Options{}); err != nil {
		log.Warn("no cgroup v2: traffic will not be attributed to services and containers", "err", err)
	} else {
		// Pod cgroups also get their Kubernetes names (internal/k8s).
		cfgCol.Cgroups = k8s.Cgroups{Inner: cg, K8s: k8sResolver(c, log)}
	}
	col := collector.New(cfgCol, tr, st, procinfo.New(""))
	exp := metrics.New(metrics.Options{Top: c.Int("metrics-top")})
	exp.SetHook(string(tr.Backend()))
	exp.SetBuildInfo(version.Version, kernelRelease())
	col.AddObserver(func(f collector.Flush) { observeMetrics(exp, f, tr.Capacity(), st.Size()) })
	registerDBGauges(exp.Registry(), col)
	if otlpOn {
		ox, stopOTLP, err := startOTLP(otlpOpts, col, exp, log)
		if err != nil {
			return cli.Exit(fmt.Sprintf("--otlp-endpoint: %v", err), 1)
		}
		// Deferred: runs once the collector has returned, after its last flush.
		defer stopOTLP()
		if webCfg != nil {
			webCfg.Exports = map[string]func() any{"otlp": func() any { return ox.Status() }}
		}
	}
	if webCfg != nil {
		webCfg.Metrics = exp.Handler()
	}
	// The API and the alert engine read through read-only connections, so
	// a long query never delays a flush. Reader, not a second Open: an
	// open+close of the file outside SQLite would drop the writer's locks
	// (store/guard.go); Guard reopens it when it recovers the file.
	var ro *store.Store
	if webCfg != nil || loader != nil {
		if ro, err = st.Reader(); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer ro.Close()
	}
	var eng *alerts.Engine
	if loader != nil {
		eng = alerts.New(alerts.Options{Log: log, Store: st, History: ro})
		if err := eng.Start(c.Context); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer eng.Close(5 * time.Second)
		loader.E = eng
		if err := loader.Load(); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		col.AddObserver(func(f collector.Flush) { eng.Observe(f.Time, alertDeltas(f)) })
		exp.Registry().MustRegister(eng.Collector())
		if webCfg != nil {
			webCfg.Alerts = eng
		}
		st := eng.Status()
		log.Info("alerts", "rules", st.Rules, "source", st.Source)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Rollups and pruning in small batches beside the flushes; stopped
	// (deferred after the store's Close, so it runs first) on shutdown.
	stopMaint := startMaintenance(ctx, st, ret, log)
	defer stopMaint()
	defer startRunLog(ctx, st, log)() // runs table: downtime is a gap (runlog.go)
	// SIGHUP: flush now and keep running (never the default: die
	// unwritten), and reload the rules.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				col.FlushNow()
				reloadRules(loader)
			}
		}
	}()
	if loader != nil {
		go loader.Watch(ctx, time.Second)
	}
	log.Info("tracking", "backend", tr.Backend(), "db", st.Path(), "interval", interval, "kernel", kernelRelease(), "pid", os.Getpid(),
		"wal_checkpoint_every", store.CheckpointEvery)
	errc := make(chan error, 1)
	go func() { errc <- col.Run(ctx) }()
	webErr := make(chan error, 1)
	if webCfg != nil {
		h, err := api.New(*webCfg, col, ro)
		if err != nil {
			stop()
			<-errc
			return cli.Exit(err.Error(), 1)
		}
		go func() { webErr <- api.ListenAndServe(ctx, *webCfg, h) }()
		scheme := "http"
		if webCfg.TLS != nil {
			scheme = "https"
		}
		log.Info("dashboard and API", "url", scheme+"://"+webCfg.Listen+"/")
	}
	select {
	case err = <-errc:
	case werr := <-webErr:
		if werr != nil {
			log.Error("web server failed; stopping", "err", werr)
			stop()
			if err = <-errc; err == nil {
				return cli.Exit(fmt.Sprintf("serving %s: %v (use --listen to pick another address, or --no-web)", webCfg.Listen, werr), 1)
			}
		} else {
			err = <-errc
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return cli.Exit(fmt.Sprintf("stopping: %v", err), 1)
	}
	if db := col.Status().DB; db.LostBytes > 0 {
		// The stop itself wrote everything; the loss happened earlier.
		log.Error("stopped; NOT all counted traffic was written: some was dropped while the database refused writes",
			"db", st.Path(), "lost_bytes", db.LostBytes, "lost_samples", db.LostSamples)
		return nil
	}
	log.Info("stopped; all counted traffic written", "db", st.Path())
	return nil
}

// alertsFromFlags parses --rules and --alert before anything is loaded, so
// a bad file is refused at once (exit 2, file:line: reason). nil when no
// rules are configured.
func alertsFromFlags(c *cli.Context) (*alerts.Loader, error) {
	file := c.String("rules")
	lines := c.StringSlice("alert")
	if file == "" && len(lines) == 0 {
		return nil, nil
	}
	l := &alerts.Loader{File: file}
	for _, s := range lines {
		r, err := alerts.ParseFlag(s)
		if err != nil {
			return nil, usagef("%v", err)
		}
		l.Flags = append(l.Flags, r)
	}
	if err := l.Check(); err != nil {
		return nil, usagef("%v (fix the file and start again)", err)
	}
	return l, nil
}

// reloadRules is the SIGHUP hook for alert rules: re-read the rules file;
// a bad file is logged and the previous rules stay active.
func reloadRules(l *alerts.Loader) {
	if l != nil {
		l.Reload()
	}
}

// alertDeltas converts one flush for the alert engine.
func alertDeltas(f collector.Flush) []alerts.Delta {
	out := make([]alerts.Delta, 0, len(f.Samples))
	for _, s := range f.Samples {
		d := alerts.Delta{Comm: s.Comm, Exe: s.Exe, UID: s.UID, RemoteIP: s.RemoteIP, TxBytes: s.TxBytes, RxBytes: s.RxBytes}
		if in, ok := f.Cgroups[s.CgroupID]; ok {
			d.Service = in.Service
			d.Container = in.ContainerLabel()
		}
		out = append(out, d)
	}
	return out
}

// registerDBGauges exports the database write state (collector.DBState).
func registerDBGauges(reg *prometheus.Registry, col *collector.Collector) {
	g := func(name, help string, f func(collector.DBState) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(col.Status().DB) })
	}
	reg.MustRegister(
		g("bwtracker_db_write_failing", "1 while writes to the database fail (disk full, read-only file, ...): counted traffic is held in memory.",
			func(d collector.DBState) float64 {
				if d.State == "failing" {
					return 1
				}
				return 0
			}),
		g("bwtracker_db_backlog_bytes", "Payload bytes counted but not yet written to the database (held in memory while writes fail).",
			func(d collector.DBState) float64 { return float64(d.HeldBytes) }),
		g("bwtracker_db_backlog_samples", "Sample rows held in memory, not yet written.",
			func(d collector.DBState) float64 { return float64(d.HeldSamples) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bwtracker_db_lost_bytes_total",
			Help: "Payload bytes counted but never written: dropped because the in-memory backlog exceeded its bound while writes failed."},
			func() float64 { return float64(col.Status().DB.LostBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bwtracker_db_file_events_total",
			Help: "Times the database file was found deleted or replaced, or its WAL unlinked, while running (each recovered and logged)."},
			func() float64 { return float64(col.Status().DB.FileEvents) }),
	)
}

// observeMetrics hands one flush to the Prometheus exporter.
func observeMetrics(exp *metrics.Exporter, f collector.Flush, capacity int, dbSize int64) {
	deltas := make([]metrics.Delta, 0, len(f.Samples))
	for _, s := range f.Samples {
		d := metrics.Delta{Comm: s.Comm, Exe: s.Exe, Protocol: s.Protocol, TxBytes: s.TxBytes, RxBytes: s.RxBytes}
		if in, ok := f.Cgroups[s.CgroupID]; ok {
			d.Service = in.Service
			d.Container = in.ContainerLabel()
			d.Namespace, d.Pod, d.Workload = in.Namespace, in.Pod, in.Workload()
		}
		deltas = append(deltas, d)
	}
	exp.Observe(f.Time, deltas)
	exp.SetDrops(f.Drops)
	events, bytes := map[string]uint64{}, map[string]uint64{}
	for k, v := range f.DetailLost {
		switch k {
		case collector.DetailLostBytesRemote:
			bytes["remote"] = v
		case collector.DetailLostBytesProcess:
			bytes["process"] = v
		default:
			events[k] = v
		}
	}
	exp.SetDetailLost(events, bytes)
	exp.SetMapUsage("flows", f.Entries, capacity)
	exp.ObserveDrain(f.DrainDuration)
	exp.ObserveDBWrite(f.WriteDuration, f.WriteErr)
	exp.SetDBSize(dbSize)
	if f.WriteErr == nil {
		exp.SetLastFlush(f.Time)
	}
}

// webConfig builds and validates the API's configuration from the flags.
func webConfig(c *cli.Context) (api.Config, error) {
	cfg := api.Config{
		Listen:       c.String("listen"),
		AuthToken:    c.String("auth-token"),
		AllowedHosts: splitList(c.StringSlice("allowed-host")),
		Version:      version.Version,
	}
	if f := c.String("auth-token-file"); f != "" {
		if err := api.SecretFileMode("--auth-token-file", f); err != nil {
			return cfg, usagef("%v", err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, usagef("--auth-token-file: %v", err)
		}
		cfg.AuthToken = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if cfg.AuthToken == "" {
			return cfg, usagef("--auth-token-file %s is empty", f)
		}
	}
	if err := api.ValidateConfig(cfg); err != nil {
		return cfg, usagef("%v", err)
	}
	tlsCfg, err := api.LoadTLS(api.TLSFiles{CertFile: c.String("tls-cert-file"), KeyFile: c.String("tls-key-file"), ClientCA: c.String("tls-client-ca")})
	if err != nil {
		return cfg, usagef("%v", err)
	}
	cfg.TLS = tlsCfg
	return cfg, nil
}

// startCPUProfile profiles the daemon until the returned func runs (the
// hidden --cpu-profile flag, for `go tool pprof`).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// tokenOnCommandLine tells whether --auth-token was given as an argument
// (visible to every local user in ps and /proc/PID/cmdline), rather than
// through the environment or a file.
func tokenOnCommandLine(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "auth-token" {
			return true
		}
	}
	return false
}

// isLoopbackListen is true when host:port names a loopback host.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
