package cli

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// TestRunLogMarksStartAndStop: a run is recorded when it starts and its
// alive mark is the stop time after stop.
func TestRunLogMarksStartAndStop(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "bw.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := time.Now().Truncate(time.Millisecond)
	stop := startRunLog(context.Background(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runs, err := st.Runs(context.Background(), before.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(runs) != 1 || runs[0].Started.Before(before) || runs[0].Stopped {
		t.Fatalf("runs at start %+v, %v", runs, err)
	}
	stop()
	stopped := time.Now()
	runs, err = st.Runs(context.Background(), before.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(runs) != 1 || runs[0].Alive.Before(runs[0].Started) || runs[0].Alive.After(stopped) || !runs[0].Stopped {
		t.Fatalf("runs after stop %+v, %v", runs, err)
	}
}
