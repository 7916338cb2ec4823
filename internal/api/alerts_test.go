package api

import (
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/alerts"
)

type fakeAlerts struct{ list []alerts.Alert }

func (f fakeAlerts) Alerts(all bool) []alerts.Alert {
	var out []alerts.Alert
	for _, a := range f.list {
		if all || a.State == alerts.StateFiring {
			out = append(out, a)
		}
	}
	return out
}

func (f fakeAlerts) Status() alerts.Status {
	return alerts.Status{Rules: 2, Firing: 1, Sinks: map[string]alerts.SinkStats{"webhook0": {Sent: 3, Failed: 1}}}
}

func TestAlertsEndpoint(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	end := t0.Add(time.Minute)
	fa := fakeAlerts{list: []alerts.Alert{
		{Rule: "big", State: alerts.StateFiring, Labels: map[string]string{"app": "rsync"}, Value: 10, Threshold: 5, StartedAt: t0},
		{Rule: "quota", State: alerts.StateResolved, Labels: map[string]string{"service": "b"}, Value: 1, Threshold: 2, StartedAt: t0, EndedAt: &end},
	}}
	e := newEnv(t, Config{Alerts: fa})
	got := decode[[]map[string]any](t, e.do(t, "GET", "/api/alerts"))
	if len(got) != 1 || got[0]["rule"] != "big" || got[0]["state"] != "firing" || got[0]["ended_at"] != nil ||
		got[0]["value"] != 10.0 || got[0]["threshold"] != 5.0 || got[0]["started_at"] != "2023-11-14T22:13:20Z" {
		t.Fatalf("firing: %+v", got)
	}
	if lb, _ := got[0]["labels"].(map[string]any); lb["app"] != "rsync" {
		t.Fatalf("labels: %+v", got[0])
	}
	if all := decode[[]alerts.Alert](t, e.do(t, "GET", "/api/alerts?all=1")); len(all) != 2 {
		t.Fatalf("all: %+v", all)
	}
	if r := decode[[]alerts.Alert](t, e.do(t, "GET", "/api/alerts?state=resolved")); len(r) != 1 || r[0].Rule != "quota" {
		t.Fatalf("resolved: %+v", r)
	}
	if r := decode[[]alerts.Alert](t, e.do(t, "GET", "/api/alerts?all=true&rule=big")); len(r) != 1 {
		t.Fatalf("rule: %+v", r)
	}
	for q, want := range map[string]string{
		"all=2":        "give 1 (include resolved alerts) or 0",
		"state=broken": "valid are firing, resolved",
		"rule=A%20B":   "rule names are",
		"bogus=1":      "unknown parameter: valid are all, rule, state",
		"all=1&all=0":  "given 2 times",
	} {
		rec := e.do(t, "GET", "/api/alerts?"+q)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %s", q, rec.Code, rec.Body)
		}
	}
	st := decode[StatusResponse](t, e.do(t, "GET", "/api/status"))
	if st.Alerts == nil || st.Alerts.Rules != 2 || st.Alerts.Sinks["webhook0"].Failed != 1 {
		t.Fatalf("status: %+v", st.Alerts)
	}
	// Without an engine: an empty list, and no alerts in the status.
	e2 := newEnv(t, Config{})
	if rec := e2.do(t, "GET", "/api/alerts"); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("no engine: %d %s", rec.Code, rec.Body)
	}
}
