//go:build cgo

package softhsmtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/signerd/signerd/internal/testenv"
)

// EnvLib names the environment variable that overrides the SoftHSM module
// path.
const EnvLib = "SIGNERD_SOFTHSM2_LIB"

// DefaultLib is the SoftHSM module path on Debian and Ubuntu (package
// softhsm2).
const DefaultLib = "/usr/lib/softhsm/libsofthsm2.so"

// Token is a SoftHSM token initialised for one test, with a random user PIN
// stored in a 0600 file.
type Token struct {
	Module  string // SoftHSM module path (absolute)
	Conf    string // SOFTHSM2_CONF of this test process (shared by all its tokens)
	Dir     string // token directory of this test process
	Label   string // token label
	PIN     string // user PIN (random hex)
	SOPIN   string // security officer PIN (random hex)
	PINFile string // 0600 file holding PIN (with a trailing newline)
	Slot    uint   // slot ID in this process (not stable across processes)
}

// URI returns a key URI for object in this token, with module-path and
// pin-source=file:PINFile. An empty object gives the token-level URI.
func (tk *Token) URI(object string) string {
	var b strings.Builder
	b.WriteString("pkcs11:token=")
	b.WriteString(pathEscape(tk.Label))
	if object != "" {
		b.WriteString(";object=")
		b.WriteString(pathEscape(object))
	}
	b.WriteString("?module-path=")
	b.WriteString(queryEscape(tk.Module))
	b.WriteString("&pin-source=file:")
	b.WriteString(queryEscape(tk.PINFile))
	return b.String()
}

// Env returns the environment entries a child process (signerd, softhsm2-util)
// needs to see this process's tokens.
func (tk *Token) Env() []string { return []string{"SOFTHSM2_CONF=" + tk.Conf} }

// Conservative RFC 7512 escaping: only unreserved characters (and "/" in
// the query) stay unencoded; encoding the others is always valid.
func pathEscape(s string) string  { return escape(s, "") }
func queryEscape(s string) string { return escape(s, "/") }

func escape(s, keep string) string {
	const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(unreserved, c) >= 0 || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// lib returns the SoftHSM module path: $SIGNERD_SOFTHSM2_LIB or DefaultLib.
func lib() string {
	if l := os.Getenv(EnvLib); l != "" {
		return l
	}
	return DefaultLib
}

// Available returns nil if the SoftHSM module is installed, else an error
// saying what is missing and how to install it.
func Available() error {
	l := lib()
	if st, err := os.Stat(l); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("SoftHSM module %s not found (install softhsm2: apt-get install softhsm2, or set %s)", l, EnvLib)
	}
	return nil
}

// Module returns the SoftHSM module path ($SIGNERD_SOFTHSM2_LIB or
// DefaultLib), or stops the test with testenv.Unavailable if it is missing.
func Module(t testing.TB) string {
	t.Helper()
	if err := Available(); err != nil {
		testenv.Unavailable(t, err.Error())
	}
	return lib()
}

// Util returns the path of softhsm2-util, or stops the test with
// testenv.Unavailable. Only tests that run the script or the utility need it;
// New does not.
func Util(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("softhsm2-util")
	if err != nil {
		testenv.Unavailable(t, "softhsm2-util not on PATH (install softhsm2: apt-get install softhsm2)")
	}
	return p
}

// process is the per-process SoftHSM setup: one SOFTHSM2_CONF, one token
// directory and one initialised module handle, made on first use.
var process struct {
	once sync.Once
	err  error
	lib  string
	dir  string
	conf string
	ctx  *pkcs11.Ctx

	mu     sync.Mutex // serialises token creation (free-slot selection)
	labels map[string]bool
}

func setup(lib string) error {
	process.lib = lib
	dir, err := os.MkdirTemp("", "signerd-softhsmtest-")
	if err != nil {
		return err
	}
	process.dir = dir
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "pins"), 0o700); err != nil {
		return err
	}
	process.conf = filepath.Join(dir, "softhsm2.conf")
	conf := fmt.Sprintf("# written by softhsmtest for test process %d\ndirectories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", os.Getpid(), tokens)
	if err := os.WriteFile(process.conf, []byte(conf), 0o600); err != nil {
		return err
	}
	// SoftHSM reads SOFTHSM2_CONF once, in C_Initialize. Set it before the
	// first initialisation in this process; the variable also reaches child
	// processes started later.
	if err := os.Setenv("SOFTHSM2_CONF", process.conf); err != nil {
		return err
	}
	ctx := pkcs11.New(lib)
	if ctx == nil {
		return fmt.Errorf("cannot load SoftHSM module %s", lib)
	}
	if err := ctx.Initialize(); err != nil {
		var pe pkcs11.Error
		if errors.As(err, &pe) && pe == pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return fmt.Errorf("SoftHSM was initialised in this test process before softhsmtest.New, so it read another SOFTHSM2_CONF; call softhsmtest.New before opening any pkcs11 key")
		}
		return fmt.Errorf("C_Initialize of %s: %v", lib, err)
	}
	// Never finalised: this handle keeps SoftHSM initialised for the life of
	// the test process, so hsm's module registry sees
	// CKR_CRYPTOKI_ALREADY_INITIALIZED and never finalises it under another
	// test's feet.
	process.ctx = ctx
	process.labels = map[string]bool{}
	return nil
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// New initialises a new token labelled label (1-32 characters from
// [A-Za-z0-9._-]) in this test process's SoftHSM, with random user and SO
// PINs and the user PIN in a 0600 file. A label can be used once per test
// process, so parallel tests never share a token. It stops the test with
// testenv.Unavailable if SoftHSM is not installed.
//
// The token is created in-process with C_InitToken on SoftHSM's free slot,
// not with softhsm2-util: SoftHSM 2.6.1 does not show a token initialised by
// another process once it is initialised in this one (see the package doc).
func New(t testing.TB, label string) *Token {
	t.Helper()
	Module(t)
	tk, err := Create(label)
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	return tk
}

// Create is New for code without a testing.TB (TestMain, examples): it
// returns an error instead of stopping a test, including when SoftHSM is not
// installed (see [Available]).
func Create(label string) (*Token, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if !labelRE.MatchString(label) {
		return nil, fmt.Errorf("token label %q must be 1-32 characters of [A-Za-z0-9._-]", label)
	}
	l := lib()
	process.once.Do(func() { process.err = setup(l) })
	if process.err != nil {
		return nil, process.err
	}
	if l != process.lib {
		return nil, fmt.Errorf("module %s differs from %s used earlier in this process", l, process.lib)
	}
	pin, err := randomHex(8)
	if err != nil {
		return nil, err
	}
	soPIN, err := randomHex(8)
	if err != nil {
		return nil, err
	}
	tk := &Token{
		Module:  l,
		Conf:    process.conf,
		Dir:     filepath.Join(process.dir, "tokens"),
		Label:   label,
		PIN:     pin,
		SOPIN:   soPIN,
		PINFile: filepath.Join(process.dir, "pins", label+".pin"),
	}
	slot, err := initToken(label, tk.SOPIN, tk.PIN)
	if err != nil {
		return nil, fmt.Errorf("creating token %q: %v", label, err)
	}
	tk.Slot = slot
	if err := os.WriteFile(tk.PINFile, []byte(tk.PIN+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the PIN file of token %q: %v", label, err)
	}
	return tk, nil
}

// TokenDir returns the folder in which SoftHSM stores this token (found by
// its label in token.object). Renaming it makes the token vanish for the
// running process, e.g. to test "token not present" handling.
func (tk *Token) TokenDir() (string, error) {
	want := []byte(fmt.Sprintf("%-32s", tk.Label))
	entries, err := os.ReadDir(tk.Dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(tk.Dir, e.Name(), "token.object"))
		if err == nil && bytes.Contains(data, want) {
			return filepath.Join(tk.Dir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("no SoftHSM token folder holds label %q", tk.Label)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %v", err)
	}
	return hex.EncodeToString(b), nil
}

// initToken initialises SoftHSM's free slot as a token with the given label
// and PINs and returns its slot ID. SoftHSM adds a new free slot after each
// C_InitToken in the same process (measured with 2.6.1).
func initToken(label, soPIN, pin string) (uint, error) {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.labels[label] {
		return 0, fmt.Errorf("label already used in this test process; give each test its own token label")
	}
	ctx := process.ctx
	slots, err := ctx.GetSlotList(false)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %v", err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		return 0, fmt.Errorf("SoftHSM has no free slot")
	}
	if err := ctx.InitToken(free, soPIN, label); err != nil {
		return 0, fmt.Errorf("C_InitToken: %v", err)
	}
	sh, err := ctx.OpenSession(free, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, fmt.Errorf("C_OpenSession: %v", err)
	}
	defer func() { _ = ctx.CloseSession(sh) }()
	if err := ctx.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return 0, fmt.Errorf("C_Login as SO: %v", err)
	}
	if err := ctx.InitPIN(sh, pin); err != nil {
		return 0, fmt.Errorf("C_InitPIN: %v", err)
	}
	if err := ctx.Logout(sh); err != nil {
		return 0, fmt.Errorf("C_Logout: %v", err)
	}
	process.labels[label] = true
	return free, nil
}

// Run runs the tests of a package and then removes this process's SoftHSM
// directory. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }
//
// Without it the directory (a few KB per token) stays in $TMPDIR.
func Run(m *testing.M) int {
	code := m.Run()
	if process.dir != "" {
		_ = os.RemoveAll(process.dir)
	}
	return code
}
