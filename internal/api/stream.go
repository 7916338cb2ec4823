package api

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// MaxStreams caps concurrent /api/stream clients (each holds a goroutine and
// a subscription).
const MaxStreams = 64

// streamHeartbeat keeps proxies and the browser from timing out an idle
// stream (no traffic, or a collector that stalls).
const streamHeartbeat = 15 * time.Second

// stream is GET /api/stream: Server-Sent Events, one "snapshot" event per
// collector interval whose data is the /api/current body for the same
// top/sort. The first event is the latest snapshot, sent at once. Browsers'
// EventSource reconnects by itself (after the "retry" delay we send).
func (s *server) stream(c *gin.Context) {
	q, err := parseCurrent(c.Request.URL.Query(), "token")
	if err != nil {
		badRequest(c, err)
		return
	}
	if !s.needLive(c) {
		return
	}
	if s.streams.Add(1) > MaxStreams {
		s.streams.Add(-1)
		c.Header("Retry-After", "10")
		fail(c, http.StatusServiceUnavailable, fmt.Sprintf("too many open streams (%d): close other dashboards", MaxStreams))
		return
	}
	defer s.streams.Add(-1)

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	if c.Request.Method == http.MethodHead {
		return
	}
	ch, cancel := s.live.Subscribe()
	defer cancel()

	w := c.Writer
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		w.Flush()
		return true
	}
	event := func(b []byte) bool {
		return send(fmt.Appendf(nil, "event: snapshot\ndata: %s\n\n", b))
	}
	if !send([]byte("retry: 2000\n\n")) {
		return
	}
	if snap := s.live.Snapshot(); !snap.Time.IsZero() {
		if !event(s.currentJSON(snap, q)) {
			return
		}
	}
	tick := time.NewTicker(streamHeartbeat)
	defer tick.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case snap, ok := <-ch:
			if !ok {
				// Collector stopped: end the stream; the client reconnects
				// and learns the daemon's state from the error it gets.
				io.WriteString(w, "event: end\ndata: {}\n\n")
				w.Flush()
				return
			}
			if !event(s.currentJSON(snap, q)) {
				return
			}
		case <-tick.C:
			if !send([]byte(": keepalive\n\n")) {
				return
			}
		}
	}
}
