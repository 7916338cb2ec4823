// Package metrics exports bwtracker's counters to Prometheus.
//
// Bandwidth is exported as one counter family,
//
//	bwtracker_bytes_total{exe, service, container, namespace, pod, workload, direction, protocol}
//
// labelled by bounded dimensions only. namespace, pod and workload
// ("deployment/web", see internal/k8s) are the Kubernetes names of the
// container's pod, empty outside pods; they follow from the container, so
// they add no label sets of their own. There is deliberately no pid, no
// process start time and no remote address label: each would create a new
// time series per process or peer, and a busy host starts thousands of
// short-lived processes an hour. ebpf_exporter's maintainers refused per-PID
// labels for exactly this reason (cardinality), and so do we; per-process and
// per-remote detail lives in bwtracker's own store, API and reports.
//
// # Label-set cap
//
// A label set is (exe, service, container, namespace, pod, workload,
// protocol). Only the top N label
// sets (Options.Top, --metrics-top, default 50) by recent bytes (tx+rx,
// exponentially decayed with Options.HalfLife) get their own series; the
// bytes of every other label set are added to the overflow series
// {exe="other", service="other", container="other", namespace="other",
// pod="other", workload="other"} of the same direction and
// protocol. So per (direction, protocol) there are at most N+1 series, and
// every observed byte is added to exactly one series: sum(increase(...)) over
// any window equals the bytes observed in it.
//
// Counters stay monotonic: a label set's own series only ever grows while it
// is in the top N. When it is demoted its series is no longer exported and
// its later bytes go to "other"; if it is promoted again within the grace
// period its series comes back with the value it had (never lower), so
// rate()/increase() over the gap count nothing twice. (So the absolute sum
// of the exported values is the bytes observed minus what demoted, not
// exported, series hold; with no demotion it is exactly the bytes observed.) A sitting member keeps
// its seat until a newcomer's score beats its own by Options.Hysteresis, so
// series do not flap at the boundary.
//
// # Grace period
//
// A label set that sent and received nothing for Options.Grace (default
// 10m) is forgotten: its series disappears from /metrics (Prometheus marks it
// stale) and, should the same names come back later, they start again from 0,
// which rate() treats as a counter reset. The overflow series are never
// dropped.
package metrics

import (
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults for Options.
const (
	DefaultTop        = 50
	DefaultGrace      = 10 * time.Minute
	DefaultHalfLife   = time.Minute
	DefaultHysteresis = 1.5
	// DefaultMaxTracked bounds how many label sets are remembered at all
	// (members and candidates); the coldest candidates are forgotten first.
	DefaultMaxTracked = 10000
)

// OtherLabel is the exe, service, container, namespace, pod and workload
// value of the overflow series.
const OtherLabel = "other"

// Direction label values.
const (
	DirTx = "tx" // sent by the local process
	DirRx = "rx" // received by the local process
)

// BytesHelp is the HELP text of bwtracker_bytes_total.
const BytesHelp = "Payload bytes sent (direction=tx) and received (direction=rx) at the socket layer, by executable basename (or comm), systemd service, container, Kubernetes namespace, pod and workload (kind/name), and protocol. " +
	"There are no pid or remote-address labels on purpose: they would create a series per process or peer (ebpf_exporter's maintainers refused per-PID labels for this cardinality reason); use `bwtracker report` or the API for per-process detail. " +
	"Only the top --metrics-top label sets by recent bytes have their own series; all others are summed into exe=\"other\",service=\"other\",container=\"other\" (and namespace, pod, workload \"other\")."

// Delta is what one process moved in one interval, as the collector hands
// it over. Exe is the executable path (its basename is the label) and Comm
// the kernel's task name, used when Exe is unknown. Service and Container
// are the names the collector chose for the process's cgroup (see
// internal/cgroupinfo); Namespace, Pod and Workload its pod's Kubernetes
// names (internal/k8s); Protocol is "tcp", "udp", ...
type Delta struct {
	Comm, Exe                    string
	Service, Container, Protocol string
	Namespace, Pod, Workload     string
	TxBytes, RxBytes             uint64
}

// Options configure an Exporter; zero values mean the defaults.
type Options struct {
	Top        int           // label sets with their own series (DefaultTop)
	Grace      time.Duration // forget label sets idle this long (DefaultGrace)
	HalfLife   time.Duration // half-life of the "recent bytes" score (DefaultHalfLife)
	Hysteresis float64       // a newcomer must beat a member's score by this factor (DefaultHysteresis)
	MaxTracked int           // label sets remembered at most (DefaultMaxTracked)
	// NoRuntimeMetrics leaves out the Go runtime and process collectors.
	NoRuntimeMetrics bool
}

type key struct {
	exe, service, container, protocol string
	namespace, pod, workload          string
}

// Exporter owns the Prometheus registry of one daemon. Its methods are safe
// for concurrent use.
type Exporter struct {
	opts Options
	reg  *prometheus.Registry

	cap *Cap[key]

	mu       sync.Mutex
	drops    map[string]uint64
	detailEv map[string]uint64
	detailB  map[string]uint64

	bytesDesc  *prometheus.Desc
	dropsDesc  *prometheus.Desc
	detailEvD  *prometheus.Desc
	detailBD   *prometheus.Desc
	setsDesc   *prometheus.Desc
	mapEntries *prometheus.GaugeVec
	mapCap     *prometheus.GaugeVec
	drain      prometheus.Histogram
	dbWrite    prometheus.Histogram
	dbErrors   prometheus.Counter
	dbSize     prometheus.Gauge
	lastFlush  prometheus.Gauge
	hook       *prometheus.GaugeVec
	buildInfo  *prometheus.GaugeVec
}

// New returns an Exporter with its own registry holding the bandwidth
// counters and the self metrics.
func New(opts Options) *Exporter {
	e := &Exporter{
		opts: opts,
		reg:  prometheus.NewRegistry(),
		cap: NewCap(CapOptions{Top: opts.Top, Grace: opts.Grace, HalfLife: opts.HalfLife,
			Hysteresis: opts.Hysteresis, MaxTracked: opts.MaxTracked},
			func(k key) string { return k.protocol }, keyLess),
		drops:    make(map[string]uint64),
		detailEv: make(map[string]uint64),
		detailB:  make(map[string]uint64),
		detailEvD: prometheus.NewDesc("bwtracker_detail_lost_events_total",
			"Events whose bytes were counted with less detail, by cause (flows_map_full: remote kept as \"(overflow)\"; overflow_map_full: process kept as \"(unattributed)\"; peer_stash, exec_event_ringbuf_full). Byte totals stay exact.",
			[]string{"cause"}, nil),
		detailBD: prometheus.NewDesc("bwtracker_detail_lost_bytes_total",
			"Bytes counted without their remote address (detail=\"remote\") or without their process (detail=\"process\") because the kernel maps were full.",
			[]string{"detail"}, nil),
		bytesDesc: prometheus.NewDesc("bwtracker_bytes_total", BytesHelp,
			[]string{"exe", "service", "container", "namespace", "pod", "workload", "direction", "protocol"}, nil),
		dropsDesc: prometheus.NewDesc("bwtracker_drops_total",
			"Events whose bytes were lost, by cause (no_active_map, unattributed_slot, db_backlog_overflow). Anything non-zero means the byte counters are low. A full flows map is not a drop: see bwtracker_detail_lost_events_total.",
			[]string{"cause"}, nil),
		setsDesc: prometheus.NewDesc("bwtracker_metrics_label_sets",
			"Label sets of bwtracker_bytes_total: state=\"own\" have their own series (at most --metrics-top), state=\"tracked\" are all remembered for ranking.",
			[]string{"state"}, nil),
		mapEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bwtracker_map_entries",
			Help: "Entries in a BPF map at the last drain; compare with bwtracker_map_capacity.",
		}, []string{"map"}),
		mapCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bwtracker_map_capacity",
			Help: "Maximum entries of a BPF map.",
		}, []string{"map"}),
		drain: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bwtracker_drain_duration_seconds",
			Help:    "Time to drain the BPF maps once.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100µs .. 6.5s
		}),
		dbWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bwtracker_db_write_duration_seconds",
			Help:    "Time to write one flush to the SQLite store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9), // 0.5ms .. 33s
		}),
		dbErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bwtracker_db_write_errors_total",
			Help: "Flushes to the SQLite store that failed.",
		}),
		dbSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bwtracker_db_size_bytes",
			Help: "Size of the SQLite database file.",
		}),
		lastFlush: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bwtracker_last_flush_timestamp_seconds",
			Help: "Unix time of the last successful flush to the store.",
		}),
		hook: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bwtracker_hook_backend_info",
			Help: "The kernel hook backend in use (tracepoint or fentry); always 1.",
		}, []string{"backend"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bwtracker_build_info",
			Help: "bwtracker version and the running kernel; always 1.",
		}, []string{"version", "kernel"}),
	}
	e.reg.MustRegister((*bytesCollector)(e), e.mapEntries, e.mapCap, e.drain, e.dbWrite,
		e.dbErrors, e.dbSize, e.lastFlush, e.hook, e.buildInfo)
	if !opts.NoRuntimeMetrics {
		e.reg.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return e
}

// Registry is the exporter's registry, for registering more collectors.
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// Handler serves the registry in the Prometheus exposition formats. Mount
// it behind the same auth as the API.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      e.reg,
	})
}

// ExeLabel is the exe label for a process: the basename of its executable
// path, else its comm, else "unknown".
func ExeLabel(exe, comm string) string {
	if exe != "" {
		exe = strings.TrimSuffix(exe, " (deleted)")
		if b := path.Base(exe); b != "." && b != "/" {
			return Sanitize(b)
		}
	}
	if comm != "" {
		return Sanitize(comm)
	}
	return "unknown"
}

// Sanitize keeps label values valid UTF-8 and of bounded length.
func Sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}

// Observe adds one interval's deltas. The collector calls it once per
// interval (also with an empty slice, so idle label sets age); now is the
// interval's end.
func (e *Exporter) Observe(now time.Time, deltas []Delta) {
	items := make([]Item[key], 0, len(deltas))
	for _, d := range deltas {
		if d.TxBytes == 0 && d.RxBytes == 0 {
			continue
		}
		k := key{
			exe:       ExeLabel(d.Exe, d.Comm),
			service:   Sanitize(d.Service),
			container: Sanitize(d.Container),
			protocol:  Sanitize(d.Protocol),
			namespace: Sanitize(d.Namespace),
			pod:       Sanitize(d.Pod),
			workload:  Sanitize(d.Workload),
		}
		if k.exe == OtherLabel && k.service == OtherLabel && k.container == OtherLabel {
			k.exe = OtherLabel + "_" // never collide with the overflow series
		}
		items = append(items, Item[key]{k, d.TxBytes, d.RxBytes})
	}
	e.cap.Observe(now, items)
}

func keyLess(a, b key) bool {
	if a.exe != b.exe {
		return a.exe < b.exe
	}
	if a.service != b.service {
		return a.service < b.service
	}
	if a.container != b.container {
		return a.container < b.container
	}
	if a.namespace != b.namespace {
		return a.namespace < b.namespace
	}
	if a.pod != b.pod {
		return a.pod < b.pod
	}
	if a.workload != b.workload {
		return a.workload < b.workload
	}
	return a.protocol < b.protocol
}

// SetDrops sets the cumulative drop counts per cause (as read from the
// kernel's drop counters; values must not decrease).
func (e *Exporter) SetDrops(cumulative map[string]uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for cause, v := range cumulative {
		if v >= e.drops[cause] {
			e.drops[cause] = v
		}
	}
}

// SetMapUsage records a BPF map's entries at the last drain and its
// capacity (max_entries).
func (e *Exporter) SetMapUsage(mapName string, entries, capacity int) {
	e.mapEntries.WithLabelValues(mapName).Set(float64(entries))
	e.mapCap.WithLabelValues(mapName).Set(float64(capacity))
}

// ObserveDrain records how long one drain of the BPF maps took.
func (e *Exporter) ObserveDrain(d time.Duration) { e.drain.Observe(d.Seconds()) }

// ObserveDBWrite records one flush to the store: its duration and whether
// it failed.
func (e *Exporter) ObserveDBWrite(d time.Duration, err error) {
	e.dbWrite.Observe(d.Seconds())
	if err != nil {
		e.dbErrors.Inc()
	}
}

// SetDBSize records the size of the database file in bytes.
func (e *Exporter) SetDBSize(bytes int64) { e.dbSize.Set(float64(bytes)) }

// SetLastFlush records the time of the last successful flush.
func (e *Exporter) SetLastFlush(t time.Time) {
	e.lastFlush.Set(float64(t.UnixNano()) / 1e9)
}

// SetHook records the hook backend in use ("tracepoint", "fentry").
func (e *Exporter) SetHook(backend string) {
	e.hook.Reset()
	e.hook.WithLabelValues(backend).Set(1)
}

// SetDetailLost sets the cumulative detail-lost counters: events per cause,
// and bytes per detail ("remote", "process"). Values must not decrease.
func (e *Exporter) SetDetailLost(events, bytes map[string]uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range events {
		if v >= e.detailEv[k] {
			e.detailEv[k] = v
		}
	}
	for k, v := range bytes {
		if v >= e.detailB[k] {
			e.detailB[k] = v
		}
	}
}

// SetBuildInfo records the version and kernel release.
func (e *Exporter) SetBuildInfo(version, kernel string) {
	e.buildInfo.Reset()
	e.buildInfo.WithLabelValues(version, kernel).Set(1)
}

// bytesCollector exports the label-capped counters and the drops as const
// metrics, so series can be dropped.
type bytesCollector Exporter

func (c *bytesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytesDesc
	ch <- c.dropsDesc
	ch <- c.detailEvD
	ch <- c.detailBD
	ch <- c.setsDesc
}

func (c *bytesCollector) Collect(ch chan<- prometheus.Metric) {
	e := (*Exporter)(c)
	snap := e.cap.Snapshot()
	for _, s := range snap.Own {
		k := s.Key
		if s.Tx > 0 {
			ch <- prometheus.MustNewConstMetric(e.bytesDesc, prometheus.CounterValue, float64(s.Tx),
				k.exe, k.service, k.container, k.namespace, k.pod, k.workload, DirTx, k.protocol)
		}
		if s.Rx > 0 {
			ch <- prometheus.MustNewConstMetric(e.bytesDesc, prometheus.CounterValue, float64(s.Rx),
				k.exe, k.service, k.container, k.namespace, k.pod, k.workload, DirRx, k.protocol)
		}
	}
	for _, o := range snap.Other {
		ch <- prometheus.MustNewConstMetric(e.bytesDesc, prometheus.CounterValue, float64(o.Bytes),
			OtherLabel, OtherLabel, OtherLabel, OtherLabel, OtherLabel, OtherLabel, o.Dir, o.Protocol)
	}
	e.mu.Lock()
	for cause, v := range e.drops {
		ch <- prometheus.MustNewConstMetric(e.dropsDesc, prometheus.CounterValue, float64(v), cause)
	}
	for cause, v := range e.detailEv {
		ch <- prometheus.MustNewConstMetric(e.detailEvD, prometheus.CounterValue, float64(v), cause)
	}
	for d, v := range e.detailB {
		ch <- prometheus.MustNewConstMetric(e.detailBD, prometheus.CounterValue, float64(v), d)
	}
	e.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(e.setsDesc, prometheus.GaugeValue, float64(snap.Members), "own")
	ch <- prometheus.MustNewConstMetric(e.setsDesc, prometheus.GaugeValue, float64(snap.Tracked), "tracked")
}

// OTLPCounters are the OTLP exporter's own counters (internal/otlp's
// Status), exported as bwtracker_otlp_* self metrics.
type OTLPCounters struct {
	Exports, ExportErrors, PointsSent, DroppedPoints uint64
	Backlog                                          int
}

// RegisterOTLP adds the bwtracker_otlp_* self metrics, read from f at each
// scrape. Call it once, when OTLP export is on.
func (e *Exporter) RegisterOTLP(f func() OTLPCounters) {
	counter := func(name, help string, v func(OTLPCounters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(f())) })
	}
	e.reg.MustRegister(
		counter("bwtracker_otlp_exports_total", "OTLP export requests the receiver accepted.",
			func(c OTLPCounters) uint64 { return c.Exports }),
		counter("bwtracker_otlp_export_errors_total", "OTLP export attempts that failed (each retry counts); the batch stays in the backlog.",
			func(c OTLPCounters) uint64 { return c.ExportErrors }),
		counter("bwtracker_otlp_points_sent_total", "OTLP data points delivered.",
			func(c OTLPCounters) uint64 { return c.PointsSent }),
		counter("bwtracker_otlp_dropped_points_total", "OTLP data points dropped because the backlog was full (receiver down too long) or left at shutdown.",
			func(c OTLPCounters) uint64 { return c.DroppedPoints }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bwtracker_otlp_backlog_batches",
			Help: "OTLP batches waiting for delivery (bounded by --otlp-backlog)."},
			func() float64 { return float64(f().Backlog) }),
	)
}
