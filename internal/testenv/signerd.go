package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds one go build of ./cmd/signerd (a cold cache on 2 cores).
const buildTimeout = 5 * time.Minute

// builds holds the signerd binaries this test process built, by race mode.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[bool]string
	errs map[bool]error
}

// Signerd returns $SIGNERD_BIN, or this module's ./cmd/signerd built once per
// test process into a temp folder (with -race when race is true, so the
// binary reports data races met under real load and reuses the race-built
// packages of `go test -race`). Call [RemoveBuilds] from TestMain.
func Signerd(t testing.TB, race bool) string {
	t.Helper()
	if p := os.Getenv("SIGNERD_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SIGNERD_BIN=%q: %v", p, err)
		}
		return p
	}
	p, err := buildSignerd(race)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func buildSignerd(race bool) (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if p, ok := builds.bins[race]; ok {
		return p, builds.errs[race]
	}
	p, err := goBuildSignerd(race)
	if builds.bins == nil {
		builds.bins, builds.errs = map[bool]string{}, map[bool]error{}
	}
	builds.bins[race], builds.errs[race] = p, err
	return p, err
}

func goBuildSignerd(race bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if err != nil || root == "." {
		return "", fmt.Errorf("finding the module root (go env GOMOD): %v", err)
	}
	if builds.dir == "" {
		if builds.dir, err = os.MkdirTemp("", "signerd-test-bin-"); err != nil {
			return "", err
		}
	}
	out := filepath.Join(builds.dir, "signerd")
	args := []string{"build", "-o", out}
	if race {
		out += "-race"
		args = []string{"build", "-race", "-o", out}
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/signerd")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return "", fmt.Errorf("go build ./cmd/signerd: %v\n%s", err, b)
	}
	return out, nil
}

// RemoveBuilds removes the binaries [Signerd] built in this process.
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir, builds.bins, builds.errs = "", nil, nil
	}
}
