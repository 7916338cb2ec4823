// Package cli is bwtracker's command line (urfave/cli v2): one file per
// command. Exit codes: 0 ok, 1 runtime failure, 2 usage error.
//
// Writers of the database are `run` and `db vacuum`: both open it through
// store.Open, which takes the writer lock first, so either refuses (exit 1,
// naming the pid) while the other holds it. `run` is the one place that
// owns shutdown and signals: SIGINT/SIGTERM stop after the final write
// (bounded by collector.ShutdownBudget; what could not be written is
// logged exactly), SIGHUP flushes at once and reloads alert rules, and the
// daemon keeps running.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/apiclient"
	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/internal/version"
)

// Flag names used by more than one command.
const (
	flagDB    = "db"
	flagDebug = "debug"
)

// usageError marks a mistake in how the command was called (exit 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func dbFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: flagDB, Value: store.DefaultPath, EnvVars: []string{"BWTRACKER_DB"},
		Usage: "SQLite database `PATH`"}
}

// App builds the CLI.
func App(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "bwtracker",
		Usage:   "which process uses the network, how much, and with whom — live and over months",
		Version: version.Version,
		Description: `bwtracker counts every process's network bytes in the kernel (eBPF at the
socket layer: TCP, UDP, ICMP, raw, packet sockets, IPv4 and IPv6), stores
them in SQLite and reports them.

   sudo bwtracker run                 # start tracking (keeps running)
   bwtracker report --since 1h        # who sent and received how much
   bwtracker check                    # can this kernel run it?`,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Before: func(c *cli.Context) error {
			apiclient.WarnDeprecatedEnv(c.App.ErrWriter)
			return nil
		},
		Flags: []cli.Flag{
			debugFlag(),
		},
		Commands: []*cli.Command{runCommand(), reportCommand(), topCommand(), alertsCommand(), dbCommand(), checkCommand(), versionCommand()},
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return usageError{err}
		},
		CommandNotFound: func(c *cli.Context, name string) {
			where := "bwtracker"
			if c.Command != nil && c.Command.Name != "" && c.Command.Name != "bwtracker" {
				where = "bwtracker " + c.Command.Name
			}
			fmt.Fprintf(c.App.ErrWriter, "bwtracker: unknown command %q; see `%s --help`\n", name, where)
			cli.OsExiter(2)
		},
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
	for _, cmd := range app.Commands {
		everyCommand(cmd, app.OnUsageError)
	}
	return app
}

// everyCommand gives a command and its subcommands the app's usage-error
// handler and the --debug flag, so `bwtracker run --debug` works as well as
// `bwtracker --debug run`.
func everyCommand(cmd *cli.Command, onUsage cli.OnUsageErrorFunc) {
	cmd.OnUsageError = onUsage
	has := false
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			has = has || n == flagDebug
		}
	}
	if !has {
		cmd.Flags = append(cmd.Flags, debugFlag())
	}
	for _, sub := range cmd.Subcommands {
		everyCommand(sub, onUsage)
	}
}

func debugFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: flagDebug, Usage: "verbose logs, including libbpf's", EnvVars: []string{"BWTRACKER_DEBUG"}}
}

// debugOn: --debug given before or after the command name.
func debugOn(c *cli.Context) bool {
	for _, cc := range c.Lineage() {
		if cc.Bool(flagDebug) {
			return true
		}
	}
	return false
}

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	app := App(stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "bwtracker: %v\nRun `bwtracker --help` or `bwtracker COMMAND --help` for usage.\n", ue.error)
		return 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := strings.TrimSpace(err.Error()); msg != "" {
			fmt.Fprintf(stderr, "bwtracker: %s\n", msg)
		}
		return ec.ExitCode()
	}
	if strings.Contains(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "invalid value") {
		fmt.Fprintf(stderr, "bwtracker: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "bwtracker: %v\n", err)
	return 1
}

func newLogger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	if debugOn(c) {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "bwtracker %s\n", version.Version)
			return nil
		},
	}
}
