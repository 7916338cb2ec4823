package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/apiclient"
	"github.com/bwtracker/bwtracker/internal/report"
)

func alertsCommand() *cli.Command {
	return &cli.Command{
		Name:      "alerts",
		Usage:     "firing (and with --all, resolved) alerts, from the running daemon",
		UsageText: "bwtracker alerts [--all] [--rule NAME] [--format table|json] [--url http://127.0.0.1:8080] [--token TOKEN]",
		Description: `Lists the alerts of the daemon's rules (bwtracker run --rules FILE or
--alert RULE) from its API (GET /api/alerts), newest first. It needs no
root: only the daemon's API. --all includes resolved alerts from the
history the daemon keeps in its database.

Examples:
   bwtracker alerts
   bwtracker alerts --all --format json | jq '.[] | select(.rule == "big-upload")'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: DefaultAPIURL, EnvVars: []string{"BWTRACKER_URL"}, Usage: "the daemon's API base `URL` (bwtracker run --listen)"},
			&cli.StringFlag{Name: "token", EnvVars: apiclient.TokenEnvVars, Usage: "bearer token, when the daemon runs with --auth-token"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "include resolved alerts"},
			&cli.StringFlag{Name: "rule", Usage: "only the alerts of rule `NAME`"},
			&cli.StringFlag{Name: "format", Aliases: []string{"o"}, Value: "table", Usage: "table or json"},
		},
		Action: runAlerts,
	}
}

func runAlerts(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("alerts takes no arguments (got %q)", c.Args().First())
	}
	base := strings.TrimRight(c.String("url"), "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--url %q: want http://HOST:PORT", c.String("url"))
	}
	format := c.String("format")
	if format != "table" && format != "json" {
		return usagef("--format %q: valid are table, json", format)
	}
	q := url.Values{}
	if c.Bool("all") {
		q.Set("all", "1")
	}
	if r := c.String("rule"); r != "" {
		q.Set("rule", r)
	}
	cl, err := apiclient.New(base, c.String("token"), 10*time.Second)
	if err != nil {
		return usagef("--url %v", err)
	}
	list, err := cl.Alerts(c.Context, q)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return printAlerts(c.App.Writer, format, list, time.Now())
}

func printAlerts(w io.Writer, format string, list []alerts.Alert, now time.Time) error {
	if list == nil {
		list = []alerts.Alert{}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "no alerts")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tRULE\tLABELS\tVALUE\tTHRESHOLD\tSTARTED\tENDED")
	for _, a := range list {
		unit := ""
		if a.Unit == "bytes/s" {
			unit = "/s"
		}
		val, thr := report.IBytes(uint64(a.Value))+unit, report.IBytes(uint64(a.Threshold))+unit
		if a.Kind == alerts.KindNewApp {
			val, thr = "-", "-"
		}
		ended := "-"
		if a.EndedAt != nil {
			ended = a.EndedAt.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.State, a.Rule, labelStr(a.Labels), val, thr,
			a.StartedAt.Local().Format("2006-01-02 15:04:05"), ended)
	}
	return tw.Flush()
}

func labelStr(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k, v := range l {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, " ")
}
