// Package otlptest runs a real OTLP receiver for tests: the OpenTelemetry
// Collector's own otlpreceiver (go.opentelemetry.io/collector/receiver/
// otlpreceiver), built in-process with a consumer that keeps what arrives.
// Only tests import it, so the collector modules never reach the daemon.
package otlptest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// Point is one received data point of a Sum metric, flattened.
type Point struct {
	Metric      string
	Unit        string
	Monotonic   bool
	Temporality string // "Cumulative" or "Delta"
	Resource    map[string]string
	Attrs       map[string]string
	Value       int64
	Time        time.Time
}

// Request is one export request as the receiver decoded it.
type Request struct {
	Headers map[string][]string // client metadata (IncludeMetadata)
	Points  []Point
}

// Receiver is a running otlpreceiver.
type Receiver struct {
	t    testing.TB
	addr string
	grpc bool
	cfg  *otlpreceiver.Config
	r    receiver.Metrics

	mu   sync.Mutex
	reqs []Request
}

// Start runs an otlpreceiver with only OTLP/HTTP (grpc false) or only
// OTLP/gRPC (grpc true) on addr, e.g. "127.0.0.1:19520".
func Start(t testing.TB, addr string, grpc bool) *Receiver {
	t.Helper()
	rc := &Receiver{t: t, addr: addr, grpc: grpc}
	if err := rc.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Stop)
	return rc
}

// StartConfig runs an otlpreceiver with a given configuration (e.g. one
// loaded from a shipped Collector config).
func StartConfig(t testing.TB, cfg *otlpreceiver.Config) *Receiver {
	t.Helper()
	rc := &Receiver{t: t, cfg: cfg}
	if err := rc.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Stop)
	return rc
}

func (rc *Receiver) start() error {
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	if rc.cfg != nil {
		// A fresh copy each start: the factory shares receivers per config pointer.
		c := *rc.cfg
		cfg = &c
	} else if rc.grpc {
		g := cfg.Protocols.GRPC.GetOrInsertDefault()
		g.NetAddr.Endpoint = rc.addr
		g.IncludeMetadata = true
		cfg.Protocols.HTTP = configoptional.None[otlpreceiver.HTTPConfig]()
	} else {
		h := cfg.Protocols.HTTP.GetOrInsertDefault()
		h.ServerConfig.NetAddr.Endpoint = rc.addr
		h.ServerConfig.IncludeMetadata = true
		cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	}
	cons, err := consumer.NewMetrics(rc.consume)
	if err != nil {
		return err
	}
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, cons)
	if err != nil {
		return fmt.Errorf("otlpreceiver: %w", err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return fmt.Errorf("otlpreceiver on %s: %w", rc.addr, err)
	}
	rc.r = r
	return nil
}

// Restart starts the receiver again after Stop, on the same address.
func (rc *Receiver) Restart() {
	rc.t.Helper()
	if err := rc.start(); err != nil {
		rc.t.Fatal(err)
	}
}

// Stop shuts the receiver down (idempotent).
func (rc *Receiver) Stop() {
	if rc.r != nil {
		rc.r.Shutdown(context.Background())
		rc.r = nil
	}
}

func (rc *Receiver) consume(ctx context.Context, md pmetric.Metrics) error {
	req := Request{Headers: map[string][]string{}}
	info := client.FromContext(ctx)
	for k := range info.Metadata.Keys() {
		req.Headers[k] = info.Metadata.Get(k)
	}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		res := attrMap(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() != pmetric.MetricTypeSum {
					continue
				}
				s := m.Sum()
				dps := s.DataPoints()
				for l := 0; l < dps.Len(); l++ {
					dp := dps.At(l)
					req.Points = append(req.Points, Point{
						Metric: m.Name(), Unit: m.Unit(), Monotonic: s.IsMonotonic(),
						Temporality: s.AggregationTemporality().String(),
						Resource:    res, Attrs: attrMap(dp.Attributes()),
						Value: dp.IntValue(), Time: dp.Timestamp().AsTime(),
					})
				}
			}
		}
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, req)
	rc.mu.Unlock()
	return nil
}

func attrMap(m pcommon.Map) map[string]string {
	out := make(map[string]string, m.Len())
	for k, v := range m.All() {
		out[k] = v.AsString()
	}
	return out
}

// Requests returns a copy of every request received so far.
func (rc *Receiver) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.reqs...)
}

// Points returns every data point received so far, in arrival order.
func (rc *Receiver) Points() []Point {
	var out []Point
	for _, r := range rc.Requests() {
		out = append(out, r.Points...)
	}
	return out
}

// Last returns the data points of the last request (nil before any).
func (rc *Receiver) Last() []Point {
	rs := rc.Requests()
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1].Points
}
