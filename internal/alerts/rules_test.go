package alerts

import (
	"strings"
	"testing"
	"time"
)

const goodRules = `rules:
  - name: big-upload
    match: {app: rsync}
    direction: tx
    above: 5MiB
    over: 1m
  - name: monthly-quota
    match: {service: backup.service}
    direction: total
    above: 200GiB
    over: calendar-month
  - name: new-program
    kind: new-app
  - name: unusual
    kind: anomaly
    sensitivity: high
  - name: fast
    above: 1MB/s
    over: 10s
sinks:
  alertmanager: {url: "http://127.0.0.1:9093", resend: 30s}
  webhooks:
    - url: http://127.0.0.1:9999/hook
  commands:
    - argv: [/usr/bin/logger, -t, bwtracker]
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse("r.yaml", []byte(goodRules))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != 5 {
		t.Fatalf("rules: %d", len(cfg.Rules))
	}
	r := cfg.Rules[0]
	if r.Above != 5<<20 || r.Over != time.Minute || r.Direction != DirTx || r.Line != 2 || strings.Join(r.GroupBy, ",") != "app" {
		t.Errorf("big-upload: %+v", r)
	}
	if m := cfg.Rules[1]; m.Calendar != CalendarMonth || m.Above != 200<<30 || m.GroupBy[0] != KeyService {
		t.Errorf("monthly: %+v", m)
	}
	if cfg.Rules[2].Kind != KindNewApp || cfg.Rules[2].Hold != 10*time.Minute {
		t.Errorf("new-app: %+v", cfg.Rules[2])
	}
	if a := cfg.Rules[3]; a.Sensitivity != SensHigh || a.GroupBy[0] != KeyApp {
		t.Errorf("anomaly: %+v", a)
	}
	if f := cfg.Rules[4]; !f.PerSecond || f.Above != 1e6 {
		t.Errorf("rate: %+v", f)
	}
	if cfg.Sinks.Alertmanager.Resend != Duration(30*time.Second) || cfg.Sinks.Webhooks[0].Retries != 5 || cfg.Sinks.Commands[0].Timeout != Duration(10*time.Second) {
		t.Errorf("sinks: %+v", cfg.Sinks)
	}
}

func TestParseErrorsHaveLines(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"unit", "rules:\n  - name: x\n    above: 5XB\n    over: 1m\n", "r.yaml:2: rule \"x\": above: unit \"XB\""},
		{"dup", "rules:\n  - name: x\n    above: 1\n    over: 1m\n  - name: x\n    above: 1\n    over: 1m\n", "r.yaml:5: rule name \"x\" is already used at line 2"},
		{"unknown field", "rules:\n  - name: x\n    above: 1\n    over: 1m\n    bogus: 3\n", "r.yaml:5: field bogus not found"},
		{"syntax", "rules:\n  - name: x\n    above: [\n", "r.yaml:3: did not find expected node content"},
		{"name", "rules:\n  - name: Big Upload\n    above: 1\n    over: 1m\n", "r.yaml:2: rule \"Big Upload\": name must be"},
		{"no over", "rules:\n  - name: x\n    above: 1\n", "over is missing"},
		{"match key", "rules:\n  - name: x\n    match: {pid: 3}\n    above: 1\n    over: 1m\n", "match \"pid\": valid keys are"},
		{"domain", "rules:\n  - name: x\n    match: {domain: example.com}\n    above: 1\n    over: 1m\n", "remote names are not tracked yet"},
		{"calendar rate", "rules:\n  - name: x\n    above: 1MB/s\n    over: calendar-day\n", "is a rate"},
		{"sens", "rules:\n  - name: x\n    kind: anomaly\n    sensitivity: extreme\n", "valid are low, medium, high"},
		{"sink", "rules: []\nsinks:\n  commands:\n    - argv: [logger]\n", "r.yaml:3: sinks: commands[0]: argv[0] \"logger\": give an absolute path"},
		{"top level", "rulez: []\n", "r.yaml:1: field rulez not found"},
	}
	for _, c := range cases {
		_, err := Parse("r.yaml", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Parse("e.yaml", nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestParseFlag(t *testing.T) {
	r, err := ParseFlag("name=big;comm=rsync;dir=tx;above=5MiB;over=1m")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "big" || r.Match[KeyComm] != "rsync" || r.Above != 5<<20 || r.Direction != DirTx || r.GroupBy[0] != KeyComm {
		t.Errorf("%+v", r)
	}
	for _, bad := range []string{"name=x;above", "name=x;above=1;over=1m;pid=3", "name=x;above=-1;over=1m"} {
		if _, err := ParseFlag(bad); err == nil || !strings.Contains(err.Error(), "--alert") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]float64{"5MiB": 5 << 20, "200GB": 200e9, "1.5 KiB": 1536, "42": 42, "3kB": 3000, "1TiB": 1 << 40} {
		v, _, err := ParseBytes(in)
		if err != nil || v != want {
			t.Errorf("%s: %v %v", in, v, err)
		}
	}
}

func TestWindowNames(t *testing.T) {
	for d, want := range map[time.Duration]string{30 * time.Second: "30s", time.Minute: "1m", 90 * time.Minute: "1h30m", 2 * time.Hour: "2h", 1500 * time.Millisecond: "1.5s"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("%s: %q", d, got)
		}
	}
}
