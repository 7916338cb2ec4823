package alerts

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Loader owns where the rules come from: a file (--rules) plus one-line
// rules (--alert). Reload re-reads the file; a bad file is refused and the
// engine keeps its rules.
type Loader struct {
	File  string
	Flags []Rule
	E     *Engine

	mu    sync.Mutex // one load at a time (SIGHUP and the watcher)
	stamp fileStamp
}

type fileStamp struct {
	mtime time.Time
	size  int64
	ino   uint64
	ok    bool
}

func stampOf(name string) fileStamp {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{mtime: fi.ModTime(), size: fi.Size(), ok: true}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = s.Ino
	}
	return st
}

// Load reads the rules and applies them; on error the engine's rules stay.
func (l *Loader) Load() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg, err := l.read()
	if err != nil {
		l.E.SetLoadError(err)
		return err
	}
	src := "flags"
	if l.File != "" {
		src = l.File
	}
	l.E.SetConfig(cfg, src)
	return nil
}

// Check parses the rules without applying them.
func (l *Loader) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.read()
	return err
}

func (l *Loader) read() (Config, error) {
	var cfg Config
	if l.File != "" {
		l.stamp = stampOf(l.File)
		c, err := LoadFile(l.File)
		if err != nil {
			return cfg, err
		}
		cfg = c
	}
	for _, r := range l.Flags {
		for _, fr := range cfg.Rules {
			if fr.Name == r.Name {
				return cfg, fmt.Errorf("--alert rule %q: the rules file %s has a rule of that name too", r.Name, l.File)
			}
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	return cfg, nil
}

// Reload is the hook `run` calls on SIGHUP: it re-reads the rules file and
// logs the outcome.
func (l *Loader) Reload() {
	if err := l.Load(); err != nil {
		l.E.log.Error("alerts: rules not reloaded; the previous rules stay active", "err", err)
		return
	}
	st := l.E.Status()
	l.E.log.Info("alerts: rules loaded", "source", st.Source, "rules", st.Rules)
}

// Watch polls the rules file's mtime, size and inode every period (so an
// editor's write-and-rename is seen too) and reloads when they change.
// Polling rather than inotify: one stat a second costs nothing and works
// for files replaced by configuration management or bind mounts.
func (l *Loader) Watch(ctx context.Context, period time.Duration) {
	if l.File == "" {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.mu.Lock()
			changed := stampOf(l.File) != l.stamp
			l.mu.Unlock()
			if changed && stampOf(l.File).ok {
				l.Reload()
			}
		}
	}
}

// Collector exports bwtracker_alerts_firing{rule} and the sink counters.
func (e *Engine) Collector() prometheus.Collector { return (*promCollector)(e) }

type promCollector Engine

var (
	firingDesc = prometheus.NewDesc("bwtracker_alerts_firing", "Alerts currently firing, per rule (bwtracker's own rules, run --rules).", []string{"rule"}, nil)
	sentDesc   = prometheus.NewDesc("bwtracker_alert_notifications_total", "Alert notifications delivered, per sink (log, alertmanager, webhookN, commandN).", []string{"sink"}, nil)
	failDesc   = prometheus.NewDesc("bwtracker_alert_sink_failures_total", "Failed deliveries to an alert sink (each attempt), per sink; store counts alert history writes.", []string{"sink"}, nil)
	dropDesc   = prometheus.NewDesc("bwtracker_alert_notifications_dropped_total", "Alert notifications given up (queue full or retries exhausted), per sink.", []string{"sink"}, nil)
	rulesDesc  = prometheus.NewDesc("bwtracker_alert_rules", "Alert rules loaded.", nil, nil)
	loadDesc   = prometheus.NewDesc("bwtracker_alert_rules_last_load_ok", "1 if the last rules (re)load succeeded, 0 if it was refused (the previous rules stay).", nil, nil)
)

func (c *promCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{firingDesc, sentDesc, failDesc, dropDesc, rulesDesc, loadDesc} {
		ch <- d
	}
}

func (c *promCollector) Collect(ch chan<- prometheus.Metric) {
	st := (*Engine)(c).Status()
	for r, n := range st.RuleFiring {
		ch <- prometheus.MustNewConstMetric(firingDesc, prometheus.GaugeValue, float64(n), r)
	}
	for s, v := range st.Sinks {
		ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(v.Sent), s)
		ch <- prometheus.MustNewConstMetric(failDesc, prometheus.CounterValue, float64(v.Failed), s)
		ch <- prometheus.MustNewConstMetric(dropDesc, prometheus.CounterValue, float64(v.Dropped), s)
	}
	ch <- prometheus.MustNewConstMetric(rulesDesc, prometheus.GaugeValue, float64(st.Rules))
	ok := 1.0
	if st.LoadError != "" {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(loadDesc, prometheus.GaugeValue, ok)
}
