package cli

import (
	"context"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/report"
	"github.com/bwtracker/bwtracker/internal/store"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print who sent and received how much, from the database",
		UsageText: "bwtracker report [--since 24h] [--until TIME] [--by process,remote,protocol] [--format table|json|csv] [--top N]",
		Description: `Reads the SQLite database directly: no daemon needed, and no root beyond
being allowed to read the file (it is root-only by default).

Rows are sorted by total bytes, largest first. Table output uses IEC units
(KiB, MiB); json and csv print exact byte counts.

Examples:
   sudo bwtracker report --since 1h
   sudo bwtracker report --by process,remote --top 20
   sudo bwtracker report --since 2026-11-01 --until 2026-11-02 --by protocol --format csv
   sudo bwtracker report --comm curl --by remote --format json`,
		Flags: []cli.Flag{
			dbFlag(),
			&cli.StringFlag{Name: "since", Value: "24h", Usage: "start of the window: a duration back from now (30m, 24h, 7d) or a time (RFC3339, 2026-11-27)"},
			&cli.StringFlag{Name: "until", Usage: "end of the window (default: now); same forms as --since"},
			&cli.StringSliceFlag{Name: "by", Value: cli.NewStringSlice("process"), Usage: "group by any of: " + strings.Join(store.Dimensions(), ", ") + " (comma-separated)"},
			&cli.StringFlag{Name: "format", Aliases: []string{"o"}, Value: "table", Usage: "table, json or csv"},
			&cli.IntFlag{Name: "top", Usage: "show only the N largest rows (0 = all)"},
			&cli.UintFlag{Name: "pid", Usage: "only this process id"},
			&cli.StringFlag{Name: "comm", Usage: "only processes with this name (exact)"},
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

func runReport(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("report takes no arguments (got %q)", c.Args().First())
	}
	now := time.Now()
	q := store.Query{Top: c.Int("top"), Comm: c.String("comm")}
	var err error
	if q.Since, err = report.ParseTime(c.String("since"), now); err != nil {
		return usagef("--since: %v", err)
	}
	if s := c.String("until"); s != "" {
		if q.Until, err = report.ParseTime(s, now); err != nil {
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
	rows, err := st.Totals(ctx, q)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return report.Write(c.App.Writer, format, q.By, rows)
}
