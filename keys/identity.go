package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

type nodeKeyJSON struct {
	PrivKey *typedValue `json:"priv_key"`
}

// parseIdentity parses a node_key.json-style identity file:
// {"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"b64"}}.
func parseIdentity(data []byte) (ed25519.PrivateKey, error) {
	var doc nodeKeyJSON
	if err := decodeStrict(data, &doc); err != nil {
		return nil, err
	}
	b, err := decodeTyped("priv_key", doc.PrivKey, typePrivEd25519, ed25519.PrivateKeySize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.PrivateKey(b)
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	defer clear(derived)
	if !bytes.Equal(derived, priv) {
		clear(priv)
		return nil, errors.New("priv_key is inconsistent: its public half is not derived from its seed (the file is corrupt)")
	}
	return priv, nil
}

// marshalIdentity encodes priv as CometBFT writes node_key.json (compact, no
// final newline).
func marshalIdentity(priv ed25519.PrivateKey) []byte {
	return fmt.Appendf(nil, `{"priv_key":{"type":"%s","value":"%s"}}`, typePrivEd25519, base64.StdEncoding.EncodeToString(priv))
}

// LoadOrCreateIdentity returns the SecretConnection identity key stored at
// path, in CometBFT's node_key.json format (a CometBFT node_key.json works as
// is). If the file does not exist, it creates a new key there, mode 0600,
// never replacing a file that appears meanwhile (a temporary file made with
// O_EXCL, synced, then hard-linked into place, and the folder synced), and
// reports created=true. An
// existing file must be a regular file that neither group nor others can
// access (the error says which chmod fixes it); a malformed file is an
// error, never silently replaced. The folder must exist.
func LoadOrCreateIdentity(path string) (priv ed25519.PrivateKey, created bool, err error) {
	priv, err = loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, false, err
	}
	priv, err = createIdentity(path)
	if errors.Is(err, fs.ErrExist) { // another process created it first
		priv, err = loadIdentity(path)
		return priv, false, err
	}
	return priv, err == nil, err
}

func loadIdentity(path string) (ed25519.PrivateKey, error) {
	data, err := readSecretFile(path, "identity key file")
	if err != nil {
		return nil, err
	}
	defer clear(data)
	priv, err := parseIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("identity key file %q: %w; fix or remove it (signerd then makes a new identity)", path, err)
	}
	return priv, nil
}

// createIdentity writes a new identity to path without ever exposing a
// partial file: the key goes into a temporary file (created O_EXCL, 0600) in
// the same folder, which is synced and then hard-linked to path. link(2)
// fails if path exists, so like O_EXCL on path itself it never replaces a
// file, and a concurrent reader sees either no file or the whole key.
func createIdentity(path string) (priv ed25519.PrivateKey, err error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("folder %q of identity key %q does not exist; create it (mkdir -p %s) or fix the identity key path", dir, path, dir)
	}
	_, priv, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the identity key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".identity-*.tmp") // O_EXCL, mode 0600
	if err != nil {
		return nil, fmt.Errorf("creating identity key file in %q: %w", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer func() {
		if err != nil {
			f.Close()
			clear(priv)
			priv = nil
		}
	}()
	data := marshalIdentity(priv)
	defer clear(data)
	if _, err = f.Write(data); err != nil {
		return nil, fmt.Errorf("writing identity key file %q: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing identity key file %q: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("closing identity key file %q: %w", tmp, err)
	}
	if err = os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("creating identity key file %q: %w", path, err)
	}
	if err = syncDir(dir); err != nil {
		return nil, fmt.Errorf("syncing folder %q of identity key file: %w", dir, err)
	}
	return priv, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readSecretFile reads a key file: a regular file (symlinks to one are
// fine) of at most maxKeyFileSize bytes that neither group nor others can
// access. what names the file in errors ("key file", "identity key file").
// A missing file gives an error matching fs.ErrNotExist.
func readSecretFile(path, what string) ([]byte, error) {
	// O_NONBLOCK: a FIFO in place of the file must not hang the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %q does not exist: %w", what, path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%s %q cannot be opened: %v", what, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", what, path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %q is not a regular file (%s)", what, path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %q is accessible by group or others (mode %04o); it holds a private key: run chmod 600 %s", what, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %q cannot be read: %v", what, path, err)
	}
	if len(data) > maxKeyFileSize {
		clear(data)
		return nil, fmt.Errorf("%s %q is larger than %d bytes; is it the right file?", what, path, maxKeyFileSize)
	}
	return data, nil
}
