package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/netscope"
	"github.com/bwtracker/bwtracker/internal/report"
	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/internal/timespec"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print who sent and received how much, from the database",
		UsageText: "bwtracker report [--since 24h] [--until TIME] [--by app,process,comm,exe,user,cgroup,remote,port,protocol,netns,scope,...] [--format table|json|csv] [--top N]\n   bwtracker report --period 5min|hour|day|month|year [--top-days N] [--by app|process|exe|user|remote] [--png FILE]\n   bwtracker report --summary",
		Description: `Reads the SQLite database directly: no daemon needed, and no root beyond
being allowed to read the file (it is root-only by default).

Rows are grouped by app unless --by says otherwise (an app is a program as a
person names it: the executable, or an interpreter's script, with the
processes it forked; --by process gives one row per process, as before).
Rows are sorted by total bytes, largest first. Table output uses IEC units
(KiB, MiB; --bits for kbit, Mbit), a bar per row (--graph: a sparkline of
the row over the window instead) and host names for remote addresses: the
name the process itself resolved (from the DNS answers the daemon saw),
else reverse DNS (cached in the database, at most --resolve-timeout;
--no-resolve to skip). json and csv print exact byte counts, raw addresses
and remote_name (the resolved name, "" when none was seen). --by domain
groups by the registrable domain of that name (eTLD+1: www.google.co.uk ->
google.co.uk). Every table has the columns
SENT, RECEIVED, TOTAL in that order and fits the terminal (80 columns when
not a terminal; --width): long names and paths lose their middle ("…").

On a terminal, ` + "`bwtracker report`" + ` with no window or grouping prints a
vnStat-like summary: today, yesterday, this month and its estimate, per app
(or executable), in local time. --summary asks for it anywhere.

--period (or --hourly, --daily, --monthly) prints vnStat-style tables: one
row per period with traffic (local time), received, sent, total, average
rate and the top app (or the top of --by); --png FILE draws it with a
bar chart as a PNG image (vnstati-like). --top-days N lists the N
days with the most traffic. Months of history are answered from rollup
tiers (see ` + "`bwtracker db stats`" + `).

Examples:
   sudo bwtracker report --since 1h
   sudo bwtracker report --by process --app 'pool.py (python3)'
   sudo bwtracker report --by scope
   sudo bwtracker report --by app,scope --scope internet
   sudo bwtracker report --by process,remote --top 20
   sudo bwtracker report --by exe --since 30d
   sudo bwtracker report --by user --since 7d
   sudo bwtracker report --by process,domain --since 30d
   sudo bwtracker report --by namespace,workload --since 7d
   sudo bwtracker report --daily
   sudo bwtracker report --since 7d --graph --bits
   sudo bwtracker report --period year
   sudo bwtracker report --daily --png daily.png
   sudo bwtracker report --period hour --by exe
   sudo bwtracker report --top-days 10
   sudo bwtracker report --since 2026-11-01 --until 2026-11-02 --by protocol --format csv
   sudo bwtracker report --comm curl --by remote --format json`,
		Flags: []cli.Flag{
			dbFlag(),
			&cli.StringFlag{Name: "since", Value: "24h", Usage: "start of the window: " + timespec.TimeForms},
			&cli.StringFlag{Name: "until", Usage: "end of the window (default: now); same forms as --since"},
			&cli.StringSliceFlag{Name: "by", Value: cli.NewStringSlice(store.DimApp), Usage: "group by any of: " + strings.Join(store.Dimensions(), ", ") + " (comma-separated)"},
			&cli.StringFlag{Name: "format", Aliases: []string{"o"}, Value: "table", Usage: "table, json or csv"},
			&cli.IntFlag{Name: "top", Usage: "show only the N largest rows (0 = all; tables default to 20, JSON/CSV to all)"},
			&cli.UintFlag{Name: "pid", Usage: "only this process id"},
			&cli.StringFlag{Name: "comm", Usage: "only processes with this name (exact)"},
			&cli.StringFlag{Name: "app", Usage: "only processes of this app (exact, as --by app prints it, e.g. 'http.server (python3)')"},
			&cli.StringFlag{Name: "cgroup", Usage: "only processes in this cgroup (its path under the cgroup v2 root, exact, e.g. /lxc.payload.web)"},
			&cli.StringFlag{Name: "scope", Usage: "only traffic with remotes of this scope: loopback, lan, multicast, internet or unknown"},
			&cli.StringFlag{Name: "service", Usage: "only processes in this systemd unit (exact, e.g. nginx.service)"},
			&cli.StringFlag{Name: "container", Usage: "only processes in this container (runtime:shortid or the full container id)"},
			&cli.UintFlag{Name: "port", Usage: "only traffic with this remote port (rollup rows that mixed ports match no port)"},
			&cli.UintFlag{Name: "netns", Usage: "only processes in this network namespace (its inode number, as in `ls -Li /proc/PID/ns/net`)"},
			&cli.StringFlag{Name: "namespace", Usage: "only processes in pods of this Kubernetes namespace"},
			&cli.StringFlag{Name: "pod", Usage: "only processes in this Kubernetes pod (name or UID)"},
			&cli.StringFlag{Name: "period", Usage: "a table of periods instead of totals: " + strings.Join(report.PeriodKinds, ", ") + " (default window: 2h, 24h, 30d, 1 year, 5 years)"},
			&cli.BoolFlag{Name: "hourly", Usage: "same as --period hour"},
			&cli.BoolFlag{Name: "daily", Aliases: []string{"d"}, Usage: "same as --period day"},
			&cli.BoolFlag{Name: "monthly", Aliases: []string{"m"}, Usage: "same as --period month"},
			&cli.IntFlag{Name: "top-days", Usage: "the N days with the most traffic, largest first (default window: 2 years)"},
			&cli.BoolFlag{Name: "no-resolve", Aliases: []string{"n"}, Usage: "show remote addresses as numbers (no reverse DNS)"},
			&cli.DurationFlag{Name: "resolve-timeout", Value: report.DefaultResolveTimeout, Usage: "longest wait for reverse DNS before printing the numbers"},
			&cli.BoolFlag{Name: "bars", Value: true, Usage: "draw a bar column in table output (--bars=false to hide)"},
			&cli.BoolFlag{Name: "bits", Usage: "tables in bits (kbit, Mbit, bit/s) instead of bytes; JSON/CSV stay exact bytes"},
			&cli.BoolFlag{Name: "graph", Usage: "a sparkline column: each row's traffic over the window (16 cells), instead of the bar"},
			&cli.IntFlag{Name: "width", Usage: "widest table line in `COLUMNS` (default: the terminal's width, 80 when not a terminal; 0 = no limit)"},
			&cli.BoolFlag{Name: "summary", Usage: "today, yesterday, this month and its estimate per app (the default on a terminal without other flags)"},
			&cli.StringFlag{Name: "png", Usage: "write the period table (default --daily) and a bar chart to `FILE` as a PNG image"},
			&cli.BoolFlag{Name: "db-stats", Usage: "print database size, rows per tier and oldest sample per tier instead (same as: bwtracker db stats)"},
		},
		Action: runReport,
	}
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// periodKind reads --period and its aliases; "" = a totals report.
func periodKind(c *cli.Context) (string, error) {
	var kinds []string
	if k := c.String("period"); k != "" {
		kinds = append(kinds, strings.ToLower(k))
	}
	for flag, k := range map[string]string{"hourly": report.PeriodHour, "daily": report.PeriodDay, "monthly": report.PeriodMonth} {
		if c.Bool(flag) {
			kinds = append(kinds, k)
		}
	}
	if c.Int("top-days") < 0 {
		return "", usagef("--top-days must be 0 or more")
	}
	if c.Int("top-days") > 0 {
		kinds = append(kinds, report.PeriodDay)
	}
	if len(kinds) == 0 {
		if c.String("png") != "" {
			return report.PeriodDay, nil
		}
		return "", nil
	}
	for _, k := range kinds[1:] {
		if k != kinds[0] {
			return "", usagef("--period, --hourly, --daily, --monthly and --top-days disagree: pick one")
		}
	}
	switch kinds[0] {
	case "5m", "5min", "5minutes":
		return report.Period5Min, nil
	case "h", "hour", "hours", "hourly":
		return report.PeriodHour, nil
	case "d", "day", "days", "daily":
		return report.PeriodDay, nil
	case "m", "month", "months", "monthly":
		return report.PeriodMonth, nil
	case "y", "year", "years", "yearly":
		return report.PeriodYear, nil
	}
	return "", usagef("--period %q: valid are %s", kinds[0], strings.Join(report.PeriodKinds, ", "))
}

func runReport(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("report takes no arguments (got %q)", c.Args().First())
	}
	now := time.Now()
	q := store.Query{Top: c.Int("top"), Comm: c.String("comm"), Service: c.String("service"), Container: c.String("container"),
		Namespace: c.String("namespace"), Pod: c.String("pod"),
		App: c.String("app"), Cgroup: c.String("cgroup"), Scope: c.String("scope")}
	if q.Scope != "" && !slices.Contains(netscope.Scopes, q.Scope) {
		return usagef("--scope %q: valid are %s", q.Scope, strings.Join(netscope.Scopes, ", "))
	}
	kind, err := periodKind(c)
	if err != nil {
		return err
	}
	if c.Bool("db-stats") {
		return printDBStats(c, c.String(flagDB), c.String("format"))
	}
	units := report.Units{Bits: c.Bool("bits")}
	if c.Int("width") < 0 {
		return usagef("--width must be 0 (no limit) or more")
	}
	if c.String("png") != "" && c.String("format") != "table" {
		return usagef("--png draws the table as an image: leave out --format")
	}
	if q.Since, err = timespec.ParseTime(c.String("since"), now); err != nil {
		return usagef("--since: %v", err)
	}
	if kind != "" && !c.IsSet("since") {
		q.Since = now.Add(-report.DefaultPeriodWindow(kind))
		if c.Int("top-days") > 0 {
			q.Since = now.Add(-2 * 365 * 24 * time.Hour)
		}
	}
	if s := c.String("until"); s != "" {
		if q.Until, err = timespec.ParseTime(s, now); err != nil {
			return usagef("--until: %v", err)
		}
		if !q.Until.After(q.Since) {
			return usagef("--until (%s) must be after --since (%s)", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
		}
	}
	if q.Top < 0 {
		return usagef("--top must be 0 or more")
	}
	pid := c.Uint("pid")
	if pid > 1<<22 {
		return usagef("--pid %d is not a valid process id", pid)
	}
	q.PID = uint32(pid)
	port, netns := c.Uint("port"), c.Uint("netns")
	if port > 65535 {
		return usagef("--port %d is not a port number (1-65535)", port)
	}
	if netns > 1<<32-1 {
		return usagef("--netns %d is not a namespace inode number", netns)
	}
	q.Port, q.NetNS = uint16(port), uint32(netns)
	if q.By, err = store.ValidateDims(splitList(c.StringSlice("by"))); err != nil {
		return usagef("--by: %v", err)
	}
	format := c.String("format")
	switch format {
	case "table", "json", "csv":
	default:
		return usagef("--format %q: valid are %s", format, strings.Join(report.Formats, ", "))
	}
	st, err := store.Open(c.String(flagDB), store.Options{ReadOnly: true})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	var resolver *report.Resolver
	if format == "table" && !c.Bool("no-resolve") && hasDim(q.By, store.DimRemote) {
		resolver = report.NewResolver()
	}
	timeout := c.Duration("resolve-timeout")
	if format == "table" && wantSummary(c) {
		return runSummary(ctx, c, st, q, now, units)
	}
	if kind != "" {
		if !c.IsSet("by") {
			q.By = []string{store.DimApp}
		}
		until := q.Until
		if until.IsZero() {
			until = now
		}
		edges, err := report.PeriodEdges(kind, q.Since.Local(), until.Local())
		if err != nil {
			return usagef("--period: %v", err)
		}
		ps, err := st.Periods(ctx, q, edges)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		opt := report.PeriodOptions{Kind: kind, Now: now, TopDays: c.Int("top-days"), Bars: c.Bool("bars"), By: q.By, Units: units, Width: tableWidth(c)}
		if resolver != nil {
			var addrs []string
			for _, p := range report.SelectPeriods(ps, opt.TopDays) {
				if p.Top.RemoteIP != store.OtherRemotes && p.Top.RemoteName == "" {
					addrs = append(addrs, p.Top.RemoteIP)
				}
			}
			opt.Names, _ = resolver.ResolveCached(ctx, st, addrs, timeout)
		}
		if path := c.String("png"); path != "" {
			return writePNG(c, path, ps, opt, q.Since, until)
		}
		return report.WritePeriods(c.App.Writer, format, ps, opt)
	}
	top := q.Top
	if format == "table" || format == "" {
		if !c.IsSet("top") {
			top = DefaultTableTop // fits a terminal; the footer says how many more
		}
		q.Top = 0 // the footer states the whole window's totals (report.Options.Window)
		until := q.Until
		if until.IsZero() {
			until = now
		}
		fmt.Fprintln(c.App.Writer, windowLine(q.Since, until, !c.IsSet("until")))
	}
	rows, err := st.Totals(ctx, q)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	opt := report.Options{Bars: c.Bool("bars"), Units: units, Width: tableWidth(c)}
	opt.Folded = report.Folded(rows)
	if q.Top == 0 && top > 0 && len(rows) > top {
		win := report.Sum(rows)
		opt.Window = &win
		rows = rows[:top]
	}
	if resolver != nil {
		// Names the processes resolved need no reverse DNS.
		addrs := make([]string, 0, len(rows))
		for _, r := range rows {
			if r.RemoteIP != store.OtherRemotes && r.RemoteName == "" {
				addrs = append(addrs, r.RemoteIP)
			}
		}
		opt.Names, opt.Unresolved = resolver.ResolveCached(ctx, st, addrs, timeout)
	}
	var step time.Duration
	if c.Bool("graph") && format == "table" && len(rows) > 0 {
		until := q.Until
		if until.IsZero() {
			until = now
		}
		var edges []time.Time
		edges, step = graphEdges(q.Since, until)
		if opt.Graph, err = st.Binned(ctx, q, edges); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	if err := report.WriteWith(c.App.Writer, format, q.By, rows, opt); err != nil {
		return err
	}
	if step > 0 {
		fmt.Fprintf(c.App.Writer, "graph: %d cells of %s each\n", GraphCells, strings.TrimSuffix(step.String(), "0s"))
	}
	return nil
}

// DefaultTableTop is how many rows a report table shows unless --top is
// given (JSON and CSV give every row): an 80x24 terminal's worth.
const DefaultTableTop = 20

// windowLine states a report's window in local time, e.g.
// "last 24 h: 2026-12-01 20:30 – 2026-12-02 20:30 CET".
func windowLine(since, until time.Time, toNow bool) string {
	const f = "2006-01-02 15:04"
	zone := until.Local().Format("MST")
	span := fmt.Sprintf("%s – %s %s", since.Local().Format(f), until.Local().Format(f), zone)
	if !toNow {
		return "window: " + span
	}
	d := until.Sub(since).Round(time.Minute)
	var last string
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		last = fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		last = fmt.Sprintf("%d h", d/time.Hour)
	default:
		last = strings.TrimSuffix(d.String(), "0s")
	}
	return "last " + last + ": " + span
}

func hasDim(by []string, d string) bool {
	for _, b := range by {
		if b == d {
			return true
		}
	}
	return false
}
