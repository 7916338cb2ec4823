package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// SinkStats counts one sink's deliveries.
type SinkStats struct {
	Sent    uint64 `json:"sent"`
	Failed  uint64 `json:"failed"`  // attempts that failed (each retry counts)
	Dropped uint64 `json:"dropped"` // notifications given up: queue full or retries exhausted
	Queued  int    `json:"queued"`
}

type counters struct {
	mu sync.Mutex
	m  map[string]*SinkStats
}

func (c *counters) add(name string, sent, failed, dropped uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[name]
	if s == nil {
		s = &SinkStats{}
		c.m[name] = s
	}
	s.Sent += sent
	s.Failed += failed
	s.Dropped += dropped
}

// sinkSet is the configured sinks. Every sink has its own goroutine and
// bounded queue: send never blocks.
type sinkSet struct {
	log   *slog.Logger
	cnt   *counters
	am    *amSink
	hooks []*queueSink
	cmds  []*queueSink
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newCounters() *counters { return &counters{m: map[string]*SinkStats{}} }

// newSinkSet starts the sinks of cfg; cnt is the engine's (counts survive
// reloads: they are per daemon run).
func newSinkSet(cfg Sinks, log *slog.Logger, cnt *counters) *sinkSet {
	s := &sinkSet{log: log, cnt: cnt, done: make(chan struct{})}
	s.cnt.add("log", 0, 0, 0)
	if cfg.Alertmanager != nil {
		s.am = &amSink{cfg: *cfg.Alertmanager, set: s, in: make(chan Alert, 1000), active: map[string]Alert{},
			http: &http.Client{Timeout: 10 * time.Second}}
		s.cnt.add("alertmanager", 0, 0, 0)
		s.wg.Add(1)
		go s.am.run()
	}
	for i, w := range cfg.Webhooks {
		w := w
		name := fmt.Sprintf("webhook%d", i)
		cl := &http.Client{Timeout: time.Duration(w.Timeout)}
		q := &queueSink{name: name, set: s, in: make(chan Alert, w.Queue), retries: w.Retries, backoff: time.Duration(w.Backoff),
			deliver: func(ctx context.Context, a Alert) error { return postWebhook(ctx, cl, w, a) }}
		s.hooks = append(s.hooks, q)
		s.cnt.add(name, 0, 0, 0)
		s.wg.Add(1)
		go q.run()
	}
	for i, c := range cfg.Commands {
		c := c
		name := fmt.Sprintf("command%d", i)
		q := &queueSink{name: name, set: s, in: make(chan Alert, c.Queue), retries: 0,
			deliver: func(ctx context.Context, a Alert) error { return runCommand(ctx, c, a) }}
		s.cmds = append(s.cmds, q)
		s.cnt.add(name, 0, 0, 0)
		s.wg.Add(1)
		go q.run()
	}
	return s
}

func (s *sinkSet) count(name string, ok, dropped bool) {
	switch {
	case dropped:
		s.cnt.add(name, 0, 0, 1)
	case ok:
		s.cnt.add(name, 1, 0, 0)
	default:
		s.cnt.add(name, 0, 1, 0)
	}
}

// send hands one alert change to every sink (the log already has it).
func (s *sinkSet) send(a Alert) {
	s.count("log", true, false)
	if s.am != nil {
		s.am.enqueue(a)
	}
	for _, q := range append(append([]*queueSink{}, s.hooks...), s.cmds...) {
		q.enqueue(a)
	}
}

// amFiring tells a new Alertmanager sink about an alert already firing.
func (s *sinkSet) amFiring(a Alert) {
	if s.am != nil {
		s.am.enqueue(a)
	}
}

func (s *sinkSet) stats() map[string]SinkStats {
	s.cnt.mu.Lock()
	defer s.cnt.mu.Unlock()
	out := map[string]SinkStats{}
	for k, v := range s.cnt.m {
		out[k] = *v
	}
	if s.am != nil {
		st := out["alertmanager"]
		st.Queued = len(s.am.in)
		out["alertmanager"] = st
	}
	for _, q := range append(append([]*queueSink{}, s.hooks...), s.cmds...) {
		st := out[q.name]
		st.Queued = len(q.in)
		out[q.name] = st
	}
	return out
}

// close stops the sinks after they deliver what is queued (up to timeout).
func (s *sinkSet) close(timeout time.Duration) {
	s.once.Do(func() { close(s.done) })
	ch := make(chan struct{})
	go func() { s.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(timeout):
		s.log.Warn("alerts: sinks did not deliver everything before stopping")
	}
}

// --- webhook and command: a queue, a goroutine, retries -----------------------

type queueSink struct {
	name    string
	set     *sinkSet
	in      chan Alert
	retries int
	backoff time.Duration
	deliver func(context.Context, Alert) error
}

func (q *queueSink) enqueue(a Alert) {
	select {
	case q.in <- a:
	default:
		q.set.count(q.name, false, true)
		q.set.log.Warn("alerts: sink queue full; notification dropped", "sink", q.name, "rule", a.Rule)
	}
}

func (q *queueSink) run() {
	defer q.set.wg.Done()
	for {
		select {
		case a := <-q.in:
			q.one(a)
		case <-q.set.done:
			for {
				select {
				case a := <-q.in:
					q.one(a)
				default:
					return
				}
			}
		}
	}
}

func (q *queueSink) one(a Alert) {
	delay := q.backoff
	for attempt := 0; ; attempt++ {
		err := q.deliver(context.Background(), a)
		if err == nil {
			q.set.count(q.name, true, false)
			return
		}
		q.set.count(q.name, false, false)
		if attempt >= q.retries {
			q.set.count(q.name, false, true)
			q.set.log.Warn("alerts: sink failed; notification dropped", "sink", q.name, "rule", a.Rule, "attempts", attempt+1, "err", err)
			return
		}
		q.set.log.Debug("alerts: sink failed; retrying", "sink", q.name, "err", err, "in", delay)
		select {
		case <-time.After(delay):
		case <-q.set.done:
			// Stopping: one last quick try, no more waiting.
			if attempt+1 >= q.retries {
				continue
			}
			delay = 0
		}
		delay *= 2
		if delay > time.Minute {
			delay = time.Minute
		}
	}
}

// WebhookPayload is the body a webhook receives for each alert change.
type WebhookPayload struct {
	Version string `json:"version"` // "1"
	Alert   Alert  `json:"alert"`
}

func postWebhook(ctx context.Context, cl *http.Client, w WebhookSink, a Alert) error {
	b, err := json.Marshal(WebhookPayload{Version: "1", Alert: a})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bwtracker-alerts")
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: HTTP %d", w.URL, resp.StatusCode)
	}
	return nil
}

// runCommand runs argv (no shell) with the alert as JSON on stdin.
func runCommand(ctx context.Context, c CommandSink, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.Timeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Stdin = bytes.NewReader(b)
	cmd.Env = append(os.Environ(), "BWTRACKER_ALERT_RULE="+a.Rule, "BWTRACKER_ALERT_STATE="+a.State)
	var errb bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &errb, n: 4096}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("command %s: timed out after %s", c.Argv[0], time.Duration(c.Timeout))
		}
		return fmt.Errorf("command %s: %w: %s", c.Argv[0], err, strings.TrimSpace(errb.String()))
	}
	return nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// --- Alertmanager API v2 ------------------------------------------------------

type amSink struct {
	cfg    AlertmanagerSink
	set    *sinkSet
	in     chan Alert
	active map[string]Alert // firing, resent every Resend
	http   *http.Client
}

func (m *amSink) enqueue(a Alert) {
	select {
	case m.in <- a:
	default:
		m.set.count("alertmanager", false, true)
	}
}

// amAlert is one element of POST /api/v2/alerts (postableAlert).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (m *amSink) toAM(a Alert, now time.Time) amAlert {
	labels := map[string]string{"alertname": a.Rule, "source": "bwtracker", "kind": a.Kind}
	for k, v := range a.Labels {
		if v != "" {
			labels[k] = v
		}
	}
	out := amAlert{Labels: labels, StartsAt: a.StartedAt, GeneratorURL: m.cfg.GeneratorURL,
		Annotations: map[string]string{"summary": a.Summary, "value": fmt.Sprintf("%.0f", a.Value),
			"threshold": fmt.Sprintf("%.0f", a.Threshold), "unit": a.Unit, "window": a.Window, "direction": a.Direction}}
	if a.EndedAt != nil {
		out.EndsAt = *a.EndedAt
	} else {
		// Like Prometheus: valid for 4 resend periods, so a dead daemon's
		// alerts resolve on their own.
		out.EndsAt = now.Add(4 * time.Duration(m.cfg.Resend))
	}
	return out
}

func (m *amSink) run() {
	defer m.set.wg.Done()
	t := time.NewTicker(time.Duration(m.cfg.Resend))
	defer t.Stop()
	var retry []Alert // resolved alerts whose post failed
	for {
		var batch []Alert
		select {
		case a := <-m.in:
			batch = append(batch, a)
		drain:
			for {
				select {
				case a := <-m.in:
					batch = append(batch, a)
				default:
					break drain
				}
			}
		case <-t.C:
			for _, a := range m.active {
				batch = append(batch, a)
			}
			batch = append(batch, retry...)
			retry = nil
		case <-m.set.done:
			for {
				select {
				case a := <-m.in:
					batch = append(batch, a)
				default:
					if len(batch) > 0 {
						m.post(batch)
					}
					return
				}
			}
		}
		for _, a := range batch {
			if a.State == StateFiring {
				m.active[a.ID] = a
			} else {
				delete(m.active, a.ID)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := m.post(batch); err != nil {
			for _, a := range batch {
				if a.State != StateFiring && len(retry) < 1000 {
					retry = append(retry, a)
				}
			}
		}
	}
}

func (m *amSink) post(batch []Alert) error {
	now := time.Now()
	sort.Slice(batch, func(i, j int) bool { return batch[i].ID < batch[j].ID })
	out := make([]amAlert, 0, len(batch))
	for _, a := range batch {
		out = append(out, m.toAM(a, now))
	}
	b, _ := json.Marshal(out)
	url := strings.TrimRight(m.cfg.URL, "/") + "/api/v2/alerts"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		m.set.count("alertmanager", false, false)
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
	}
	if err != nil {
		m.set.count("alertmanager", false, false)
		m.set.log.Warn("alerts: posting to Alertmanager failed; retrying at the next resend", "url", url, "err", err)
		return err
	}
	m.set.count("alertmanager", true, false)
	return nil
}
