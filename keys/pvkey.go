package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxKeyFileSize caps key files: a priv_validator_key.json is about 350
// bytes, a node_key.json about 150; anything near this size is another file.
const maxKeyFileSize = 64 << 10

// Amino type names CometBFT writes in key files.
const (
	typePubEd25519  = "tendermint/PubKeyEd25519"
	typePrivEd25519 = "tendermint/PrivKeyEd25519"
)

// typedValue is CometBFT's amino-JSON {"type": ..., "value": base64}.
type typedValue struct {
	Type  *string `json:"type"`
	Value *string `json:"value"`
}

type privValidatorKeyJSON struct {
	Address *string     `json:"address"`
	PubKey  *typedValue `json:"pub_key"`
	PrivKey *typedValue `json:"priv_key"`
}

// decodeStrict decodes one JSON document into v: unknown fields and
// trailing data are errors; input must be valid UTF-8 and at most
// maxKeyFileSize bytes.
func decodeStrict(data []byte, v any) error {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return errors.New("the file is empty")
	case len(data) > maxKeyFileSize:
		return fmt.Errorf("the file is %d bytes, more than the %d a key file can be", len(data), maxKeyFileSize)
	case !utf8.Valid(data):
		return errors.New("the file is not valid UTF-8 text")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not valid JSON for this key file: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

// decodeTyped checks an amino-JSON key (name is "pub_key" or "priv_key")
// and returns its decoded bytes, which must be size long.
func decodeTyped(name string, tv *typedValue, wantType string, size int) ([]byte, error) {
	if tv == nil {
		return nil, fmt.Errorf("%s is missing", name)
	}
	if tv.Type == nil {
		return nil, fmt.Errorf("%s type is missing (want %q)", name, wantType)
	}
	if *tv.Type != wantType {
		return nil, fmt.Errorf("%s type %q is not supported: signerd signs with Ed25519 keys only (%s)", name, *tv.Type, wantType)
	}
	if tv.Value == nil {
		return nil, fmt.Errorf("%s value is missing", name)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(*tv.Value)
	if err != nil {
		return nil, fmt.Errorf("%s value is not base64: %v", name, err)
	}
	if len(b) != size {
		clear(b)
		return nil, fmt.Errorf("%s is %d bytes, want %d for Ed25519", name, len(b), size)
	}
	return b, nil
}

// ParsePrivValidatorKey parses a CometBFT priv_validator_key.json:
//
//	{"address":"HEX","pub_key":{"type":"tendermint/PubKeyEd25519","value":"b64"},
//	 "priv_key":{"type":"tendermint/PrivKeyEd25519","value":"b64"}}
//
// It refuses unknown fields, trailing data, non-Ed25519 key types, a private
// key whose public half does not derive from its seed, a pub_key that does
// not match priv_key, and an address that is not the pub_key's. Errors never
// include key material.
func ParsePrivValidatorKey(data []byte) (ed25519.PrivateKey, error) {
	var doc privValidatorKeyJSON
	if err := decodeStrict(data, &doc); err != nil {
		return nil, err
	}
	if doc.Address == nil {
		return nil, errors.New("address is missing")
	}
	pub, err := decodeTyped("pub_key", doc.PubKey, typePubEd25519, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	privBytes, err := decodeTyped("priv_key", doc.PrivKey, typePrivEd25519, ed25519.PrivateKeySize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.PrivateKey(privBytes)
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	defer clear(derived)
	if !bytes.Equal(derived, priv) {
		clear(priv)
		return nil, errors.New("priv_key is inconsistent: its public half is not derived from its seed (the file is corrupt)")
	}
	if !bytes.Equal(priv[32:], pub) {
		clear(priv)
		return nil, errors.New("pub_key does not match priv_key (the file is corrupt or was edited)")
	}
	addr, err := hex.DecodeString(*doc.Address)
	if err != nil || len(addr) != 20 {
		clear(priv)
		return nil, fmt.Errorf("address %q is not 40 hex digits", *doc.Address)
	}
	if want := Address(pub); !strings.EqualFold(*doc.Address, want) {
		clear(priv)
		return nil, fmt.Errorf("address %q does not match pub_key (whose address is %s)", *doc.Address, want)
	}
	return priv, nil
}

// MarshalPrivValidatorKey encodes priv as CometBFT writes a
// priv_validator_key.json (two-space indent, upper-case address, no final
// newline), so a parsed file re-encodes to the same bytes.
func MarshalPrivValidatorKey(priv ed25519.PrivateKey) []byte {
	pub := priv.Public().(ed25519.PublicKey)
	return fmt.Appendf(nil, `{
  "address": "%s",
  "pub_key": {
    "type": "%s",
    "value": "%s"
  },
  "priv_key": {
    "type": "%s",
    "value": "%s"
  }
}`, Address(pub), typePubEd25519, base64.StdEncoding.EncodeToString(pub), typePrivEd25519, base64.StdEncoding.EncodeToString(priv))
}

// Address returns the CometBFT validator address of pub: the upper-case hex
// of the first 20 bytes of sha256(pub).
func Address(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return strings.ToUpper(hex.EncodeToString(sum[:20]))
}

// NodeID returns the CometBFT peer ID of pub (used for the SecretConnection
// identity key): the lower-case hex of the first 20 bytes of sha256(pub).
func NodeID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:20])
}

// PubKeyJSON returns pub as CometBFT prints it (cometbft show-validator, the
// "pub_key" of priv_validator_key.json, genesis files):
// {"type":"tendermint/PubKeyEd25519","value":"<base64>"}.
func PubKeyJSON(pub ed25519.PublicKey) string {
	return `{"type":"` + typePubEd25519 + `","value":"` + base64.StdEncoding.EncodeToString(pub) + `"}`
}
