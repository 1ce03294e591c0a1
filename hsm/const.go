package hsm

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

// PKCS#11 values for Ed25519 that github.com/miekg/pkcs11 v1.1.2 does not
// define. Source: PKCS #11 Specification Version 3.0 (OASIS Standard, June
// 2020): the values of pkcs11t.h 3.0, and the Current Mechanisms
// Specification 3.0, section 2.3 "Elliptic Curve" (Edwards curves: key type
// CKK_EC_EDWARDS, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA). Tested against
// SoftHSM 2.6.1, which implements them.
const (
	// CKK_EC_EDWARDS is the key type of Edwards-curve keys (Ed25519, Ed448).
	CKK_EC_EDWARDS = 0x00000040
	// CKM_EC_EDWARDS_KEY_PAIR_GEN generates an Edwards-curve key pair; the
	// curve comes from CKA_EC_PARAMS in the public key template.
	CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x00001055
	// CKM_EDDSA signs with EdDSA. Without a CK_EDDSA_PARAMS parameter it is
	// pure Ed25519 (RFC 8032) over the raw message, which is what CometBFT
	// verifies; signerd always passes no parameter.
	CKM_EDDSA = 0x00001057
)

// CKA_EC_PARAMS encodings of the edwards25519 curve. PKCS#11 3.0 allows
// either the DER OBJECT IDENTIFIER id-Ed25519 1.3.101.112 (RFC 8410) or the DER
// PrintableString "edwards25519" (RFC 8032 curve name). SoftHSM 2.6.1 accepts
// and stores both as given (measured); OpenSC's pkcs11-tool writes the
// PrintableString. signerd writes the OID and reads both.
var (
	ecParamsEd25519OID    = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
	ecParamsEd25519String = append([]byte{0x13, 0x0c}, "edwards25519"...)
	ecParamsEd448OID      = []byte{0x06, 0x03, 0x2b, 0x65, 0x71}
	ecParamsEd448String   = append([]byte{0x13, 0x0a}, "edwards448"...)
)

// curveName describes CKA_EC_PARAMS for messages: "edwards25519",
// "edwards448" or the hex bytes.
func curveName(params []byte) string {
	switch {
	case bytes.Equal(params, ecParamsEd25519OID), bytes.Equal(params, ecParamsEd25519String):
		return "edwards25519"
	case bytes.Equal(params, ecParamsEd448OID), bytes.Equal(params, ecParamsEd448String):
		return "edwards448"
	}
	return fmt.Sprintf("EC params %x", params)
}

// isEd25519Params reports whether CKA_EC_PARAMS names edwards25519 in either
// encoding PKCS#11 3.0 allows.
func isEd25519Params(params []byte) bool {
	return bytes.Equal(params, ecParamsEd25519OID) || bytes.Equal(params, ecParamsEd25519String)
}

// parseECPoint decodes CKA_EC_POINT of an Ed25519 public key. PKCS#11 3.0
// specifies a DER OCTET STRING wrapping the 32-byte encoded point (04 20 ...);
// some tokens return the raw 32 bytes, which is accepted too.
func parseECPoint(v []byte) (ed25519.PublicKey, error) {
	switch {
	case len(v) == ed25519.PublicKeySize:
		return ed25519.PublicKey(bytes.Clone(v)), nil
	case len(v) == 2+ed25519.PublicKeySize && v[0] == 0x04 && v[1] == ed25519.PublicKeySize:
		return ed25519.PublicKey(bytes.Clone(v[2:])), nil
	}
	return nil, fmt.Errorf("CKA_EC_POINT is %d bytes, want a DER OCTET STRING of 32 bytes (04 20 ...) or the raw 32-byte point", len(v))
}

// encodeECPoint encodes an Ed25519 public key as CKA_EC_POINT: a DER OCTET
// STRING of the 32-byte point.
func encodeECPoint(pub ed25519.PublicKey) []byte {
	return append([]byte{0x04, ed25519.PublicKeySize}, pub...)
}
