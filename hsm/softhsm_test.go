//go:build cgo

package hsm

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

// These tests run against the real SoftHSM module through softhsmtest: every
// test makes its own token (unique label), so they run in parallel.

func mustURI(t testing.TB, s string) *URI {
	t.Helper()
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// logBuffer collects log output so tests can check what was (not) logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// genKey makes a token and an Ed25519 key "consensus" in it, and opens it.
func genKey(t testing.TB, label string) (*softhsmtest.Token, *URI, *Key, ed25519.PublicKey) {
	t.Helper()
	tk := softhsmtest.New(t, label)
	u := mustURI(t, tk.URI("consensus"))
	pub, err := Generate(u, nil)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	k, err := Open(u, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return tk, u, k, pub
}

func signVerify(t testing.TB, k *Key, pub ed25519.PublicKey, msg []byte) []byte {
	t.Helper()
	sig, err := k.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		t.Fatalf("signature does not verify")
	}
	return sig
}

// rawSessionCloser is rawSession with a function that closes the session
// and releases the module early.
func rawSessionCloser(t *testing.T, tk *softhsmtest.Token) (*pkcs11.Ctx, pkcs11.SessionHandle, func()) {
	t.Helper()
	mod, err := acquireModule(tk.Module, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := findToken(mod.ctx, mustURI(t, tk.URI("")), false)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := mod.ctx.OpenSession(tok.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	if err := login(mod.ctx, sh, []byte(tk.PIN), tk.Label); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			mod.ctx.CloseSession(sh)
			mod.release()
		})
	}
	t.Cleanup(closeFn)
	return mod.ctx, sh, closeFn
}

// rawSession opens a logged-in session on tk's token through the shared
// module, for checks and sabotage behind the Key's back.
func rawSession(t *testing.T, tk *softhsmtest.Token) (*pkcs11.Ctx, pkcs11.SessionHandle, uint) {
	t.Helper()
	mod, err := acquireModule(tk.Module, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mod.release)
	u := mustURI(t, tk.URI(""))
	tok, err := findToken(mod.ctx, u, false)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := mod.ctx.OpenSession(tok.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.ctx.CloseSession(sh) })
	if err := login(mod.ctx, sh, []byte(tk.PIN), tk.Label); err != nil {
		t.Fatal(err)
	}
	return mod.ctx, sh, tok.slot
}

func TestGenerateOpenSign(t *testing.T) {
	t.Parallel()
	tk, u, k, pub := genKey(t, "gen")
	if len(u.ID) != newIDLen {
		t.Fatalf("Generate left id %x in the uri, want a random %d-byte id", u.ID, newIDLen)
	}
	if !strings.Contains(u.String(), ";id=%") {
		t.Errorf("printed uri %q lacks the generated id", u)
	}
	if got := k.Public().(ed25519.PublicKey); !got.Equal(pub) {
		t.Fatalf("Public() = %x, Generate returned %x", got, pub)
	}
	for _, msg := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0xab}, 10000)} {
		signVerify(t, k, pub, msg)
	}
	// The printed URI (with the id) opens the same key.
	k2, err := Open(mustURI(t, u.String()), nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", u, err)
	}
	defer k2.Close()
	if !k2.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("the printed uri opens another key")
	}
	// An id given in the uri is used as is.
	u3 := mustURI(t, strings.Replace(tk.URI("second"), "?", ";id=%01%02?", 1))
	if _, err := Generate(u3, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(u3.ID, []byte{1, 2}) {
		t.Fatalf("Generate changed the given id to %x", u3.ID)
	}
}

func TestGenerateRefusesExisting(t *testing.T) {
	t.Parallel()
	tk, u, _, _ := genKey(t, "exists")
	for _, tc := range []struct{ uri, want string }{
		{tk.URI("consensus"), `token "exists" already has 2 object(s) labelled "consensus"`},
		{strings.Replace(tk.URI("other"), "?", ";id="+pctEncode(string(u.ID), "")+"?", 1), `token "exists" already has 2 object(s) with id`},
	} {
		_, err := Generate(mustURI(t, tc.uri), nil)
		if !errors.Is(err, ErrObjectExists) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Generate(%s) = %v, want ErrObjectExists containing %q", tc.uri, err, tc.want)
		}
		seed := make([]byte, 32)
		_, err = Import(mustURI(t, tc.uri), ed25519.NewKeyFromSeed(seed), nil)
		if !errors.Is(err, ErrObjectExists) {
			t.Errorf("Import(%s) = %v, want ErrObjectExists", tc.uri, err)
		}
	}
	if _, err := Generate(mustURI(t, strings.Replace(tk.URI(""), "?", ";id=%01?", 1)), nil); err == nil || !strings.Contains(err.Error(), "needs object=LABEL") {
		t.Errorf("Generate without object: %v", err)
	}
}

func TestImportSignsLikeTheKey(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "import")
	pubIn, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := mustURI(t, tk.URI("imported"))
	pub, err := Import(u, priv, nil)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if !pub.Equal(pubIn) || len(u.ID) != newIDLen {
		t.Fatalf("Import returned %x (id %x), want %x and a random id", pub, u.ID, pubIn)
	}
	k, err := Open(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	msg := []byte("deterministic")
	sig := signVerify(t, k, pubIn, msg)
	if !bytes.Equal(sig, ed25519.Sign(priv, msg)) {
		t.Fatal("the token's signature differs from crypto/ed25519's for the same key")
	}
	// A corrupt private key (public half not matching the seed) is refused.
	bad := bytes.Clone(priv)
	bad[40] ^= 1
	if _, err := Import(mustURI(t, tk.URI("bad")), bad, nil); err == nil || !strings.Contains(err.Error(), "does not match its seed") {
		t.Errorf("Import of a corrupt key: %v", err)
	}
}

// Keys are token objects, private, sensitive and not extractable, and the
// private value cannot be read back.
func TestKeyAttributes(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "attrs")
	if _, err := Generate(mustURI(t, tk.URI("generated")), nil); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Import(mustURI(t, tk.URI("imported")), priv, nil); err != nil {
		t.Fatal(err)
	}
	ctx, sh, _ := rawSession(t, tk)
	for _, label := range []string{"generated", "imported"} {
		hs, err := findObjects(ctx, sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		})
		if err != nil || len(hs) != 1 {
			t.Fatalf("%s: private key: %v, %d found", label, err, len(hs))
		}
		want := map[uint]bool{
			pkcs11.CKA_TOKEN: true, pkcs11.CKA_PRIVATE: true, pkcs11.CKA_SENSITIVE: true,
			pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_SIGN: true, pkcs11.CKA_DERIVE: false,
			// An imported key existed outside the token; the token records
			// that (CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE false).
			pkcs11.CKA_NEVER_EXTRACTABLE: label == "generated", pkcs11.CKA_ALWAYS_SENSITIVE: label == "generated",
		}
		for attr, w := range want {
			v, err := getAttrs(ctx, sh, hs[0], attr)
			if err != nil {
				t.Fatalf("%s: attribute 0x%x: %v", label, attr, err)
			}
			if attrBool(v[0]) != w {
				t.Errorf("%s: attribute 0x%x = %v, want %v", label, attr, attrBool(v[0]), w)
			}
		}
		_, err = getAttrs(ctx, sh, hs[0], pkcs11.CKA_VALUE)
		if !isCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
			t.Errorf("%s: reading CKA_VALUE = %v, want CKR_ATTRIBUTE_SENSITIVE", label, err)
		}
		// The public key object is stored too, readable without login.
		pubs, err := findObjects(ctx, sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		})
		if err != nil || len(pubs) != 1 {
			t.Fatalf("%s: public key: %v, %d found", label, err, len(pubs))
		}
		v, err := getAttrs(ctx, sh, pubs[0], pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE, pkcs11.CKA_EC_PARAMS)
		if err != nil || !attrBool(v[0]) || attrBool(v[1]) || !bytes.Equal(v[2], ecParamsEd25519OID) {
			t.Errorf("%s: public key token=%v private=%v params=%x (%v), want true false %x", label, v[0], v[1], v[2], err, ecParamsEd25519OID)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "errs")
	if _, err := Generate(mustURI(t, tk.URI("consensus")), nil); err != nil {
		t.Fatal(err)
	}
	// Make keys of other types in a session that is closed again before the
	// Opens below: PKCS#11 login state belongs to the token and the process,
	// so an open logged-in session would make the token accept any PIN.
	ctx, sh, closeRaw := rawSessionCloser(t, tk)
	// Objects of other types under their own labels.
	p256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	if _, _, err := ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256), pkcs11.NewAttribute(pkcs11.CKA_LABEL, "p256")},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, "p256")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctx.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32), pkcs11.NewAttribute(pkcs11.CKA_LABEL, "aes")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(CKM_EC_EDWARDS_KEY_PAIR_GEN, nil)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ecParamsEd448OID), pkcs11.NewAttribute(pkcs11.CKA_LABEL, "ed448")},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, "ed448")}); err != nil {
		t.Fatal(err)
	}
	closeRaw()
	dir := t.TempDir()
	wrongPIN := filepath.Join(dir, "wrong.pin")
	if err := os.WriteFile(wrongPIN, []byte("wrong-pin-31337\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withPIN := func(uri, pinFile string) string {
		return strings.Replace(uri, "pin-source=file:"+tk.PINFile, "pin-source=file:"+pinFile, 1)
	}
	other := softhsmtest.New(t, "errs-other") // a second token, named in "tokens present"

	for _, tc := range []struct {
		name, uri string
		kind      error
		want      []string
	}{
		{"wrong pin", withPIN(tk.URI("consensus"), wrongPIN), ErrWrongPIN,
			[]string{`token "errs" rejected the PIN (CKR_PIN_INCORRECT)`, "pin-source"}},
		{"token not found", strings.Replace(tk.URI("consensus"), "token=errs", "token=nope", 1), ErrTokenNotFound,
			[]string{`token "nope" not found: tokens present in module`, `"errs"`, `"` + other.Label + `"`, "check token="}},
		{"object not found", tk.URI("missing"), ErrObjectNotFound,
			[]string{`key "missing" not found in token "errs"`, "signerd keys list --key <token URI>"}},
		{"id not found", strings.Replace(tk.URI(""), "?", ";id=%99?", 1), ErrObjectNotFound,
			[]string{`key with id %99 not found in token "errs"`}},
		{"p256 key", tk.URI("p256"), ErrWrongKeyType,
			[]string{`key "p256" in token "errs" is an ECDSA (CKK_EC) private key, not an Ed25519 private key`}},
		{"aes key", tk.URI("aes"), ErrWrongKeyType,
			[]string{`key "aes" in token "errs" is an AES (CKK_AES) secret key, not an Ed25519 private key`}},
		{"ed448 key", tk.URI("ed448"), ErrWrongKeyType,
			[]string{`is an Edwards (CKK_EC_EDWARDS, edwards448) private key`}},
		{"no object", tk.URI(""), ErrInvalidURI, []string{"names no key; add object=LABEL"}},
		{"type public", strings.Replace(tk.URI("consensus"), "?", ";type=public?", 1), ErrInvalidURI, []string{"type=public"}},
		{"missing module", strings.Replace(tk.URI("consensus"), tk.Module, "/nonexistent/libpkcs11.so", 1), ErrModule,
			[]string{`pkcs11 module "/nonexistent/libpkcs11.so" does not exist`}},
		{"not a module", strings.Replace(tk.URI("consensus"), tk.Module, tk.PINFile, 1), ErrModule,
			[]string{"cannot be loaded", "ldd"}},
	} {
		k, err := Open(mustURI(t, tc.uri), nil)
		if err == nil {
			k.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v does not match %v", tc.name, err, tc.kind)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\ndoes not contain %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), tk.PIN) || strings.Contains(err.Error(), "wrong-pin-31337") {
			t.Errorf("%s: error contains a PIN: %v", tc.name, err)
		}
	}
	var pe pkcs11.Error
	_, err := Open(mustURI(t, withPIN(tk.URI("consensus"), wrongPIN)), nil)
	if !errors.As(err, &pe) || pe != pkcs11.CKR_PIN_INCORRECT {
		t.Errorf("wrong PIN error does not carry CKR_PIN_INCORRECT: %v", err)
	}
}

func TestSignOptions(t *testing.T) {
	t.Parallel()
	_, _, k, pub := genKey(t, "opts")
	msg := []byte("m")
	for _, opts := range []crypto.SignerOpts{crypto.SHA512, &ed25519.Options{Hash: crypto.SHA512}, &ed25519.Options{Context: "ctx"}} {
		if sig, err := k.Sign(nil, msg, opts); err == nil {
			t.Errorf("Sign with %#v returned a signature %x", opts, sig)
		}
	}
	for _, opts := range []crypto.SignerOpts{nil, crypto.Hash(0), &ed25519.Options{}} {
		sig, err := k.Sign(rand.Reader, msg, opts)
		if err != nil || !ed25519.Verify(pub, msg, sig) {
			t.Errorf("Sign with %#v: %v", opts, err)
		}
	}
	digest := sha512.Sum512(msg)
	sig, err := k.Sign(nil, digest[:], crypto.Hash(0))
	if err != nil || !ed25519.Verify(pub, digest[:], sig) {
		t.Errorf("signing a 64-byte message: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	_, _, k, _ := genKey(t, "close")
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := k.Sign(nil, []byte("x"), crypto.Hash(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sign after Close = %v, want ErrClosed", err)
	}
}

// Another session of the same module logs the token out or closes every
// session: the key logs in again on its next Sign and still signs.
func TestLostSessionRecovered(t *testing.T) {
	t.Parallel()
	tk, _, k, pub := genKey(t, "lost")
	var logs logBuffer
	k.logger = testLogger(&logs)
	ctx, _, slot := rawSession(t, tk)
	for _, sabotage := range []struct {
		name string
		do   func() error
		code string
	}{
		{"C_CloseAllSessions", func() error { return ctx.CloseAllSessions(slot) }, "CKR_SESSION_HANDLE_INVALID"},
		{"C_Logout", func() error {
			sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
			if err != nil {
				return err
			}
			defer ctx.CloseSession(sh)
			return ctx.Logout(sh)
		}, "CKR_OBJECT_HANDLE_INVALID"},
	} {
		before := laneSessions(k)
		signVerify(t, k, pub, []byte("before "+sabotage.name))
		if err := sabotage.do(); err != nil {
			t.Fatalf("%s: %v", sabotage.name, err)
		}
		signVerify(t, k, pub, []byte("after "+sabotage.name))
		// Every lane's session died; the lanes used since opened new ones.
		signVerify(t, k, pub, []byte("again after "+sabotage.name))
		if after := laneSessions(k); after[0] == before[0] && after[len(after)-1] == before[len(before)-1] {
			t.Errorf("%s: the key kept its sessions %v; it should have opened new ones", sabotage.name, before)
		}
		if !strings.Contains(logs.String(), sabotage.code) {
			t.Errorf("%s: log does not mention %s:\n%s", sabotage.name, sabotage.code, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "pkcs11 session restored") {
		t.Errorf("log lacks the restore message:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), tk.PIN) {
		t.Error("log contains the PIN")
	}
}

// Moving the token's folder away makes SoftHSM 2.6.1 report the token as
// unreadable (C_GetTokenInfo: CKR_GENERAL_ERROR) and the key's handle as
// invalid: Sign fails with "token ... is not present". SoftHSM does not pick
// the token up again in the same process once the folder is back (measured),
// so recovery is tested with the fake module (fake_test.go).
func TestTokenGone(t *testing.T) {
	t.Parallel()
	tk, _, k, pub := genKey(t, "gone")
	signVerify(t, k, pub, []byte("before"))
	dir, err := tk.TokenDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(dir+".away", dir) })
	for i := 0; i < 2; i++ {
		sig, err := k.Sign(nil, []byte("while gone"), crypto.Hash(0))
		if sig != nil || !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("Sign while the token is gone = %x, %v; want ErrTokenNotFound", sig, err)
		}
		if !strings.HasPrefix(err.Error(), `token "gone" is not present: `) {
			t.Errorf("error %q does not start with the not-present wording", err)
		}
	}
}

func TestConcurrentSignOneKey(t *testing.T) {
	t.Parallel()
	_, _, k, pub := genKey(t, "conc")
	const workers, each = 8, 50
	var wg sync.WaitGroup
	var bad atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				msg := []byte(fmt.Sprintf("worker %d message %d", w, i))
				sig, err := k.Sign(nil, msg, crypto.Hash(0))
				if err != nil || !ed25519.Verify(pub, msg, sig) {
					bad.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d of %d concurrent signatures failed", n, workers*each)
	}
}

func TestTwoTokensInParallel(t *testing.T) {
	t.Parallel()
	_, _, k1, pub1 := genKey(t, "par-a")
	_, _, k2, pub2 := genKey(t, "par-b")
	if pub1.Equal(pub2) {
		t.Fatal("two generated keys are equal")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, kp := range []struct {
		k   *Key
		pub ed25519.PublicKey
	}{{k1, pub1}, {k2, pub2}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				msg := []byte(fmt.Sprintf("message %d", i))
				sig, err := kp.k.Sign(nil, msg, crypto.Hash(0))
				if err != nil {
					errs <- err
					return
				}
				if !ed25519.Verify(kp.pub, msg, sig) {
					errs <- errors.New("signature does not verify with its own key")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, a := range laneSessions(k1) {
		for _, b := range laneSessions(k2) {
			if a == b && k1.ctx == k2.ctx {
				t.Errorf("two keys share session %d", a)
			}
		}
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "list")
	want := map[string]ed25519.PublicKey{}
	for _, label := range []string{"b-key", "a-key"} {
		pub, err := Generate(mustURI(t, tk.URI(label)), nil)
		if err != nil {
			t.Fatal(err)
		}
		want[label] = pub
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Import(mustURI(t, tk.URI("c-imported")), priv, nil); err != nil {
		t.Fatal(err)
	}
	want["c-imported"] = pub

	list, err := List(mustURI(t, tk.URI("")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Label != "a-key" || list[1].Label != "b-key" || list[2].Label != "c-imported" {
		t.Fatalf("List = %+v", list)
	}
	for _, ki := range list {
		if !ki.Public.Equal(want[ki.Label]) || !ki.HasPrivate || len(ki.ID) != newIDLen {
			t.Errorf("%s: %+v", ki.Label, ki)
		}
		// Every listed URI opens its key.
		k, err := Open(mustURI(t, ki.URI), nil)
		if err != nil {
			t.Errorf("Open(%s): %v", ki.URI, err)
			continue
		}
		if !k.Public().(ed25519.PublicKey).Equal(ki.Public) {
			t.Errorf("%s opens another key", ki.URI)
		}
		k.Close()
	}
	// Without a PIN, public keys are listed and private keys not touched.
	noPIN := mustURI(t, tk.URI(""))
	noPIN.PinSource = ""
	list, err = List(noPIN, nil)
	if err != nil || len(list) != 3 || list[0].HasPrivate {
		t.Fatalf("List without PIN = %+v, %v", list, err)
	}
	// object filters.
	list, err = List(mustURI(t, tk.URI("b-key")), nil)
	if err != nil || len(list) != 1 || list[0].Label != "b-key" {
		t.Fatalf("List object=b-key = %+v, %v", list, err)
	}
}

// The PIN appears in no error and no log line, whatever fails.
func TestPINNeverShown(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "secret")
	if _, err := Generate(mustURI(t, tk.URI("consensus")), nil); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	log := testLogger(&logs)
	withValue := func(uri, pin string) *URI {
		u := mustURI(t, uri)
		u.SetPINValue(pin)
		return u
	}
	wrong := "not-the-pin-5521"
	var errs []error
	for _, u := range []*URI{
		withValue(tk.URI("consensus"), wrong),
		withValue(strings.Replace(tk.URI("consensus"), "token=secret", "token=absent", 1), tk.PIN),
		withValue(tk.URI("nothing"), tk.PIN),
	} {
		if k, err := Open(u, log); err == nil {
			k.Close()
			t.Errorf("Open(%s) succeeded", u)
		} else {
			errs = append(errs, err)
		}
		if s := u.String(); strings.Contains(s, tk.PIN) || strings.Contains(s, wrong) {
			t.Errorf("String() shows the PIN: %s", s)
		}
	}
	_, err := Generate(withValue(tk.URI("consensus"), tk.PIN), log)
	errs = append(errs, err)
	_, err = List(withValue(tk.URI(""), wrong), log)
	errs = append(errs, err)
	// Opening and a reconnect log too.
	k, err := Open(mustURI(t, tk.URI("consensus")), log)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, _, slot := rawSession(t, tk)
	if err := ctx.CloseAllSessions(slot); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Sign(nil, []byte("x"), crypto.Hash(0)); err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		if s := err.Error(); strings.Contains(s, tk.PIN) || strings.Contains(s, wrong) {
			t.Errorf("error shows a PIN: %s", s)
		}
	}
	if s := logs.String(); strings.Contains(s, tk.PIN) || strings.Contains(s, wrong) || s == "" {
		t.Errorf("log shows a PIN (or is empty):\n%s", s)
	}
}

func TestModuleRegistry(t *testing.T) {
	t.Parallel()
	lib := softhsmtest.Module(t)
	link := filepath.Join(t.TempDir(), "lib.so")
	if err := os.Symlink(lib, link); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a, err := acquireModule(lib, log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := acquireModule(filepath.Dir(link)+"/./lib.so", log) // unclean spelling, via a symlink
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two spellings of one module path loaded it twice")
	}
	modules.Lock()
	refs := a.refs
	modules.Unlock()
	if refs < 2 {
		t.Fatalf("refs = %d, want at least 2", refs)
	}
	b.release()
	a.release()
}

// BenchmarkSign measures Key.Sign on SoftHSM (C_SignInit + C_Sign + the
// ed25519.Verify check) and reports p50/p99 latency.
func BenchmarkSign(b *testing.B) {
	_, _, k, pub := genKey(b, fmt.Sprintf("bench-%d", benchCount.Add(1)))
	msg := bytes.Repeat([]byte{0x42}, 150) // about the size of a vote's sign bytes
	for _, mode := range []string{"verified", "raw-no-verify"} {
		b.Run(mode, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				var err error
				if mode == "verified" {
					_, err = k.Sign(nil, msg, crypto.Hash(0))
				} else {
					l := <-k.free
					_, err = k.rawSign(l, msg)
					k.free <- l
				}
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
	// The cost of the verification step alone (what "verified" adds).
	b.Run("verify-only", func(b *testing.B) {
		sig, _ := k.Sign(nil, msg, crypto.Hash(0))
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			ok := ed25519.Verify(pub, msg, sig)
			lat = append(lat, time.Since(t0))
			if !ok {
				b.Fatal("does not verify")
			}
		}
		b.StopTimer()
		reportPercentiles(b, lat)
	})
}

var benchCount atomic.Int32

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// A key whose CKA_EC_PARAMS is the PrintableString "edwards25519" (what
// OpenSC's pkcs11-tool writes) opens like one with the OID.
func TestOpenPrintableStringParams(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "curvename")
	ctx, sh, closeRaw := rawSessionCloser(t, tk)
	pubT, privT := keyTemplates("named", []byte{7}, ecParamsEd25519String)
	pubH, _, err := ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(CKM_EC_EDWARDS_KEY_PAIR_GEN, nil)}, pubT, privT)
	if err != nil {
		t.Fatal(err)
	}
	v, err := getAttrs(ctx, sh, pubH, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v[0], ecParamsEd25519String) || len(v[1]) != 34 || v[1][0] != 0x04 || v[1][1] != 32 {
		t.Fatalf("SoftHSM stored EC_PARAMS %x and EC_POINT %x", v[0], v[1])
	}
	closeRaw()
	k, err := Open(mustURI(t, tk.URI("named")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	signVerify(t, k, ed25519.PublicKey(v[1][2:]), []byte("m"))
}

// laneSessions returns the session handle of each of k's lanes; the caller
// must not sign concurrently.
func laneSessions(k *Key) []pkcs11.SessionHandle {
	var out []pkcs11.SessionHandle
	for _, l := range k.lanes {
		out = append(out, l.session)
	}
	return out
}
