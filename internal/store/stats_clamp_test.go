package store

import (
	"testing"
	"time"
)

// TestClampAvail: a tier's "complete from" is never before the history
// began (a file made minutes ago said "complete from" two years back).
func TestClampAvail(t *testing.T) {
	now := time.Now()
	old := now.Add(-2 * 365 * 24 * time.Hour)
	first := now.Add(-5 * time.Minute)
	later := now.Add(-time.Minute)
	tiers := []TierStats{
		{Name: "raw", Oldest: &first, AvailFrom: &old},
		{Name: "1m", Oldest: &later, AvailFrom: &later},
		{Name: "1d"},
	}
	clampAvail(tiers)
	if !tiers[0].AvailFrom.Equal(first) {
		t.Errorf("raw complete from %v, want the oldest data %v", tiers[0].AvailFrom, first)
	}
	if !tiers[1].AvailFrom.Equal(later) {
		t.Errorf("1m complete from %v, want unchanged %v", tiers[1].AvailFrom, later)
	}
	if tiers[2].AvailFrom != nil {
		t.Errorf("1d: %v, want none", tiers[2].AvailFrom)
	}
}
