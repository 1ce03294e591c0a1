package hsm

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

func TestECPoint(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{0x5a}, 32))
	enc := encodeECPoint(pub)
	if len(enc) != 34 || enc[0] != 0x04 || enc[1] != 32 {
		t.Fatalf("encodeECPoint = %x", enc)
	}
	for _, in := range [][]byte{enc, pub} { // DER OCTET STRING, and the raw point some tokens return
		got, err := parseECPoint(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("parseECPoint(%x) = %x, %v", in, got, err)
		}
	}
	for _, bad := range [][]byte{nil, enc[:33], append(bytes.Clone(enc), 0), append([]byte{0x03, 32}, pub...), append([]byte{0x04, 33}, pub...)} {
		if _, err := parseECPoint(bad); err == nil {
			t.Errorf("parseECPoint(%x) succeeded", bad)
		}
	}
}

func TestCurveParams(t *testing.T) {
	for _, tc := range []struct {
		params  []byte
		ed25519 bool
		name    string
	}{
		{ecParamsEd25519OID, true, "edwards25519"},
		{ecParamsEd25519String, true, "edwards25519"},
		{ecParamsEd448OID, false, "edwards448"},
		{ecParamsEd448String, false, "edwards448"},
		{[]byte{0x06, 0x03, 0x2b, 0x65, 0x6e}, false, "EC params 06032b656e"}, // X25519
	} {
		if isEd25519Params(tc.params) != tc.ed25519 || curveName(tc.params) != tc.name {
			t.Errorf("%x: isEd25519Params %v, curveName %q", tc.params, isEd25519Params(tc.params), curveName(tc.params))
		}
	}
}
