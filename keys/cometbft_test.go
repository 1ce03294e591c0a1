package keys

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/testenv"
)

// cometbft returns the CometBFT v0.38.26 binary or stops the test.
func cometbft(t *testing.T) string { return testenv.CometBFT(t) }

func runComet(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("cometbft %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// Against the real CometBFT: its fresh key files parse and display the same
// here, and files written here are read by CometBFT as ours.
func TestCometBFTAgrees(t *testing.T) {
	bin := cometbft(t)
	home := t.TempDir()
	runComet(t, bin, "init", "--home", home)
	pvPath := filepath.Join(home, "config", "priv_validator_key.json")
	nkPath := filepath.Join(home, "config", "node_key.json")

	data, err := os.ReadFile(pvPath)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivValidatorKey(data)
	if err != nil {
		t.Fatalf("cometbft's fresh key: %v", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	if got, want := PubKeyJSON(pub)+"\n", runComet(t, bin, "show-validator", "--home", home); got != want {
		t.Errorf("PubKeyJSON = %q, cometbft: %q", got, want)
	}
	if !bytes.Equal(MarshalPrivValidatorKey(priv), data) {
		t.Errorf("re-encoding differs from cometbft's file")
	}
	id, created, err := LoadOrCreateIdentity(nkPath)
	if err != nil || created {
		t.Fatalf("node_key.json as identity: %v", err)
	}
	if got, want := NodeID(id.Public().(ed25519.PublicKey))+"\n", runComet(t, bin, "show-node-id", "--home", home); got != want {
		t.Errorf("NodeID = %q, cometbft: %q", got, want)
	}

	// Our files, in CometBFT's place.
	_, mine, _ := ed25519.GenerateKey(nil)
	if err := os.WriteFile(pvPath, MarshalPrivValidatorKey(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := runComet(t, bin, "show-validator", "--home", home), PubKeyJSON(mine.Public().(ed25519.PublicKey))+"\n"; got != want {
		t.Errorf("cometbft reads our priv_validator_key.json as %q, want %q", got, want)
	}
	os.Remove(nkPath)
	newID, created, err := LoadOrCreateIdentity(nkPath)
	if err != nil || !created {
		t.Fatalf("creating identity: %v", err)
	}
	if got, want := runComet(t, bin, "show-node-id", "--home", home), NodeID(newID.Public().(ed25519.PublicKey))+"\n"; got != want {
		t.Errorf("cometbft reads our identity as %q, want %q", got, want)
	}
}
