package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Seeds shared by the fuzzers: good queries, edge cases and garbage. `go test`
// runs every Fuzz function over these; `go test -fuzz=FuzzX` explores more.
var querySeeds = []string{
	"",
	"top=10&sort=tx",
	"top=1000&sort=comm",
	"top=0", "top=-1", "top=99999999999999999999", "top=1e3", "top= 5 ",
	"sort=RATE", "sort=", "sort=rate&sort=tx",
	"since=1h", "since=30m&until=5m", "since=7d", "since=2w", "since=1.5d", "since=1d12h30m",
	"since=0s", "since=-1h", "since=1", "since=h", "since=.5h", "since=1..5h", "since=9999999999999h",
	"since=2025-06-01T00:00:00Z&until=2025-06-02T00:00:00Z", "since=2025-06-01", "since=2025-06-01T10:00",
	"since=0001-01-01T00:00:00Z", "since=9999-12-31T23:59:59Z", "since=2025-02-30", "until=now", "since=now",
	"since=1h&step=1s", "since=7d&step=1s", "since=365d&step=1d", "step=0", "step=1ms", "step=1.5s", "step=400d",
	"pid=1", "pid=0", "pid=4194304", "pid=4194305", "pid=-1", "pid=0x10", "pid=%00",
	"comm=curl", "comm=%00", "comm=%ff%fe", "comm=" + strings.Repeat("a", 100), "comm=a%20b",
	"by=remote", "by=remote,protocol", "by=protocol", "by=",
	"token=abc", "x=1", "%zz", "a=1&a=2", ";;;", "since=1h;until=2h", "since=%E2%80%8B1h",
	"since=1µs", "since=1us", "since=1ns&until=0ns", "since=1e9h", "since=NaNh", "since=Infh",
}

// check runs one parser and asserts it either succeeds with sane values or
// fails with a *ParamError (never a panic, never another error type).
func checkErr(t *testing.T, raw string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Param == "" || pe.Msg == "" {
		t.Fatalf("%q: error %v (%T) is not a ParamError naming a parameter", raw, err, err)
	}
}

func checkWindow(t *testing.T, raw string, w window) {
	t.Helper()
	if !w.Since.Before(w.Until) || w.Until.Sub(w.Since) > MaxWindow {
		t.Fatalf("%q: bad window %s .. %s", raw, w.Since, w.Until)
	}
}

func FuzzParseCurrent(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return // the HTTP layer gives an empty or partial query; see FuzzHandlers
		}
		q, err := parseCurrent(v)
		checkErr(t, raw, err)
		if err == nil && (q.Top < 1 || q.Top > MaxTop || q.Sort == "") {
			t.Fatalf("%q: %+v", raw, q)
		}
	})
}

func FuzzParseHistory(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseHistory(v, t0)
		checkErr(t, raw, err)
		if err != nil {
			return
		}
		checkWindow(t, raw, q.window)
		if q.Step < time.Second || buckets(q.window, q.Step) > MaxPoints {
			t.Fatalf("%q: step %s gives %d points", raw, q.Step, buckets(q.window, q.Step))
		}
	})
}

func FuzzParseLists(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		// Each list endpoint's parser: its window and top (0 = no top check).
		for _, parse := range []func() (window, int, error){
			func() (window, int, error) { q, err := parseProcesses(v, t0); return q.window, q.Top, err },
			func() (window, int, error) { q, err := parseRemotes(v, t0); return q.window, q.Top, err },
			func() (window, int, error) { q, err := parseSummary(v, t0); return q.window, 0, err },
			func() (window, int, error) { q, err := parsePeriods(v, t0); return q.window, q.Top, err },
		} {
			w, top, err := parse()
			checkErr(t, raw, err)
			if err != nil {
				continue
			}
			checkWindow(t, raw, w)
			if top != 0 && (top < 1 || top > MaxTop) {
				t.Fatalf("%q: top %d", raw, top)
			}
		}
	})
}

// FuzzHandlers sends arbitrary query strings to every endpoint over a real
// seeded store: the answer is 200 or a 4xx with a JSON error, never a 5xx.
func FuzzHandlers(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	e := newEnv(f, Config{})
	paths := []string{"/api/current", "/api/history", "/api/processes", "/api/remotes", "/api/summary", "/api/periods", "/api/status", "/healthz"}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsAny(raw, " #\r\n\t") || !validQuery(raw) {
			return // not something a client can put on a request line
		}
		for _, p := range paths {
			req := httptest.NewRequest("GET", "/", nil)
			req.URL = &url.URL{Path: p, RawQuery: raw}
			req.RequestURI = p + "?" + raw
			req.Host = "127.0.0.1:8080"
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s?%s: %d %s", p, raw, rec.Code, rec.Body)
			}
			if rec.Code != http.StatusOK && !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("%s?%s: %d without a JSON error: %s", p, raw, rec.Code, rec.Body)
			}
		}
	})
}

func validQuery(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
