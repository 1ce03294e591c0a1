// Package testenv decides whether a test that needs something from the machine
// (SoftHSM, a CometBFT binary, root, nftables) runs, skips or fails.
//
// # Invariant
//
// Locally a missing prerequisite skips the test with the stated reason. When
// CI=true it fails the test instead: CI must never pass by skipping.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable stops the test because a prerequisite is missing: t.Skip locally,
// t.Fatal under CI. reason says what is missing and how to provide it.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true (a skip here is a failure): %s", reason)
	}
	t.Skipf("skipped: %s", reason)
}

// RequireRoot stops the test (see [Unavailable]) unless it runs as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: "+why)
	}
}
