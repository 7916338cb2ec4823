// Package wire defines the JSON bodies of bwtracker's HTTP API once: the
// server (internal/api) encodes them and the client (internal/apiclient,
// used by `top`, `check` and `alerts`) decodes them. It is cgo-free and
// holds no behaviour.
package wire

import (
	"time"

	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/live"
)

// Error is the body of every 4xx/5xx answer.
type Error struct {
	Error string `json:"error"`
}

// CurrentResponse is the body of /api/current and of each stream event.
type CurrentResponse struct {
	Time         time.Time       `json:"time"`
	IntervalMs   int64           `json:"interval_ms"`
	TxRate       float64         `json:"tx_bytes_per_sec"`
	RxRate       float64         `json:"rx_bytes_per_sec"`
	TxBytes      uint64          `json:"tx_bytes"`
	RxBytes      uint64          `json:"rx_bytes"`
	ProcessCount int             `json:"process_count"` // before top
	Processes    []live.ProcRate `json:"processes"`
}

// HistoryPoint is one step of /api/history: bytes within [ts, ts+step).
type HistoryPoint struct {
	TsMs    int64  `json:"ts"`
	TxBytes uint64 `json:"tx_bytes"`
	RxBytes uint64 `json:"rx_bytes"`
}

// HistoryResponse is the body of /api/history. Points are dense: every step
// of the window is present, zero where nothing was sent.
type HistoryResponse struct {
	StepSeconds int64          `json:"step_seconds"`
	Since       time.Time      `json:"since"`
	Until       time.Time      `json:"until"`
	PID         uint32         `json:"pid,omitempty"`
	Comm        string         `json:"comm,omitempty"`
	TxBytes     uint64         `json:"tx_bytes"`
	RxBytes     uint64         `json:"rx_bytes"`
	Points      []HistoryPoint `json:"points"`
	// Gaps are the stretches of the window when no daemon was counting
	// (downtime, restarts), from the store's runs table: zero points
	// there mean "not measured", not "idle". Absent when the database
	// has no run records for the window (written by an older daemon).
	Gaps []Gap `json:"gaps,omitempty"`
}

// Gap is a stretch [since, until) when no daemon was counting.
type Gap struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// ProcessTotal is one process's bytes in a window: the numbers of
// `bwtracker report --by process` for the same window.
type ProcessTotal struct {
	PID     uint32 `json:"pid"`
	StartNS uint64 `json:"start_ns"`
	Comm    string `json:"comm"`
	Exe     string `json:"exe"`
	// App is the process's app (internal/procinfo's app rule), what
	// `report` groups by default.
	App     string `json:"app"`
	UID     uint32 `json:"uid"`
	TxBytes uint64 `json:"tx_bytes"`
	RxBytes uint64 `json:"rx_bytes"`
}

// ProcessRow is one row of /api/processes. With by=app a row is one app:
// pid, start_ns, comm, exe and uid are zero, Processes counts its
// processes with traffic in the window (list them with app=NAME).
type ProcessRow struct {
	ProcessTotal
	Remotes   int `json:"remotes"` // distinct known remote addresses in the window
	Processes int `json:"processes,omitempty"`
}

// ScopeTotal is one row of SummaryResponse.Scopes.
type ScopeTotal struct {
	Scope   string `json:"scope"` // loopback, lan, multicast, internet, unknown
	TxBytes uint64 `json:"tx_bytes"`
	RxBytes uint64 `json:"rx_bytes"`
}

// ProcessesResponse is the body of /api/processes.
type ProcessesResponse struct {
	Since     time.Time    `json:"since"`
	Until     time.Time    `json:"until"`
	Truncated bool         `json:"truncated"` // more rows than top
	Processes []ProcessRow `json:"processes"`
}

// RemoteTotal is one row of /api/remotes.
type RemoteTotal struct {
	RemoteIP string `json:"remote_ip"` // "" when the kernel saw no peer; "(other remotes)" when folded
	Protocol string `json:"protocol,omitempty"`
	// RemotePort (by=remote,port) and NetNS (by=remote,netns): absent or
	// 0 when none, or when the rows summed mixed several.
	RemotePort uint16 `json:"remote_port,omitempty"`
	NetNS      uint32 `json:"netns,omitempty"`
	// Folded marks the "(other remotes)" row: history older than the
	// 1-minute tier keeps only the top remotes per process and hour or
	// day, the rest summed into it (bytes exact).
	Folded  bool   `json:"folded,omitempty"`
	TxBytes uint64 `json:"tx_bytes"`
	RxBytes uint64 `json:"rx_bytes"`

	// RemoteName is the name a local process resolved the address from
	// (the DNS answers the daemon saw); "" when none was seen.
	RemoteName string `json:"remote_name"`
}

// RemotesResponse is the body of /api/remotes.
type RemotesResponse struct {
	Since     time.Time     `json:"since"`
	Until     time.Time     `json:"until"`
	PID       uint32        `json:"pid,omitempty"`
	Comm      string        `json:"comm,omitempty"`
	Truncated bool          `json:"truncated"`
	Remotes   []RemoteTotal `json:"remotes"`
}

// PeriodGroup is one group's (app's) bytes in one period.
type PeriodGroup struct {
	Name    string `json:"name"`
	TxBytes uint64 `json:"tx_bytes"`
	RxBytes uint64 `json:"rx_bytes"`
}

// PeriodRow is one period (a local day or month) of /api/periods.
type PeriodRow struct {
	Start   time.Time     `json:"start"`
	End     time.Time     `json:"end"`
	TxBytes uint64        `json:"tx_bytes"`
	RxBytes uint64        `json:"rx_bytes"`
	Groups  []PeriodGroup `json:"groups"` // the top groups of the whole window, then "other"; zero ones left out
}

// PeriodsResponse is the body of /api/periods: vnStat's day/month table
// per app, for the dashboard's overview bar chart.
type PeriodsResponse struct {
	Period  string      `json:"period"` // "day" or "month"
	TZ      string      `json:"tz"`     // the zone whose midnights are the edges
	By      string      `json:"by"`     // what a group is: "app"
	Groups  []string    `json:"groups"` // top groups of the window by total bytes, largest first
	Periods []PeriodRow `json:"periods"`
}

// SummaryResponse is the body of /api/summary.
type SummaryResponse struct {
	Since        time.Time      `json:"since"`
	Until        time.Time      `json:"until"`
	TxBytes      uint64         `json:"tx_bytes"`
	RxBytes      uint64         `json:"rx_bytes"`
	Processes    int            `json:"processes"` // processes with traffic in the window
	TopProcesses []ProcessTotal `json:"top_processes"`
	TopRemotes   []RemoteTotal  `json:"top_remotes"`
	// Apps counts apps with traffic; Scopes splits the bytes by the
	// remotes' scope (internal/netscope), largest first.
	Apps   int          `json:"apps"`
	Scopes []ScopeTotal `json:"scopes"`
}

// StatusResponse is the body of /api/status: the collector's Status plus
// what only the server knows.
type StatusResponse struct {
	live.Status
	UptimeSeconds float64 `json:"uptime_seconds"`
	IntervalMs    int64   `json:"interval_ms"`
	Listen        string  `json:"listen"`
	AuthRequired  bool    `json:"auth_required"`
	Live          bool    `json:"live"`
	// Alerts: rules loaded, alerts firing, sink deliveries and failures
	// (absent when the daemon runs without rules).
	Alerts *alerts.Status `json:"alerts,omitempty"`
	// Exports is the state of each exporter (api.Config.Exports), e.g.
	// "otlp": endpoint, exports, errors, backlog, dropped points.
	Exports map[string]any `json:"exports,omitempty"`
}
