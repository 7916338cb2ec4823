package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultListen is where `run` serves the API and dashboard unless --listen
// says otherwise: loopback only.
const DefaultListen = "127.0.0.1:8080"

// Config is everything the HTTP server needs besides its data sources.
type Config struct {
	// Listen is host:port (DefaultListen when empty).
	Listen string
	// AuthToken, when set, is required on every /api/ and /metrics request
	// as "Authorization: Bearer TOKEN" (the stream also takes ?token=,
	// because browsers' EventSource cannot set headers). Mandatory when
	// Listen is not a loopback address (see ValidateConfig).
	AuthToken string
	// AllowedHosts are extra host names accepted in the Host header (for a
	// reverse proxy or a LAN name). localhost, loopback addresses and the
	// listen address are always accepted.
	AllowedHosts []string
	// Version is reported by /api/status.
	Version string
	// Metrics, when non-nil, is mounted at /metrics under the same host and
	// token rules as the API.
	Metrics http.Handler
	// Alerts, when set, serves /api/alerts and the alerting part of
	// /api/status (run --rules / --alert); without it /api/alerts is [].
	Alerts Alerter
	// Exports, when set, adds the state of each named exporter ("otlp") to
	// /api/status under "exports"; each function must be cheap and safe for
	// concurrent use.
	Exports map[string]func() any
	// UI overrides the embedded dashboard (tests); nil means ui.FS().
	UI fs.FS
	// Now overrides the clock used to resolve relative windows (tests).
	Now func() time.Time
	// TLS, when set (LoadTLS), serves HTTPS instead of HTTP.
	TLS *tls.Config
}

// ValidateConfig checks a Config before the server starts: the listen
// address must parse, and a non-loopback address needs a token. `run` calls
// it and refuses to start with its message.
func ValidateConfig(cfg Config) error {
	listen := cfg.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %v: give host:port, e.g. %s", listen, err, DefaultListen)
	}
	if port == "" {
		return fmt.Errorf("--listen %q: missing port, e.g. %s", listen, DefaultListen)
	}
	if strings.ContainsAny(cfg.AuthToken, " \t\r\n") {
		return errors.New("--auth-token: the token must not contain whitespace (check the token file for a stray newline in the middle)")
	}
	for _, h := range cfg.AllowedHosts {
		if h == "" || strings.ContainsAny(h, " /\t\r\n") {
			return fmt.Errorf("--allowed-host %q: give a bare host name such as bwtracker.lan (no scheme, path or spaces)", h)
		}
	}
	if isLoopbackHost(host) {
		return nil
	}
	if cfg.AuthToken == "" {
		what := "a non-loopback address"
		if host == "" || host == "0.0.0.0" || host == "::" {
			what = "all interfaces"
		}
		return fmt.Errorf("--listen %s exposes the API on %s, which shows who talks to whom on this machine: "+
			"set --auth-token (or --auth-token-file) to require a token, or listen on %s", listen, what, DefaultListen)
	}
	if len(cfg.AuthToken) < 16 {
		return fmt.Errorf("--auth-token is %d characters: use at least 16 on a non-loopback address (e.g. `openssl rand -hex 16`)", len(cfg.AuthToken))
	}
	return nil
}

// isLoopbackHost is true for localhost and loopback IPs; "" (all interfaces)
// is not loopback.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
