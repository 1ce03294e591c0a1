// Package keys opens signerd's consensus keys from a key reference, reads
// and writes CometBFT's key files, and prints keys the way CometBFT does.
//
// It owns:
//   - key references ([ParseRef], [Open]): "pkcs11:..." (an RFC 7512 URI,
//     opened by package hsm) or "file:PATH" (a CometBFT
//     priv_validator_key.json used as a software key, like tmkms softsign);
//   - the priv_validator_key.json format ([ParsePrivValidatorKey],
//     [MarshalPrivValidatorKey]);
//   - the SecretConnection identity key file, in CometBFT's node_key.json
//     format ([LoadOrCreateIdentity]);
//   - display forms: [Address] (validator address), [PubKeyJSON] (the
//     "pub_key" JSON of cometbft show-validator), [NodeID] (peer ID).
//
// It does not speak privval and does not know about chains.
//
// # Invariants
//
//   - Every key [Open] returns is a [Signer]: Public() is an
//     ed25519.PublicKey and Sign(rand, msg, crypto.Hash(0)) returns the
//     64-byte Ed25519 signature of msg; a non-zero opts.HashFunc() or an
//     Ed25519ctx context is refused. HSM signatures are verified by package
//     hsm before they are returned; software keys are not (crypto/ed25519 is
//     trusted, and signing is the hot path).
//   - Close releases the key: the HSM session, or the in-memory private key,
//     which is zeroed. Sign after Close is an error.
//   - Key files (priv_validator_key.json, the identity file) must be regular
//     files that neither group nor others can access; otherwise the error
//     names the file and says chmod 600. Parsers are strict (unknown fields,
//     trailing data, non-Ed25519 types, inconsistent keys and addresses are
//     errors) and their errors never include key material.
//   - The identity file is created only when missing, mode 0600, and never
//     replaces a file (O_EXCL temporary file, hard-linked into place, folder
//     synced): concurrent starters agree on one identity. A malformed file is
//     an error, never silently replaced.
//   - Relative paths (file: references, pin-source files) resolve against
//     the baseDir given to Open: the configuration folder, or the working
//     directory for CLI flags.
package keys
