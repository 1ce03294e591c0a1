package bench

import (
	"os"
	"testing"

	"github.com/signerd/signerd/internal/testenv"
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
	testenv.RemoveBuilds()
	os.Exit(code)
}
