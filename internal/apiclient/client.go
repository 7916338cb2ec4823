// Package apiclient is the one Go client of the daemon's HTTP API, used by
// `bwtracker top`, `check` and `alerts`. It decodes the bodies that
// internal/api/wire defines, turns "nobody listening", "token refused" and
// JSON errors into messages that say what to do, and owns the token
// variable every command reads. It is cgo-free.
package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bwtracker/bwtracker/internal/alerts"
	"github.com/bwtracker/bwtracker/internal/api/wire"
)

// DefaultURL is where `bwtracker run` serves its API unless --listen says
// otherwise.
const DefaultURL = "http://127.0.0.1:8080"

// TokenEnv is the one environment variable holding the API token, for the
// daemon (`run --auth-token`) and every client command (--token).
// DeprecatedTokenEnv is still read (after TokenEnv) with a warning.
const (
	TokenEnv           = "BWTRACKER_TOKEN"
	DeprecatedTokenEnv = "BWTRACKER_AUTH_TOKEN"
)

// TokenEnvVars lists the variables a token flag reads, in order.
var TokenEnvVars = []string{TokenEnv, DeprecatedTokenEnv}

// WarnDeprecatedEnv writes one line to w when only the deprecated token
// variable is set (and so is the one in use).
func WarnDeprecatedEnv(w io.Writer) {
	if os.Getenv(DeprecatedTokenEnv) != "" && os.Getenv(TokenEnv) == "" {
		fmt.Fprintf(w, "bwtracker: %s is deprecated: set %s instead (the same token for the daemon and the clients)\n", DeprecatedTokenEnv, TokenEnv)
	}
}

// Client talks to one daemon.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New checks base ("http://HOST:PORT" or https) and returns a client whose
// requests give up after timeout.
func New(base, token string, timeout time.Duration) (*Client, error) {
	base = strings.TrimRight(base, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want http://HOST:PORT", base)
	}
	return &Client{base: base, token: token, http: &http.Client{Timeout: timeout}}, nil
}

// URL is the daemon's base URL.
func (c *Client) URL() string { return c.base }

// NoDaemonError says nobody answers at the URL.
type NoDaemonError struct {
	URL string
	Err error
}

func (e *NoDaemonError) Error() string {
	return fmt.Sprintf("no bwtracker daemon answers at %s (%v): start one with `sudo bwtracker run` (it serves the API on %s), or point --url at the one you run",
		e.URL, e.Err, strings.TrimPrefix(DefaultURL, "http://"))
}

func (e *NoDaemonError) Unwrap() error { return e.Err }

// RefusedError is a 401/403: the token is missing or wrong.
type RefusedError struct {
	URL    string
	Status string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the daemon at %s refused the request (%s): pass its token with --token or %s", e.URL, e.Status, TokenEnv)
}

// Get fetches path (with its query) and decodes the JSON body into v.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			return &NoDaemonError{c.base, unwrapURL(err)}
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return &RefusedError{c.base, resp.Status}
	case resp.StatusCode != http.StatusOK:
		var e wire.Error
		_ = json.Unmarshal(body, &e) // a non-JSON body is shown as text below
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body[:min(len(body), 200)]))
		}
		return fmt.Errorf("%s%s: %s: %s", c.base, path, resp.Status, e.Error)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s%s answered something that is not the bwtracker API (%v): check --url", c.base, path, err)
	}
	return nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Current is GET /api/current: the live snapshot.
func (c *Client) Current(ctx context.Context) (wire.CurrentResponse, error) {
	var s wire.CurrentResponse
	err := c.Get(ctx, "/api/current", &s)
	return s, err
}

// Remotes is GET /api/remotes for one process, by remote and protocol.
func (c *Client) Remotes(ctx context.Context, pid uint32, top int) ([]wire.RemoteTotal, error) {
	var r wire.RemotesResponse
	err := c.Get(ctx, "/api/remotes?pid="+strconv.FormatUint(uint64(pid), 10)+"&by=remote,protocol&top="+strconv.Itoa(top), &r)
	return r.Remotes, err
}

// Status is GET /api/status.
func (c *Client) Status(ctx context.Context) (wire.StatusResponse, error) {
	var s wire.StatusResponse
	err := c.Get(ctx, "/api/status", &s)
	return s, err
}

// Alerts is GET /api/alerts with q's parameters (all, rule, state).
func (c *Client) Alerts(ctx context.Context, q url.Values) ([]alerts.Alert, error) {
	path := "/api/alerts"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var list []alerts.Alert
	err := c.Get(ctx, path, &list)
	return list, err
}
