package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// Summary is vnStat's everyday view per group (app, or exe before apps
// exist): today, yesterday, this month so far and the month's estimate,
// in local time. `report` prints it on a terminal when no window or
// grouping is asked for.
type Summary struct {
	By  []string
	Now time.Time // local
	// Totals per group of each window (store.Totals rows).
	Today, Yesterday, Month []store.Row
	Top                     int // groups listed (by this month's total)
	Units                   Units
	Width                   int
}

// MonthStart is the first instant of now's month; DayStart of now's day.
func MonthStart(now time.Time) time.Time {
	y, m, _ := now.Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, now.Location())
}

// DayStart is local midnight of now's day; the day before is
// DayStart(now).AddDate(0, 0, -1) (23 or 25 hours around DST changes).
func DayStart(now time.Time) time.Time {
	y, m, d := now.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, now.Location())
}

// Estimate projects the month's total from its elapsed part, as vnStat's
// "estimated": so far / elapsed × the month's length.
func Estimate(soFar uint64, now time.Time) uint64 {
	start := MonthStart(now)
	end := start.AddDate(0, 1, 0)
	el := now.Sub(start)
	if el <= 0 {
		return soFar
	}
	return uint64(float64(soFar) * float64(end.Sub(start)) / float64(el))
}

// WriteSummary prints the summary table.
func WriteSummary(w io.Writer, s Summary) error {
	cols := columns(s.By)
	u := s.Units
	key := func(r store.Row) store.Row { return GraphKey(r) }
	today, yest := map[store.Row]store.Row{}, map[store.Row]store.Row{}
	for _, r := range s.Today {
		today[key(r)] = r
	}
	for _, r := range s.Yesterday {
		yest[key(r)] = r
	}
	td, yd, md := Sum(s.Today), Sum(s.Yesterday), Sum(s.Month)
	fmt.Fprintf(w, "summary in local time (%s); the last day's table: bwtracker report --since 24h\n", s.Now.Format("MST"))
	tw := &Table{Right: true, Left: map[int]bool{0: true}, Max: s.Width, Shrink: map[int]int{0: 12}}
	tw.Add(strings.ToUpper(strings.Join(s.By, "+")), "TODAY", "YESTERDAY", strings.ToUpper(s.Now.Format("Jan 2006")), "ESTIMATED")
	tw.Add("(all) sent", u.Size(td.TxBytes), u.Size(yd.TxBytes), u.Size(md.TxBytes), u.Size(Estimate(md.TxBytes, s.Now)))
	tw.Add("(all) received", u.Size(td.RxBytes), u.Size(yd.RxBytes), u.Size(md.RxBytes), u.Size(Estimate(md.RxBytes, s.Now)))
	tw.Add("(all) total", u.Size(td.TxBytes+td.RxBytes), u.Size(yd.TxBytes+yd.RxBytes), u.Size(md.TxBytes+md.RxBytes),
		u.Size(Estimate(md.TxBytes+md.RxBytes, s.Now)))
	// Groups by this month's total; one that only had traffic yesterday
	// (the last day of the previous month) still shows.
	groups := append([]store.Row(nil), s.Month...)
	inMonth := map[store.Row]bool{}
	for _, r := range groups {
		inMonth[key(r)] = true
	}
	for _, r := range s.Yesterday {
		if !inMonth[key(r)] {
			groups = append(groups, key(r))
		}
	}
	shown := groups
	if s.Top > 0 && len(shown) > s.Top {
		shown = shown[:s.Top]
	}
	for _, r := range shown {
		var parts []string
		for _, c := range cols {
			if c.name == "pid" || c.name == "uid" {
				continue
			}
			parts = append(parts, c.text(r))
		}
		k := key(r)
		tw.Add(strings.Join(parts, " "), u.Size(today[k].Total()), u.Size(yest[k].Total()), u.Size(r.Total()), u.Size(Estimate(r.Total(), s.Now)))
	}
	if err := tw.Write(w); err != nil {
		return err
	}
	if len(groups) > len(shown) {
		fmt.Fprintf(w, "… %d more (bwtracker report --by %s --since %s)\n", len(groups)-len(shown), strings.Join(s.By, ","),
			MonthStart(s.Now).Format("2006-01-02"))
	}
	return nil
}
