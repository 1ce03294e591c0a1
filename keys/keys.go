package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/signerd/signerd/hsm"
)

// Signer is a consensus key: a crypto.Signer whose Public() is an
// ed25519.PublicKey and whose Sign(rand, msg, crypto.Hash(0)) returns the
// 64-byte Ed25519 signature of msg, plus Close to release the key (the HSM
// session, or the in-memory private key).
type Signer interface {
	crypto.Signer
	Close() error
}

var (
	_ Signer = (*hsm.Key)(nil)
	_ Signer = (*softKey)(nil)
)

// RefKind says where a key reference points.
type RefKind int

const (
	// RefPKCS11 is a key in a PKCS#11 token, named by an RFC 7512 URI.
	RefPKCS11 RefKind = iota + 1
	// RefFile is a CometBFT priv_validator_key.json (a software key).
	RefFile
)

func (k RefKind) String() string {
	switch k {
	case RefPKCS11:
		return "pkcs11"
	case RefFile:
		return "file"
	}
	return fmt.Sprintf("RefKind(%d)", int(k))
}

// Ref is a parsed key reference: "pkcs11:..." or "file:PATH".
type Ref struct {
	Kind RefKind
	URI  *hsm.URI // for RefPKCS11
	Path string   // for RefFile: as written (relative paths are resolved by Open)
}

// String returns the reference in canonical form (a PKCS#11 URI with any
// pin-value redacted).
func (r Ref) String() string {
	switch r.Kind {
	case RefPKCS11:
		return r.URI.String()
	case RefFile:
		return "file:" + r.Path
	}
	return ""
}

// ParseRef checks the syntax of a key reference without opening anything
// (config validation uses it): "pkcs11:" followed by an RFC 7512 URI (see
// hsm.ParseURI), or "file:PATH" / "file:///ABSPATH" naming a CometBFT
// priv_validator_key.json. The schemes are case-insensitive.
func ParseRef(ref string) (Ref, error) {
	scheme, rest, ok := strings.Cut(ref, ":")
	switch {
	case ok && strings.EqualFold(scheme, "pkcs11"):
		u, err := hsm.ParseURI(ref)
		if err != nil {
			return Ref{}, err
		}
		return Ref{Kind: RefPKCS11, URI: u}, nil
	case ok && strings.EqualFold(scheme, "file"):
		p := rest
		if strings.HasPrefix(p, "//") {
			host, path, _ := strings.Cut(p[2:], "/")
			if host != "" && host != "localhost" {
				return Ref{}, fmt.Errorf("key file:%s names host %q; only local files are supported: use file:/absolute/path", rest, host)
			}
			p = "/" + path
		}
		if p == "" || p == "/" || strings.HasSuffix(p, "/") {
			return Ref{}, fmt.Errorf("key %q names no file; use file:PATH to a priv_validator_key.json", ref)
		}
		if strings.IndexByte(p, 0) >= 0 {
			return Ref{}, errors.New("key file path contains a NUL byte")
		}
		return Ref{Kind: RefFile, Path: p}, nil
	case ref == "":
		return Ref{}, errors.New("key is empty; it must start with pkcs11: (a key in an HSM) or file: (a priv_validator_key.json)")
	}
	// Do not echo the reference: a mistyped pkcs11 URI may carry a PIN.
	shown := scheme
	if !ok || len(shown) > 20 {
		shown = "(no scheme)"
	}
	return Ref{}, fmt.Errorf("key must start with pkcs11: (a key in an HSM) or file: (a priv_validator_key.json), not %q", shown+":")
}

// Open opens the key ref names. A "pkcs11:" URI opens the key in its token
// with hsm.Open (relative pin-source paths resolve against baseDir); a
// "file:PATH" loads a CometBFT priv_validator_key.json as a software key,
// like tmkms softsign (a relative PATH resolves against baseDir; the file
// must not be accessible by group or others). baseDir is the configuration
// file's folder, or the working directory for CLI flags.
func Open(ref string, baseDir string, logger *slog.Logger) (Signer, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch r.Kind {
	case RefPKCS11:
		r.URI.ResolvePaths(baseDir)
		k, err := hsm.Open(r.URI, logger)
		if err != nil {
			return nil, err
		}
		return k, nil
	default:
		path := r.Path
		if !filepath.IsAbs(path) && baseDir != "" {
			path = filepath.Join(baseDir, path)
		}
		k, err := openFileKey(path)
		if err != nil {
			return nil, err
		}
		logger.Info("software key loaded", "file", path, "address", Address(k.pub))
		return k, nil
	}
}

func openFileKey(path string) (*softKey, error) {
	data, err := readSecretFile(path, "key file")
	if err != nil {
		return nil, err
	}
	defer clear(data)
	priv, err := ParsePrivValidatorKey(data)
	if err != nil {
		return nil, fmt.Errorf("key file %q is not a usable priv_validator_key.json: %w", path, err)
	}
	return &softKey{priv: priv, pub: bytes.Clone(priv[32:]), path: path}, nil
}

// softKey is an Ed25519 key held in memory (tmkms calls this softsign). Its
// Sign does not verify: crypto/ed25519 is trusted and this is the hot path.
type softKey struct {
	mu   sync.RWMutex
	priv ed25519.PrivateKey // nil after Close
	pub  ed25519.PublicKey
	path string
}

// Public returns the ed25519.PublicKey.
func (k *softKey) Public() crypto.PublicKey {
	return append(ed25519.PublicKey(nil), k.pub...)
}

// Sign signs msg with Ed25519. opts.HashFunc() must be 0 and no Ed25519ctx
// context may be given.
func (k *softKey) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, fmt.Errorf("key file %q: Ed25519 signs the message itself, not a %v digest; pass crypto.Hash(0)", k.path, opts.HashFunc())
	}
	if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
		return nil, fmt.Errorf("key file %q: Ed25519ctx (a context string) is not supported", k.path)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.priv == nil {
		return nil, fmt.Errorf("key file %q: key is closed", k.path)
	}
	return ed25519.Sign(k.priv, msg), nil
}

// Close zeroes the private key; Sign fails afterwards. Idempotent.
func (k *softKey) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.priv)
	k.priv = nil
	return nil
}
