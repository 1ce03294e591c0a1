//go:build !cgo

package softhsmtest

import (
	"errors"
	"testing"

	"github.com/signerd/signerd/internal/testenv"
)

// EnvLib names the environment variable that overrides the SoftHSM module
// path.
const EnvLib = "SIGNERD_SOFTHSM2_LIB"

// DefaultLib is the SoftHSM module path on Debian and Ubuntu.
const DefaultLib = "/usr/lib/softhsm/libsofthsm2.so"

// Token is a SoftHSM token (unavailable without cgo).
type Token struct {
	Module, Conf, Dir, Label, PIN, SOPIN, PINFile string
	Slot                                          uint
}

// URI returns "".
func (tk *Token) URI(object string) string { return "" }

// Env returns nil.
func (tk *Token) Env() []string { return nil }

func noCgo(t testing.TB) {
	t.Helper()
	testenv.Unavailable(t, "SoftHSM tests need cgo (CGO_ENABLED=1 and a C compiler)")
}

// Module stops the test: SoftHSM needs cgo.
func Module(t testing.TB) string { noCgo(t); return "" }

// Util stops the test: SoftHSM needs cgo.
func Util(t testing.TB) string { noCgo(t); return "" }

// New stops the test: SoftHSM needs cgo.
func New(t testing.TB, label string) *Token { noCgo(t); return nil }

// Create fails: SoftHSM needs cgo.
func Create(label string) (*Token, error) { return nil, errNoCgo }

// Available reports that SoftHSM needs cgo.
func Available() error { return errNoCgo }

var errNoCgo = errors.New("SoftHSM tests need cgo (CGO_ENABLED=1 and a C compiler)")

// TokenDir fails: SoftHSM needs cgo.
func (tk *Token) TokenDir() (string, error) { return "", errNoCgo }

// Run runs the tests.
func Run(m *testing.M) int { return m.Run() }
