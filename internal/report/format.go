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
		}}}
	case store.DimProtocol:
		return []column{{"protocol", "PROTO", func(r store.Row) any { return r.Protocol }, func(r store.Row) string { return r.Protocol }}}
	case store.DimService:
		return []column{{"service", "SERVICE", func(r store.Row) any { return r.Service }, func(r store.Row) string { return orDash(r.Service) }}}
	case store.DimContainer:
		return []column{{"container", "CONTAINER", func(r store.Row) any { return r.Container }, func(r store.Row) string { return orDash(r.Container) }}}
	case store.DimExe:
		return []column{{"exe", "EXE", func(r store.Row) any { return r.Exe }, func(r store.Row) string {
			if r.Exe == "" {
				return "(unknown)"
			}
			return r.Exe
		}}}
	case store.DimUser:
		return []column{
			{"user", "USER", func(r store.Row) any { return UserName(r.UID) }, func(r store.Row) string { return UserName(r.UID) }},
			{"uid", "UID", func(r store.Row) any { return r.UID }, func(r store.Row) string { return strconv.FormatUint(uint64(r.UID), 10) }},
		}
	}
	return nil
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
		for i, c := range cols {
			if c.name == "remote_ip" && len(opt.Names) > 0 {
				plain := c.text
				cols[i].text = func(r store.Row) string {
					if n := opt.Names[r.RemoteIP]; n != "" {
						return n + " (" + r.RemoteIP + ")"
					}
					return plain(r)
				}
			}
		}
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
		tw := &Table{Right: true}
		var hdr []string
		for _, c := range cols {
			hdr = append(hdr, c.header)
		}
		hdr = append(hdr, "SENT", "RECEIVED", "TOTAL")
		if opt.Bars {
			hdr = append(hdr, "")
		}
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
			rec = append(rec, IBytes(r.TxBytes), IBytes(r.RxBytes), IBytes(r.Total()))
			if opt.Bars {
				rec = append(rec, padBar(Bar(r.Total(), peak, BarWidth), BarWidth))
			}
			tw.Add(rec...)
			tx += r.TxBytes
			rx += r.RxBytes
		}
		if len(rows) == 0 {
			tw.Write(w)
			fmt.Fprintln(w, "(no traffic recorded in this window)")
			return nil
		}
		if err := tw.Write(w); err != nil {
			return err
		}
		if win := opt.Window; win != nil && win.Rows > len(rows) {
			fmt.Fprintf(w, "%d of %d rows shown (… %d more: use --top 0 for all); window total sent %s, received %s\n",
				len(rows), win.Rows, win.Rows-len(rows), IBytes(win.TxBytes), IBytes(win.RxBytes))
			return nil
		}
		fmt.Fprintf(w, "%d rows; total sent %s, received %s\n", len(rows), IBytes(tx), IBytes(rx))
		return nil
	}
	return fmt.Errorf("unknown format %q: valid are %s", format, strings.Join(Formats, ", "))
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
