package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/testenv"
)

// token is a throwaway SoftHSM token holding the validator key.
type token struct {
	conf string // SOFTHSM2_CONF for every process that opens it
	uri  string // pkcs11: URI of the consensus key (pin-source=file:...)
	pin  string // the user PIN, to check that no log shows it
}

// newToken makes an empty SoftHSM token in a temp folder.
// TODO(e2e): switch to softhsmtest.New once softhsm-test/ lands.
func newToken(t *testing.T) token {
	t.Helper()
	lib := os.Getenv("SIGNERD_SOFTHSM2_LIB")
	if lib == "" {
		lib = "/usr/lib/softhsm/libsofthsm2.so"
	}
	if _, err := os.Stat(lib); err != nil {
		testenv.Unavailable(t, "SoftHSM module "+lib+" not found: apt-get install softhsm2 (or set SIGNERD_SOFTHSM2_LIB)")
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		testenv.Unavailable(t, "softhsm2-util not found: apt-get install softhsm2")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pin, so := randHex(t), randHex(t)
	pinFile := filepath.Join(dir, "hsm.pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"SOFTHSM2_CONF=" + conf}, util, "--init-token", "--free", "--label", "validator", "--so-pin", so, "--pin", pin)
	return token{
		conf: conf,
		uri:  fmt.Sprintf("pkcs11:token=validator;object=consensus?module-path=%s&pin-source=file:%s", lib, pinFile),
		pin:  pin,
	}
}

func randHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
