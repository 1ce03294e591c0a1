package bench

import (
	"os"
	"testing"

	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

// TestMain doubles as the FilePV baseline process (FilePVProcess re-executes
// the test binary with FilePVServeCommand) and removes the process's SoftHSM
// folder afterwards.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == FilePVServeCommand {
		os.Exit(FilePVServeMain(os.Args[2:], os.Stderr))
	}
	code := softhsmtest.Run(m)
	if signerdDir != "" {
		_ = os.RemoveAll(signerdDir)
	}
	os.Exit(code)
}
