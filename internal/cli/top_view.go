package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/apiclient"
	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/report"
)

// topRow is one line of `top`: a process, or with grouping on, every
// process of an app (live.ProcRate.App, internal/procinfo's app rule;
// alerts.AppLabel, the executable's name, from daemons without it).
type topRow struct {
	key            string // selection identity
	pid            uint32 // 0 for a group
	procs          int
	user           string
	comm, exe, app string
	txRate, rxRate float64
	tx, rx         uint64
	remotes        int
	conns          []live.ConnRate
	first          liveProc // for alert labels
}

// topColumns: the same order as every report table (SENT before
// RECEIVED): rates, then totals since the daemon started.
func topColumns(grouped bool) []string {
	if grouped {
		return []string{"PROCS", "USER", "APP", "SENDING", "RECEIVING", "TOTAL", "SENT", "RECEIVED", "REMOTES", "EXE"}
	}
	return []string{"PID", "USER", "COMM", "SENDING", "RECEIVING", "TOTAL", "SENT", "RECEIVED", "REMOTES", "EXE"}
}

func (r topRow) cells(grouped bool, u report.Units) []string {
	first := strconv.FormatUint(uint64(r.pid), 10)
	name := r.comm
	if grouped {
		first, name = strconv.Itoa(r.procs), r.app
	}
	return []string{first, r.user, name, u.Rate(r.txRate), u.Rate(r.rxRate), u.Rate(r.txRate + r.rxRate),
		u.Size(r.tx), u.Size(r.rx), strconv.Itoa(r.remotes), r.exe}
}

// topRows turns the snapshot's processes (already sorted) into rows; with
// grouped, one per app, sorted by key the same way.
func topRows(ps []liveProc, grouped bool, key string) []topRow {
	one := func(p liveProc) topRow {
		app := p.App
		if app == "" {
			app = alerts.AppLabel(p.Exe, p.Comm)
		}
		return topRow{key: fmt.Sprintf("p%d/%d", p.PID, p.StartNS), pid: p.PID, procs: 1, user: report.UserName(p.UID), comm: p.Comm, exe: p.Exe,
			app: app, txRate: p.TxRate, rxRate: p.RxRate, tx: p.TxBytes, rx: p.RxBytes, remotes: p.Remotes,
			conns: p.Conns, first: p}
	}
	var out []topRow
	if !grouped {
		for _, p := range ps {
			out = append(out, one(p))
		}
		return out
	}
	idx := map[string]int{}
	for _, p := range ps {
		r := one(p)
		i, ok := idx[r.app]
		if !ok {
			r.key = "a" + r.app
			idx[r.app] = len(out)
			out = append(out, r)
			continue
		}
		g := &out[i]
		g.procs++
		g.txRate += r.txRate
		g.rxRate += r.rxRate
		g.tx += r.tx
		g.rx += r.rx
		g.remotes += r.remotes // distinct per process; an upper bound for the app
		if g.user != r.user {
			g.user = "*"
		}
		if g.exe != r.exe {
			g.exe = "*"
		}
		g.conns = mergeConns(g.conns, r.conns)
	}
	rate := func(r topRow) (float64, uint64) {
		switch key {
		case sortRx:
			return r.rxRate, r.rx
		case sortTx:
			return r.txRate, r.tx
		}
		return r.rxRate + r.txRate, r.rx + r.tx
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, bi := rate(out[i])
		rj, bj := rate(out[j])
		if ri != rj {
			return ri > rj
		}
		if bi != bj {
			return bi > bj
		}
		return out[i].app < out[j].app
	})
	return out
}

// mergeConns adds b's connections into a (same remote, port, protocol
// summed), busiest first, at most live.MaxConns.
func mergeConns(a, b []live.ConnRate) []live.ConnRate {
	type k struct {
		ip    string
		port  uint16
		proto string
	}
	out := append([]live.ConnRate(nil), a...)
	at := map[k]int{}
	for i, c := range out {
		at[k{c.RemoteIP, c.Port, c.Protocol}] = i
	}
	for _, c := range b {
		if i, ok := at[k{c.RemoteIP, c.Port, c.Protocol}]; ok {
			o := &out[i]
			o.TxRate += c.TxRate
			o.RxRate += c.RxRate
			o.TxBytes += c.TxBytes
			o.RxBytes += c.RxBytes
			if o.RemoteName == "" {
				o.RemoteName = c.RemoteName
			}
			continue
		}
		at[k{c.RemoteIP, c.Port, c.Protocol}] = len(out)
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := out[i].TxRate+out[i].RxRate, out[j].TxRate+out[j].RxRate; ri != rj {
			return ri > rj
		}
		return out[i].TxBytes+out[i].RxBytes > out[j].TxBytes+out[j].RxBytes
	})
	return out[:min(len(out), live.MaxConns)]
}

// topExeWidth bounds the EXE column of the interactive view (cut in the
// middle); --once --format json has the whole path.
const topExeWidth = 40

// topView is the interactive screen.
type topView struct {
	api      *apiclient.Client
	key      string
	interval time.Duration
	res      *report.Resolver
	started  time.Time // the daemon's start: the window of the totals

	app     *tview.Application
	pages   *tview.Pages
	header  *tview.TextView
	table   *tview.Table
	detail  *tview.TextView
	status  *tview.TextView
	mu      sync.Mutex
	snap    liveSnap
	idle    time.Duration // --idle
	hidden  int           // idle processes left out of snap
	errMsg  string
	paused  bool     // p: the screen keeps its rows
	bits    bool     // u: bits instead of bytes
	grouped bool     // g: one row per app
	shown   []topRow // rows on screen; UI goroutine only
	selKey  string   // selected row (topRow.key); under mu
	selPID  uint32   // its pid (0 for a group); under mu
	rem     []liveRemote
	remPID  uint32
	remErr  string
	firing  []alerts.Alert // of the daemon's rules; empty when it has none
	refresh chan struct{}
}

const topHelp = `[::b]bwtracker top — keys[::-]

  ?          this help (any key closes it)
  r  t  s    sort by received, sent, total (rate, then bytes)
  g          group rows by app (executable name) or show processes
  u          units: bytes (KiB/s) or bits (kbit/s)
  p          pause: the rows stay as they are until p again
  ↑ ↓  j k   select a row: its connections show below
  q  Ctrl-C  quit

SENT and RECEIVED count since the daemon started (see the header);
processes idle for --idle leave the list (--idle 0 keeps them).`

func (v *topView) run(ctx context.Context) error {
	v.app = tview.NewApplication()
	if topScreen != nil {
		v.app.SetScreen(topScreen)
	}
	v.header = tview.NewTextView().SetDynamicColors(true)
	v.table = tview.NewTable().SetSelectable(true, false).SetFixed(1, 0)
	v.table.SetBorder(true).SetTitle(" processes ")
	v.detail = tview.NewTextView().SetDynamicColors(true)
	v.detail.SetBorder(true).SetTitle(" connections of the selected row ")
	v.status = tview.NewTextView().SetDynamicColors(true)
	layout := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(v.header, 3, 0, false).
		AddItem(v.table, 0, 3, true).
		AddItem(v.detail, 0, 2, false).
		AddItem(v.status, 1, 0, false)
	help := tview.NewTextView().SetDynamicColors(true).SetText(topHelp)
	help.SetBorder(true).SetTitle(" help ")
	overlay := tview.NewFlex().
		AddItem(nil, 0, 1, false).
		AddItem(tview.NewFlex().SetDirection(tview.FlexRow).
			AddItem(nil, 0, 1, false).AddItem(help, 16, 0, true).AddItem(nil, 0, 1, false), 76, 0, true).
		AddItem(nil, 0, 1, false)
	v.pages = tview.NewPages().AddPage("main", layout, true, true).AddPage("help", overlay, true, false)
	v.refresh = make(chan struct{}, 1)
	v.table.SetSelectionChangedFunc(func(row, _ int) {
		if row < 1 || row-1 >= len(v.shown) {
			return
		}
		r := v.shown[row-1]
		v.mu.Lock()
		changed := v.selKey != r.key
		v.selKey, v.selPID = r.key, r.pid
		v.mu.Unlock()
		if changed {
			v.kick()
		}
	})
	v.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if name, _ := v.pages.GetFrontPage(); name == "help" {
			if ev.Key() == tcell.KeyCtrlC {
				return ev
			}
			v.pages.HidePage("help")
			return nil
		}
		if ev.Key() == tcell.KeyRune {
			switch ev.Rune() {
			case 'q', 'Q':
				v.app.Stop()
				return nil
			case '?', 'h':
				v.pages.ShowPage("help")
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
			case 'p':
				v.toggle(&v.paused)
				return nil
			case 'u':
				v.toggle(&v.bits)
				return nil
			case 'g':
				v.toggle(&v.grouped)
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
	return v.app.SetRoot(v.pages, true).Run()
}

func (v *topView) kick() {
	select {
	case v.refresh <- struct{}{}:
	default:
	}
}

// toggle flips a view setting; input handlers run on the UI goroutine,
// which redraws after.
func (v *topView) toggle(b *bool) {
	v.mu.Lock()
	*b = !*b
	v.mu.Unlock()
	v.draw()
}

func (v *topView) setSort(k string) {
	v.mu.Lock()
	v.key = k
	sortProcs(v.snap.Processes, k)
	v.mu.Unlock()
	v.draw()
}

// poll fetches the snapshot every interval (kept off the screen while
// paused) and, for a daemon whose snapshot has no connections, the
// selected process's remotes from the database; names resolve in the
// background and show up on the next draw.
func (v *topView) poll(ctx context.Context) {
	t := time.NewTicker(v.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.mu.Lock()
			paused := v.paused
			v.mu.Unlock()
			if paused {
				continue
			}
			snap, err := v.api.Current(ctx)
			v.mu.Lock()
			if err != nil {
				v.errMsg = err.Error()
			} else if !v.paused {
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
		pid, key := v.selPID, v.selKey
		if key == "" && len(v.snap.Processes) > 0 && !v.grouped {
			pid = v.snap.Processes[0].PID
		}
		var addrs []string
		hasConns := false
		for _, p := range v.snap.Processes {
			for _, c := range p.Conns {
				hasConns = true
				if c.RemoteName == "" {
					addrs = append(addrs, c.RemoteIP)
				}
			}
		}
		v.mu.Unlock()
		if pid != 0 && !hasConns {
			rem, err := v.api.Remotes(ctx, pid, 50)
			v.mu.Lock()
			v.rem, v.remPID, v.remErr = rem, pid, ""
			if err != nil {
				v.remErr = err.Error()
			}
			v.mu.Unlock()
			for _, r := range rem {
				addrs = append(addrs, r.RemoteIP)
			}
		}
		if v.res != nil && len(addrs) > 0 {
			v.res.Start(addrs, report.DefaultResolveTimeout)
		}
		if ctx.Err() != nil {
			return
		}
		v.app.QueueUpdateDraw(v.draw)
	}
}

// hostName is how a remote shows: the name the process resolved, else
// reverse DNS (when it answered), else the address.
func (v *topView) hostName(ip, name string) string {
	switch {
	case ip == "":
		return "(unknown)"
	case name != "":
		return name
	case v.res != nil:
		if n, _ := v.res.Cached(ip); n != "" {
			return n
		}
	}
	return ip
}

// draw runs on the UI goroutine.
func (v *topView) draw() {
	v.mu.Lock()
	snap, key, errMsg := v.snap, v.key, v.errMsg
	procs := append([]liveProc(nil), v.snap.Processes...)
	rem, remPID, remErr := v.rem, v.remPID, v.remErr
	firing, hidden := v.firing, v.hidden
	paused, grouped, selKey := v.paused, v.grouped, v.selKey
	u := report.Units{Bits: v.bits}
	v.mu.Unlock()
	rows := topRows(procs, grouped, key)
	v.shown = rows
	mark := func(k string) string {
		if key == k {
			return "[::r]"
		}
		return ""
	}
	idleNote := ""
	if hidden > 0 {
		idleNote = fmt.Sprintf(" (+%d idle)", hidden)
	}
	what := "processes"
	if grouped {
		what = fmt.Sprintf("apps of %d processes", len(procs))
	}
	pause := ""
	if paused {
		pause = "  [black:yellow] PAUSED (p) [-:-]"
	}
	since := "since daemon start"
	if !v.started.IsZero() {
		since += " " + v.started.Local().Format("15:04")
		if time.Since(v.started) > 24*time.Hour {
			since = "since daemon start " + v.started.Local().Format("2006-01-02 15:04")
		}
	}
	fmt.Fprintf(v.header.Clear(), "[::b]bwtracker top[::-]  %s  sending [yellow]%s[-]  receiving [green]%s[-]  %d %s%s%s\n",
		snap.Time.Local().Format("15:04:05"), u.Rate(snap.TxRate), u.Rate(snap.RxRate), len(rows), what, idleNote, pause)
	fmt.Fprintf(v.header, "totals %s: sent %s, received %s  sort: %s\n", since, u.Size(snap.TxBytes), u.Size(snap.RxBytes), key)
	if len(firing) > 0 {
		fmt.Fprintf(v.header, "[red::b]%d alert(s) firing[-::-] (! marks the process; `bwtracker alerts`)  ", len(firing))
	}
	fmt.Fprint(v.header, "[gray]? help  r/t/s sort  g group  u units  p pause  ↑/↓ select  q quit[-]")
	v.table.Clear()
	hdr := topColumns(grouped)
	hdr[3], hdr[4], hdr[5] = mark(sortTx)+hdr[3], mark(sortRx)+hdr[4], mark(sortTotal)+hdr[5]
	for i, h := range hdr {
		v.table.SetCell(0, i, tview.NewTableCell(h+" ").SetSelectable(false).SetAttributes(tcell.AttrBold).SetExpansion(b2i(i == len(hdr)-1)))
	}
	selRow := 0
	for i, r := range rows {
		cells := r.cells(grouped, u)
		var rules []string
		if !grouped {
			rules = alertRules(r.first, firing)
		}
		if len(rules) > 0 {
			cells[2] = "! " + cells[2]
		}
		for j, s := range cells {
			// Names and paths are chosen by other users: visible escapes
			// for control characters, then tview's own [tag] escaping.
			s = report.Safe(s)
			if j == len(cells)-1 {
				s = report.Middle(s, topExeWidth) // the path's end says most
			}
			cell := tview.NewTableCell(tview.Escape(s) + " ")
			if j == 2 && len(rules) > 0 {
				cell.SetTextColor(tcell.ColorRed)
			}
			if j == 0 || (j >= 3 && j <= 8) {
				cell.SetAlign(tview.AlignRight)
			}
			v.table.SetCell(i+1, j, cell)
		}
		if r.key == selKey {
			selRow = i + 1
		}
	}
	if selRow == 0 && len(rows) > 0 {
		selRow = 1
	}
	var sel *topRow
	if selRow > 0 {
		sel = &rows[selRow-1]
		v.mu.Lock()
		v.selKey, v.selPID = sel.key, sel.pid
		v.mu.Unlock()
		v.table.Select(selRow, 0) // the callback kicks only on a change
	}
	v.detail.Clear()
	v.drawDetail(sel, rem, remPID, remErr, u)
	v.status.Clear()
	if errMsg != "" {
		fmt.Fprintf(v.status, "[red]%s; retrying[-]", tview.Escape(errMsg))
	} else {
		fmt.Fprintf(v.status, "[gray]%s every %s[-]", v.api.URL(), v.interval)
	}
}

// drawDetail lists the selected row's connections (live, with rates) or,
// from a daemon whose snapshot has none, its remotes from the database.
func (v *topView) drawDetail(sel *topRow, rem []liveRemote, remPID uint32, remErr string, u report.Units) {
	var b strings.Builder
	switch {
	case sel == nil:
		fmt.Fprint(v.detail, "[gray](no rows)[-]")
		return
	case len(sel.conns) > 0:
		tw := &report.Table{Right: true, Left: map[int]bool{0: true, 2: true}}
		tw.Add("REMOTE", "PORT", "PROTO", "SENDING", "RECEIVING", "SENT", "RECEIVED")
		for _, c := range sel.conns {
			port := strconv.Itoa(int(c.Port))
			if c.Port == 0 {
				port = "*"
			}
			tw.Add(v.hostName(c.RemoteIP, c.RemoteName), port, c.Protocol, u.Rate(c.TxRate), u.Rate(c.RxRate), u.Size(c.TxBytes), u.Size(c.RxBytes))
		}
		tw.Write(&b)
	case remErr != "":
		fmt.Fprintf(v.detail, "[red]%s[-]", tview.Escape(remErr))
		return
	case sel.pid == 0 || sel.pid != remPID || len(rem) == 0:
		fmt.Fprint(v.detail, "[gray](no connections recorded for this row yet)[-]")
		return
	default:
		tw := &report.Table{Right: true, Left: map[int]bool{0: true, 1: true}}
		tw.Add(fmt.Sprintf("REMOTE (pid %d, from the database)", remPID), "PROTO", "SENT", "RECEIVED")
		for _, r := range rem {
			host := v.hostName(r.RemoteIP, "")
			if host != r.RemoteIP && r.RemoteIP != "" {
				host += " (" + r.RemoteIP + ")"
			}
			tw.Add(host, r.Protocol, u.Size(r.TxBytes), u.Size(r.RxBytes))
		}
		tw.Write(&b)
	}
	fmt.Fprint(v.detail, tview.Escape(b.String()))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
