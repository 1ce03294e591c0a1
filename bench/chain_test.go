package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testenv"
)

func TestSetTOML(t *testing.T) {
	doc := "proxy_app = \"x\"\n[rpc]\nladdr = \"a\"\n[p2p]\nladdr = \"b\"\n"
	got, err := setTOML(doc, "p2p", "laddr", `"c"`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "proxy_app = \"x\"\n[rpc]\nladdr = \"a\"\n[p2p]\nladdr = \"c\"\n"; got != want {
		t.Fatalf("setTOML = %q, want %q", got, want)
	}
	if _, err := setTOML(doc, "consensus", "timeout_commit", `"0s"`); err == nil {
		t.Fatal("setTOML invented a missing key")
	}
}

// cometbftBin returns the CometBFT binary or stops the test.
func cometbftBin(t testing.TB) string {
	bin := os.Getenv("SIGNERD_COMETBFT")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache/signerd/cometbft-v0.38.26/cometbft")
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "cometbft v0.38.26 binary "+bin+" missing: run `make cometbft` or set SIGNERD_COMETBFT")
	}
	return bin
}

func TestRunChainFilePV(t *testing.T) {
	res, err := RunChain(context.Background(), ChainConfig{CometBFT: cometbftBin(t), Dir: t.TempDir(), Duration: time.Second, Warmup: 2}, ChainFilePV)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks < 2 || res.BlocksPerSec() <= 0 || res.FirstBlock <= 0 {
		t.Fatalf("implausible chain result %+v", res)
	}
	t.Logf("%.1f blocks/s", res.BlocksPerSec())
}
