//go:build cgo

package hsm

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/miekg/pkcs11"
)

// selfTestMessage is signed once when a key is opened, generated or
// imported, to prove the token signs with the private key that belongs to
// the stored public key. It cannot be mistaken for CometBFT sign bytes: those
// are length-delimited protobuf, and this message's first byte ('s' = 115)
// announces more bytes than follow.
var selfTestMessage = []byte("signerd: pkcs11 key self-test")

// Key is an Ed25519 private key in a PKCS#11 token, used as a
// [crypto.Signer]. It owns one logged-in session that no other Key shares;
// Sign runs C_SignInit and C_Sign back to back on it under the Key's mutex.
type Key struct {
	mu      sync.Mutex
	ctx     p11
	release func() // drops the module reference; nil after Close
	uri     *URI   // private copy: reconnecting selects the same token and key
	pin     []byte // kept to log in again after a lost session; zeroed by Close
	pub     ed25519.PublicKey
	mech    []*pkcs11.Mechanism // CKM_EDDSA, no parameters (pure Ed25519)
	logger  *slog.Logger

	token   string // token label, for messages
	label   string // key label, for messages
	session pkcs11.SessionHandle
	handle  pkcs11.ObjectHandle
	live    bool // session and handle are usable
	closed  bool
}

var _ crypto.Signer = (*Key)(nil)

func discardIfNil(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}

// Open opens the one Ed25519 private key that u selects by object and/or id
// in the one token u selects, logs in with the PIN from pin-source (or
// pin-value), reads the public key from the public key object beside it, and
// proves the pair by signing and verifying a self-test message. type, if
// given, must be "private".
//
// The module is initialised once per process (see the package doc); the Key
// holds its own session. Close it when done.
func Open(u *URI, logger *slog.Logger) (*Key, error) {
	logger = discardIfNil(logger)
	if err := checkKeyURI(u, "open"); err != nil {
		return nil, err
	}
	pin, err := u.readPIN()
	if err != nil {
		return nil, err
	}
	mod, err := acquireModule(u.ModulePath, logger)
	if err != nil {
		clear(pin)
		return nil, err
	}
	k, err := openWith(mod.ctx, u, pin, logger)
	if err != nil {
		clear(pin)
		mod.release()
		return nil, err
	}
	k.release = mod.release
	return k, nil
}

// checkKeyURI checks the attributes an operation on one key needs.
func checkKeyURI(u *URI, op string) error {
	if u == nil {
		return uriError("no key uri")
	}
	if u.ModulePath == "" {
		return uriError("module-path is missing; add ?module-path=/absolute/path/to/module.so")
	}
	if u.Type == "public" {
		return uriError("type=public selects a public key, but %s needs the private key; drop type or use type=private", op)
	}
	if u.Object == "" && len(u.ID) == 0 {
		return uriError("the key uri names no key; add object=LABEL (list keys with: signerd keys list --key <token URI>)")
	}
	return nil
}

// openWith opens a key through ctx; pin becomes the Key's.
func openWith(ctx p11, u *URI, pin []byte, logger *slog.Logger) (*Key, error) {
	k := &Key{
		ctx:    ctx,
		uri:    u.Clone(),
		pin:    pin,
		mech:   []*pkcs11.Mechanism{pkcs11.NewMechanism(CKM_EDDSA, nil)},
		logger: logger,
		token:  u.Token,
		label:  u.Object,
	}
	priv, err := k.connect(false)
	if err != nil {
		return nil, err
	}
	pub, err := findPublicKey(ctx, k.session, priv, k.token)
	if err != nil {
		k.disconnect()
		return nil, err
	}
	k.pub = pub
	if err := k.selfTest(); err != nil {
		k.disconnect()
		return nil, err
	}
	logger.Info("pkcs11 key opened", "key", k.uri.String(), "token", k.token, "object", k.label, "public_key", fmt.Sprintf("%x", []byte(pub)))
	return k, nil
}

// connect finds the token, opens a session, logs in and finds the key
// handle. gone selects "is not present" wording for a token that vanished.
func (k *Key) connect(gone bool) (object, error) {
	tok, err := findToken(k.ctx, k.uri, gone)
	if err != nil {
		return object{}, err
	}
	k.token = tok.label
	sh, err := k.ctx.OpenSession(tok.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return object{}, p11Error(err, "opening a session on token %q failed", tok.label)
	}
	if err := login(k.ctx, sh, k.pin, tok.label); err != nil {
		_ = k.ctx.CloseSession(sh)
		return object{}, err
	}
	priv, err := findPrivateKey(k.ctx, sh, k.uri, tok.label)
	if err != nil {
		_ = k.ctx.CloseSession(sh)
		return object{}, err
	}
	if v, err := getAttrs(k.ctx, sh, priv.handle, pkcs11.CKA_SIGN); err == nil && !attrBool(v[0]) {
		_ = k.ctx.CloseSession(sh)
		return object{}, newError(ErrWrongKeyType, nil, fmt.Sprintf("%s in token %q may not sign (CKA_SIGN is false)", keyDesc(k.uri), tok.label))
	}
	if v, err := getAttrs(k.ctx, sh, priv.handle, pkcs11.CKA_ALWAYS_AUTHENTICATE); err == nil && attrBool(v[0]) {
		_ = k.ctx.CloseSession(sh)
		return object{}, newError(ErrWrongKeyType, nil, fmt.Sprintf(
			"%s in token %q requires a PIN for every signature (CKA_ALWAYS_AUTHENTICATE), which signerd does not support; use a key without it", keyDesc(k.uri), tok.label))
	}
	k.session, k.handle, k.live = sh, priv.handle, true
	if k.label == "" {
		k.label = priv.label
	}
	return priv, nil
}

// disconnect closes the key's session (never C_Logout or C_CloseAllSessions:
// login state is shared with the process's other sessions on the token).
func (k *Key) disconnect() {
	if k.live {
		_ = k.ctx.CloseSession(k.session)
	}
	k.live = false
}

// Public returns the key's ed25519.PublicKey, read when the key was opened.
func (k *Key) Public() crypto.PublicKey {
	return ed25519.PublicKey(bytes.Clone(k.pub))
}

// Sign signs msg with pure Ed25519 (CKM_EDDSA, no parameters) and returns
// the 64-byte signature after verifying it against the public key; a
// signature that does not verify is an error matching [ErrBadSignature] and
// is never returned. opts.HashFunc() must be 0 (Ed25519 signs the message,
// not a digest); Ed25519ph and Ed25519ctx are refused. rand is unused.
//
// If the session was lost (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
// CKR_USER_NOT_LOGGED_IN, CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID,
// CKR_OPERATION_ACTIVE, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_DEVICE_ERROR), Sign finds the token again, opens a new session, logs in,
// finds the key again and retries once. While the token is missing it fails
// with an error matching [ErrTokenNotFound] ("token ... is not present") and
// tries again on the next call.
func (k *Key) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, fmt.Errorf("pkcs11 key %q: Ed25519 signs the message itself, not a %v digest; pass crypto.Hash(0)", k.label, opts.HashFunc())
	}
	if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
		return nil, fmt.Errorf("pkcs11 key %q: Ed25519ctx (a context string) is not supported; CKM_EDDSA signs pure Ed25519", k.label)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, newError(ErrClosed, nil, fmt.Sprintf("pkcs11 key %q is closed", k.label))
	}
	sig, err := k.signLocked(msg)
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k.pub, msg, sig) {
		return nil, newError(ErrBadSignature, nil, fmt.Sprintf(
			"token %q returned a %d-byte signature from %s that does not verify against its public key; not using it (check the token and the key pair)", k.token, len(sig), keyDesc(k.uri)))
	}
	return sig, nil
}

// signLocked signs on the current session, reconnecting once if the session
// is gone. k.mu is held.
func (k *Key) signLocked(msg []byte) ([]byte, error) {
	if !k.live {
		if err := k.reconnect(nil); err != nil {
			return nil, err
		}
	}
	sig, err := k.rawSign(msg)
	if err == nil {
		return sig, nil
	}
	if !sessionLost(err) {
		return nil, p11Error(err, "token %q failed to sign with %s", k.token, keyDesc(k.uri))
	}
	if err := k.reconnect(err); err != nil {
		return nil, err
	}
	sig, err = k.rawSign(msg)
	if err != nil {
		if sessionLost(err) {
			k.disconnect()
		}
		return nil, p11Error(err, "token %q failed to sign with %s after logging in again", k.token, keyDesc(k.uri))
	}
	return sig, nil
}

// rawSign is C_SignInit + C_Sign on the cached session and handle.
func (k *Key) rawSign(msg []byte) ([]byte, error) {
	if err := k.ctx.SignInit(k.session, k.mech, k.handle); err != nil {
		return nil, err
	}
	return k.ctx.Sign(k.session, msg)
}

// reconnect replaces a lost session. cause is the error that showed the loss
// (nil when the previous reconnect failed).
func (k *Key) reconnect(cause error) error {
	if cause != nil {
		k.logger.Warn("pkcs11 session lost; logging in again", "token", k.token, "object", k.label, "error", cause.Error())
	}
	k.disconnect()
	priv, err := k.connect(true)
	if err != nil {
		k.logger.Error("pkcs11 reconnect failed", "token", k.token, "object", k.label, "error", err.Error())
		return err
	}
	// The key found again must still be the key whose public key we hold:
	// every signature is verified anyway, this just names the problem.
	if pub, err := findPublicKey(k.ctx, k.session, priv, k.token); err == nil && !bytes.Equal(pub, k.pub) {
		k.disconnect()
		return newError(ErrWrongKeyType, nil, fmt.Sprintf(
			"after reconnecting, %s in token %q has a different public key than when it was opened; refusing to sign (restart signerd if the key was replaced on purpose)", keyDesc(k.uri), k.token))
	}
	k.logger.Info("pkcs11 session restored", "token", k.token, "object", k.label)
	return nil
}

// sessionLost reports whether err means the session, login or handle is gone
// and a fresh session may succeed.
func sessionLost(err error) bool {
	switch errCode(err) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_KEY_HANDLE_INVALID, // C_SignInit's code for a stale key handle
		pkcs11.CKR_OPERATION_ACTIVE,   // a half-done operation only a new session clears
		pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_DEVICE_ERROR:
		return true
	}
	return false
}

// selfTest signs selfTestMessage and checks it against the public key.
func (k *Key) selfTest() error {
	sig, err := k.rawSign(selfTestMessage)
	if err != nil {
		if errCode(err) == pkcs11.CKR_MECHANISM_INVALID {
			return newError(ErrWrongKeyType, err, fmt.Sprintf("token %q does not support CKM_EDDSA (PKCS#11 3.0 Ed25519 signing)", k.token))
		}
		return p11Error(err, "token %q failed to sign a self-test message with %s", k.token, keyDesc(k.uri))
	}
	if !ed25519.Verify(k.pub, selfTestMessage, sig) {
		return newError(ErrBadSignature, nil, fmt.Sprintf(
			"%s in token %q does not sign for its stored public key (self-test signature does not verify); the private and public key objects do not belong together", keyDesc(k.uri), k.token))
	}
	return nil
}

// Close closes the key's session, forgets the PIN and releases the module
// (the last release finalises it if this package initialised it). It is
// idempotent; Sign after Close returns an error matching [ErrClosed].
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	var err error
	if k.live {
		if cerr := k.ctx.CloseSession(k.session); cerr != nil && !sessionLost(cerr) {
			err = p11Error(cerr, "closing the session of %s in token %q", keyDesc(k.uri), k.token)
		}
		k.live = false
	}
	clear(k.pin)
	k.pin = nil
	if k.release != nil {
		k.release()
		k.release = nil
	}
	return err
}

// URI returns the key's URI (a copy; String redacts pin-value).
func (k *Key) URI() *URI { return k.uri.Clone() }
