//go:build cgo

package hsm

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"
)

// p11 is the part of *pkcs11.Ctx that keys use. It is the test seam: the
// same code runs against SoftHSM and against a pure-Go fake that can make a
// token vanish or return a bad signature.
type p11 interface {
	GetInfo() (pkcs11.Info, error)
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetSlotInfo(slotID uint) (pkcs11.SlotInfo, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error
}

var _ p11 = (*pkcs11.Ctx)(nil)

// module is one loaded PKCS#11 library, shared by every key and operation
// of the process that names the same file.
type module struct {
	key  string // registry key: cleaned, symlink-resolved path
	path string // path as first given (for messages)
	ctx  *pkcs11.Ctx
	refs int
	// owned: this registry's C_Initialize returned CKR_OK, so it also calls
	// C_Finalize when the last reference goes. If the library was already
	// initialised by someone else in this process (another Ctx, a test
	// fixture), it is left initialised.
	owned bool
}

// modules is the process-wide registry. C_Initialize and C_Finalize act on
// the whole process, so they must happen once per library, not per key.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

func moduleError(cause error, format string, args ...any) error {
	return newError(ErrModule, cause, fmt.Sprintf(format, args...))
}

// registryKey returns the registry key of a module path: cleaned, and with
// symlinks resolved so two spellings of one library share one
// initialisation.
func registryKey(path string) string {
	clean := filepath.Clean(path)
	if real, err := filepath.EvalSymlinks(clean); err == nil {
		return real
	}
	return clean
}

// acquireModule loads and initialises the library at path, or takes another
// reference to it. Each successful call must be paired with release.
func acquireModule(path string, logger *slog.Logger) (*module, error) {
	key := registryKey(path)
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[key]; m != nil {
		m.refs++
		return m, nil
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, moduleError(err, "pkcs11 module %q does not exist; install the HSM's PKCS#11 library or fix module-path", path)
	case err != nil:
		return nil, moduleError(err, "pkcs11 module %q: %v", path, err)
	case !st.Mode().IsRegular():
		return nil, moduleError(nil, "pkcs11 module %q is not a regular file; module-path must name the library (.so)", path)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, moduleError(nil, "pkcs11 module %q cannot be loaded (not a PKCS#11 shared library, wrong architecture, or missing dependencies; check with: ldd %s)", path, path)
	}
	owned := true
	if err := ctx.Initialize(); err != nil {
		if !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			ctx.Destroy()
			return nil, moduleError(err, "pkcs11 module %q failed to initialise: %v", path, err)
		}
		owned = false
	}
	logger.Debug("pkcs11 module loaded", "module", path, "initialised_here", owned)
	m := &module{key: key, path: path, ctx: ctx, refs: 1, owned: owned}
	modules.m[key] = m
	return m, nil
}

// release drops one reference; the last one finalises (if this registry
// initialised the library) and unloads it.
func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.m, m.key)
	if m.owned {
		_ = m.ctx.Finalize() // nothing useful to do with an error at teardown
	}
	m.ctx.Destroy()
}

// isCode reports whether err is (or wraps) the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	var pe pkcs11.Error
	return errors.As(err, &pe) && uint(pe) == code
}

// errCode returns the PKCS#11 return value in err, or 0 (CKR_OK) if err
// carries none.
func errCode(err error) uint {
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return uint(pe)
	}
	return 0
}
