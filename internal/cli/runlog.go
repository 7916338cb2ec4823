package cli

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// startRunLog records this daemon run in the store's runs table (started
// now, alive every store.RunHeartbeat and its end when stopped), so the
// dashboard and the API draw downtime as a gap, not as zero traffic. The
// returned stop writes the final mark: defer it before the store's Close.
func startRunLog(ctx context.Context, st *store.Store, log *slog.Logger) (stop func()) {
	started := time.Now()
	mark := func(ctx context.Context, stopped bool) {
		if err := st.MarkRun(ctx, started, time.Now(), stopped); err != nil && ctx.Err() == nil {
			log.Debug("recording the daemon run failed; retrying", "every", store.RunHeartbeat, "err", err)
		}
	}
	mark(ctx, false)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(store.RunHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mark(ctx, false)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer fcancel()
		mark(fctx, true)
	}
}
