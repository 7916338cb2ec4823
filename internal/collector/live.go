package collector

import "github.com/bwtracker/bwtracker/internal/live"

// The snapshot model lives in internal/live (cgo-free, read by the API and
// `top`); the collector builds it under these names.
type (
	ProcRate = live.ProcRate
	Snapshot = live.Snapshot
	Status   = live.Status
	DBState  = live.DBState
)
