package timespec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	cases := map[string]time.Duration{
		"0": 0, "90s": 90 * time.Second, "30m": 30 * time.Minute, "1h30m": 90 * time.Minute,
		"1.5d": 36 * time.Hour, "2w": 14 * day, "1y": 365 * day, "1w2d": 9 * day, "1d12h": 36 * time.Hour,
		".5h": 30 * time.Minute, "1500ms": 1500 * time.Millisecond, "1µs": time.Microsecond, "1us": time.Microsecond,
		" 7d ": 7 * day, "100y": MaxDuration,
	}
	for in, want := range cases {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"": "empty", "-1h": "no sign", "+1h": "no sign", "1": "missing unit", "h": "expected a number",
		"1x": `unknown unit "x"`, "1..5h": "bad number", "101y": "longer than 100 years", "NaNh": "expected a number",
		"99999999999d": "longer than 100 years",
	} {
		_, err := ParseDuration(in)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), DurationForms) {
			t.Errorf("ParseDuration(%q) error %v: want one containing %q and the accepted forms", in, err, msg)
		}
	}
}

func TestParseTime(t *testing.T) {
	zone := time.FixedZone("test", 2*3600) // "local" for these cases
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, zone)
	cases := map[string]time.Time{
		"30m":                         now.Add(-30 * time.Minute),
		"1.5d":                        now.Add(-36 * time.Hour),
		"2w":                          now.Add(-14 * 24 * time.Hour),
		"1y":                          now.Add(-365 * 24 * time.Hour),
		"now":                         now,
		"NOW":                         now,
		"today":                       time.Date(2026, 12, 1, 0, 0, 0, 0, zone),
		"yesterday":                   time.Date(2026, 11, 30, 0, 0, 0, 0, zone),
		"2026-12-01":                  time.Date(2026, 12, 1, 0, 0, 0, 0, zone),
		"2026-12-01T20:30":            time.Date(2026, 12, 1, 20, 30, 0, 0, zone),
		"2026-12-01T20:30:00":         time.Date(2026, 12, 1, 20, 30, 0, 0, zone),
		"2026-12-01T20:30:00.25":      time.Date(2026, 12, 1, 20, 30, 0, 250e6, zone),
		"2026-12-01 20:30":            time.Date(2026, 12, 1, 20, 30, 0, 0, zone),
		"2026-12-01 20:30:05":         time.Date(2026, 12, 1, 20, 30, 5, 0, zone),
		"2026-12-01T20:30:00Z":        time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC),
		"2026-12-01T20:30:00+01:00":   time.Date(2026, 12, 1, 19, 30, 0, 0, time.UTC),
		"2026-12-01T20:30:00.5-05:00": time.Date(2026, 12, 2, 1, 30, 0, 500e6, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// January 1st: yesterday is in the previous year.
	if got, _ := ParseTime("yesterday", time.Date(2027, 1, 1, 0, 30, 0, 0, zone)); !got.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, zone)) {
		t.Errorf("yesterday on Jan 1st = %v", got)
	}
	for in, msg := range map[string]string{
		"": "empty", "yesteryear": "expected a number", "-1h": "no sign", "1x": "unknown unit", "d": "expected a number",
		"2026-13-01": "not a valid date", "2026-02-30": "not a valid date", "2026-12-01T25:00": "not a valid date",
		"0001-01-01T00:00:00Z": "out of range", "2026-12-01 20": "not a valid date", "101y": "longer than 100 years",
	} {
		_, err := ParseTime(in, now)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), TimeForms) {
			t.Errorf("ParseTime(%q) error %v: want one containing %q and the accepted forms", in, err, msg)
		}
	}
}

// Whatever the input: no panic; an *Error or a time within the grammar's
// bounds; a duration ago never lies after now.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"30m", "1.5d", "2w", "1y", "now", "today", "yesterday", "2026-12-01", "2026-12-01T20:30",
		"2026-12-01T20:30:00", "2026-12-01 20:30", "2026-12-01T20:30:00Z", "2026-12-01T20:30:00+01:00", "", "-1h", "1",
		"h", "1x", "1e5h", "9223372036854775807ns", "0.0000001ns", "1µs", "1..5h", "NaNh", "2025-02-30", "9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("%q: error %T", s, err)
		}
		if err == nil && (d < 0 || d > MaxDuration) {
			t.Fatalf("%q: %s", s, d)
		}
		if err == nil && d != 0 {
			// A duration is also a time: that long ago.
			if tm, err := ParseTime(s, now); err != nil || !tm.Equal(now.Add(-d)) {
				t.Fatalf("%q: duration %s but time %v, %v", s, d, tm, err)
			}
		}
		tm, err := ParseTime(s, now)
		if err != nil {
			if !errors.As(err, &e) || e.Want != TimeForms {
				t.Fatalf("%q: error %v (%T)", s, err, err)
			}
			return
		}
		if tm.Year() < 1869 || tm.Year() > 9999 {
			t.Fatalf("%q: %v out of range", s, tm)
		}
	})
}
