package hsm

import "crypto/ed25519"

// KeyInfo describes one Ed25519 key pair in a token, as returned by [List].
type KeyInfo struct {
	// Label is the CKA_LABEL (the URI's object), ID the CKA_ID.
	Label string
	ID    []byte
	// Public is the public key read from the public key object.
	Public ed25519.PublicKey
	// HasPrivate reports whether the matching private key was seen. It is
	// only known when List logged in (the URI had a PIN): without a login
	// private objects are invisible and HasPrivate is false.
	HasPrivate bool
	// URI is a ready-to-use key URI for this key (the token-level URI with
	// object and id added), printed with [URI.String] (PIN redacted).
	URI string
}
