// Package testenv decides what a test does when something it needs from the
// machine is missing (a program such as chromium or shellcheck, an npm
// package, root).
//
// `make test` installs every test dependency first (scripts/deps.sh --test)
// and sets BWTRACKER_REQUIRE_TEST_DEPS=1, and CI sets CI=true: then a missing
// dependency FAILS the test, so a green run really ran everything. A plain
// `go test` by hand skips such a test loudly instead.
//
// Root is different: tests that load BPF programs skip when not root even
// under `make test` (they cannot be installed), unless CI is set.
package testenv

import (
	"os"
	"testing"
)

// Strict reports whether missing test dependencies must fail tests.
func Strict() bool {
	return os.Getenv("BWTRACKER_REQUIRE_TEST_DEPS") == "1" || os.Getenv("CI") != ""
}

// Missing fails (strict) or loudly skips the test because what it needs is
// missing. fix tells the reader how to get it.
func Missing(t testing.TB, what, fix string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s is missing: %s (make test installs test dependencies with scripts/deps.sh --test)", what, fix)
	}
	t.Skipf("!!! SKIPPED: %s is missing: %s (`make test` installs it) !!!", what, fix)
}

// NeedRoot skips (or fails under CI) a test that must run as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("not root: %s (CI runs as root)", why)
	}
	t.Skipf("!!! SKIPPED: not root: %s (run `sudo make test`) !!!", why)
}
