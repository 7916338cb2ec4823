package cli

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/internal/timespec"
)

// MaintainEvery is how often the daemon rolls up and prunes. Each call is
// bounded by store.MaintainBudget, so flushes never wait long.
const MaintainEvery = 30 * time.Second

// retentionFlags are `run`'s --keep-* flags, one per history tier.
func retentionFlags() []cli.Flag {
	d := store.DefaultRetention()
	f := func(name, env string, def time.Duration, what string) cli.Flag {
		return &cli.StringFlag{Name: name, Value: fmtKeep(def), EnvVars: []string{env},
			Usage: "keep " + what + " this long, e.g. 12h, 7d, 2y (0 = forever)"}
	}
	return []cli.Flag{
		f("keep-raw", "BWTRACKER_KEEP_RAW", d.Raw, "per-interval samples"),
		f("keep-1m", "BWTRACKER_KEEP_1M", d.Minute, "1-minute rollups"),
		f("keep-1h", "BWTRACKER_KEEP_1H", d.Hour, "1-hour rollups"),
		f("keep-1d", "BWTRACKER_KEEP_1D", d.Day, "1-day rollups"),
	}
}

func fmtKeep(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(365*24*time.Hour) == 0:
		return fmt.Sprintf("%dy", d/(365*24*time.Hour))
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// retentionFromFlags reads the --keep-* flags (usage error when malformed).
func retentionFromFlags(c *cli.Context) (store.Retention, error) {
	var r store.Retention
	for _, k := range []struct {
		flag string
		dst  *time.Duration
	}{{"keep-raw", &r.Raw}, {"keep-1m", &r.Minute}, {"keep-1h", &r.Hour}, {"keep-1d", &r.Day}} {
		v := c.String(k.flag)
		if v == "0" || v == "" {
			continue
		}
		d, err := timespec.ParseDuration(v)
		if err != nil {
			return r, usagef("--%s: %v, or 0 for forever", k.flag, err)
		}
		if d < time.Minute {
			return r, usagef("--%s %s: keep at least 1m, or 0 for forever", k.flag, v)
		}
		*k.dst = d
	}
	return r, nil
}

// startMaintenance rolls up and prunes st every MaintainEvery (and once
// right away) until ctx ends. The returned stop waits for a running pass to
// finish: defer it after the store's Close so it runs first.
func startMaintenance(ctx context.Context, st *store.Store, ret store.Retention, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(MaintainEvery)
		defer t.Stop()
		failing := false
		for {
			start := time.Now()
			err := st.Maintain(ctx, start, ret)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil && !failing:
				log.Warn("rolling up or pruning history failed; retrying", "every", MaintainEvery, "err", err)
				failing = true
			case err == nil && failing:
				log.Info("history rollup works again")
				failing = false
			case err == nil:
				log.Debug("history rolled up and pruned", "took", time.Since(start))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
