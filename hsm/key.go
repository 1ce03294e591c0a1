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
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// lanesPerKey is how many sessions a Key keeps. Two let the signer sign a
// non-nil precommit and its vote extension at the same time (CometBFT v0.38
// asks for both in one request); one PKCS#11 session can run only one
// operation at a time. A token that refuses the second session leaves the
// Key with one, and signing is then serial.
const lanesPerKey = 2

// verifyOpts selects crypto/ed25519's acceptance rules for the
// precomputed-key verification of every signature the token returns.
var verifyOpts = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// lane is one session of a Key with the key's object handle in it.
type lane struct {
	session pkcs11.SessionHandle
	handle  pkcs11.ObjectHandle
	live    bool // session and handle are usable
}

// selfTestMessage is signed once when a key is opened, generated or
// imported, to prove the token signs with the private key that belongs to
// the stored public key. It cannot be mistaken for CometBFT sign bytes: those
// are length-delimited protobuf, and this message's first byte ('s' = 115)
// announces more bytes than follow.
var selfTestMessage = []byte("signerd: pkcs11 key self-test")

// Key is an Ed25519 private key in a PKCS#11 token, used as a
// [crypto.Signer]. It owns up to [lanesPerKey] logged-in sessions that no
// other Key shares; each Sign borrows one, runs C_SignInit and C_Sign back to
// back on it, and gives it back. Verification runs after the session is
// returned, against a public key expanded once at open.
type Key struct {
	mu      sync.Mutex // serialises connect/reconnect and Close; guards pin, release, closed
	ctx     p11
	release func() // drops the module reference; nil after Close
	uri     *URI   // private copy: reconnecting selects the same token and key
	pin     []byte // kept to log in again after a lost session; zeroed by Close
	pub     ed25519.PublicKey
	verify  *voi.ExpandedPublicKey
	mech    []*pkcs11.Mechanism // CKM_EDDSA, no parameters (pure Ed25519)
	logger  *slog.Logger

	token string // token label, for messages; fixed after open
	label string // key label, for messages; fixed after open

	lanes  []*lane       // every lane, for Close
	free   chan *lane    // idle lanes
	done   chan struct{} // closed by Close
	closed bool
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
		free:   make(chan *lane, lanesPerKey),
		done:   make(chan struct{}),
	}
	first := &lane{}
	priv, tok, err := k.connect(first, false)
	if err != nil {
		return nil, err
	}
	k.token = tok
	if k.label == "" {
		k.label = priv.label
	}
	k.lanes = append(k.lanes, first)
	pub, err := findPublicKey(ctx, first.session, priv, k.token)
	if err != nil {
		k.disconnectAll()
		return nil, err
	}
	k.pub = pub
	if k.verify, err = voi.NewExpandedPublicKey(voi.PublicKey(pub)); err != nil {
		k.disconnectAll()
		return nil, newError(ErrWrongKeyType, err, fmt.Sprintf("%s in token %q has an invalid Ed25519 public key", keyDesc(k.uri), k.token))
	}
	if err := k.selfTest(first); err != nil {
		k.disconnectAll()
		return nil, err
	}
	for len(k.lanes) < lanesPerKey {
		l := &lane{}
		if _, _, err := k.connect(l, false); err != nil {
			logger.Warn("pkcs11 token gave this key only one session; a vote and its extension will be signed one after the other",
				"token", k.token, "object", k.label, "error", err.Error())
			break
		}
		k.lanes = append(k.lanes, l)
	}
	for _, l := range k.lanes {
		k.free <- l
	}
	logger.Info("pkcs11 key opened", "key", k.uri.String(), "token", k.token, "object", k.label,
		"public_key", fmt.Sprintf("%x", []byte(pub)), "sessions", len(k.lanes))
	return k, nil
}

// connect finds the token, opens a session on l, logs in and finds the key
// handle. It returns the key object and the token's label. gone selects
// "is not present" wording for a token that vanished. k.mu is held, or the
// Key is not shared yet.
func (k *Key) connect(l *lane, gone bool) (object, string, error) {
	tok, err := findToken(k.ctx, k.uri, gone)
	if err != nil {
		return object{}, "", err
	}
	sh, err := k.ctx.OpenSession(tok.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return object{}, "", p11Error(err, "opening a session on token %q failed", tok.label)
	}
	if err := login(k.ctx, sh, k.pin, tok.label); err != nil {
		_ = k.ctx.CloseSession(sh)
		return object{}, "", err
	}
	priv, err := findPrivateKey(k.ctx, sh, k.uri, tok.label)
	if err != nil {
		_ = k.ctx.CloseSession(sh)
		return object{}, "", err
	}
	if v, err := getAttrs(k.ctx, sh, priv.handle, pkcs11.CKA_SIGN); err == nil && !attrBool(v[0]) {
		_ = k.ctx.CloseSession(sh)
		return object{}, "", newError(ErrWrongKeyType, nil, fmt.Sprintf("%s in token %q may not sign (CKA_SIGN is false)", keyDesc(k.uri), tok.label))
	}
	if v, err := getAttrs(k.ctx, sh, priv.handle, pkcs11.CKA_ALWAYS_AUTHENTICATE); err == nil && attrBool(v[0]) {
		_ = k.ctx.CloseSession(sh)
		return object{}, "", newError(ErrWrongKeyType, nil, fmt.Sprintf(
			"%s in token %q requires a PIN for every signature (CKA_ALWAYS_AUTHENTICATE), which signerd does not support; use a key without it", keyDesc(k.uri), tok.label))
	}
	l.session, l.handle, l.live = sh, priv.handle, true
	return priv, tok.label, nil
}

// disconnect closes one lane's session (never C_Logout or
// C_CloseAllSessions: login state is shared with the process's other
// sessions on the token).
func (k *Key) disconnect(l *lane) {
	if l.live {
		_ = k.ctx.CloseSession(l.session)
	}
	l.live = false
}

// disconnectAll closes every lane of a Key that is not shared yet.
func (k *Key) disconnectAll() {
	for _, l := range k.lanes {
		k.disconnect(l)
	}
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
	l, err := k.acquire()
	if err != nil {
		return nil, err
	}
	sig, err := k.signOn(l, msg)
	k.free <- l
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize || !voi.VerifyExpandedWithOptions(k.verify, msg, sig, verifyOpts) {
		return nil, newError(ErrBadSignature, nil, fmt.Sprintf(
			"token %q returned a %d-byte signature from %s that does not verify against its public key; not using it (check the token and the key pair)", k.token, len(sig), keyDesc(k.uri)))
	}
	return sig, nil
}

// acquire borrows an idle lane, waiting while every lane is busy. It fails
// once Close has begun.
func (k *Key) acquire() (*lane, error) {
	select {
	case <-k.done:
	case l := <-k.free:
		select {
		case <-k.done:
			k.free <- l
		default:
			return l, nil
		}
	}
	return nil, newError(ErrClosed, nil, fmt.Sprintf("pkcs11 key %q is closed", k.label))
}

// signOn signs on lane l, reconnecting it once if its session is gone. The
// caller owns l.
func (k *Key) signOn(l *lane, msg []byte) ([]byte, error) {
	if !l.live {
		if err := k.reconnect(l, nil); err != nil {
			return nil, err
		}
	}
	sig, err := k.rawSign(l, msg)
	if err == nil {
		return sig, nil
	}
	if !sessionLost(err) {
		return nil, p11Error(err, "token %q failed to sign with %s", k.token, keyDesc(k.uri))
	}
	if err := k.reconnect(l, err); err != nil {
		return nil, err
	}
	sig, err = k.rawSign(l, msg)
	if err != nil {
		if sessionLost(err) {
			k.mu.Lock()
			k.disconnect(l)
			k.mu.Unlock()
		}
		return nil, p11Error(err, "token %q failed to sign with %s after logging in again", k.token, keyDesc(k.uri))
	}
	return sig, nil
}

// rawSign is C_SignInit + C_Sign on lane l's session and handle.
func (k *Key) rawSign(l *lane, msg []byte) ([]byte, error) {
	if err := k.ctx.SignInit(l.session, k.mech, l.handle); err != nil {
		return nil, err
	}
	return k.ctx.Sign(l.session, msg)
}

// reconnect replaces lane l's lost session. cause is the error that showed
// the loss (nil when the previous reconnect failed). The caller owns l.
func (k *Key) reconnect(l *lane, cause error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return newError(ErrClosed, nil, fmt.Sprintf("pkcs11 key %q is closed", k.label))
	}
	if cause != nil {
		k.logger.Warn("pkcs11 session lost; logging in again", "token", k.token, "object", k.label, "error", cause.Error())
	}
	k.disconnect(l)
	priv, _, err := k.connect(l, true)
	if err != nil {
		k.logger.Error("pkcs11 reconnect failed", "token", k.token, "object", k.label, "error", err.Error())
		return err
	}
	// The key found again must still be the key whose public key we hold:
	// every signature is verified anyway, this just names the problem.
	if pub, err := findPublicKey(k.ctx, l.session, priv, k.token); err == nil && !bytes.Equal(pub, k.pub) {
		k.disconnect(l)
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

// selfTest signs selfTestMessage on l and checks it against the public key.
func (k *Key) selfTest(l *lane) error {
	sig, err := k.rawSign(l, selfTestMessage)
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

// Close closes the key's sessions, forgets the PIN and releases the module
// (the last release finalises it if this package initialised it). It waits
// for signatures in progress. It is idempotent; Sign after Close returns an
// error matching [ErrClosed].
func (k *Key) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	close(k.done)
	k.mu.Unlock()

	// Take every lane back: each Sign in progress returns its lane.
	var err error
	for range k.lanes {
		l := <-k.free
		if l.live {
			if cerr := k.ctx.CloseSession(l.session); cerr != nil && !sessionLost(cerr) && err == nil {
				err = p11Error(cerr, "closing the session of %s in token %q", keyDesc(k.uri), k.token)
			}
			l.live = false
		}
	}
	k.mu.Lock()
	clear(k.pin)
	k.pin = nil
	if k.release != nil {
		k.release()
		k.release = nil
	}
	k.mu.Unlock()
	return err
}

// URI returns the key's URI (a copy; String redacts pin-value).
func (k *Key) URI() *URI { return k.uri.Clone() }
