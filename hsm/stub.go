//go:build !cgo

package hsm

import (
	"crypto"
	"crypto/ed25519"
	"io"
	"log/slog"
)

// This file keeps the package's surface when cgo is off: URIs still parse
// (config validation works), but nothing can load a PKCS#11 module.

func noPKCS11() error {
	return newError(ErrNoPKCS11, nil, "this signerd was built without cgo, so it cannot load PKCS#11 modules; rebuild with CGO_ENABLED=1")
}

// Key is an Ed25519 private key in a PKCS#11 token (unavailable without cgo).
type Key struct{}

var _ crypto.Signer = (*Key)(nil)

// Open fails: PKCS#11 needs cgo.
func Open(u *URI, logger *slog.Logger) (*Key, error) { return nil, noPKCS11() }

// Public returns nil.
func (k *Key) Public() crypto.PublicKey { return nil }

// Sign fails: PKCS#11 needs cgo.
func (k *Key) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, noPKCS11() }

// Close does nothing.
func (k *Key) Close() error { return nil }

// URI returns nil.
func (k *Key) URI() *URI { return nil }

// Generate fails: PKCS#11 needs cgo.
func Generate(u *URI, logger *slog.Logger) (ed25519.PublicKey, error) { return nil, noPKCS11() }

// Import fails: PKCS#11 needs cgo.
func Import(u *URI, priv ed25519.PrivateKey, logger *slog.Logger) (ed25519.PublicKey, error) {
	return nil, noPKCS11()
}

// List fails: PKCS#11 needs cgo.
func List(u *URI, logger *slog.Logger) ([]KeyInfo, error) { return nil, noPKCS11() }
