package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/collector"
	"github.com/bwtracker/bwtracker/internal/metrics"
	"github.com/bwtracker/bwtracker/internal/otlp"
	"github.com/bwtracker/bwtracker/internal/version"
)

// OTLP flags of `run` (the mapping and the backlog rules: internal/otlp).
func otlpFlags() []cli.Flag {
	const cat = "OpenTelemetry (OTLP) export"
	return []cli.Flag{
		&cli.StringFlag{Name: "otlp-endpoint", Category: cat, Usage: "export process.network.io over OTLP to `URL` (http://collector:4318 for HTTP/protobuf, /v1/metrics is appended when the URL has no path; http(s)://collector:4317 with --otlp-protocol grpc). Also on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set"},
		&cli.StringFlag{Name: "otlp-protocol", Category: cat, Value: otlp.ProtocolHTTP, EnvVars: []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"}, Usage: "http/protobuf or grpc"},
		&cli.StringSliceFlag{Name: "otlp-header", Category: cat, Usage: "`NAME=VALUE` header sent with every export, e.g. 'Authorization=Bearer TOKEN' (repeatable; replaces OTEL_EXPORTER_OTLP_HEADERS)"},
		&cli.DurationFlag{Name: "otlp-interval", Category: cat, Value: otlp.DefaultInterval, EnvVars: []string{"BWTRACKER_OTLP_INTERVAL"}, Usage: "how often to export (100ms to 24h)"},
		&cli.DurationFlag{Name: "otlp-timeout", Category: cat, Value: otlp.DefaultTimeout, Usage: "timeout of one export request, and of the final delivery at shutdown"},
		&cli.StringFlag{Name: "otlp-temporality", Category: cat, Usage: "cumulative (default) or delta; unset, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE decides"},
		&cli.IntFlag{Name: "otlp-top", Category: cat, Value: metrics.DefaultTop, Usage: "process groups (executable, service, container, pod, protocol) with their own data points; the rest are summed into process.executable.name=\"other\""},
		&cli.IntFlag{Name: "otlp-backlog", Category: cat, Value: otlp.DefaultBacklog, Usage: "batches kept while the receiver is unreachable; beyond, the oldest are dropped and counted (bwtracker_otlp_dropped_points_total)"},
		&cli.StringFlag{Name: "otlp-ca-file", Category: cat, Usage: "verify the receiver's TLS certificate against the CA certificates in `FILE` (PEM) instead of the system's"},
		&cli.StringFlag{Name: "otlp-client-cert", Category: cat, Usage: "client certificate `FILE` (PEM) for mutual TLS; needs --otlp-client-key"},
		&cli.StringFlag{Name: "otlp-client-key", Category: cat, Usage: "client key `FILE` (PEM) for mutual TLS"},
	}
}

// otlpOptions reads the OTLP flags; ok is false when export is off.
func otlpOptions(c *cli.Context) (opts otlp.Options, ok bool, err error) {
	opts.Endpoint = c.String("otlp-endpoint")
	if opts.Endpoint == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") == "" {
		for _, f := range []string{"otlp-header", "otlp-temporality", "otlp-ca-file", "otlp-client-cert", "otlp-client-key", "otlp-interval", "otlp-top", "otlp-backlog"} {
			if c.IsSet(f) {
				return opts, false, usagef("--%s needs --otlp-endpoint URL (or OTEL_EXPORTER_OTLP_ENDPOINT)", f)
			}
		}
		return opts, false, nil
	}
	opts.Protocol = c.String("otlp-protocol")
	if opts.Protocol != otlp.ProtocolHTTP && opts.Protocol != otlp.ProtocolGRPC {
		return opts, false, usagef("--otlp-protocol %q: valid are http/protobuf and grpc", opts.Protocol)
	}
	if _, err := otlp.EndpointURL(opts.Endpoint, opts.Protocol); err != nil {
		return opts, false, usagef("--otlp-endpoint: %v", err)
	}
	if opts.Headers, err = otlp.ParseHeaders(c.StringSlice("otlp-header")); err != nil {
		return opts, false, usagef("--otlp-header: %v", err)
	}
	opts.Interval = c.Duration("otlp-interval")
	if opts.Interval < 100*time.Millisecond || opts.Interval > 24*time.Hour {
		return opts, false, usagef("--otlp-interval %s: must be between 100ms and 24h", opts.Interval)
	}
	opts.Timeout = c.Duration("otlp-timeout")
	if opts.Timeout < 100*time.Millisecond || opts.Timeout > 10*time.Minute {
		return opts, false, usagef("--otlp-timeout %s: must be between 100ms and 10m", opts.Timeout)
	}
	switch t := c.String("otlp-temporality"); t {
	case "", otlp.TemporalityCumulative, otlp.TemporalityDelta:
		opts.Temporality = t
	default:
		return opts, false, usagef("--otlp-temporality %q: valid are cumulative and delta", t)
	}
	if n := c.Int("otlp-top"); n < 1 || n > 10000 {
		return opts, false, usagef("--otlp-top %d: must be between 1 and 10000", n)
	}
	opts.Cap.Top = c.Int("otlp-top")
	if n := c.Int("otlp-backlog"); n < 1 || n > 100000 {
		return opts, false, usagef("--otlp-backlog %d: must be between 1 and 100000", n)
	}
	opts.Backlog = c.Int("otlp-backlog")
	opts.TLS, err = otlpTLS(c.String("otlp-ca-file"), c.String("otlp-client-cert"), c.String("otlp-client-key"))
	if err != nil {
		return opts, false, err
	}
	opts.Version = version.Version
	return opts, true, nil
}

// otlpTLS builds the TLS config from the files, or nil when none is given.
func otlpTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usagef("--otlp-ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--otlp-ca-file %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, usagef("--otlp-client-cert and --otlp-client-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, usagef("--otlp-client-cert/--otlp-client-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// startOTLP builds the exporter, feeds it from the collector's flushes and
// runs it. The returned stop must be called after the collector's last
// flush: it exports that flush and waits (at most --otlp-timeout) for the
// backlog.
func startOTLP(opts otlp.Options, col *collector.Collector, exp *metrics.Exporter, log *slog.Logger) (*otlp.Exporter, func(), error) {
	opts.Log = log
	ox, err := otlp.New(context.Background(), opts)
	if err != nil {
		return nil, nil, err
	}
	col.AddObserver(func(f collector.Flush) { observeOTLP(ox, f) })
	exp.RegisterOTLP(func() metrics.OTLPCounters {
		st := ox.Status()
		return metrics.OTLPCounters{Exports: st.Exports, ExportErrors: st.ExportErrors,
			PointsSent: st.PointsSent, DroppedPoints: st.DroppedPoints, Backlog: st.Backlog}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ox.Run(ctx); err != nil {
			log.Error("OTLP export stopped", "err", err)
		}
	}()
	st := ox.Status()
	log.Info("OTLP export", "endpoint", st.Endpoint, "protocol", st.Protocol, "interval", opts.Interval, "temporality", st.Temporality)
	return ox, func() { cancel(); <-done }, nil
}

// observeOTLP hands one flush to the OTLP exporter.
func observeOTLP(ox *otlp.Exporter, f collector.Flush) {
	deltas := make([]otlp.Delta, 0, len(f.Samples))
	for _, s := range f.Samples {
		d := otlp.Delta{Comm: s.Comm, Exe: s.Exe, Protocol: s.Protocol, TxBytes: s.TxBytes, RxBytes: s.RxBytes}
		if in, ok := f.Cgroups[s.CgroupID]; ok {
			d.Service = in.Service
			d.ContainerID = in.ContainerID
			d.PodUID = in.PodUID
			d.Namespace, d.Pod, d.ContainerName = in.Namespace, in.Pod, in.ContainerName
			d.WorkloadKind, d.WorkloadName = in.WorkloadKind, in.WorkloadName
		}
		deltas = append(deltas, d)
	}
	ox.Observe(f.Time, deltas)
}
