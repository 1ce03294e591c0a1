package hsm

import "errors"

// Sentinel errors. Every error returned by this package that falls into one
// of these classes matches it with [errors.Is]; the message around it names
// the token, object or file and says what to do. A wrapped [pkcs11.Error]
// (when there is one) is reachable with [errors.As].
var (
	// ErrInvalidURI: the pkcs11: URI is malformed or breaks a rule of RFC 7512
	// or of this package (see [ParseURI]).
	ErrInvalidURI = errors.New("invalid pkcs11 uri")
	// ErrModule: the PKCS#11 module named by module-path cannot be loaded or
	// initialised.
	ErrModule = errors.New("pkcs11 module cannot be loaded")
	// ErrTokenNotFound: no initialised token matches the URI, or the token
	// went away while a key was open (the message then says "is not present").
	ErrTokenNotFound = errors.New("token not found")
	// ErrObjectNotFound: the token has no object with the URI's object/id.
	ErrObjectNotFound = errors.New("object not found")
	// ErrWrongKeyType: an object with the URI's object/id exists but is not an
	// Ed25519 private key (CKK_EC_EDWARDS on edwards25519).
	ErrWrongKeyType = errors.New("wrong key type")
	// ErrAmbiguous: the URI matches more than one token or more than one key.
	ErrAmbiguous = errors.New("ambiguous pkcs11 uri")
	// ErrObjectExists: Generate or Import found an object with the same label
	// or id and refused to create another.
	ErrObjectExists = errors.New("object already exists")
	// ErrWrongPIN: the token rejected the PIN (CKR_PIN_INCORRECT,
	// CKR_PIN_LEN_RANGE).
	ErrWrongPIN = errors.New("wrong pin")
	// ErrPINLocked: the token's user PIN is locked (CKR_PIN_LOCKED).
	ErrPINLocked = errors.New("pin locked")
	// ErrPINSource: the PIN could not be read from pin-source (missing file,
	// unsafe permissions, unset environment variable, ...). Never an empty PIN.
	ErrPINSource = errors.New("pin source unusable")
	// ErrBadSignature: the token returned a signature that does not verify
	// against the key's public key. The signature is never returned.
	ErrBadSignature = errors.New("token returned an invalid signature")
	// ErrClosed: the key was closed.
	ErrClosed = errors.New("key is closed")
	// ErrNoPKCS11: the binary was built without cgo, so it cannot load PKCS#11
	// modules.
	ErrNoPKCS11 = errors.New("pkcs11 support not built in")
)

// kindError is an error whose message is written in full by its maker and
// which matches one sentinel (kind) with errors.Is, plus whatever it wraps.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Is(target error) bool { return target == e.kind }

func (e *kindError) Unwrap() error { return e.cause }

// newError returns an error matching kind with the message msg. cause, if not
// nil, is reachable with errors.Is/As but not printed: msg must already say
// what matters about it.
func newError(kind error, cause error, msg string) error {
	return &kindError{kind: kind, msg: msg, cause: cause}
}
