package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"syscall"
)

// maxPINFileSize caps a PIN file: PKCS#11 PINs are short (SoftHSM allows up
// to 255 bytes); a bigger file is the wrong file.
const maxPINFileSize = 4096

// pinSource is a parsed pin-source value: a file path or an environment
// variable name.
type pinSource struct {
	path       string // file path (absolute or relative)
	fileScheme bool   // written as file:PATH (kept by ResolvePaths)
	env        string // environment variable name (env:NAME)
}

var (
	schemeRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// parsePINSource parses pin-source: "file:PATH", "file:///ABSPATH", a bare
// PATH (RFC 7512: a value that is not a URI is a file name) or "env:NAME".
// The value is used literally after the pkcs11 URI's own percent-decoding (no
// second decoding of the inner file: URI).
func parsePINSource(s string) (pinSource, error) {
	switch {
	case s == "":
		return pinSource{}, uriError("pin-source is empty")
	case strings.HasPrefix(s, "|"):
		return pinSource{}, uriError("pin-source programs (|command) are not supported; use pin-source=file:PATH or env:VARNAME")
	case strings.HasPrefix(s, "env:"):
		name := s[len("env:"):]
		if !envNameRE.MatchString(name) {
			return pinSource{}, uriError("pin-source env:%s is not a valid environment variable name (letters, digits, _; not starting with a digit)", name)
		}
		return pinSource{env: name}, nil
	case strings.HasPrefix(s, "file:"):
		p := s[len("file:"):]
		if strings.HasPrefix(p, "//") {
			host, rest, _ := strings.Cut(p[2:], "/")
			if host != "" && host != "localhost" {
				return pinSource{}, uriError("pin-source file uri names host %q; only local files are supported: use file:/absolute/path", host)
			}
			p = "/" + rest
		}
		if p == "" || p == "/" {
			return pinSource{}, uriError("pin-source %q names no file", s)
		}
		return pinSource{path: p, fileScheme: true}, nil
	case schemeRE.MatchString(s):
		scheme := s[:strings.IndexByte(s, ':')]
		return pinSource{}, uriError("pin-source scheme %q is not supported; use file:PATH or env:VARNAME (write a path containing \":\" as file:PATH)", scheme)
	}
	return pinSource{path: s}, nil
}

func pinError(cause error, format string, args ...any) error {
	return newError(ErrPINSource, cause, fmt.Sprintf(format, args...))
}

// readPIN returns the user PIN named by u. The caller zeroes it after use.
// An unreadable source is an error, never an empty PIN.
func (u *URI) readPIN() ([]byte, error) {
	if u.pinValue != "" {
		return []byte(u.pinValue), nil
	}
	if u.PinSource == "" {
		return nil, pinError(nil, "key uri %s has no pin-source; add ?pin-source=file:/path/to/pin (a file readable only by its owner, chmod 600)", u)
	}
	ps, err := parsePINSource(u.PinSource)
	if err != nil {
		return nil, pinError(err, "%v", err)
	}
	if ps.env != "" {
		v, ok := os.LookupEnv(ps.env)
		if !ok {
			return nil, pinError(nil, "pin-source env:%s: environment variable %s is not set; export it or use pin-source=file:PATH", ps.env, ps.env)
		}
		pin := []byte(strings.TrimRight(v, "\r\n"))
		if len(pin) == 0 {
			return nil, pinError(nil, "pin-source env:%s: environment variable %s is empty", ps.env, ps.env)
		}
		return pin, nil
	}
	return readPINFile(ps.path)
}

// readPINFile reads a PIN file: it must be a regular file (symlinks to one are
// fine) that neither group nor others can read, write or execute.
func readPINFile(path string) ([]byte, error) {
	// O_NONBLOCK: a FIFO in place of the file must not hang the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, pinError(err, "pin file %q does not exist; create it with the token's user PIN (chmod 600) or fix pin-source", path)
		case errors.Is(err, fs.ErrPermission):
			return nil, pinError(err, "pin file %q cannot be opened: permission denied; it must be readable by the user running signerd", path)
		}
		return nil, pinError(err, "pin file %q cannot be opened: %v", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, pinError(err, "pin file %q: %v", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, pinError(nil, "pin file %q is not a regular file (%s); point pin-source at a file holding the PIN", path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, pinError(nil, "pin file %q is accessible by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPINFileSize+1))
	if err != nil {
		return nil, pinError(err, "pin file %q cannot be read: %v", path, err)
	}
	if len(data) > maxPINFileSize {
		clear(data)
		return nil, pinError(nil, "pin file %q is larger than %d bytes; is pin-source the right file?", path, maxPINFileSize)
	}
	pin := bytes.TrimRight(data, "\r\n")
	if len(pin) == 0 {
		return nil, pinError(nil, "pin file %q is empty; write the token's user PIN into it", path)
	}
	return pin, nil
}
