// Package timespec is bwtracker's one time grammar: the durations and points
// in time that `report --since/--until`, the retention flags (`run
// --keep-*`) and the HTTP API's since/until/step parameters accept, with one
// set of error messages that list the accepted forms.
//
// Durations: one or more number+unit pairs, decimals allowed, no sign:
// 90s, 30m, 1h30m, 1.5d, 2w, 1y (units ns, us, ms, s, m, h, d = 24h,
// w = 7d, y = 365d), at most 100 years.
//
// Points in time: a duration ago (30m = 30 minutes before now), "now",
// "today" and "yesterday" (local midnight), a bare date (2026-12-01, local
// midnight), a local date and time (2026-12-01T20:30, 2026-12-01T20:30:00,
// 2026-12-01 20:30, 2026-12-01 20:30:00) or RFC3339 with a zone
// (2026-12-01T20:30:00Z, 2026-12-01T20:30:00+01:00). Times without a zone
// are in now's location (time.Local for time.Now()). Years run 1970..9999.
package timespec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxDuration bounds every duration this grammar reads.
const MaxDuration = 100 * 365 * 24 * time.Hour

// DurationForms and TimeForms are the accepted forms, as the error
// messages and flag help list them.
const (
	DurationForms = "a duration like 30m, 24h, 1.5d, 2w, 1y"
	TimeForms     = "a duration ago (30m, 24h, 1.5d, 2w, 1y), now, today, yesterday, a date (2026-12-01), " +
		"a local time (2026-12-01T20:30, 2026-12-01T20:30:00, 2026-12-01 20:30) or RFC3339 with a zone (2026-12-01T20:30:00Z)"
)

// Error is input this grammar does not accept. Its message says what is
// wrong and lists the accepted forms.
type Error struct {
	Input string // as given (truncated)
	Msg   string // what is wrong
	Want  string // DurationForms or TimeForms
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s: want %s", quote(e.Input), e.Want)
	}
	return fmt.Sprintf("%s: %s; want %s", quote(e.Input), e.Msg, e.Want)
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.QuoteToASCII(s)
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var units = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "m": time.Minute, "h": time.Hour,
	"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour,
}

// ParseDuration reads a duration (see the package doc). "0" alone is zero.
func ParseDuration(s string) (time.Duration, error) {
	d, msg := duration(strings.TrimSpace(s))
	if msg != "" {
		return 0, &Error{Input: s, Msg: msg, Want: DurationForms}
	}
	return d, nil
}

func duration(s string) (time.Duration, string) {
	switch {
	case s == "":
		return 0, "empty"
	case s == "0":
		return 0, ""
	case s[0] == '-' || s[0] == '+':
		return 0, "a duration has no sign (since=1h means one hour ago)"
	}
	var total float64
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Sprintf("expected a number at %s", quote(trunc(rest, 16)))
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || math.IsNaN(num) || math.IsInf(num, 0) {
			return 0, fmt.Sprintf("bad number %s", quote(trunc(rest[:i], 16)))
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		unit := rest[:j]
		rest = rest[j:]
		mult, ok := units[unit]
		if unit == "" {
			return 0, fmt.Sprintf("missing unit after %s (s, m, h, d, w or y)", trunc(strconv.FormatFloat(num, 'g', -1, 64), 16))
		}
		if !ok {
			return 0, fmt.Sprintf("unknown unit %s (s, m, h, d, w or y)", quote(trunc(unit, 8)))
		}
		total += num * float64(mult)
		if total > float64(MaxDuration) {
			return 0, "longer than 100 years"
		}
	}
	return time.Duration(total), ""
}

// Layouts of absolute times without a zone, read in now's location.
var localLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime reads a point in time (see the package doc), relative to now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	in := s
	s = strings.TrimSpace(s)
	fail := func(msg string) (time.Time, error) {
		return time.Time{}, &Error{Input: in, Msg: msg, Want: TimeForms}
	}
	loc := now.Location()
	switch strings.ToLower(s) {
	case "":
		return fail("empty")
	case "now":
		return now, nil
	case "today", "yesterday":
		y, m, d := now.Date()
		if strings.EqualFold(s, "yesterday") {
			d--
		}
		return time.Date(y, m, d, 0, 0, 0, 0, loc), nil
	}
	if looksLikeDate(s) {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			for _, l := range localLayouts {
				if t, err = time.ParseInLocation(l, s, loc); err == nil {
					break
				}
			}
		}
		if err != nil {
			return fail("not a valid date or time")
		}
		if t.Year() < 1970 || t.Year() > 9999 {
			return fail("out of range (years 1970 to 9999)")
		}
		return t, nil
	}
	d, msg := duration(s)
	if msg != "" {
		return fail(msg)
	}
	return now.Add(-d), nil
}

// looksLikeDate tells 2026-12-01... from 15m: four digits then a dash.
func looksLikeDate(s string) bool {
	return len(s) >= 5 && s[4] == '-' && strings.IndexFunc(s[:4], func(r rune) bool { return r < '0' || r > '9' }) < 0
}
