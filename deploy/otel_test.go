package deploy

import (
	"context"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.yaml.in/yaml/v3"

	"github.com/bwtracker/bwtracker/internal/otlp"
	"github.com/bwtracker/bwtracker/internal/otlp/otlptest"
)

// TestOTelCollectorExample: deploy/otel/collector.yaml's pipeline only names
// components it defines, and its receivers.otlp section, loaded into the
// Collector's own otlpreceiver (endpoints moved to loopback test ports),
// accepts a real bwtracker OTLP export with the header passed on. The
// processors and exporters are not run here (no Collector binary).
func TestOTelCollectorExample(t *testing.T) {
	b, err := os.ReadFile("otel/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("otel/collector.yaml: %v", err)
	}
	section := func(name string) map[string]any {
		m, _ := doc[name].(map[string]any)
		return m
	}
	svc := section("service")
	pipes, _ := svc["pipelines"].(map[string]any)
	mp, _ := pipes["metrics"].(map[string]any)
	if mp == nil {
		t.Fatal("no service.pipelines.metrics")
	}
	for _, kind := range []string{"receivers", "processors", "exporters"} {
		list, _ := mp[kind].([]any)
		if len(list) == 0 && kind != "processors" {
			t.Errorf("metrics pipeline has no %s", kind)
		}
		for _, c := range list {
			if _, ok := section(kind)[c.(string)]; !ok {
				t.Errorf("pipeline uses %s %q, which is not defined", kind, c)
			}
		}
	}

	recv := section("receivers")["otlp"].(map[string]any)
	proto := recv["protocols"].(map[string]any)
	proto["http"].(map[string]any)["endpoint"] = "127.0.0.1:19540"
	delete(proto, "grpc")
	cfg := otlpreceiver.NewFactory().CreateDefaultConfig().(*otlpreceiver.Config)
	if err := confmap.NewFromStringMap(recv).Unmarshal(cfg); err != nil {
		t.Fatalf("receivers.otlp does not load into otlpreceiver: %v", err)
	}
	if !cfg.Protocols.HTTP.Get().ServerConfig.IncludeMetadata {
		t.Error("receivers.otlp.protocols.http.include_metadata should be true (the guide relies on it for auth)")
	}
	rc := otlptest.StartConfig(t, cfg)
	e, err := otlp.New(context.Background(), otlp.Options{Endpoint: "http://127.0.0.1:19540",
		Interval: 50 * time.Millisecond, Headers: map[string]string{"Authorization": "Bearer fleet"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(time.Unix(1, 0), []otlp.Delta{{Comm: "curl", Exe: "/usr/bin/curl", Protocol: "tcp", TxBytes: 4242}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(rc.Requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	reqs := rc.Requests()
	if len(reqs) == 0 {
		t.Fatal("the example receiver got nothing from bwtracker's exporter")
	}
	p := reqs[0].Points[0]
	if p.Metric != "process.network.io" || p.Value != 4242 || p.Attrs["process.executable.name"] != "curl" {
		t.Errorf("received %+v", p)
	}
	if a := reqs[0].Headers["authorization"]; len(a) != 1 || a[0] != "Bearer fleet" {
		t.Errorf("authorization not passed on with include_metadata: %v", reqs[0].Headers)
	}
}
