package api

import (
	"net/http"
	"net/url"
	"regexp"

	"github.com/gin-gonic/gin"

	"github.com/bwtracker/bwtracker/internal/alerts"
)

// Alerter is what the API needs from the alert engine (internal/alerts).
type Alerter interface {
	// Alerts are the firing alerts, or with all the resolved ones too,
	// newest first.
	Alerts(all bool) []alerts.Alert
	// Status is the alerting part of /api/status.
	Status() alerts.Status
}

type alertsQuery struct {
	All   bool
	Rule  string
	State string
}

var ruleParamRe = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// parseAlerts reads GET /api/alerts' parameters: all=1|true|0|false,
// rule=NAME, state=firing|resolved (state=resolved implies all).
func parseAlerts(v url.Values) (alertsQuery, error) {
	p, err := newParams(v, "all", "rule", "state")
	if err != nil {
		return alertsQuery{}, err
	}
	var q alertsQuery
	switch a := p.get("all"); a {
	case "", "0", "false", "no":
	case "1", "true", "yes":
		q.All = true
	default:
		return q, badParam("all", "%s: give 1 (include resolved alerts) or 0", quote(a))
	}
	if r := p.get("rule"); r != "" {
		if !ruleParamRe.MatchString(r) {
			return q, badParam("rule", "%s: rule names are 1-64 characters of a-z, 0-9, _ and -", quote(r))
		}
		q.Rule = r
	}
	switch st := p.get("state"); st {
	case "":
	case alerts.StateFiring:
		q.State = st
	case alerts.StateResolved:
		q.State, q.All = st, true
	default:
		return q, badParam("state", "%s: valid are firing, resolved", quote(st))
	}
	return q, nil
}

// alertsList serves GET /api/alerts: a JSON array of alerts, firing only
// unless all=1.
func (s *server) alertsList(c *gin.Context) {
	q, err := parseAlerts(c.Request.URL.Query())
	if err != nil {
		badRequest(c, err)
		return
	}
	out := []alerts.Alert{}
	if s.cfg.Alerts != nil {
		for _, a := range s.cfg.Alerts.Alerts(q.All) {
			if q.Rule != "" && a.Rule != q.Rule {
				continue
			}
			if q.State != "" && a.State != q.State {
				continue
			}
			out = append(out, a)
		}
	}
	c.JSON(http.StatusOK, out)
}
