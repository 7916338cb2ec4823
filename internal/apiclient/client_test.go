package apiclient

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/api/wire"
	"github.com/bwtracker/bwtracker/internal/live"
)

func TestClient(t *testing.T) {
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.RequestURI()
		switch r.URL.Path {
		case "/api/current":
			w.Write([]byte(`{"time":"2026-12-01T20:30:00Z","interval_ms":1000,"tx_bytes":5,"process_count":1,"processes":[{"pid":42,"comm":"curl","tx_bytes":5}]}`))
		case "/api/remotes":
			w.Write([]byte(`{"remotes":[{"remote_ip":"198.18.0.1","protocol":"tcp","tx_bytes":7,"rx_bytes":9}]}`))
		case "/api/status":
			w.Write([]byte(`{"hook":"tracepoint","drops":{"flows_map_full":3}}`))
		case "/api/bad":
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"since: \"x\": want a duration"}`))
		case "/api/locked":
			w.WriteHeader(401)
		default:
			w.Write([]byte(`<html>not json</html>`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c, err := New(srv.URL+"/", "s3cret", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := c.Current(ctx)
	if err != nil || cur.TxBytes != 5 || cur.ProcessCount != 1 || len(cur.Processes) != 1 || !reflect.DeepEqual(cur.Processes[0], live.ProcRate{PID: 42, Comm: "curl", TxBytes: 5}) {
		t.Fatalf("current: %+v %v", cur, err)
	}
	if gotAuth != "Bearer s3cret" {
		t.Errorf("Authorization %q", gotAuth)
	}
	rem, err := c.Remotes(ctx, 42, 50)
	if err != nil || len(rem) != 1 || rem[0] != (wire.RemoteTotal{RemoteIP: "198.18.0.1", Protocol: "tcp", TxBytes: 7, RxBytes: 9}) {
		t.Fatalf("remotes: %+v %v", rem, err)
	}
	if gotPath != "/api/remotes?pid=42&by=remote,protocol&top=50" {
		t.Errorf("remotes path %q", gotPath)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Hook != "tracepoint" || st.Drops["flows_map_full"] != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
	var v struct{}
	if err := c.Get(ctx, "/api/bad", &v); err == nil || !strings.Contains(err.Error(), `400 Bad Request: since: "x": want a duration`) {
		t.Errorf("400: %v", err)
	}
	var re *RefusedError
	if err := c.Get(ctx, "/api/locked", &v); !errors.As(err, &re) || !strings.Contains(err.Error(), "--token or "+TokenEnv) {
		t.Errorf("401: %v", err)
	}
	if err := c.Get(ctx, "/other", &v); err == nil || !strings.Contains(err.Error(), "not the bwtracker API") {
		t.Errorf("html: %v", err)
	}

	// Nobody listening: a port that was just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, _ = New("http://"+addr, "", time.Second)
	var nd *NoDaemonError
	if _, err := c.Current(ctx); !errors.As(err, &nd) || !strings.Contains(err.Error(), "sudo bwtracker run") {
		t.Errorf("closed port: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := New(bad, "", time.Second); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func TestWarnDeprecatedEnv(t *testing.T) {
	var b bytes.Buffer
	t.Setenv(TokenEnv, "")
	t.Setenv(DeprecatedTokenEnv, "old")
	WarnDeprecatedEnv(&b)
	if !strings.Contains(b.String(), DeprecatedTokenEnv+" is deprecated: set "+TokenEnv) {
		t.Errorf("no deprecation line: %q", b.String())
	}
	b.Reset()
	t.Setenv(TokenEnv, "new")
	WarnDeprecatedEnv(&b)
	if b.Len() != 0 {
		t.Errorf("warned with %s set: %q", TokenEnv, b.String())
	}
}
