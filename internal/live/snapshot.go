// Package live is the live model of the running daemon: the snapshot the
// collector publishes after every drain (per-process rates and totals) and
// the daemon's status. It is cgo-free and imports nothing internal, so the
// API, `top` and the metrics exporter read it without linking the loader.
package live

import "time"

// ProcRate is one process in the live snapshot: the last interval's rates
// and its totals since the daemon started.
type ProcRate struct {
	PID     uint32 `json:"pid"`
	StartNS uint64 `json:"start_ns"`
	Comm    string `json:"comm"`
	Exe     string `json:"exe"`
	// App is the process's app (internal/procinfo's app rule): what
	// `top` and the dashboard group by.
	App      string `json:"app"`
	UID      uint32 `json:"uid"`
	CgroupID uint64 `json:"cgroup_id"`
	// Service is the systemd unit owning the cgroup; Container is
	// "runtime:shortid" ("" when the process is in no container).
	Service   string `json:"service"`
	Container string `json:"container"`
	// Namespace, Pod and Workload ("deployment/web") are the Kubernetes
	// names of the process's pod (absent outside pods).
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Workload  string `json:"workload,omitempty"`
	// NetNS is the network namespace (inode) of its latest socket.
	NetNS    uint32    `json:"netns"`
	TxRate   float64   `json:"tx_bytes_per_sec"`
	RxRate   float64   `json:"rx_bytes_per_sec"`
	TxBytes  uint64    `json:"tx_bytes"`
	RxBytes  uint64    `json:"rx_bytes"`
	Remotes  int       `json:"remotes"` // distinct remote addresses since start
	LastSeen time.Time `json:"last_seen"`
	// Conns are the process's busiest connections (remote, port,
	// protocol), at most MaxConns, by the last interval's rate, then bytes
	// since start; those idle for the collector's live window are dropped.
	Conns []ConnRate `json:"connections,omitempty"`
}

// MaxConns bounds ProcRate.Conns.
const MaxConns = 8

// ConnRate is one remote endpoint of a process in the live snapshot, like
// a bandwhich connection row. Port is 0 when the process talked to many
// ports of that address in one interval (a scan, a resolver): then the
// row stands for all of them.
type ConnRate struct {
	RemoteIP string `json:"remote_ip"` // "" when the kernel saw no peer
	// RemoteName is the name the process resolved for RemoteIP, when the
	// daemon knows it ("" otherwise).
	RemoteName string    `json:"remote_name,omitempty"`
	Port       uint16    `json:"remote_port"`
	Protocol   string    `json:"protocol"`
	TxRate     float64   `json:"tx_bytes_per_sec"`
	RxRate     float64   `json:"rx_bytes_per_sec"`
	TxBytes    uint64    `json:"tx_bytes"`
	RxBytes    uint64    `json:"rx_bytes"`
	LastSeen   time.Time `json:"last_seen"`
}

// Snapshot is what the daemon knows after one drain.
type Snapshot struct {
	Time      time.Time     `json:"time"`
	Interval  time.Duration `json:"-"`
	TxRate    float64       `json:"tx_bytes_per_sec"`
	RxRate    float64       `json:"rx_bytes_per_sec"`
	TxBytes   uint64        `json:"tx_bytes"` // since start, all processes
	RxBytes   uint64        `json:"rx_bytes"`
	Processes []ProcRate    `json:"processes"` // sorted by rate, then totals, descending
}

// Status describes the running daemon.
type Status struct {
	Version  string            `json:"version"`
	Hook     string            `json:"hook"`
	Kernel   string            `json:"kernel"`
	Started  time.Time         `json:"started"`
	Interval time.Duration     `json:"-"`
	Drops    map[string]uint64 `json:"drops"` // per cause, since start: events whose bytes were lost
	// DetailLost: per cause, since start, events whose bytes were counted
	// with less detail (a full map: remote "(overflow)" or process
	// "(unattributed)"), plus the remote_overflow_bytes and
	// unattributed_bytes byte totals.
	DetailLost map[string]uint64 `json:"detail_lost"`
	DBPath     string            `json:"db_path"`
	DBSize     int64             `json:"db_size_bytes"`
	LastFlush  time.Time         `json:"last_flush"`
	FlushErrs  uint64            `json:"flush_errors"`
	MapCap     int               `json:"map_capacity"`
	MapPeak    int               `json:"map_entries_last_drain"`
	// DB is the database write state (backlog while writes fail).
	DB DBState `json:"db"`
}

// DBState says whether flushes reach the database, and what is held back
// in memory or was lost when they do not. LastFlush (in Status) is the
// last successful write.
type DBState struct {
	// State is "ok" or "failing" (writes are refused: disk full, file
	// read-only, ...; rows wait in the backlog).
	State        string    `json:"state"`
	Error        string    `json:"error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Held* is the backlog: counted, not yet written.
	HeldSamples int    `json:"held_samples"`
	HeldBytes   uint64 `json:"held_bytes"` // tx + rx payload bytes
	// Lost* was dropped because the backlog exceeded its bound (or could
	// not be written at shutdown): counted by the kernel, never stored.
	LostSamples uint64 `json:"lost_samples"`
	LostBytes   uint64 `json:"lost_bytes"`
	// FileEvents counts the times the database file was found deleted,
	// replaced or its WAL unlinked while running (and recovered).
	FileEvents uint64 `json:"file_events"`
}
