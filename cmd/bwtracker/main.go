// Command bwtracker tells which process uses the network, how much, and
// with whom — live and over months of history.
package main

import (
	"os"

	"github.com/bwtracker/bwtracker/internal/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	return cli.Main(os.Args, os.Stdout, os.Stderr)
}
