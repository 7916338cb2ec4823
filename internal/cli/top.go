package cli

import (
	"context"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
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

Keys: r sort by received, t by sent, s by total; Up/Down (or j/k) select a
process and show its remote hosts (reverse DNS names when they resolve);
q or Ctrl-C quits.

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

func rateStr(r float64) string {
	if r < 0.5 {
		return "0 B/s"
	}
	return report.IBytes(uint64(r+0.5)) + "/s"
}

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
		if err := printSnapshot(c.App.Writer, format, snap); err != nil {
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
	return (&topView{api: api, key: key, interval: interval, res: res, snap: snap, idle: idle, hidden: hidden}).run(c.Context)
}

func printSnapshot(w io.Writer, format string, snap liveSnap) error {
	if snap.Processes == nil {
		snap.Processes = []liveProc{}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
	}
	// report.Table escapes control characters in names and paths (see
	// report.Safe) and measures wide runes.
	tw := &report.Table{Right: true}
	// The same columns as the interactive view (TOTAL = receiving + sending).
	tw.Add("PID", "COMM", "RECEIVING", "SENDING", "TOTAL", "RECEIVED", "SENT", "REMOTES", "EXE")
	for _, p := range snap.Processes {
		tw.Add(strconv.FormatUint(uint64(p.PID), 10), p.Comm, rateStr(p.RxRate), rateStr(p.TxRate), rateStr(p.RxRate+p.TxRate),
			report.IBytes(p.RxBytes), report.IBytes(p.TxBytes), strconv.Itoa(p.Remotes), p.Exe)
	}
	if err := tw.Write(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d processes; receiving %s, sending %s (at %s)\n", len(snap.Processes), rateStr(snap.RxRate), rateStr(snap.TxRate), snap.Time.Local().Format("15:04:05"))
	return nil
}

// topView is the interactive screen.
type topView struct {
	api      *apiclient.Client
	key      string
	interval time.Duration
	res      *report.Resolver

	app     *tview.Application
	header  *tview.TextView
	table   *tview.Table
	detail  *tview.TextView
	status  *tview.TextView
	mu      sync.Mutex
	snap    liveSnap
	idle    time.Duration // --idle
	hidden  int           // idle processes left out of snap
	errMsg  string
	shown   []liveProc    // rows on screen; UI goroutine only
	selPID  atomic.Uint32 // selected process
	selBoot atomic.Uint64 // its start_ns
	rem     []liveRemote
	remPID  uint32
	remErr  string
	firing  []alerts.Alert // of the daemon's rules; empty when it has none
	refresh chan struct{}
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

func (v *topView) run(ctx context.Context) error {
	v.app = tview.NewApplication()
	if topScreen != nil {
		v.app.SetScreen(topScreen)
	}
	v.header = tview.NewTextView().SetDynamicColors(true)
	v.table = tview.NewTable().SetSelectable(true, false).SetFixed(1, 0)
	v.table.SetBorder(true).SetTitle(" processes ")
	v.detail = tview.NewTextView().SetDynamicColors(true)
	v.detail.SetBorder(true).SetTitle(" remote hosts of the selected process ")
	v.status = tview.NewTextView().SetDynamicColors(true)
	layout := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(v.header, 2, 0, false).
		AddItem(v.table, 0, 3, true).
		AddItem(v.detail, 0, 2, false).
		AddItem(v.status, 1, 0, false)
	v.refresh = make(chan struct{}, 1)
	v.table.SetSelectionChangedFunc(func(row, _ int) {
		if row < 1 || row-1 >= len(v.shown) {
			return
		}
		p := v.shown[row-1]
		if v.selPID.Load() == p.PID && v.selBoot.Load() == p.StartNS {
			return
		}
		v.selPID.Store(p.PID)
		v.selBoot.Store(p.StartNS)
		v.kick()
	})
	v.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if ev.Key() == tcell.KeyRune {
			switch ev.Rune() {
			case 'q', 'Q':
				v.app.Stop()
				return nil
			case 'r':
				v.setSort(sortRx)
				return nil
			case 't':
				v.setSort(sortTx)
				return nil
			case 's', 'a':
				v.setSort(sortTotal)
				return nil
			case 'j':
				return tcell.NewEventKey(tcell.KeyDown, 0, tcell.ModNone)
			case 'k':
				return tcell.NewEventKey(tcell.KeyUp, 0, tcell.ModNone)
			}
		}
		return ev
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go v.poll(ctx)
	v.draw() // not running yet: safe to draw from here
	return v.app.SetRoot(layout, true).Run()
}

func (v *topView) kick() {
	select {
	case v.refresh <- struct{}{}:
	default:
	}
}

func (v *topView) setSort(k string) {
	v.mu.Lock()
	v.key = k
	sortProcs(v.snap.Processes, k)
	v.mu.Unlock()
	v.draw() // input handlers run on the UI goroutine; it redraws after

}

// poll fetches the snapshot every interval and the selected process's
// remotes; names resolve in the background and show up on the next draw.
func (v *topView) poll(ctx context.Context) {
	t := time.NewTicker(v.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			snap, err := v.api.Current(ctx)
			v.mu.Lock()
			if err != nil {
				v.errMsg = err.Error()
			} else {
				v.errMsg = ""
				v.hidden = dropIdle(&snap, v.idle)
				sortProcs(snap.Processes, v.key)
				v.snap = snap
			}
			v.mu.Unlock()
			// Firing alerts mark their processes; a daemon without rules
			// (or an older one) has none.
			firing, aerr := v.api.Alerts(ctx, nil)
			v.mu.Lock()
			v.firing = nil
			if aerr == nil {
				v.firing = firing
			}
			v.mu.Unlock()
		case <-v.refresh:
		}
		v.mu.Lock()
		pid := v.selPID.Load()
		if pid == 0 && len(v.snap.Processes) > 0 {
			pid = v.snap.Processes[0].PID
		}
		v.mu.Unlock()
		if pid != 0 {
			rem, err := v.api.Remotes(ctx, pid, 50)
			v.mu.Lock()
			v.rem, v.remPID, v.remErr = rem, pid, ""
			if err != nil {
				v.remErr = err.Error()
			}
			v.mu.Unlock()
			if v.res != nil {
				addrs := make([]string, 0, len(rem))
				for _, r := range rem {
					addrs = append(addrs, r.RemoteIP)
				}
				v.res.Start(addrs, report.DefaultResolveTimeout)
			}
		}
		if ctx.Err() != nil {
			return
		}
		v.app.QueueUpdateDraw(v.draw)
	}
}

// draw runs on the UI goroutine.
func (v *topView) draw() {
	v.mu.Lock()
	snap, key, errMsg := v.snap, v.key, v.errMsg
	snap.Processes = append([]liveProc(nil), v.snap.Processes...)
	rem, remPID, remErr := v.rem, v.remPID, v.remErr
	firing, hidden := v.firing, v.hidden
	v.mu.Unlock()
	v.shown = snap.Processes
	mark := func(k string) string {
		if key == k {
			return "[::r]"
		}
		return ""
	}
	idleNote := ""
	if hidden > 0 {
		idleNote = fmt.Sprintf(" (+%d idle hidden)", hidden)
	}
	fmt.Fprintf(v.header.Clear(), "[::b]bwtracker top[::-]  %s  receiving [green]%s[-]  sending [yellow]%s[-]  %d processes%s  sort: %s\n",
		snap.Time.Local().Format("15:04:05"), rateStr(snap.RxRate), rateStr(snap.TxRate), len(snap.Processes), idleNote, key)
	if len(firing) > 0 {
		fmt.Fprintf(v.header, "[red::b]%d alert(s) firing[-::-] (! marks the process; `bwtracker alerts`)  ", len(firing))
	}
	fmt.Fprint(v.header, "[gray]keys: r received  t sent  s total  ↑/↓ select  q quit[-]")
	v.table.Clear()
	hdr := []string{"PID", "COMM", mark(sortRx) + "RECEIVING", mark(sortTx) + "SENDING", mark(sortTotal) + "TOTAL", "RECEIVED", "SENT", "REMOTES", "EXE"}
	for i, h := range hdr {
		v.table.SetCell(0, i, tview.NewTableCell(h+"  ").SetSelectable(false).SetAttributes(tcell.AttrBold).SetExpansion(b2i(i == len(hdr)-1)))
	}
	selRow := 0
	for i, p := range snap.Processes {
		cells := []string{strconv.FormatUint(uint64(p.PID), 10), p.Comm, rateStr(p.RxRate), rateStr(p.TxRate), rateStr(p.RxRate + p.TxRate),
			report.IBytes(p.RxBytes), report.IBytes(p.TxBytes), strconv.Itoa(p.Remotes), p.Exe}
		rules := alertRules(p, firing)
		if len(rules) > 0 {
			cells[1] = "! " + cells[1]
		}
		for j, s := range cells {
			// Names and paths are chosen by other users: visible escapes
			// for control characters, then tview's own [tag] escaping.
			cell := tview.NewTableCell(tview.Escape(report.Safe(s)) + "  ")
			if j == 1 && len(rules) > 0 {
				cell.SetTextColor(tcell.ColorRed)
			}
			if j >= 2 && j <= 7 {
				cell.SetAlign(tview.AlignRight)
			}
			v.table.SetCell(i+1, j, cell)
		}
		if p.PID == v.selPID.Load() && p.StartNS == v.selBoot.Load() {
			selRow = i + 1
		}
	}
	if selRow == 0 && len(snap.Processes) > 0 {
		selRow = 1
	}
	if selRow > 0 {
		v.table.Select(selRow, 0) // the callback kicks only on a change

	}
	v.detail.Clear()
	switch {
	case remErr != "":
		fmt.Fprintf(v.detail, "[red]%s[-]", tview.Escape(remErr))
	case len(rem) == 0:
		fmt.Fprint(v.detail, "[gray](no remote hosts recorded for this process yet)[-]")
	default:
		tw := &report.Table{}
		tw.Add(fmt.Sprintf("REMOTE (pid %d)", remPID), "PROTO", "RECEIVED", "SENT")
		for _, r := range rem {
			host := r.RemoteIP
			if host == "" {
				host = "(unknown)"
			} else if v.res != nil {
				if n, _ := v.res.Cached(r.RemoteIP); n != "" {
					host = n + " (" + r.RemoteIP + ")"
				}
			}
			tw.Add(host, r.Protocol, report.IBytes(r.RxBytes), report.IBytes(r.TxBytes))
		}
		var b strings.Builder
		tw.Write(&b)
		fmt.Fprint(v.detail, tview.Escape(b.String()))
	}
	v.status.Clear()
	if errMsg != "" {
		fmt.Fprintf(v.status, "[red]%s; retrying[-]", tview.Escape(errMsg))
	} else {
		fmt.Fprintf(v.status, "[gray]%s every %s[-]", v.api.URL(), v.interval)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
