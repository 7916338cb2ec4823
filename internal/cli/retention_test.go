package cli

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/store"
)

func TestRetentionFlags(t *testing.T) {
	parse := func(args ...string) (store.Retention, error) {
		var got store.Retention
		var perr error
		app := &cli.App{Flags: retentionFlags(), Action: func(c *cli.Context) error {
			got, perr = retentionFromFlags(c)
			return nil
		}}
		if err := app.Run(append([]string{"x"}, args...)); err != nil {
			t.Fatal(err)
		}
		return got, perr
	}
	r, err := parse()
	if err != nil || r != store.DefaultRetention() {
		t.Fatalf("defaults: %+v %v", r, err)
	}
	r, err = parse("--keep-raw", "6h", "--keep-1m", "0", "--keep-1d", "3y")
	if err != nil || r.Raw != 6*time.Hour || r.Minute != 0 || r.Day != 3*365*24*time.Hour || r.Hour != 90*24*time.Hour {
		t.Fatalf("parsed: %+v %v", r, err)
	}
	for _, bad := range []string{"soon", "-1h", "10s"} {
		if _, err := parse("--keep-1h", bad); err == nil {
			t.Errorf("--keep-1h %s accepted", bad)
		}
	}
}

func TestStartMaintenanceRollsUpAndStops(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "bw.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Write(context.Background(), time.Now().Add(-time.Minute), []store.Sample{
		{ProcessKey: store.ProcessKey{PID: 1, StartNS: 1, Comm: "x"}, Protocol: "tcp", TxBytes: 5}})
	if err != nil {
		t.Fatal(err)
	}
	stop := startMaintenance(context.Background(), st, store.DefaultRetention(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := st.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d.NotRolledUp == 0 && d.Tiers[1].Rows == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not rolled up: %+v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
}
