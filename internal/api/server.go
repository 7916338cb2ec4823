// Package api is bwtracker's HTTP side: the read-only REST API, the live
// Server-Sent Events stream, the embedded web dashboard and (when the
// Prometheus helper hands one over) /metrics, behind one set of host, token
// and method checks.
//
// It depends on small interfaces (Live over the internal/live model,
// Querier over the store) rather than on the collector, so it is tested
// without a kernel or a daemon, and it is cgo-free: it never links the BPF
// loader (`make test-cgofree` builds, vets and tests it with CGO_ENABLED=0).
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/bwtracker/bwtracker/internal/api/wire"
	"github.com/bwtracker/bwtracker/internal/live"
	"github.com/bwtracker/bwtracker/internal/store"
	"github.com/bwtracker/bwtracker/ui"
)

// Live is what the API needs from the running collector.
type Live interface {
	// Snapshot is the latest drain.
	Snapshot() live.Snapshot
	// Subscribe delivers each new snapshot until cancel is called. A slow
	// reader may miss snapshots; the channel is never closed by the sender
	// before cancel, or is closed when the collector stops.
	Subscribe() (<-chan live.Snapshot, func())
	// Status describes the daemon.
	Status() live.Status
}

// Querier is what the API needs from the store.
type Querier interface {
	Totals(ctx context.Context, q store.Query) ([]store.Row, error)
	Series(ctx context.Context, q store.Query, step time.Duration) ([]store.Point, error)
}

// runLister is optionally implemented by the Querier (*store.Store does):
// /api/history then reports the daemon's downtime as gaps.
type runLister interface {
	Runs(ctx context.Context, since, until time.Time) ([]store.Run, error)
}

// sizer is optionally implemented by the Querier (*store.Store does) for
// /api/status.
type sizer interface {
	Size() int64
	Path() string
}

// queryTimeout bounds one store query; a busy database gives 503, a query
// string never gives a 5xx.
const queryTimeout = 10 * time.Second

type server struct {
	cfg     Config
	live    Live
	q       Querier
	now     func() time.Time
	hosts   map[string]bool
	anyIP   bool // listening on all interfaces: any IP-literal Host is fine
	token   []byte
	static  http.Handler
	uiBuilt bool
	cur     currentCache
	streams atomic.Int64 // open /api/stream clients
}

// New builds the HTTP handler. live or q may be nil (the endpoints that need
// them then answer 503), which lets `run --no-collector`-style tools reuse it.
func New(cfg Config, live Live, q Querier) (http.Handler, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if err := ValidateConfig(cfg); err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, live: live, q: q, now: cfg.Now, hosts: map[string]bool{}}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.AuthToken != "" {
		s.token = []byte(cfg.AuthToken)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		s.hosts[h] = true
	}
	for _, h := range cfg.AllowedHosts {
		s.hosts[normHost(h)] = true
	}
	lh, _, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(lh); lh == "" || (ip != nil && ip.IsUnspecified()) {
		s.anyIP = true
	} else {
		s.hosts[normHost(lh)] = true
	}
	uifs := cfg.UI
	if uifs == nil {
		uifs = ui.FS()
	}
	if _, err := fs.Stat(uifs, "index.html"); err == nil {
		s.uiBuilt = true
	}
	s.static = http.FileServerFS(uifs)

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.Use(s.recover, s.secure)

	get := func(g gin.IRoutes, path string, h ...gin.HandlerFunc) {
		g.GET(path, h...)
		g.HEAD(path, h...)
	}
	get(r, "/healthz", s.healthz)
	api := r.Group("/api", s.auth(false))
	get(api, "/current", s.current)
	get(api, "/history", historyEndpoint(s, parseHistory, s.history))
	get(api, "/processes", historyEndpoint(s, parseProcesses, s.processes))
	get(api, "/remotes", historyEndpoint(s, parseRemotes, s.remotes))
	get(api, "/summary", historyEndpoint(s, parseSummary, s.summary))
	get(api, "/periods", historyEndpoint(s, parsePeriods, s.periods))
	get(api, "/totals", s.totals)
	get(api, "/status", s.status)
	get(api, "/alerts", s.alertsList)
	get(r, "/api/stream", s.auth(true), s.stream)
	if cfg.Metrics != nil {
		get(r, "/metrics", s.auth(false), gin.WrapH(cfg.Metrics))
	}
	r.NoRoute(s.noRoute)
	return r, nil
}

func normHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// fail answers {"error": msg}.
func fail(c *gin.Context, code int, msg string) {
	c.AbortWithStatusJSON(code, wire.Error{Error: msg})
}

// recover turns a panic into a logged 500 instead of a dropped connection.
// It is a last line of defence: the fuzz tests keep query strings from
// getting here.
func (s *server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			slog.Error("api: handler panic", "path", c.Request.URL.Path, "panic", v)
			if !c.Writer.Written() {
				fail(c, http.StatusInternalServerError, "internal error (logged by the daemon)")
			}
		}
	}()
	c.Next()
}

// secure applies the checks and headers every response gets: read-only
// methods, a Host header we serve (against DNS rebinding), and browser
// security headers. There is deliberately no CORS: the dashboard is
// same-origin.
func (s *server) secure(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	m := c.Request.Method
	if m != http.MethodGet && m != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		fail(c, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: the API is read-only (GET, HEAD)", truncate(m, 16)))
		return
	}
	if !s.hostOK(c.Request.Host) {
		fail(c, http.StatusForbidden, fmt.Sprintf("host %s is not served here: use localhost or the listen address, or start the daemon with --allowed-host NAME", quote(c.Request.Host)))
		return
	}
	// A malformed query string (bad %-escape, ';' separators) would be
	// partly dropped by URL.Query(); refuse it instead.
	if raw := c.Request.URL.RawQuery; raw != "" {
		if _, err := url.ParseQuery(raw); err != nil {
			fail(c, http.StatusBadRequest, "query string: "+truncate(err.Error(), 120)+": use name=value pairs joined by &, with %-escapes")
			return
		}
	}
	c.Next()
}

func (s *server) hostOK(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = normHost(host)
	if host == "" {
		return false
	}
	if s.hosts[host] {
		return true
	}
	// An IP literal cannot be rebound: the page's origin is that address.
	if s.anyIP && net.ParseIP(host) != nil {
		return true
	}
	return false
}

// auth checks the token when one is configured. queryOK lets the stream take
// ?token= because EventSource cannot send headers.
func (s *server) auth(queryOK bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.token == nil || c.IsAborted() {
			return
		}
		var got string
		if a := c.GetHeader("Authorization"); a != "" {
			if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
				got = strings.TrimSpace(a[7:])
			}
		} else if queryOK {
			got = c.Query("token")
		}
		// Constant time, and over digests so that not even the token's
		// length shows in the timing.
		gd, wd := sha256.Sum256([]byte(got)), sha256.Sum256(s.token)
		if got == "" || subtle.ConstantTimeCompare(gd[:], wd[:]) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="bwtracker"`)
			fail(c, http.StatusUnauthorized, "missing or wrong token: send \"Authorization: Bearer TOKEN\" (the token given to bwtracker run --auth-token)")
			return
		}
	}
}

func (s *server) healthz(c *gin.Context) {
	if len(c.Request.URL.RawQuery) > 0 {
		if _, err := newParams(c.Request.URL.Query()); err != nil {
			fail(c, http.StatusBadRequest, err.Error())
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *server) noRoute(c *gin.Context) {
	p := c.Request.URL.Path
	// fs.FS refuses names that are not valid UTF-8 (or hold a NUL) with
	// fs.ErrInvalid, which http.FileServer answers with a 500.
	if !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0 {
		fail(c, http.StatusBadRequest, "invalid path "+quote(p)+": not UTF-8 text")
		return
	}
	if p == "/api" || strings.HasPrefix(p, "/api/") || p == "/metrics" {
		fail(c, http.StatusNotFound, fmt.Sprintf("no endpoint %s: see /api/current, /api/history, /api/processes, /api/remotes, /api/summary, /api/totals, /api/status, /api/alerts, /api/stream", quote(p)))
		return
	}
	if !s.uiBuilt {
		c.Header("Content-Type", "text/plain; charset=utf-8")
		c.String(http.StatusNotFound, "bwtracker: the web dashboard was not built into this binary (run `make`, which bundles ui/); the API is at /api/current\n")
		return
	}
	// Static files only from the embedded FS; http.FileServerFS cleans the
	// path and fs.FS refuses "..", so nothing outside dist/ is reachable.
	// Asset names are not content-hashed: revalidate so an upgrade shows.
	c.Header("Cache-Control", "no-cache")
	s.static.ServeHTTP(c.Writer, c.Request)
}

// ListenAndServe serves h on cfg.Listen until ctx is cancelled, then shuts
// down gracefully (open streams are closed; in-flight requests get 5 s).
func ListenAndServe(ctx context.Context, cfg Config, h http.Handler) error {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w (another bwtracker or program may use the port: pick another with --listen, or --no-web)", cfg.Listen, err)
	}
	if cfg.TLS != nil {
		return serve(ctx, tls.NewListener(ln, cfg.TLS), h, "https")
	}
	return Serve(ctx, ln, h)
}

// Serve is ListenAndServe on an existing listener (tests use 127.0.0.1:0).
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	return serve(ctx, ln, h, "http")
}

// ServeTLS is Serve over TLS with a LoadTLS configuration.
func ServeTLS(ctx context.Context, ln net.Listener, h http.Handler, cfg *tls.Config) error {
	return serve(ctx, tls.NewListener(ln, cfg), h, "https")
}

func serve(ctx context.Context, ln net.Listener, h http.Handler, scheme string) error {
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// No WriteTimeout: the stream is long-lived.
		BaseContext: func(net.Listener) context.Context { return baseCtx },
		ErrorLog:    slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	slog.Info("web: serving API and dashboard", "url", scheme+"://"+ln.Addr().String()+"/")
	select {
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	// Streams never go idle on their own: cancelling the base context ends
	// them, then Shutdown waits for the rest.
	cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("web: shutdown: %w", err)
	}
	srv.Close()
	<-errc
	return nil
}
