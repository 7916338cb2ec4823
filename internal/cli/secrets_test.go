package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A token file that group or others can read is refused with the chmod
// that fixes it; bad TLS files are usage errors naming the flag.
func TestRunRefusesOpenSecrets(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o644)
	os.Chmod(tok, 0o644)
	db := filepath.Join(dir, "x.db")
	code, _, stderr := runCLI("run", "--db", db, "--listen", "127.0.0.1:19321", "--auth-token-file", tok)
	if code != 2 || !strings.Contains(stderr, "chmod 600 "+tok) || !strings.Contains(stderr, "0644") {
		t.Errorf("0644 token file: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI("run", "--db", db, "--listen", "127.0.0.1:19321", "--tls-cert-file", filepath.Join(dir, "nope.pem"), "--tls-key-file", tok)
	if code != 2 || !strings.Contains(stderr, "--tls-cert-file") || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing cert: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI("run", "--db", db, "--listen", "127.0.0.1:19321", "--tls-client-ca", tok)
	if code != 2 || !strings.Contains(stderr, "--tls-client-ca needs") {
		t.Errorf("client CA without cert: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(db); err == nil {
		t.Errorf("a refused start created %s", db)
	}
}

func TestTokenOnCommandLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"run", "--auth-token", "x"}, true},
		{[]string{"run", "--auth-token=x"}, true},
		{[]string{"run", "-auth-token", "x"}, true},
		{[]string{"run", "--auth-token-file", "/f"}, false},
		{[]string{"run"}, false},
		{[]string{"run", "--", "--auth-token"}, false},
	} {
		if got := tokenOnCommandLine(c.args); got != c.want {
			t.Errorf("%v: %v, want %v", c.args, got, c.want)
		}
	}
}
