package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultSoftHSMLib is the SoftHSM module path on Debian.
const DefaultSoftHSMLib = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSMLib returns SIGNERD_SOFTHSM2_LIB or the Debian default.
func SoftHSMLib() string {
	if v := os.Getenv("SIGNERD_SOFTHSM2_LIB"); v != "" {
		return v
	}
	return DefaultSoftHSMLib
}

// SoftHSM is a throwaway SoftHSM configuration: a config file and a token
// folder under Dir. Processes use it through SOFTHSM2_CONF (Env).
type SoftHSM struct {
	Dir  string
	Conf string
	Lib  string
}

// Token is an initialised SoftHSM token and its user PIN (kept in a 0600 file).
type Token struct {
	Label   string
	PIN     string
	PinFile string
}

// NewSoftHSM writes a SoftHSM config with its own token folder under dir.
// It fails with a clear message when softhsm2-util or the module is missing.
func NewSoftHSM(dir, lib string) (*SoftHSM, error) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return nil, fmt.Errorf("softhsm2-util not found: install softhsm2 (apt-get install softhsm2)")
	}
	if _, err := os.Stat(lib); err != nil {
		return nil, fmt.Errorf("SoftHSM module %q: %v: install softhsm2 or set SIGNERD_SOFTHSM2_LIB", lib, err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	return &SoftHSM{Dir: dir, Conf: conf, Lib: lib}, nil
}

// Env returns the environment entry pointing SoftHSM at this configuration.
func (s *SoftHSM) Env() string { return "SOFTHSM2_CONF=" + s.Conf }

// InitToken creates a token labelled label with a fresh PIN written to a
// 0600 file beside the config.
func (s *SoftHSM) InitToken(label string) (Token, error) {
	pin := "bench-" + label
	pinFile := filepath.Join(s.Dir, label+".pin")
	if err := os.WriteFile(pinFile, []byte(pin), 0o600); err != nil {
		return Token{}, err
	}
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin+"-so")
	cmd.Env = append(os.Environ(), s.Env())
	if out, err := cmd.CombinedOutput(); err != nil {
		return Token{}, fmt.Errorf("softhsm2-util --init-token %q: %v: %s", label, err, strings.TrimSpace(string(out)))
	}
	return Token{Label: label, PIN: pin, PinFile: pinFile}, nil
}

// KeyURI is the RFC 7512 URI of object in tok, with its module and PIN file.
func (s *SoftHSM) KeyURI(tok Token, object string) string {
	// RFC 7512 query values: keep '/' and ':' readable, escape the rest.
	qs := "module-path=" + pctEncode(s.Lib) + "&pin-source=" + pctEncode("file:"+tok.PinFile)
	return "pkcs11:token=" + pctEncode(tok.Label) + ";object=" + pctEncode(object) + "?" + qs
}

// pctEncode percent-encodes everything outside RFC 7512's unreserved set
// plus '/', ':' and '@'.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/', c == ':', c == '@':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
