package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/signerd/signerd/hsm"
)

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type cometOutputs struct {
	Comment       string `json:"comment"`
	ShowValidator string `json:"show_validator"`
	ShowNodeID    string `json:"show_node_id"`
	Address       string `json:"address"`
}

func loadCometOutputs(t testing.TB) cometOutputs {
	t.Helper()
	var out cometOutputs
	dec := json.NewDecoder(bytes.NewReader(readVector(t, "cometbft_outputs.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

type badVectors struct {
	Comment string `json:"comment"`
	Bad     []struct {
		In  string `json:"in"`
		Err string `json:"err"`
	} `json:"bad"`
}

func loadBadVectors(t testing.TB) badVectors {
	t.Helper()
	var v badVectors
	dec := json.NewDecoder(bytes.NewReader(readVector(t, "bad_priv_validator_keys.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The key file written by `cometbft init` parses, shows as CometBFT shows
// it, and re-encodes byte for byte.
func TestPrivValidatorKeyVector(t *testing.T) {
	data := readVector(t, "priv_validator_key.json")
	want := loadCometOutputs(t)
	priv, err := ParsePrivValidatorKey(data)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	if got := Address(pub); got != want.Address {
		t.Errorf("Address = %s, want %s", got, want.Address)
	}
	if got := PubKeyJSON(pub) + "\n"; got != want.ShowValidator {
		t.Errorf("PubKeyJSON = %q, cometbft show-validator printed %q", got, want.ShowValidator)
	}
	if got := MarshalPrivValidatorKey(priv); !bytes.Equal(got, data) {
		t.Errorf("MarshalPrivValidatorKey differs from the cometbft file:\n%s\n%s", got, data)
	}
}

func TestParsePrivValidatorKeyErrors(t *testing.T) {
	priv, err := ParsePrivValidatorKey(readVector(t, "priv_validator_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	secret := string(MarshalPrivValidatorKey(priv))
	secret = secret[strings.Index(secret, `"priv_key"`):]
	b64priv := secret[strings.Index(secret, `"value": "`)+10:]
	b64priv = b64priv[:strings.IndexByte(b64priv, '"')]
	for _, tc := range loadBadVectors(t).Bad {
		_, err := ParsePrivValidatorKey([]byte(tc.In))
		if err == nil {
			t.Errorf("ParsePrivValidatorKey(%.60q...) succeeded", tc.In)
			continue
		}
		if !strings.Contains(err.Error(), tc.Err) {
			t.Errorf("ParsePrivValidatorKey(%.60q...) error\n got %v\nwant it to contain %q", tc.In, err, tc.Err)
		}
		if strings.Contains(err.Error(), b64priv) || strings.Contains(err.Error(), b64priv[:16]) {
			t.Errorf("error shows private key material: %v", err)
		}
	}
	if _, err := ParsePrivValidatorKey(bytes.Repeat([]byte(" "), maxKeyFileSize+1)); err == nil {
		t.Error("oversized input accepted")
	}
	if _, err := ParsePrivValidatorKey([]byte("{\"address\":\"\xff\"}")); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestDisplayForms(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{1}, 32))
	if a, n := Address(pub), NodeID(pub); a != strings.ToUpper(n) || len(a) != 40 || a == n {
		t.Errorf("Address %s, NodeID %s", a, n)
	}
	if got := PubKeyJSON(pub); got != `{"type":"tendermint/PubKeyEd25519","value":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}` {
		t.Errorf("PubKeyJSON = %s", got)
	}
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref  string
		kind RefKind
		path string
		err  string
	}{
		{ref: "pkcs11:token=v;object=k?module-path=/m.so&pin-source=file:p", kind: RefPKCS11},
		{ref: "PKCS11:token=v;object=k?module-path=/m.so", kind: RefPKCS11},
		{ref: "file:priv_validator_key.json", kind: RefFile, path: "priv_validator_key.json"},
		{ref: "file:/etc/signerd/key.json", kind: RefFile, path: "/etc/signerd/key.json"},
		{ref: "file:///etc/signerd/key.json", kind: RefFile, path: "/etc/signerd/key.json"},
		{ref: "FILE:k.json", kind: RefFile, path: "k.json"},
		{ref: "", err: "key is empty; it must start with pkcs11:"},
		{ref: "/etc/key.json", err: `key must start with pkcs11: (a key in an HSM) or file: (a priv_validator_key.json), not "(no scheme):"`},
		{ref: "yubihsm:id=1", err: `not "yubihsm:"`},
		{ref: "file:", err: "names no file"},
		{ref: "file:/etc/", err: "names no file"},
		{ref: "file://host/etc/k.json", err: `names host "host"`},
		{ref: "pkcs11:token=v", err: "module-path is missing"},
		{ref: "pkcs11:token=v?module-path=/m.so&pin-value=1234&pin-value=1234", err: "appears more than once"},
	} {
		r, err := ParseRef(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRef(%q) = %v, %v; want error containing %q", tc.ref, r, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "1234") {
				t.Errorf("ParseRef(%q) error shows the PIN: %v", tc.ref, err)
			}
			continue
		}
		if err != nil || r.Kind != tc.kind || r.Path != tc.path {
			t.Errorf("ParseRef(%q) = %+v, %v", tc.ref, r, err)
		}
		if tc.kind == RefPKCS11 && (r.URI == nil || !strings.HasPrefix(r.String(), "pkcs11:")) {
			t.Errorf("ParseRef(%q).String() = %q", tc.ref, r.String())
		}
	}
	if !errors.Is(func() error { _, err := ParseRef("pkcs11:x"); return err }(), hsm.ErrInvalidURI) {
		t.Error("a bad pkcs11 ref does not match hsm.ErrInvalidURI")
	}
}

// copyVector puts the test key file into dir with mode 0600 (git does not
// keep modes) and returns its path.
func copyVector(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "priv_validator_key.json")
	if err := os.WriteFile(p, readVector(t, "priv_validator_key.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenFileKey(t *testing.T) {
	dir := t.TempDir()
	path := copyVector(t, dir)
	priv, _ := ParsePrivValidatorKey(readVector(t, "priv_validator_key.json"))
	for _, tc := range []struct{ ref, base string }{
		{"file:" + path, ""},
		{"file:priv_validator_key.json", dir},
		{"file://" + path, "/elsewhere"},
	} {
		k, err := Open(tc.ref, tc.base, nil)
		if err != nil {
			t.Fatalf("Open(%q, %q): %v", tc.ref, tc.base, err)
		}
		msg := []byte("vote sign bytes")
		sig, err := k.Sign(nil, msg, crypto.Hash(0))
		if err != nil || !bytes.Equal(sig, ed25519.Sign(priv, msg)) {
			t.Fatalf("Sign: %x, %v", sig, err)
		}
		if !k.Public().(ed25519.PublicKey).Equal(priv.Public()) {
			t.Fatal("wrong public key")
		}
		for _, opts := range []crypto.SignerOpts{crypto.SHA512, &ed25519.Options{Context: "x"}} {
			if _, err := k.Sign(nil, msg, opts); err == nil {
				t.Errorf("Sign with %#v succeeded", opts)
			}
		}
		sk := k.(*softKey)
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		if sk.priv != nil {
			t.Fatal("Close left the private key")
		}
		if _, err := k.Sign(nil, msg, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("Sign after Close: %v", err)
		}
		if err := k.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if !k.Public().(ed25519.PublicKey).Equal(priv.Public()) {
			t.Fatal("Public changed after Close")
		}
	}
}

// Close zeroes the key bytes themselves, not just the reference.
func TestSoftKeyCloseZeroes(t *testing.T) {
	path := copyVector(t, t.TempDir())
	k, err := Open("file:"+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := k.(*softKey).priv
	k.Close()
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("private key bytes not zeroed")
	}
}

func TestOpenFileKeyErrors(t *testing.T) {
	dir := t.TempDir()
	path := copyVector(t, dir)
	open := filepath.Join(dir, "open.json")
	os.WriteFile(open, readVector(t, "priv_validator_key.json"), 0o644)
	os.Chmod(open, 0o644)
	badJSON := filepath.Join(dir, "bad.json")
	os.WriteFile(badJSON, []byte(`{"address":"00"}`), 0o600)
	for _, tc := range []struct{ ref, want string }{
		{"file:" + open, "is accessible by group or others (mode 0644); it holds a private key: run chmod 600 " + open},
		{"file:" + filepath.Join(dir, "missing.json"), "does not exist"},
		{"file:" + badJSON, `key file "` + badJSON + `" is not a usable priv_validator_key.json: pub_key is missing`},
		{"file:" + dir + "/x/", "names no file"},
		{"file:missing.json", `key file "` + filepath.Join(dir, "missing.json") + `" does not exist`},
	} {
		k, err := Open(tc.ref, dir, nil)
		if err == nil {
			k.Close()
			t.Errorf("Open(%q) succeeded", tc.ref)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) error\n got %v\nwant it to contain %q", tc.ref, err, tc.want)
		}
	}
	_ = path
}

func TestConcurrentSoftSign(t *testing.T) {
	k, err := Open("file:"+copyVector(t, t.TempDir()), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public().(ed25519.PublicKey)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				msg := []byte{byte(j)}
				sig, err := k.Sign(nil, msg, nil)
				if err != nil || !ed25519.Verify(pub, msg, sig) {
					t.Error("bad signature")
					return
				}
			}
		}()
	}
	wg.Wait()
	k.Close()
}

func TestLoadOrCreateIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.json")
	priv, created, err := LoadOrCreateIdentity(path)
	if err != nil || !created || len(priv) != ed25519.PrivateKeySize {
		t.Fatalf("create: %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, marshalIdentity(priv)) || !bytes.HasPrefix(data, []byte(`{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"`)) {
		t.Fatalf("identity file holds %s", data)
	}
	again, created, err := LoadOrCreateIdentity(path)
	if err != nil || created || !again.Equal(priv) {
		t.Fatalf("load: created=%v, %v, same=%v", created, err, again.Equal(priv))
	}

	// CometBFT's own node_key.json is accepted as is.
	nk := filepath.Join(dir, "node_key.json")
	os.WriteFile(nk, readVector(t, "node_key.json"), 0o600)
	cpriv, created, err := LoadOrCreateIdentity(nk)
	if err != nil || created {
		t.Fatalf("node_key.json: %v", err)
	}
	if got, want := NodeID(cpriv.Public().(ed25519.PublicKey))+"\n", loadCometOutputs(t).ShowNodeID; got != want {
		t.Errorf("NodeID = %q, cometbft show-node-id printed %q", got, want)
	}
	if !bytes.Equal(marshalIdentity(cpriv), readVector(t, "node_key.json")) {
		t.Error("node_key.json does not re-encode byte for byte")
	}
}

func TestLoadOrCreateIdentityErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), mode)
		os.Chmod(p, mode)
		return p
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	open := write("open.json", string(marshalIdentity(priv)), 0o644)
	empty := write("empty.json", "", 0o600)
	bad := write("bad.json", `{"priv_key":{"type":"tendermint/PrivKeySecp256k1","value":"AA=="}}`, 0o600)
	for _, tc := range []struct{ path, want string }{
		{open, "is accessible by group or others (mode 0644); it holds a private key: run chmod 600 " + open},
		{empty, `identity key file "` + empty + `": the file is empty; fix or remove it`},
		{bad, `priv_key type "tendermint/PrivKeySecp256k1" is not supported`},
		{filepath.Join(dir, "nodir", "id.json"), "does not exist; create it (mkdir -p"},
		{dir, "is not a regular file"},
	} {
		before, _ := os.ReadFile(tc.path)
		_, created, err := LoadOrCreateIdentity(tc.path)
		if err == nil || created {
			t.Errorf("LoadOrCreateIdentity(%s) = created %v, %v", tc.path, created, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadOrCreateIdentity(%s) error\n got %v\nwant it to contain %q", tc.path, err, tc.want)
		}
		if after, _ := os.ReadFile(tc.path); !bytes.Equal(before, after) {
			t.Errorf("LoadOrCreateIdentity(%s) changed the file", tc.path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nodir")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a missing folder was created")
	}
}

// Many processes' worth of racing creators end up with one identity.
func TestLoadOrCreateIdentityRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.json")
	const n = 8
	keys := make([]ed25519.PrivateKey, n)
	var created int32
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k, c, err := LoadOrCreateIdentity(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			keys[i] = k
			if c {
				created++
			}
		}(i)
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d callers created the identity, want 1", created)
	}
	for _, k := range keys[1:] {
		if !k.Equal(keys[0]) {
			t.Fatal("callers got different identities")
		}
	}
}

func FuzzParsePrivValidatorKey(f *testing.F) {
	f.Add(readVector(f, "priv_validator_key.json"))
	f.Add(readVector(f, "node_key.json"))
	for _, tc := range loadBadVectors(f).Bad {
		f.Add([]byte(tc.In))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		priv, err := ParsePrivValidatorKey(data)
		if err != nil {
			return
		}
		enc := MarshalPrivValidatorKey(priv)
		again, err := ParsePrivValidatorKey(enc)
		if err != nil {
			t.Fatalf("re-encoded key does not parse: %v\n%s", err, enc)
		}
		if !again.Equal(priv) {
			t.Fatal("re-encoded key parses to another key")
		}
		if enc2 := MarshalPrivValidatorKey(again); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
	})
}

func FuzzIdentityFile(f *testing.F) {
	f.Add(readVector(f, "node_key.json"))
	f.Add(readVector(f, "priv_validator_key.json"))
	f.Add([]byte(`{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"AA=="}}`))
	f.Add([]byte(`{"priv_key":null}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		priv, err := parseIdentity(data)
		if err != nil {
			return
		}
		enc := marshalIdentity(priv)
		again, err := parseIdentity(enc)
		if err != nil || !again.Equal(priv) {
			t.Fatalf("re-encoded identity: %v", err)
		}
		if !bytes.Equal(marshalIdentity(again), enc) {
			t.Fatal("encoding not stable")
		}
	})
}

func BenchmarkSignFile(b *testing.B) {
	k, err := Open("file:"+copyVector(b, b.TempDir()), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	msg := bytes.Repeat([]byte{0x42}, 150)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil {
			b.Fatal(err)
		}
	}
}
