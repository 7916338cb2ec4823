// Package otlp exports bwtracker's per-process byte counters as OpenTelemetry
// metrics over OTLP (HTTP/protobuf or gRPC), with the official OpenTelemetry
// Go SDK and exporters, so that an OpenTelemetry Collector (or any OTLP
// backend) receives them beside everything else it collects.
//
// # Mapping
//
// One instrument, following the semantic conventions for process metrics:
//
//	process.network.io   Counter (monotonic Sum), unit "By", int64
//	  network.io.direction   "transmit" (sent by the local process) | "receive"
//	  network.transport      bwtracker's protocol: "tcp", "udp", "icmp", "raw", "packet", ...
//	  process.executable.name  basename of the executable (else the kernel's comm), as the
//	                           exe label of /metrics
//	  process.executable.path  full executable path, when known
//	  service.name           the systemd unit that owns the process's cgroup ("nginx.service"),
//	                         only when there is one
//	  container.id           full container id (64 hex digits), only inside a container
//	  k8s.pod.uid            the pod's UID, only inside a Kubernetes pod
//	  k8s.namespace.name     the pod's namespace, name and the container's name, when
//	  k8s.pod.name           internal/k8s found them on the node
//	  k8s.container.name
//	  k8s.<kind>.name        the pod's workload by kind: k8s.deployment.name, k8s.statefulset.name,
//	                         k8s.daemonset.name, k8s.replicaset.name, k8s.job.name, k8s.cronjob.name;
//	                         none when the pod name does not tell the kind (k8s.WorkloadFromPodName)
//
// Values are payload bytes at the socket layer, exactly what bwtracker's
// store and /metrics count (see DESIGN.md's accounting rules). The resource
// describes the reporting daemon: service.name "bwtracker", service.version,
// host.name and what OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME add. The
// per-process attributes are data-point attributes, because one daemon
// reports every process of its host through one MeterProvider; a Collector
// can lift them onto per-process resources with the groupbyattrs processor
// (deploy/README.md shows it). A data point's service.name names the
// monitored unit; the resource's names the reporter.
//
// # Cardinality
//
// A group is (executable path and name, service, container id, pod UID,
// protocol; the Kubernetes names follow from the container and add no
// groups). The same rule as /metrics bounds it, through the same code
// (metrics.Cap): only the top Options.Top groups by recent bytes (default
// 50) get their own data points; all other groups' bytes are summed into
// process.executable.name="other" with only network.io.direction and
// network.transport. So one export carries at most 2 x (Top + 1) x protocols
// points, and every observed byte is in exactly one of them. There is no pid
// and no remote-address attribute, for the reason /metrics has none.
//
// # Temporality
//
// Cumulative by default (values since the daemon started, start time = the
// exporter's start), as Prometheus-style backends expect; Options.Temporality
// "delta" (or OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta when
// the option is empty) sends what moved since the previous export instead.
//
// # When the receiver is down
//
// Observe, called from the collector's drain loop, only adds to in-memory
// counters under a short lock: a slow or dead receiver never slows the drain.
// Every Options.Interval a snapshot is collected into a bounded backlog
// (Options.Backlog batches); one sender goroutine exports the oldest batch,
// and on failure retries it with exponential backoff (Options.MinBackoff
// doubling up to Options.MaxBackoff) while new batches queue behind it.
// When the backlog is full the oldest batch not in flight is dropped and its
// data points are counted (Status.DroppedPoints, bwtracker_otlp_dropped_points_total,
// /api/status "exports"."otlp"). With cumulative temporality a dropped batch
// loses only resolution (the next batch has the totals); with delta it loses
// those bytes. On shutdown a final snapshot is collected and the backlog gets
// Options.Timeout to be delivered; what is left is counted as dropped.
//
// # Configuration
//
// Options.Endpoint, Headers and TLS override the standard environment
// variables; when they are empty the exporters read
// OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, _HEADERS, _CERTIFICATE,
// _CLIENT_CERTIFICATE, _CLIENT_KEY, _COMPRESSION, _TIMEOUT themselves.
package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/processconv"
	"google.golang.org/grpc/credentials"

	"github.com/bwtracker/bwtracker/internal/metrics"
)

// Protocols.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Temporalities.
const (
	TemporalityCumulative = "cumulative"
	TemporalityDelta      = "delta"
)

// Defaults for Options.
const (
	DefaultInterval   = 60 * time.Second
	DefaultTimeout    = 10 * time.Second
	DefaultBacklog    = 360 // batches: 6 hours at the default interval
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// MetricName is the semantic-convention name of the instrument.
	MetricName = "process.network.io"
)

// OtherName is the process.executable.name of the overflow group.
const OtherName = metrics.OtherLabel

// Delta is what one process moved in one interval, as the collector hands it
// over. Exe is the executable path, Comm the kernel's task name (used when
// Exe is unknown); Service, ContainerID and PodUID come from the process's
// cgroup (internal/cgroupinfo), and Namespace, Pod, ContainerName,
// WorkloadKind and WorkloadName from its pod (internal/k8s).
type Delta struct {
	Comm, Exe                     string
	Service, ContainerID, PodUID  string
	Namespace, Pod, ContainerName string
	WorkloadKind, WorkloadName    string
	Protocol                      string
	TxBytes, RxBytes              uint64
}

// Options configure an Exporter.
type Options struct {
	// Endpoint is the receiver's URL: http://host:4318 (HTTP; /v1/metrics is
	// appended when the URL has no path) or http(s)://host:4317 with
	// Protocol grpc. Empty: the OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT
	// environment variables.
	Endpoint string
	Protocol string            // ProtocolHTTP (default) or ProtocolGRPC
	Headers  map[string]string // sent with every export (auth); nil: OTEL_EXPORTER_OTLP_HEADERS
	TLS      *tls.Config       // nil: system roots, or the OTEL_EXPORTER_OTLP_CERTIFICATE variables
	// Interval between exports (DefaultInterval).
	Interval time.Duration
	// Timeout of one export attempt, and of the final delivery on shutdown
	// (DefaultTimeout).
	Timeout time.Duration
	// Temporality is TemporalityCumulative, TemporalityDelta, or "" for the environment's
	// preference (cumulative when unset).
	Temporality string
	// Cap bounds the groups with their own data points (metrics.CapOptions;
	// Top defaults to metrics.DefaultTop).
	Cap metrics.CapOptions
	// Backlog is how many collected batches wait for delivery at most
	// (DefaultBacklog).
	Backlog int
	// MinBackoff and MaxBackoff bound the retry delay after a failed export.
	MinBackoff, MaxBackoff time.Duration
	// HostName is the resource's host.name (os.Hostname when empty).
	HostName string
	// Version is the resource's service.version.
	Version string
	Log     *slog.Logger
}

// Status is the exporter's state for /api/status.
type Status struct {
	Endpoint       string    `json:"endpoint"`
	Protocol       string    `json:"protocol"`
	Temporality    string    `json:"temporality"`
	IntervalMs     int64     `json:"interval_ms"`
	Exports        uint64    `json:"exports"`       // successful export requests
	ExportErrors   uint64    `json:"export_errors"` // failed attempts (each retry counts)
	PointsSent     uint64    `json:"points_sent"`
	DroppedPoints  uint64    `json:"dropped_points"` // data points in batches dropped from the full backlog or at shutdown
	DroppedBatches uint64    `json:"dropped_batches"`
	Backlog        int       `json:"backlog_batches"` // batches waiting, including the one in flight
	BacklogMax     int       `json:"backlog_max"`
	Groups         int       `json:"groups"` // groups with their own data points now
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorTime  time.Time `json:"last_error_time,omitzero"`
}

// group is the Cap key: one exported process group.
type group struct {
	name, path, service, container, pod, protocol   string
	namespace, podName, containerName, wkind, wname string
}

func groupLess(a, b group) bool {
	for _, p := range [][2]string{{a.name, b.name}, {a.path, b.path}, {a.service, b.service},
		{a.container, b.container}, {a.pod, b.pod}, {a.protocol, b.protocol},
		{a.namespace, b.namespace}, {a.podName, b.podName}, {a.containerName, b.containerName}, {a.wkind, b.wkind}, {a.wname, b.wname}} {
		if p[0] != p[1] {
			return p[0] < p[1]
		}
	}
	return false
}

type batch struct {
	rm       *metricdata.ResourceMetrics
	points   int
	inFlight bool
}

// sdkExporter is what both OTLP exporters implement.
type sdkExporter interface {
	Temporality(sdkmetric.InstrumentKind) metricdata.Temporality
	Aggregation(sdkmetric.InstrumentKind) sdkmetric.Aggregation
	Export(context.Context, *metricdata.ResourceMetrics) error
	Shutdown(context.Context) error
}

// Exporter turns observed deltas into OTLP exports. Observe and Status are
// safe for concurrent use with Run.
type Exporter struct {
	opts     Options
	log      *slog.Logger
	cap      *metrics.Cap[group]
	exp      sdkExporter
	reader   *sdkmetric.ManualReader
	provider *sdkmetric.MeterProvider

	wake chan struct{}

	mu    sync.Mutex
	queue []*batch
	st    Status
}

// New validates opts and builds the SDK exporter, reader and instrument. It
// does not connect: the first export happens one Interval after Run starts.
func New(ctx context.Context, opts Options) (*Exporter, error) {
	if opts.Protocol == "" {
		opts.Protocol = ProtocolHTTP
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultBacklog
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HostName == "" {
		opts.HostName, _ = os.Hostname()
	}
	endpoint, err := EndpointURL(opts.Endpoint, opts.Protocol)
	if err != nil {
		return nil, err
	}
	var sel sdkmetric.TemporalitySelector
	switch opts.Temporality {
	case "":
	case TemporalityCumulative:
		sel = sdkmetric.DefaultTemporalitySelector
	case TemporalityDelta:
		sel = func(sdkmetric.InstrumentKind) metricdata.Temporality { return metricdata.DeltaTemporality }
	default:
		return nil, fmt.Errorf("OTLP temporality %q: use %s or %s", opts.Temporality, TemporalityCumulative, TemporalityDelta)
	}

	var exp sdkExporter
	switch opts.Protocol {
	case ProtocolHTTP:
		o := []otlpmetrichttp.Option{
			otlpmetrichttp.WithTimeout(opts.Timeout),
			// Retries are ours (backlog + backoff), not the exporter's.
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		}
		if endpoint != "" {
			o = append(o, otlpmetrichttp.WithEndpointURL(endpoint))
		}
		if opts.Headers != nil {
			o = append(o, otlpmetrichttp.WithHeaders(opts.Headers))
		}
		if opts.TLS != nil {
			o = append(o, otlpmetrichttp.WithTLSClientConfig(opts.TLS))
		}
		if sel != nil {
			o = append(o, otlpmetrichttp.WithTemporalitySelector(sel))
		}
		exp, err = otlpmetrichttp.New(ctx, o...)
	case ProtocolGRPC:
		o := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithTimeout(opts.Timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
		}
		if endpoint != "" {
			o = append(o, otlpmetricgrpc.WithEndpointURL(endpoint))
		}
		if opts.Headers != nil {
			o = append(o, otlpmetricgrpc.WithHeaders(opts.Headers))
		}
		if opts.TLS != nil {
			o = append(o, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(opts.TLS)))
		}
		if sel != nil {
			o = append(o, otlpmetricgrpc.WithTemporalitySelector(sel))
		}
		exp, err = otlpmetricgrpc.New(ctx, o...)
	default:
		return nil, fmt.Errorf("OTLP protocol %q: use %s or %s (http/json is not supported by the Go exporters)", opts.Protocol, ProtocolHTTP, ProtocolGRPC)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}

	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(
			semconv.ServiceName("bwtracker"),
			semconv.ServiceVersion(opts.Version),
			semconv.HostName(opts.HostName),
			semconv.OSTypeLinux,
		),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("OTLP resource: %w", err)
	}
	reader := sdkmetric.NewManualReader(
		sdkmetric.WithTemporalitySelector(exp.Temporality),
		sdkmetric.WithAggregationSelector(exp.Aggregation),
	)
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	e := &Exporter{
		opts:     opts,
		log:      opts.Log,
		cap:      metrics.NewCap(opts.Cap, func(g group) string { return g.protocol }, groupLess),
		exp:      exp,
		reader:   reader,
		provider: provider,
		wake:     make(chan struct{}, 1),
	}
	e.st = Status{Endpoint: displayEndpoint(endpoint, opts.Protocol), Protocol: opts.Protocol,
		IntervalMs: opts.Interval.Milliseconds(), BacklogMax: opts.Backlog,
		Temporality: temporalityName(exp.Temporality(sdkmetric.InstrumentKindObservableCounter))}

	meter := provider.Meter("github.com/bwtracker/bwtracker/internal/otlp")
	inst, err := processconv.NewNetworkIOObservable(meter)
	if err != nil {
		return nil, fmt.Errorf("OTLP instrument: %w", err)
	}
	if _, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		e.observeAll(o, inst.Inst())
		return nil
	}, inst.Inst()); err != nil {
		return nil, fmt.Errorf("OTLP callback: %w", err)
	}
	return e, nil
}

// EndpointURL checks an --otlp-endpoint value and returns the URL the
// exporter posts to: for HTTP, /v1/metrics is appended when the URL has no
// path (as OTEL_EXPORTER_OTLP_ENDPOINT does). Empty stays empty (the
// environment decides).
func EndpointURL(raw, protocol string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("OTLP endpoint %q: give a URL such as http://collector:4318 (HTTP) or http://collector:4317 (gRPC); https:// for TLS", raw)
	}
	if protocol != ProtocolGRPC && (u.Path == "" || u.Path == "/") {
		u.Path = "/v1/metrics"
	}
	return u.String(), nil
}

func displayEndpoint(endpoint, protocol string) string {
	if endpoint != "" {
		return endpoint
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if s := os.Getenv(v); s != "" {
			return s + " (" + v + ")"
		}
	}
	if protocol == ProtocolGRPC {
		return "localhost:4317 (default)"
	}
	return "http://localhost:4318/v1/metrics (default)"
}

func temporalityName(t metricdata.Temporality) string {
	if t == metricdata.DeltaTemporality {
		return TemporalityDelta
	}
	return TemporalityCumulative
}

// Observe adds one interval's deltas. The collector calls it once per
// interval (also with none, so idle groups age); now is the interval's end.
// It never blocks on the network.
func (e *Exporter) Observe(now time.Time, deltas []Delta) {
	items := make([]metrics.Item[group], 0, len(deltas))
	for _, d := range deltas {
		if d.TxBytes == 0 && d.RxBytes == 0 {
			continue
		}
		exe := strings.TrimSuffix(d.Exe, " (deleted)")
		g := group{
			name:      metrics.ExeLabel(d.Exe, d.Comm),
			service:   metrics.Sanitize(d.Service),
			container: metrics.Sanitize(d.ContainerID),
			pod:       metrics.Sanitize(d.PodUID),
			protocol:  metrics.Sanitize(d.Protocol),

			namespace:     metrics.Sanitize(d.Namespace),
			podName:       metrics.Sanitize(d.Pod),
			containerName: metrics.Sanitize(d.ContainerName),
			wkind:         d.WorkloadKind,
			wname:         metrics.Sanitize(d.WorkloadName),
		}
		if b := path.Base(exe); exe != "" && b != "." && b != "/" {
			g.path = metrics.Sanitize(exe)
		}
		if g.name == OtherName && g.path == "" && g.service == "" && g.container == "" && g.pod == "" {
			g.name = OtherName + "_" // never collide with the overflow group
		}
		items = append(items, metrics.Item[group]{Key: g, Tx: d.TxBytes, Rx: d.RxBytes})
	}
	e.cap.Observe(now, items)
}

// observeAll reports every exported group's cumulative counters to the SDK
// (which computes deltas itself under delta temporality).
func (e *Exporter) observeAll(o metric.Observer, inst metric.Int64Observable) {
	snap := e.cap.Snapshot()
	e.mu.Lock()
	e.st.Groups = snap.Members
	e.mu.Unlock()
	emit := func(v uint64, kv []attribute.KeyValue) {
		if v > 0 {
			o.ObserveInt64(inst, int64(v), metric.WithAttributeSet(attribute.NewSet(kv...)))
		}
	}
	for _, s := range snap.Own {
		g := s.Key
		kv := []attribute.KeyValue{semconv.ProcessExecutableName(g.name), semconv.NetworkTransportKey.String(g.protocol)}
		if g.path != "" {
			kv = append(kv, semconv.ProcessExecutablePath(g.path))
		}
		if g.service != "" {
			kv = append(kv, semconv.ServiceName(g.service))
		}
		if g.container != "" {
			kv = append(kv, semconv.ContainerID(g.container))
		}
		if g.pod != "" {
			kv = append(kv, semconv.K8SPodUID(g.pod))
		}
		kv = appendK8s(kv, g)
		emit(s.Tx, append(kv, semconv.NetworkIODirectionTransmit))
		emit(s.Rx, append(kv[:len(kv):len(kv)], semconv.NetworkIODirectionReceive))
	}
	for _, s := range snap.Other {
		dir := semconv.NetworkIODirectionTransmit
		if s.Dir == metrics.DirRx {
			dir = semconv.NetworkIODirectionReceive
		}
		emit(s.Bytes, []attribute.KeyValue{semconv.ProcessExecutableName(OtherName),
			semconv.NetworkTransportKey.String(s.Protocol), dir})
	}
}

// appendK8s adds the Kubernetes names of g's pod.
func appendK8s(kv []attribute.KeyValue, g group) []attribute.KeyValue {
	if g.namespace != "" {
		kv = append(kv, semconv.K8SNamespaceName(g.namespace))
	}
	if g.podName != "" {
		kv = append(kv, semconv.K8SPodName(g.podName))
	}
	if g.containerName != "" {
		kv = append(kv, semconv.K8SContainerName(g.containerName))
	}
	if g.wname == "" {
		return kv
	}
	switch g.wkind {
	case "deployment":
		kv = append(kv, semconv.K8SDeploymentName(g.wname))
	case "statefulset":
		kv = append(kv, semconv.K8SStatefulSetName(g.wname))
	case "daemonset":
		kv = append(kv, semconv.K8SDaemonSetName(g.wname))
	case "replicaset":
		kv = append(kv, semconv.K8SReplicaSetName(g.wname))
	case "job":
		kv = append(kv, semconv.K8SJobName(g.wname))
	case "cronjob":
		kv = append(kv, semconv.K8SCronJobName(g.wname))
	}
	return kv
}

// Run collects a batch every Interval and delivers the backlog until ctx is
// done; then it collects a final batch, gives the backlog Timeout to be
// delivered, and shuts the SDK exporter down. Start it after the collector
// and cancel its ctx after the collector's last flush, so that flush is in
// the final batch.
func (e *Exporter) Run(ctx context.Context) error {
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { e.log.Warn("OTLP exporter", "err", err) }))
	defer otel.SetErrorHandler(prev)

	sendCtx, cancelSend := context.WithCancel(context.Background())
	sent := make(chan struct{})
	go func() { defer close(sent); e.sendLoop(sendCtx) }()

	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			e.collect()
		case <-ctx.Done():
			e.collect()
			deadline := time.Now().Add(e.opts.Timeout)
			for e.backlog() > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			cancelSend()
			<-sent
			e.mu.Lock()
			left := 0
			for _, b := range e.queue {
				left += b.points
				e.st.DroppedPoints += uint64(b.points)
				e.st.DroppedBatches++
			}
			e.queue = nil
			e.st.Backlog = 0
			e.mu.Unlock()
			if left > 0 {
				e.log.Warn("OTLP: receiver unreachable at shutdown; data points not delivered", "points", left)
			}
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			e.provider.Shutdown(sctx)
			e.exp.Shutdown(sctx)
			return nil
		}
	}
}

// collect takes a snapshot through the SDK reader and queues it.
func (e *Exporter) collect() {
	rm := &metricdata.ResourceMetrics{}
	if err := e.reader.Collect(context.Background(), rm); err != nil {
		e.log.Warn("OTLP: collecting metrics", "err", err)
		return
	}
	n := countPoints(rm)
	if n == 0 {
		return
	}
	e.mu.Lock()
	if len(e.queue) >= e.opts.Backlog {
		i := 0
		if e.queue[0].inFlight {
			i = 1
		}
		if i < len(e.queue) {
			d := e.queue[i]
			e.queue = append(e.queue[:i], e.queue[i+1:]...)
			e.st.DroppedPoints += uint64(d.points)
			e.st.DroppedBatches++
			if e.st.DroppedBatches == 1 || e.st.DroppedBatches%100 == 0 {
				e.log.Warn("OTLP backlog full: dropping the oldest batch", "backlog", e.opts.Backlog,
					"dropped_batches", e.st.DroppedBatches, "dropped_points", e.st.DroppedPoints)
			}
		}
	}
	e.queue = append(e.queue, &batch{rm: rm, points: n})
	e.st.Backlog = len(e.queue)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func countPoints(rm *metricdata.ResourceMetrics) int {
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				n += len(s.DataPoints)
			}
		}
	}
	return n
}

func (e *Exporter) backlog() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.queue)
}

// head marks the oldest batch in flight and returns it (nil: queue empty).
func (e *Exporter) head() *batch {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return nil
	}
	e.queue[0].inFlight = true
	return e.queue[0]
}

// sendLoop exports the oldest batch until the queue is empty, retrying a
// failed one with exponential backoff, until ctx is done.
func (e *Exporter) sendLoop(ctx context.Context) {
	backoff := e.opts.MinBackoff
	failing := false
	for {
		b := e.head()
		if b == nil {
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
				continue
			}
		}
		actx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
		err := e.exp.Export(actx, b.rm)
		cancel()
		now := time.Now()
		e.mu.Lock()
		if err == nil {
			b.inFlight = false
			if len(e.queue) > 0 && e.queue[0] == b {
				e.queue = e.queue[1:]
			}
			e.st.Backlog = len(e.queue)
			e.st.Exports++
			e.st.PointsSent += uint64(b.points)
			e.st.LastSuccess = now
			e.mu.Unlock()
			if failing {
				e.log.Info("OTLP export recovered", "endpoint", e.st.Endpoint, "backlog", e.backlog())
				failing = false
			}
			backoff = e.opts.MinBackoff
			continue
		}
		b.inFlight = false
		e.st.ExportErrors++
		e.st.LastError = err.Error()
		e.st.LastErrorTime = now
		q := len(e.queue)
		e.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if !failing {
			e.log.Warn("OTLP export failed; keeping the data and retrying with backoff", "endpoint", e.st.Endpoint, "err", err, "backlog", q)
			failing = true
		}
		// Full jitter in [backoff/2, backoff].
		d := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(backoff*2, e.opts.MaxBackoff)
	}
}

// Status returns the exporter's counters.
func (e *Exporter) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// ParseHeaders turns K=V strings (repeatable --otlp-header) into a map.
func ParseHeaders(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("OTLP header " + fmt.Sprintf("%q", kv) + ": use NAME=VALUE, e.g. --otlp-header 'Authorization=Bearer TOKEN'")
		}
		out[k] = v
	}
	return out, nil
}
