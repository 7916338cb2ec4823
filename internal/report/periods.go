package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// Period kinds accepted by --period.
const (
	Period5Min  = "5min"
	PeriodHour  = "hour"
	PeriodDay   = "day"
	PeriodMonth = "month"
	PeriodYear  = "year"
)

// PeriodKinds lists the --period values.
var PeriodKinds = []string{Period5Min, PeriodHour, PeriodDay, PeriodMonth, PeriodYear}

// MaxPeriods bounds the rows of one period table.
const MaxPeriods = 20000

// DefaultPeriodWindow is how far back a period table goes without --since
// (vnStat-like: a few hours of 5-minute rows, a day of hours, a month of
// days, a year of months).
func DefaultPeriodWindow(kind string) time.Duration {
	switch kind {
	case Period5Min:
		return 2 * time.Hour
	case PeriodHour:
		return 24 * time.Hour
	case PeriodDay:
		return 30 * 24 * time.Hour
	case PeriodYear:
		return 5 * 365 * 24 * time.Hour
	}
	return 365 * 24 * time.Hour
}

// floorPeriod is the start of the period containing t, in t's location.
func floorPeriod(kind string, t time.Time) time.Time {
	y, m, d := t.Date()
	switch kind {
	case Period5Min:
		return time.Date(y, m, d, t.Hour(), t.Minute()-t.Minute()%5, 0, 0, t.Location())
	case PeriodHour:
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, t.Location())
	case PeriodDay:
		return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
	case PeriodYear:
		return time.Date(y, 1, 1, 0, 0, 0, 0, t.Location())
	}
	return time.Date(y, m, 1, 0, 0, 0, 0, t.Location())
}

func nextPeriod(kind string, t time.Time) time.Time {
	y, m, d := t.Date()
	switch kind {
	case Period5Min:
		return time.Date(y, m, d, t.Hour(), t.Minute()+5, 0, 0, t.Location())
	case PeriodHour:
		// Absolute hours: a DST change gives a 23- or 25-hour day, never a
		// repeated or missing hour row.
		return t.Add(time.Hour)
	case PeriodDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, t.Location())
	case PeriodYear:
		return time.Date(y+1, 1, 1, 0, 0, 0, 0, t.Location())
	}
	return time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location())
}

// PeriodEdges returns the period boundaries (in since's location: pass
// local times for local days) from the period containing since to the end
// of the period containing until.
func PeriodEdges(kind string, since, until time.Time) ([]time.Time, error) {
	switch kind {
	case Period5Min, PeriodHour, PeriodDay, PeriodMonth, PeriodYear:
	default:
		return nil, fmt.Errorf("unknown period %q: valid are %s", kind, strings.Join(PeriodKinds, ", "))
	}
	if !until.After(since) {
		return nil, fmt.Errorf("empty window")
	}
	until = until.In(since.Location())
	edges := []time.Time{floorPeriod(kind, since)}
	for edges[len(edges)-1].Before(until) {
		if len(edges) > MaxPeriods {
			return nil, fmt.Errorf("more than %d %s periods: shorten the window (--since/--until) or use a longer --period", MaxPeriods, kind)
		}
		edges = append(edges, nextPeriod(kind, edges[len(edges)-1]))
	}
	if len(edges) < 2 {
		edges = append(edges, nextPeriod(kind, edges[0]))
	}
	return edges, nil
}

func periodLabel(kind string, t time.Time) string {
	switch kind {
	case Period5Min, PeriodHour:
		return t.Format("2006-01-02 15:04")
	case PeriodDay:
		return t.Format("2006-01-02 Mon")
	case PeriodYear:
		return t.Format("2006")
	}
	return t.Format("2006-01")
}

// PeriodOptions tune WritePeriods.
type PeriodOptions struct {
	Kind string    // one of PeriodKinds (labels)
	Now  time.Time // the current period's rate is over its elapsed part
	// TopDays sorts by total, largest first, and keeps N periods (vnStat's
	// top days); 0 keeps chronological order.
	TopDays int
	Bars    bool
	By      []string // what Top names (default process)
	Names   map[string]string
	Units   Units
	// Width > 0 is the widest a table line may be (the top name is cut in
	// the middle to fit).
	Width int
}

// TopLabel names a period's top group for people.
func topLabel(by []string, r store.Row, names map[string]string) string {
	if r.Total() == 0 {
		return ""
	}
	var parts []string
	for _, d := range by {
		switch d {
		case store.DimProcess:
			parts = append(parts, fmt.Sprintf("%s[%d]", r.Comm, r.PID))
		case store.DimExe:
			if len(by) == 1 || !contains(by, store.DimProcess) {
				parts = append(parts, orUnknown(r.Exe))
			}
		case store.DimUser:
			parts = append(parts, UserName(r.UID))
		case store.DimRemote:
			if r.RemoteName != "" {
				parts = append(parts, r.RemoteName)
			} else if n := names[r.RemoteIP]; n != "" {
				parts = append(parts, n)
			} else {
				parts = append(parts, orUnknown(r.RemoteIP))
			}
		case store.DimProtocol:
			parts = append(parts, r.Protocol)
		case store.DimPort:
			parts = append(parts, "port "+orZero(uint64(r.RemotePort)))
		case store.DimNetNS:
			parts = append(parts, "netns "+orZero(uint64(r.NetNS)))
		case store.DimDomain:
			parts = append(parts, orUnknown(r.Domain))
		case store.DimService:
			parts = append(parts, orUnknown(r.Service))
		case store.DimContainer:
			parts = append(parts, orUnknown(r.Container))
		case store.DimNamespace:
			parts = append(parts, orUnknown(r.Namespace))
		case store.DimPod:
			parts = append(parts, orUnknown(r.Pod))
		case store.DimWorkload:
			parts = append(parts, orUnknown(r.Workload))
		case store.DimApp:
			parts = append(parts, orUnknown(r.App))
		case store.DimComm:
			if !contains(by, store.DimProcess) {
				parts = append(parts, r.Comm)
			}
		case store.DimCgroup:
			parts = append(parts, orUnknown(r.Cgroup))
		case store.DimScope:
			parts = append(parts, orUnknown(r.Scope))
		}
	}
	return strings.Join(parts, " ")
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// SelectPeriods drops empty periods and applies TopDays.
func SelectPeriods(ps []store.Period, topDays int) []store.Period {
	var out []store.Period
	for _, p := range ps {
		if p.Total() > 0 {
			out = append(out, p)
		}
	}
	if topDays > 0 {
		sort.SliceStable(out, func(i, j int) bool { return out[i].Total() > out[j].Total() })
		if len(out) > topDays {
			out = out[:topDays]
		}
	}
	return out
}

// WritePeriods renders a period table. JSON is one array of
// {"start","end","tx_bytes","rx_bytes","total_bytes","top":{...}} where top
// has the fields of the --by dimensions plus tx_bytes and rx_bytes.
func WritePeriods(w io.Writer, format string, ps []store.Period, opt PeriodOptions) error {
	by := opt.By
	if len(by) == 0 {
		by = []string{store.DimProcess}
	}
	cols := columns(by)
	ps = SelectPeriods(ps, opt.TopDays)
	switch format {
	case "json":
		out := make([]jsonRow, 0, len(ps))
		for _, p := range ps {
			top := jsonRow{}
			for _, c := range cols {
				top = append(top, kv{c.name, c.json(p.Top)})
			}
			top = append(top, kv{"tx_bytes", p.Top.TxBytes}, kv{"rx_bytes", p.Top.RxBytes})
			out = append(out, jsonRow{
				{"start", p.Start.Format(time.RFC3339)}, {"end", p.End.Format(time.RFC3339)},
				{"tx_bytes", p.TxBytes}, {"rx_bytes", p.RxBytes}, {"total_bytes", p.Total()}, {"top", top},
			})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "csv":
		cw := csv.NewWriter(w)
		hdr := []string{"start", "end", "tx_bytes", "rx_bytes", "total_bytes"}
		for _, c := range cols {
			hdr = append(hdr, "top_"+c.name)
		}
		hdr = append(hdr, "top_tx_bytes", "top_rx_bytes")
		cw.Write(hdr)
		for _, p := range ps {
			rec := []string{p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339),
				strconv.FormatUint(p.TxBytes, 10), strconv.FormatUint(p.RxBytes, 10), strconv.FormatUint(p.Total(), 10)}
			for _, c := range cols {
				if p.Top.Total() == 0 {
					rec = append(rec, "")
				} else {
					rec = append(rec, c.text(p.Top))
				}
			}
			rec = append(rec, strconv.FormatUint(p.Top.TxBytes, 10), strconv.FormatUint(p.Top.RxBytes, 10))
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		if len(ps) == 0 {
			fmt.Fprintln(w, "(no traffic recorded in this window)")
			return nil
		}
		u := opt.Units
		tw := &Table{Right: true, Left: map[int]bool{0: true, 5: true, 7: true}, Max: opt.Width, Shrink: map[int]int{5: 6}}
		head := strings.ToUpper(opt.Kind)
		if head == "5MIN" {
			head = "5 MINUTES"
		}
		topHead := "TOP" // the top process of the period
		if len(by) != 1 || by[0] != store.DimProcess {
			topHead = "TOP " + strings.ToUpper(strings.Join(by, "+"))
		}
		tw.Shrink[5] = max(tw.Shrink[5], Width(topHead))
		tw.Add(head, "SENT", "RECEIVED", "TOTAL", "AVG RATE", topHead, "")
		var peak, tx, rx uint64
		for _, p := range ps {
			peak = max(peak, p.Total())
		}
		for _, p := range ps {
			dur := p.End.Sub(p.Start)
			if !opt.Now.IsZero() && opt.Now.Before(p.End) && opt.Now.After(p.Start) {
				dur = opt.Now.Sub(p.Start)
			}
			rate := ""
			if dur > 0 {
				rate = u.Rate(float64(p.Total()) / dur.Seconds())
			}
			top := topLabel(by, p.Top, opt.Names)
			topAmt := ""
			if top != "" {
				topAmt = u.Size(p.Top.Total())
			}
			tw.Add(periodLabel(opt.Kind, p.Start), u.Size(p.TxBytes), u.Size(p.RxBytes), u.Size(p.Total()), rate, top, topAmt)
			tx += p.TxBytes
			rx += p.RxBytes
		}
		if bw := tw.barWidth(false); opt.Bars && bw > 0 {
			for i, p := range ps {
				tw.rows[i+1] = append(tw.rows[i+1], Bar(p.Total(), peak, bw))
			}
		}
		if err := tw.Write(w); err != nil {
			return err
		}
		what := "periods"
		if opt.TopDays > 0 {
			what = "top periods"
		}
		fmt.Fprintf(w, "%d %s; sent %s, received %s, total %s\n", len(ps), what, u.Size(tx), u.Size(rx), u.Size(rx+tx))
		return nil
	}
	return fmt.Errorf("unknown format %q: valid are %s", format, strings.Join(Formats, ", "))
}
