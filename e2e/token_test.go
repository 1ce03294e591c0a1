package e2e

import (
	"fmt"
	"sync/atomic"
	"testing"

	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

// token is a throwaway SoftHSM token (softhsm-test fixture) that will hold
// the validator key.
type token struct {
	conf string // SOFTHSM2_CONF for every process that opens it
	uri  string // pkcs11: URI of the consensus key (pin-source=file:...)
	pin  string // the user PIN, to check that no output or log shows it
}

var tokenSeq atomic.Int32

// newToken makes an empty token, or stops the test (skip locally, fail under
// CI) when SoftHSM is not installed.
func newToken(t *testing.T) token {
	t.Helper()
	tk := softhsmtest.New(t, fmt.Sprintf("e2e-%d", tokenSeq.Add(1)))
	return token{conf: tk.Conf, uri: tk.URI("consensus"), pin: tk.PIN}
}
