package cli

import (
	"encoding/json"
	"fmt"
	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/api/wire"
	"github.com/bwtracker/bwtracker/internal/apiclient"
	"github.com/bwtracker/bwtracker/internal/live"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/report"
)

// DefaultAPIURL is where `bwtracker run` serves its API unless --listen
// says otherwise.
const DefaultAPIURL = apiclient.DefaultURL

// Sort keys of `top`.
const (
	sortRx    = "rx"
	sortTx    = "tx"
	sortTotal = "total"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:      "top",
		Usage:     "live per-process upload/download rates, from the running daemon",
		UsageText: "bwtracker top [--url http://127.0.0.1:8080] [--token TOKEN] [--interval 1s] [--sort rx|tx|total]\n   bwtracker top --once [--format table|json]",
		Description: `A top-like view of the running daemon's live numbers (GET /api/current),
refreshed every --interval. It needs no root: only the daemon's API.

The header has the host's total sending and receiving rates, the totals
since the daemon started (the window of the SENT and RECEIVED columns) and
how many processes are listed. The lower pane lists the selected row's
connections like bandwhich: remote (the name the process resolved, or
reverse DNS), port, protocol, rates and totals.

Rows are apps unless --by process (an app is a program as a person names
it, with the processes it forked: see ` + "`bwtracker report`" + `).

Keys: ? help; r sort by received, t by sent, s by total; g toggles one row
per app or per process; u bytes or bits; p pause (the screen
stops updating); Up/Down (or j/k) select a row; q or Ctrl-C quits.

--once prints one snapshot and exits (json for scripts, table for people).

Examples:
   bwtracker top
   bwtracker top --sort tx --interval 2s
   bwtracker top --once --format json | jq '.processes[0]'
   BWTRACKER_TOKEN=secret bwtracker top --url http://10.0.0.5:8080`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: DefaultAPIURL, EnvVars: []string{"BWTRACKER_URL"}, Usage: "the daemon's API base `URL` (bwtracker run --listen)"},
			&cli.StringFlag{Name: "token", EnvVars: apiclient.TokenEnvVars, Usage: "bearer token, when the daemon runs with --auth-token"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "refresh every `DURATION` (100ms to 1h)"},
			&cli.StringFlag{Name: "sort", Value: sortTotal, Usage: "initial sort: rx, tx or total (rate, then bytes)"},
			&cli.BoolFlag{Name: "once", Usage: "print one snapshot and exit"},
			&cli.StringFlag{Name: "format", Aliases: []string{"o"}, Value: "table", Usage: "with --once: table or json"},
			&cli.BoolFlag{Name: "no-resolve", Aliases: []string{"n"}, Usage: "show remote addresses as numbers (no reverse DNS)"},
			&cli.StringFlag{Name: "by", Value: "app", Usage: "one row per app (the default: a program with the processes it forked, as `report` groups) or per process; g toggles"},
			&cli.DurationFlag{Name: "idle", Value: DefaultIdle, Usage: "hide processes with no traffic for `DURATION` (exited ones linger in the daemon for minutes); 0 shows them all. Header totals still include them"},
		},
		Action: runTop,
	}
}

// DefaultIdle: like nethogs and bandwhich, a process that has sent and
// received nothing for this long leaves the list.
const DefaultIdle = 5 * time.Second

// dropIdle removes processes with no traffic in the last idle (0 keeps
// all) and returns how many it hid. The snapshot's totals stay as they are.
func dropIdle(snap *liveSnap, idle time.Duration) int {
	if idle <= 0 {
		return 0
	}
	ref := snap.Time
	if ref.IsZero() {
		ref = time.Now()
	}
	kept := snap.Processes[:0]
	for _, p := range snap.Processes {
		if p.RxRate == 0 && p.TxRate == 0 && !p.LastSeen.IsZero() && ref.Sub(p.LastSeen) > idle {
			continue
		}
		kept = append(kept, p)
	}
	n := len(snap.Processes) - len(kept)
	snap.Processes = kept
	return n
}

// liveProc is one process of GET /api/current: the collector's own type,
// which the API serves as is.
type liveProc = live.ProcRate

// liveSnap is GET /api/current; --once --format json prints it.
type liveSnap = wire.CurrentResponse

type liveRemote = wire.RemoteTotal

func sortProcs(ps []liveProc, key string) {
	rate := func(p liveProc) (float64, uint64) {
		switch key {
		case sortRx:
			return p.RxRate, p.RxBytes
		case sortTx:
			return p.TxRate, p.TxBytes
		}
		return p.RxRate + p.TxRate, p.RxBytes + p.TxBytes
	}
	sort.SliceStable(ps, func(i, j int) bool {
		ri, bi := rate(ps[i])
		rj, bj := rate(ps[j])
		if ri != rj {
			return ri > rj
		}
		if bi != bj {
			return bi > bj
		}
		return ps[i].PID < ps[j].PID
	})
}

func rateStr(r float64) string { return report.Units{}.Rate(r) }

func runTop(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("top takes no arguments (got %q)", c.Args().First())
	}
	base := strings.TrimRight(c.String("url"), "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--url %q: want http://HOST:PORT", c.String("url"))
	}
	interval := c.Duration("interval")
	if interval < 100*time.Millisecond || interval > time.Hour {
		return usagef("--interval %s: must be between 100ms and 1h", interval)
	}
	key := strings.ToLower(c.String("sort"))
	switch key {
	case sortRx, sortTx, sortTotal:
	default:
		return usagef("--sort %q: valid are rx, tx, total", key)
	}
	format := c.String("format")
	if format != "table" && format != "json" {
		return usagef("--format %q: valid are table, json", format)
	}
	by := c.String("by")
	if by != "app" && by != "process" {
		return usagef("--by %q: valid are app, process", by)
	}
	idle := c.Duration("idle")
	if idle < 0 {
		return usagef("--idle %s: must be 0 (show all) or positive", idle)
	}
	api, err := apiclient.New(base, c.String("token"), max(2*time.Second, interval))
	if err != nil {
		return usagef("--url %v", err)
	}
	snap, err := api.Current(c.Context)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	hidden := 0
	if !c.Bool("once") || format == "table" { // JSON for scripts stays whole
		hidden = dropIdle(&snap, idle)
	}
	sortProcs(snap.Processes, key)
	if c.Bool("once") {
		width := report.DefaultWidth
		if w, ok := terminalWidth(c.App.Writer); ok {
			width = w
		}
		if err := printSnapshot(c.App.Writer, format, snap, width, by == "app"); err != nil {
			return err
		}
		if hidden > 0 {
			fmt.Fprintf(c.App.Writer, "(%d idle processes hidden: --idle 0 shows them)\n", hidden)
		}
		return nil
	}
	var res *report.Resolver
	if !c.Bool("no-resolve") {
		res = report.NewResolver()
	}
	v := &topView{api: api, key: key, interval: interval, res: res, snap: snap, idle: idle, hidden: hidden, grouped: by == "app"}
	if st, err := api.Status(c.Context); err == nil {
		v.started = st.Started
	}
	return v.run(c.Context)
}

// printSnapshot prints snap for --once; a table fits width (names and
// paths lose their middle), one row per app when grouped; JSON is whole.
func printSnapshot(w io.Writer, format string, snap liveSnap, width int, grouped bool) error {
	if snap.Processes == nil {
		snap.Processes = []liveProc{}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
	}
	// report.Table escapes control characters in names and paths (see
	// report.Safe) and measures wide runes. The same columns as the
	// interactive view (topColumns).
	tw := &report.Table{Right: true, Left: map[int]bool{1: true, 2: true, 9: true}, Max: width, Shrink: map[int]int{1: 4, 2: 8, 9: 12}}
	tw.Add(topColumns(grouped)...)
	for _, r := range topRows(snap.Processes, grouped, "") {
		tw.Add(r.cells(grouped, report.Units{})...)
	}
	if err := tw.Write(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d processes; sending %s, receiving %s (at %s)\n", len(snap.Processes), rateStr(snap.TxRate), rateStr(snap.RxRate), snap.Time.Local().Format("15:04:05"))
	return nil
}

// alertRules names the firing alerts whose labels match the process (app,
// comm, exe, service, container; other labels are not compared).
func alertRules(p liveProc, firing []alerts.Alert) []string {
	var out []string
	for _, a := range firing {
		compared, ok := 0, true
		for k, v := range a.Labels {
			var have string
			switch k {
			case alerts.KeyApp:
				have = alerts.AppLabel(p.Exe, p.Comm)
			case alerts.KeyComm:
				have = p.Comm
			case alerts.KeyExe:
				have = p.Exe
			case alerts.KeyService:
				have = p.Service
			case alerts.KeyContainer:
				have = p.Container
			default:
				continue
			}
			compared++
			ok = ok && have == v
		}
		if ok && compared > 0 && !slices.Contains(out, a.Rule) {
			out = append(out, a.Rule)
		}
	}
	return out
}

// Screen lets tests run the view on a simulation screen.
var topScreen tcell.Screen
