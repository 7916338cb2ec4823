package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime reads a --since/--until value: a duration back from now ("90s",
// "15m", "24h", "7d", "2w"), an RFC3339 timestamp, a date ("2026-11-27",
// local midnight) or "now".
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	if s == "now" {
		return now, nil
	}
	if d, err := ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (30m, 24h, 7d) nor a time (RFC3339 like 2026-11-27T10:00:00Z, or 2026-11-27)", s)
}

// ParseDuration is time.ParseDuration plus y (365 days), w (weeks) and d
// (days) units, e.g. "2y", "7d", "1w2d", "1d12h". Negative durations are
// refused.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	var total time.Duration
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"y", 365 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		if i := strings.Index(s, u.suffix); i > 0 {
			n, err := strconv.ParseUint(s[:i], 10, 32)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q", orig)
			}
			total += time.Duration(n) * u.d
			s = s[i+1:]
		}
	}
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", orig)
		}
		if d < 0 {
			return 0, fmt.Errorf("negative duration %q", orig)
		}
		total += d
	}
	if total < 0 || total > 100*365*24*time.Hour {
		return 0, fmt.Errorf("duration %q out of range", orig)
	}
	return total, nil
}
