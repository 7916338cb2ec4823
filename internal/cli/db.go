package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/report"
	"github.com/bwtracker/bwtracker/internal/store"
)

func dbCommand() *cli.Command {
	return &cli.Command{
		Name:  "db",
		Usage: "inspect or compact the database",
		Description: `History is kept in tiers: per-interval samples (raw), then 1-minute,
1-hour and 1-day rollups, each pruned after its retention (see ` + "`bwtracker run --help`" + `).

Examples:
   sudo bwtracker db stats
   sudo bwtracker db stats --format json
   sudo bwtracker db vacuum      # once, for files created before rollups`,
		Subcommands: []*cli.Command{
			{
				Name:      "stats",
				Usage:     "size, rows per tier and the oldest sample per tier",
				UsageText: "bwtracker db stats [--db PATH] [--format table|json]",
				Flags: []cli.Flag{
					dbFlag(),
					&cli.StringFlag{Name: "format", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("db stats takes no arguments (got %q)", c.Args().First())
					}
					return printDBStats(c, c.String(flagDB), c.String("format"))
				},
			},
			{
				Name:  "vacuum",
				Usage: "rewrite the file compactly and switch on incremental auto-vacuum (daemon stopped)",
				Description: `Pruned rows free pages inside the file; with incremental auto-vacuum (the
default for files created by this version) the daemon gives them back to
the file system as it prunes. Files created before that need this once.

It needs the database's writer lock: while ` + "`bwtracker run`" + ` holds it, vacuum
refuses and names the daemon's pid. Stop the daemon, vacuum, start it again.
Prints the size (file + WAL) before and after; the file never grows.`,
				UsageText: "sudo bwtracker db vacuum [--db PATH]",
				Flags:     []cli.Flag{dbFlag()},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("db vacuum takes no arguments (got %q)", c.Args().First())
					}
					if c.String(flagDB) == "" {
						return usagef("--db '': give a file path")
					}
					if _, err := os.Stat(c.String(flagDB)); err != nil {
						return cli.Exit(fmt.Sprintf("database %s: %v (nothing to vacuum)", c.String(flagDB), err), 1)
					}
					st, err := store.Open(c.String(flagDB), store.Options{})
					if err != nil {
						return cli.Exit(err.Error(), 1)
					}
					defer st.Close()
					before := st.Size()
					if err := st.Vacuum(c.Context); err != nil {
						return cli.Exit(err.Error(), 1)
					}
					fmt.Fprintf(c.App.Writer, "%s: %s -> %s\n", st.Path(), report.IBytes(uint64(before)), report.IBytes(uint64(st.Size())))
					return nil
				},
			},
		},
	}
}

func printDBStats(c *cli.Context, path, format string) error {
	if format != "table" && format != "json" {
		return usagef("--format %q: valid are table, json", format)
	}
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	d, err := st.Stats(ctx)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	w := c.App.Writer
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(w, "database     %s\n", d.Path)
	fmt.Fprintf(w, "size         %s (%d pages of %d bytes, %d free; auto-vacuum %s)\n",
		report.IBytes(uint64(d.FileBytes)), d.Pages, d.PageSize, d.FreePages, d.AutoVacuum)
	fmt.Fprintf(w, "processes    %d rows", d.Processes)
	if d.ProcessBytes > 0 {
		fmt.Fprintf(w, ", %s", report.IBytes(uint64(d.ProcessBytes)))
	}
	fmt.Fprintf(w, "\npending      %d raw rows not rolled up yet\n\n", d.NotRolledUp)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	sized := len(d.Tiers) > 0 && d.Tiers[0].Bytes >= 0 // dbstat compiled in
	if sized {
		fmt.Fprintln(tw, "TIER\tBUCKET\tROWS\tSIZE\tOLDEST\tNEWEST\tCOMPLETE FROM\t")
	} else {
		fmt.Fprintln(tw, "TIER\tBUCKET\tROWS\tOLDEST\tNEWEST\tCOMPLETE FROM\t")
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	}
	for _, t := range d.Tiers {
		bucket := "interval"
		if t.Bucket > 0 {
			bucket = fmtDur(t.Bucket)
		}
		if sized {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", t.Name, bucket, t.Rows, report.IBytes(uint64(t.Bytes)), ts(t.Oldest), ts(t.Newest), ts(t.AvailFrom))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t\n", t.Name, bucket, t.Rows, ts(t.Oldest), ts(t.Newest), ts(t.AvailFrom))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d.AutoVacuum != "incremental" {
		fmt.Fprintln(w, "\nThis file predates incremental auto-vacuum: pruned space is reused but not returned to the file system. Run `sudo bwtracker db vacuum` once (with the daemon stopped) to fix that.")
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
