// Package hsm gives signerd Ed25519 keys kept in a PKCS#11 token (an HSM,
// or SoftHSM in tests) through the standard [crypto.Signer] interface.
//
// It owns RFC 7512 pkcs11: URIs ([ParseURI]), PIN sources, the lifecycle of
// PKCS#11 modules, sessions and logins, and the Ed25519 operations: [Open]
// and [Key.Sign], [Generate], [Import] and [List]. It knows nothing about
// CometBFT: callers see a [crypto.Signer] whose Public is an
// ed25519.PublicKey, and never a PKCS#11 type.
//
// # Invariants
//
//   - A signature leaves [Key.Sign] only after crypto/ed25519 verified it
//     against the public key read when the key was opened. A signature that
//     does not verify is an error ([ErrBadSignature]), never a result.
//   - Sign is pure Ed25519 (CKM_EDDSA without parameters) over the message:
//     a non-zero opts.HashFunc() and Ed25519ctx are refused.
//   - C_Initialize happens once per module per process: a registry keyed by
//     the cleaned, symlink-resolved module path counts references. The
//     registry calls C_Finalize when the last reference goes, and only if its
//     own C_Initialize returned CKR_OK; CKR_CRYPTOKI_ALREADY_INITIALIZED
//     (someone else in the process initialised it) counts as success and
//     leaves finalisation to that owner.
//   - Each [Key] owns one session that nothing else uses; Sign runs
//     C_SignInit and C_Sign back to back on it under the Key's mutex, with
//     the object handle cached at open (no C_FindObjects per signature).
//     Different keys never share a session or a lock.
//   - Nothing here calls C_Logout or C_CloseAllSessions: PKCS#11 login state
//     belongs to the token and the whole process, so that would log out the
//     other keys. Close closes the Key's own session only.
//   - After a lost session (codes listed at [Key.Sign]) Sign finds the token
//     again by the URI's attributes, opens a new session, logs in, finds the
//     key again and retries once. Codes are classified with errors.As on
//     pkcs11.Error, never by message text.
//   - The PIN comes from pin-source (a file that only its owner may access,
//     or an environment variable) or, in tests, pin-value. It never appears
//     in logs, errors or [URI.String]. An unreadable source is an error,
//     never an empty PIN.
//   - Keys are created as token objects, the private key private, sensitive
//     and never extractable, next to a public key object (so List and show
//     need not touch the private key). Generate and Import never overwrite:
//     an existing label or id is an error ([ErrObjectExists]). Both prove the
//     new key with a self-test signature and remove it again if that fails.
//   - No panics and no os.Exit; errors are lowercase, name the token, key,
//     file or attribute with %q, say the fix, and match one sentinel
//     (ErrTokenNotFound, ErrWrongPIN, ...) with errors.Is.
//
// # URIs
//
// A key is named like
//
//	pkcs11:token=validator;object=consensus?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signerd/hsm.pin
//
// See [ParseURI] for the rules. module-path is required; id is raw bytes,
// always percent-encoded (id=%01%02, never hex); type may be "private"
// (Open, Generate, Import) or "public" (List only). A relative pin-source
// path is resolved by [URI.ResolvePaths] against the configuration folder.
//
// A login is per token and per process, so while one key of a token is open,
// PKCS#11 answers CKR_USER_ALREADY_LOGGED_IN to the next login and does not
// check its PIN: a wrong PIN is detected only while no other key of the
// process uses that token.
//
// # Ed25519 in PKCS#11
//
// miekg/pkcs11 v1.1.2 lacks the PKCS#11 3.0 Edwards constants, defined here
// ([CKK_EC_EDWARDS], [CKM_EC_EDWARDS_KEY_PAIR_GEN], [CKM_EDDSA]).
// CKA_EC_PARAMS is read in both encodings PKCS#11 3.0 allows (the DER OID
// 1.3.101.112 and the DER PrintableString "edwards25519") and written as the
// OID, falling back to the string if a token refuses the OID. CKA_EC_POINT is
// a DER OCTET STRING of the 32-byte point; a raw 32-byte value is accepted.
// CKA_VALUE of an imported key is the 32-byte seed.
//
// Measured with SoftHSM 2.6.1 (Debian): it generates and imports with either
// CKA_EC_PARAMS encoding and stores the one it was given; it accepts a 64-byte
// seed||public CKA_VALUE at import but then fails C_Sign with
// CKR_GENERAL_ERROR (hence the seed); after C_Logout from another session,
// C_SignInit on the old handle returns CKR_OBJECT_HANDLE_INVALID even after
// logging in again (handles must be found again); after C_CloseAllSessions it
// returns CKR_SESSION_HANDLE_INVALID; when the token's folder disappears,
// C_GetTokenInfo returns CKR_GENERAL_ERROR and the token stays unusable in
// that process even after the folder returns.
package hsm
