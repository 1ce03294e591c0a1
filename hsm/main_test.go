package hsm

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/signerd/signerd/internal/testenv"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

func TestMain(m *testing.M) {
	// Examples run against SoftHSM and cannot skip themselves: without it
	// (and outside CI, where a skip is a failure), leave them out and say so.
	flag.Parse()
	if err := softhsmtest.Available(); err != nil && !testenv.InCI() {
		if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" {
			fmt.Fprintf(os.Stderr, "hsm: skipping examples: %v\n", err)
			_ = flag.Set("test.run", "^(Test|Fuzz)")
		}
	}
	os.Exit(softhsmtest.Run(m))
}
