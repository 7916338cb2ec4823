package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	promConfigPath = "prometheus/prometheus.yml"
	promRulesPath  = "prometheus/bwtracker-rules.yml"
	promRulesTest  = "prometheus/bwtracker-rules.test.yml"
)

// requireTool finds a program a test needs. Missing, it fails the test in CI
// (CI=true) or when the test dependencies were meant to be installed
// (BWTRACKER_WITH_TEST_DEPS=1, for which scripts/deps.sh installs it), and
// skips loudly otherwise.
func requireTool(t *testing.T, name, debPkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not installed (Debian package %s; `BWTRACKER_WITH_TEST_DEPS=1 ./scripts/deps.sh` installs it)", name, debPkg)
	if os.Getenv("CI") == "true" || os.Getenv("BWTRACKER_WITH_TEST_DEPS") == "1" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	pt := requireTool(t, "promtool", "prometheus")
	out, err := exec.Command(pt, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPrometheusExampleConfig: promtool checks the shipped scrape config,
// once for syntax as shipped and once in full (rule files loaded, the token
// file present) with only the credentials_file path pointed at a real file.
func TestPrometheusExampleConfig(t *testing.T) {
	promtool(t, "check", "config", "--syntax-only", promConfigPath)

	b, err := os.ReadFile(promConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	tok := filepath.Join(tmp, "bwtracker.token")
	mustWrite(t, tok, "secret\n", 0o600)
	re := regexp.MustCompile(`(?m)^(\s*credentials_file:\s*)\S+$`)
	if len(re.FindAll(b, -1)) != 1 {
		t.Fatalf("%s: want exactly one credentials_file (the bwtracker job's bearer token)", promConfigPath)
	}
	cfg := re.ReplaceAll(b, []byte("${1}"+tok))
	rules, err := os.ReadFile(promRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(tmp, "prometheus.yml"), string(cfg), 0o644)
	mustWrite(t, filepath.Join(tmp, filepath.Base(promRulesPath)), string(rules), 0o644)
	out := promtool(t, "check", "config", filepath.Join(tmp, "prometheus.yml"))
	if !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "rules found") {
		t.Errorf("promtool check config did not load the rule file:\n%s", out)
	}

	// The job the fleet guide and the end-to-end test rely on.
	var c struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Authorization struct {
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.ScrapeConfigs) == 0 || c.ScrapeConfigs[0].JobName != "bwtracker" || c.ScrapeConfigs[0].Authorization.CredentialsFile == "" {
		t.Errorf("first scrape job must be job_name: bwtracker with authorization.credentials_file: %+v", c.ScrapeConfigs)
	}
}

// TestPrometheusRules: promtool checks the example rules, runs their unit
// tests (alerts fire and stay quiet when they should, with the annotations
// rendered), and every bwtracker_* metric and label they use exists in a
// live exporter.
func TestPrometheusRules(t *testing.T) {
	out := promtool(t, "check", "rules", promRulesPath)
	t.Logf("%s", strings.TrimSpace(out))
	out = promtool(t, "test", "rules", promRulesTest)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}

	b, err := os.ReadFile(promRulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
				Alert  string `yaml:"alert"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	known := exporterMetrics(t)
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts++
			}
			bare := regexp.MustCompile(`"[^"]*"|\[[^\]]*\]`).ReplaceAllString(r.Expr, `""`)
			for _, name := range metricRe.FindAllString(bare, -1) {
				if strings.HasPrefix(name, "bwtracker_") && known[name] == nil {
					t.Errorf("rule %s%s uses %s, which the exporter does not define", r.Record, r.Alert, name)
				}
			}
			for _, m := range selectorRe.FindAllStringSubmatch(r.Expr, -1) {
				for _, lm := range matcherRe.FindAllStringSubmatch(m[2], -1) {
					if known[m[1]] != nil && !known[m[1]][lm[1]] {
						t.Errorf("rule %s%s: %s has no label %q", r.Record, r.Alert, m[1], lm[1])
					}
				}
			}
		}
	}
	if alerts == 0 {
		t.Error("no alerting rules")
	}
	if !strings.Contains(string(b), "bwtracker_bytes_total") {
		t.Error("no rule on bwtracker_bytes_total")
	}
}

// TestAlertmanagerExample: amtool checks the example routing and that the
// critical bwtracker alerts page while the warnings do not.
func TestAlertmanagerExample(t *testing.T) {
	am := requireTool(t, "amtool", "prometheus-alertmanager")
	const cfg = "prometheus/alertmanager.yml"
	if out, err := exec.Command(am, "check-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for _, c := range []struct{ alert, severity, want string }{
		{"BwtrackerDown", "critical", "ops-page"},
		{"BwtrackerNotFlushing", "critical", "ops-page"},
		{"BwtrackerDrops", "warning", "ops"},
		{"BwtrackerHighUpload", "warning", "ops"},
	} {
		out, err := exec.Command(am, "config", "routes", "test", "--config.file="+cfg,
			"alertname="+c.alert, "severity="+c.severity).Output()
		if err != nil {
			t.Fatalf("amtool config routes test: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%s (%s) routes to %q, want %q", c.alert, c.severity, got, c.want)
		}
	}
}
