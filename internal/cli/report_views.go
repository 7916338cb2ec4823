package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/bwtracker/bwtracker/internal/report"
	"github.com/bwtracker/bwtracker/internal/store"
)

// The presentation choices of `report` that depend on where the output
// goes: the table width, the summary default on a terminal, the sparkline
// bins and the PNG file.

// terminalWidth returns the width of the terminal w writes to; ok is false
// when w is not a terminal. Tests replace it.
var terminalWidth = func(w io.Writer) (width int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		return report.DefaultWidth, true
	}
	return width, true
}

// tableWidth: --width when given (0 = no limit), else the terminal's
// width, else 80.
func tableWidth(c *cli.Context) int {
	if c.IsSet("width") {
		return c.Int("width")
	}
	if w, ok := terminalWidth(c.App.Writer); ok {
		return w
	}
	return report.DefaultWidth
}

// summaryFlags: any of these asks for something other than the summary.
var summaryFlags = []string{"since", "until", "by", "format", "top", "pid", "comm", "service", "container", "period",
	"hourly", "daily", "monthly", "top-days", "graph", "png", "db-stats"}

// wantSummary: --summary, or a bare `report` on a terminal (vnStat's
// default view).
func wantSummary(c *cli.Context) bool {
	if c.Bool("summary") {
		return true
	}
	if _, ok := terminalWidth(c.App.Writer); !ok {
		return false
	}
	for _, f := range summaryFlags {
		if c.IsSet(f) {
			return false
		}
	}
	return true
}

// groupDim is the summary's grouping: --by when given, else app where the
// store has it, else exe.
func groupDim(c *cli.Context) []string {
	if c.IsSet("by") {
		return splitList(c.StringSlice("by"))
	}
	if slices.Contains(store.Dimensions(), "app") {
		return []string{"app"}
	}
	return []string{store.DimExe}
}

// SummaryTop is how many groups the summary lists: it fits 80x24 with the
// three "(all)" lines, the header and the footer.
const SummaryTop = 15

func runSummary(ctx context.Context, c *cli.Context, st *store.Store, q store.Query, now time.Time, units report.Units) error {
	by, err := store.ValidateDims(groupDim(c))
	if err != nil {
		return usagef("--by: %v", err)
	}
	q.By = by
	now = now.Local()
	day := report.DayStart(now)
	windows := []struct{ since, until time.Time }{
		{day, now},
		{day.AddDate(0, 0, -1), day},
		{report.MonthStart(now), now},
	}
	var res [3][]store.Row
	for i, win := range windows {
		q.Since, q.Until = win.since, win.until
		if res[i], err = st.Totals(ctx, q); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	return report.WriteSummary(c.App.Writer, report.Summary{By: by, Now: now, Today: res[0], Yesterday: res[1], Month: res[2],
		Top: SummaryTop, Units: units, Width: tableWidth(c)})
}

// GraphCells is how many cells a --graph sparkline has.
const GraphCells = 16

// graphEdges splits [since, until) into GraphCells bins of whole steps:
// 5 minutes (cheap to read from every tier) when the window is long
// enough, else whole minutes or seconds; the first bin starts at since
// rounded down to the step's grain.
func graphEdges(since, until time.Time) ([]time.Time, time.Duration) {
	grain := 5 * time.Minute
	switch d := until.Sub(since); {
	case d < GraphCells*time.Minute:
		grain = time.Second
	case d < GraphCells*5*time.Minute:
		grain = time.Minute
	}
	start := since.Truncate(grain)
	step := (until.Sub(start) + GraphCells - 1) / GraphCells // ceil
	step = max(grain, (step+grain-1)/grain*grain)
	edges := make([]time.Time, GraphCells+1)
	for i := range edges {
		edges[i] = start.Add(time.Duration(i) * step)
	}
	return edges, step
}

// writePNG renders the period table as a PNG file.
func writePNG(c *cli.Context, path string, ps []store.Period, opt report.PeriodOptions, since, until time.Time) error {
	if filepath.Ext(path) == "" {
		path += ".png"
	}
	f, err := os.Create(path)
	if err != nil {
		return cli.Exit(fmt.Sprintf("--png: %v (choose a writable path)", err), 1)
	}
	title := fmt.Sprintf("bwtracker · %s · %s – %s %s", opt.Kind, since.Local().Format("2006-01-02 15:04"),
		until.Local().Format("2006-01-02 15:04"), until.Local().Format("MST"))
	if err := report.WritePNG(f, ps, opt, title); err != nil {
		f.Close()
		return cli.Exit(err.Error(), 1)
	}
	if err := f.Close(); err != nil {
		return cli.Exit(fmt.Sprintf("--png: %v", err), 1)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (%dx%d PNG, %d periods)\n", path, report.PNGWidth,
		report.PNGHeight(len(report.SelectPeriods(ps, opt.TopDays))), len(ps))
	return nil
}
