package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CometBFTVersion is the node version the tests and benchmarks run against.
const CometBFTVersion = "0.38.26"

// CometBFTPath is where the CometBFT binary is looked for: $SIGNERD_COMETBFT,
// else $HOME/.cache/signerd/cometbft-v0.38.26/cometbft (what `make cometbft`
// builds).
func CometBFTPath() string {
	if p := os.Getenv("SIGNERD_COMETBFT"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "signerd", "cometbft-v"+CometBFTVersion, "cometbft")
}

// CometBFT returns the CometBFT v0.38.26 binary, or stops the test (see
// [Unavailable]) when it is missing. A binary of another version fails the
// test: the tests are written against this one.
func CometBFT(t testing.TB) string {
	t.Helper()
	p := CometBFTPath()
	if p == "" {
		Unavailable(t, "no $HOME to find the cometbft binary in: set SIGNERD_COMETBFT or run make cometbft")
	}
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, fmt.Sprintf("CometBFT v%s binary not found at %s: run make cometbft (or set SIGNERD_COMETBFT)", CometBFTVersion, p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "version").Output()
	if v := strings.TrimSpace(string(out)); err != nil || v != CometBFTVersion {
		t.Fatalf("%s version: %q (%v), want %s: rebuild it with make cometbft", p, v, err, CometBFTVersion)
	}
	return p
}
