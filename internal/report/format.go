// Package report renders store query results for people (table, IEC
// units) and for programs (JSON, CSV: exact integers).
//
// Tables are terminal-safe (termsafe.go): every cell goes through Safe
// (control and non-printable characters as visible escapes such as \x1b)
// and columns are measured in terminal cells (go-runewidth), so names chosen
// by other users cannot rewrite the terminal or break the layout. JSON and
// CSV carry the exact strings.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/bwtracker/bwtracker/internal/store"
)

// Formats accepted by --format.
var Formats = []string{"table", "json", "csv"}

// column is one output field: its JSON/CSV name, table header, and getters.
type column struct {
	name   string
	header string
	json   func(store.Row) any
	text   func(store.Row) string
}

// tableHidden are fields only JSON and CSV carry: in tables the remote's
// name is part of the REMOTE cell.
var tableHidden = map[string]bool{"remote_name": true}

func dimColumns(dim string) []column {
	switch dim {
	case store.DimProcess:
		return []column{
			{"pid", "PID", func(r store.Row) any { return r.PID }, func(r store.Row) string { return strconv.FormatUint(uint64(r.PID), 10) }},
			{"comm", "COMM", func(r store.Row) any { return r.Comm }, func(r store.Row) string { return r.Comm }},
			{"exe", "EXE", func(r store.Row) any { return r.Exe }, func(r store.Row) string { return r.Exe }},
		}
	case store.DimRemote:
		return []column{{"remote_ip", "REMOTE", func(r store.Row) any { return r.RemoteIP }, func(r store.Row) string {
			if r.RemoteIP == "" {
				return "(unknown)"
			}
			return r.RemoteIP
		}}, {"remote_name", "NAME", func(r store.Row) any { return r.RemoteName }, func(r store.Row) string { return r.RemoteName }}}
	case store.DimDomain:
		return []column{{"domain", "DOMAIN", func(r store.Row) any { return r.Domain }, func(r store.Row) string {
			if r.Domain == "" {
				return "(no name)"
			}
			return r.Domain
		}}}
	case store.DimProtocol:
		return []column{{"protocol", "PROTO", func(r store.Row) any { return r.Protocol }, func(r store.Row) string { return r.Protocol }}}
	case store.DimPort:
		return []column{{"remote_port", "PORT", func(r store.Row) any { return r.RemotePort }, func(r store.Row) string { return orZero(uint64(r.RemotePort)) }}}
	case store.DimNetNS:
		return []column{{"netns", "NETNS", func(r store.Row) any { return r.NetNS }, func(r store.Row) string { return orZero(uint64(r.NetNS)) }}}
	case store.DimService:
		return []column{{"service", "SERVICE", func(r store.Row) any { return r.Service }, func(r store.Row) string { return orDash(r.Service) }}}
	case store.DimContainer:
		return []column{{"container", "CONTAINER", func(r store.Row) any { return r.Container }, func(r store.Row) string { return orDash(r.Container) }}}
	case store.DimNamespace:
		return []column{{"namespace", "NAMESPACE", func(r store.Row) any { return r.Namespace }, func(r store.Row) string { return orDash(r.Namespace) }}}
	case store.DimPod:
		return []column{{"pod", "POD", func(r store.Row) any { return r.Pod }, func(r store.Row) string { return orDash(r.Pod) }}}
	case store.DimWorkload:
		return []column{{"workload", "WORKLOAD", func(r store.Row) any { return r.Workload }, func(r store.Row) string { return orDash(r.Workload) }}}
	case store.DimExe:
		return []column{{"exe", "EXE", func(r store.Row) any { return r.Exe }, func(r store.Row) string {
			if r.Exe == "" {
				return "(unknown)"
			}
			return r.Exe
		}}}
	case store.DimApp:
		return []column{{"app", "APP", func(r store.Row) any { return r.App }, func(r store.Row) string { return orUnknown(r.App) }}}
	case store.DimComm:
		return []column{{"comm", "COMM", func(r store.Row) any { return r.Comm }, func(r store.Row) string { return r.Comm }}}
	case store.DimCgroup:
		return []column{{"cgroup", "CGROUP", func(r store.Row) any { return r.Cgroup }, func(r store.Row) string { return orDash(r.Cgroup) }}}
	case store.DimScope:
		return []column{{"scope", "SCOPE", func(r store.Row) any { return r.Scope }, func(r store.Row) string { return orUnknown(r.Scope) }}}
	case store.DimUser:
		return []column{
			{"user", "USER", func(r store.Row) any { return UserName(r.UID) }, func(r store.Row) string { return UserName(r.UID) }},
			{"uid", "UID", func(r store.Row) any { return r.UID }, func(r store.Row) string { return strconv.FormatUint(uint64(r.UID), 10) }},
		}
	}
	return nil
}

// orZero shows 0 (no port, or a rollup row that mixed several) as "-".
func orZero(v uint64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatUint(v, 10)
}

// Folded says whether rows hold a folded remote breakdown: a row whose
// remote is store.OtherRemotes (older history keeps only the top remotes
// per process and hour or day; see the store package doc).
func Folded(rows []store.Row) bool {
	for _, r := range rows {
		if r.RemoteIP == store.OtherRemotes {
			return true
		}
	}
	return false
}

// FoldedNote is the table footer line for a folded remote breakdown.
func FoldedNote() string {
	return fmt.Sprintf("%s: history older than the 1-minute tier keeps the top %d remotes per process and hour (%d per day); the rest are summed into that row, bytes exact",
		store.OtherRemotes, store.Tiers[2].Keep, store.Tiers[3].Keep)
}

// columns lists the output fields of the dimensions, each field once
// (process and exe both carry "exe").
func columns(by []string) []column {
	var cols []column
	seen := map[string]bool{}
	for _, d := range by {
		for _, c := range dimColumns(d) {
			if !seen[c.name] {
				seen[c.name] = true
				cols = append(cols, c)
			}
		}
	}
	return cols
}

// Options tune the human table; JSON and CSV ignore them and stay
// machine-clean (raw addresses, exact integers). The zero value is Write.
type Options struct {
	// Bars adds a column with a bar scaled to the largest row's total.
	Bars bool
	// Names, when set, shows remote addresses as "name (address)" for
	// those that resolved (see Resolver).
	Names map[string]string
	// Window, when set, holds the totals of the whole window (all rows, not
	// only the --top ones shown): the footer states those, and how many
	// rows were left out.
	Window *WindowTotals
	// Units: bytes (IEC) or bits (SI).
	Units Units
	// Width > 0 is the widest a table line may be: names and paths are cut
	// in the middle to fit (JSON and CSV keep them whole).
	Width int
	// Graph, when set, adds a sparkline column: each row's traffic over
	// the window, one cell per bin, looked up by the row with its sums
	// zeroed (store.Binned). It replaces the bar column.
	Graph map[store.Row][]uint64
	// Folded adds FoldedNote to the footer (set it from Folded over all
	// the window's rows, not only those shown).
	Folded bool
	// Unresolved counts remotes whose reverse DNS did not answer in time
	// (shown as addresses); the footer says so.
	Unresolved int
}

// shrinkMin is how narrow a text column may become to fit the width;
// columns not named here (numbers, protocol) keep their width.
var shrinkMin = map[string]int{
	"comm": 8, "exe": 12, "remote_ip": 12, "service": 12, "container": 12, "user": 6,
}

// shrinkable columns: any text column that is not a number or a short code.
func shrinkable(name string) (int, bool) {
	if m, ok := shrinkMin[name]; ok {
		return m, true
	}
	switch name {
	case "pid", "uid", "protocol", "port", "remote_port", "netns", "scope":
		return 0, false
	}
	return 10, true
}

// GraphKey is the key of a row in Options.Graph: the row without its sums.
func GraphKey(r store.Row) store.Row {
	r.TxBytes, r.RxBytes, r.TxCalls, r.RxCalls = 0, 0, 0, 0
	return r
}

// WindowTotals are the sums over every row of a window.
type WindowTotals struct {
	Rows             int
	TxBytes, RxBytes uint64
}

// Sum adds up rows.
func Sum(rows []store.Row) WindowTotals {
	w := WindowTotals{Rows: len(rows)}
	for _, r := range rows {
		w.TxBytes += r.TxBytes
		w.RxBytes += r.RxBytes
	}
	return w
}

// Write renders rows grouped by `by` in format.
func Write(w io.Writer, format string, by []string, rows []store.Row) error {
	return WriteWith(w, format, by, rows, Options{})
}

// WriteWith is Write with table options.
func WriteWith(w io.Writer, format string, by []string, rows []store.Row, opt Options) error {
	cols := columns(by)
	if format == "table" || format == "" {
		shown := cols[:0:0]
		for _, c := range cols {
			if tableHidden[c.name] {
				continue
			}
			if c.name == "remote_ip" {
				// The name the process resolved, else reverse DNS.
				plain := c.text
				c.text = func(r store.Row) string {
					n := r.RemoteName
					if n == "" {
						n = opt.Names[r.RemoteIP]
					}
					if n != "" && r.RemoteIP != "" {
						return n + " (" + r.RemoteIP + ")"
					}
					return plain(r)
				}
			}
			shown = append(shown, c)
		}
		cols = shown
	}
	switch format {
	case "json":
		out := make([]jsonRow, 0, len(rows))
		for _, r := range rows {
			jr := jsonRow{}
			for _, c := range cols {
				jr = append(jr, kv{c.name, c.json(r)})
			}
			jr = append(jr, kv{"tx_bytes", r.TxBytes}, kv{"rx_bytes", r.RxBytes})
			if r.RemoteIP == store.OtherRemotes && hasRemote(by) {
				// The marker of a folded row; absent on every other row.
				jr = append(jr, kv{"folded", true})
			}
			out = append(out, jr)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "csv":
		cw := csv.NewWriter(w)
		var hdr []string
		for _, c := range cols {
			hdr = append(hdr, c.name)
		}
		hdr = append(hdr, "tx_bytes", "rx_bytes")
		cw.Write(hdr)
		for _, r := range rows {
			var rec []string
			for _, c := range cols {
				rec = append(rec, c.text(r))
			}
			rec = append(rec, strconv.FormatUint(r.TxBytes, 10), strconv.FormatUint(r.RxBytes, 10))
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		return writeTable(w, cols, rows, opt)
	}
	return fmt.Errorf("unknown format %q: valid are %s", format, strings.Join(Formats, ", "))
}

// Column order, the same in every view (report, --period, top): SENT,
// RECEIVED, TOTAL; JSON keeps tx_bytes, rx_bytes.

func writeTable(w io.Writer, cols []column, rows []store.Row, opt Options) error {
	u := opt.Units
	tw := &Table{Right: true, Left: map[int]bool{}, Max: opt.Width, Shrink: map[int]int{}}
	var hdr []string
	for i, c := range cols {
		hdr = append(hdr, c.header)
		if m, ok := shrinkable(c.name); ok { // names and paths: left-aligned, cut to fit
			tw.Shrink[i] = max(m, Width(c.header))
			tw.Left[i] = true
		}
	}
	hdr = append(hdr, "SENT", "RECEIVED", "TOTAL")
	tw.Add(hdr...)
	var tx, rx, peak uint64
	for _, r := range rows {
		peak = max(peak, r.Total())
	}
	for _, r := range rows {
		var rec []string
		for _, c := range cols {
			rec = append(rec, c.text(r))
		}
		rec = append(rec, u.Size(r.TxBytes), u.Size(r.RxBytes), u.Size(r.Total()))
		tw.Add(rec...)
		tx += r.TxBytes
		rx += r.RxBytes
	}
	if len(rows) == 0 {
		tw.Write(w)
		fmt.Fprintln(w, "(no traffic recorded in this window)")
		return nil
	}
	// The last column (bar or sparkline) takes what the others leave, within
	// bounds; then the text columns shrink if the line is still too wide.
	switch {
	case opt.Graph != nil:
		tw.rows[0] = append(tw.rows[0], "GRAPH")
		tw.Left[len(tw.rows[0])-1] = true
		for i, r := range rows {
			tw.rows[i+1] = append(tw.rows[i+1], Sparkline(opt.Graph[GraphKey(r)]))
		}
	case opt.Bars:
		bw := tw.barWidth(true)
		tw.Left[len(tw.rows[0])] = true
		for i, r := range rows {
			if bw == 0 {
				break
			}
			tw.rows[i+1] = append(tw.rows[i+1], Bar(r.Total(), peak, bw))
		}
	}
	if err := tw.Write(w); err != nil {
		return err
	}
	if opt.Folded || Folded(rows) {
		fmt.Fprintln(w, FoldedNote())
	}
	if opt.Unresolved > 0 {
		fmt.Fprintf(w, "%d remote names not resolved in time (shown as addresses; --resolve-timeout waits longer, later reports use the names found meanwhile)\n", opt.Unresolved)
	}
	if win := opt.Window; win != nil && win.Rows > len(rows) {
		fmt.Fprintf(w, "%d of %d rows shown (… %d more: use --top 0 for all)\nwindow total: sent %s, received %s\n",
			len(rows), win.Rows, win.Rows-len(rows), u.Size(win.TxBytes), u.Size(win.RxBytes))
		return nil
	}
	fmt.Fprintf(w, "%d rows; total sent %s, received %s\n", len(rows), u.Size(tx), u.Size(rx))
	return nil
}

func hasRemote(by []string) bool {
	for _, d := range by {
		if d == store.DimRemote {
			return true
		}
	}
	return false
}

// IBytes is a byte count in IEC units (KiB, MiB...).
func IBytes(n uint64) string { return humanize.IBytes(n) }

// jsonRow keeps field order in JSON output.
type jsonRow []kv

type kv struct {
	k string
	v any
}

func (r jsonRow) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
