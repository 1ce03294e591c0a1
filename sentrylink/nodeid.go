package sentrylink

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// NodeID is a CometBFT p2p node ID: 40 lower-case hex characters, the first
// 20 bytes of SHA-256 of the node's Ed25519 public key.
type NodeID string

// nodeIDLen is the length of a node ID in hex characters.
const nodeIDLen = 40

// ParseNodeID validates s as a node ID and returns it in lower case.
// Upper-case IDs are accepted and normalised: CometBFT accepts them at
// startup but then fails the p2p handshake with "conn.ID and dialed ID
// mismatch" (cometbft/cometbft#835).
func ParseNodeID(s string) (NodeID, error) {
	if strings.Contains(s, "@") {
		return "", fmt.Errorf("%q is an address, not a node ID: use only the part before %q", s, "@")
	}
	if len(s) != nodeIDLen {
		return "", fmt.Errorf("%q has %d characters, a node ID has %d hex characters", s, len(s), nodeIDLen)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%q is not hex", s)
	}
	return NodeID(strings.ToLower(s)), nil
}

// isCanonicalNodeID reports whether s is exactly 40 lower-case hex characters.
func isCanonicalNodeID(s string) bool {
	if len(s) != nodeIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Short is the first 12 characters of the ID, for messages.
func (id NodeID) Short() string {
	if len(id) > 12 {
		return string(id[:12])
	}
	return string(id)
}

// maxKeyFileSize bounds the node_key.json we read: the real file is about
// 150 bytes.
const maxKeyFileSize = 64 << 10

// NodeIDFromKeyFile reads a CometBFT node_key.json and returns the node ID it
// defines. Only the public key is derived; the private key is never printed.
func NodeIDFromKeyFile(path string) (NodeID, error) {
	data, err := readFileLimit(path, maxKeyFileSize)
	if err != nil {
		return "", err
	}
	id, err := NodeIDFromKeyJSON(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// NodeIDFromKeyJSON derives the node ID from the contents of a CometBFT
// node_key.json: {"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"<base64>"}}.
// The value is a 64-byte Ed25519 private key (seed followed by public key).
func NodeIDFromKeyJSON(data []byte) (NodeID, error) {
	var f struct {
		PrivKey *struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"priv_key"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return "", fmt.Errorf("not a node_key.json: %v", err)
	}
	if f.PrivKey == nil {
		return "", fmt.Errorf("not a node_key.json: no %q object", "priv_key")
	}
	if f.PrivKey.Type != "tendermint/PrivKeyEd25519" {
		return "", fmt.Errorf("priv_key.type is %q, want %q", f.PrivKey.Type, "tendermint/PrivKeyEd25519")
	}
	raw, err := base64.StdEncoding.DecodeString(f.PrivKey.Value)
	if err != nil {
		return "", fmt.Errorf("priv_key.value is not base64")
	}
	if len(raw) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("priv_key.value holds %d bytes, an Ed25519 private key has %d", len(raw), ed25519.PrivateKeySize)
	}
	priv := ed25519.PrivateKey(raw)
	pub := priv.Public().(ed25519.PublicKey)
	// The stored key is seed||public key; a mismatch means a damaged file.
	if !ed25519.NewKeyFromSeed(priv.Seed()).Public().(ed25519.PublicKey).Equal(pub) {
		return "", fmt.Errorf("priv_key.value is damaged: its public half does not match its seed")
	}
	sum := sha256.Sum256(pub)
	return NodeID(hex.EncodeToString(sum[:20])), nil
}

func readFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than the %d-byte limit for this kind of file", path, limit)
	}
	return data, nil
}
