//go:build cgo

package hsm

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// fakeP11 is a one-slot PKCS#11 module in pure Go with one Ed25519 key pair.
// It does what SoftHSM cannot be made to do on demand: a token that goes away
// and comes back, device errors, a wrong signature, a locked PIN. The same
// Key code runs against it and against SoftHSM (softhsm_test.go).
type fakeP11 struct {
	mu        sync.Mutex
	label     string
	pin       string
	present   bool
	pinLocked bool
	loggedIn  bool
	epoch     uint // object handles are valid for one epoch (login/insertion)
	sessions  map[pkcs11.SessionHandle]*fakeSession
	next      pkcs11.SessionHandle
	opened    int // sessions opened so far
	priv      ed25519.PrivateKey
	id        []byte

	failSign    []error // returned by the next C_SignInit calls, in order
	corruptSigs bool    // flip a bit in every signature
	maxSessions int     // > 0: C_OpenSession fails with CKR_SESSION_COUNT beyond it

	// rendezvous, if set, makes every C_Sign wait (bounded) until as many
	// C_Sign calls as its capacity are in progress at once.
	rendezvous chan struct{}
	// hold, if set, makes every C_Sign wait (bounded) until it is closed.
	hold chan struct{}
	// signing counts C_Sign calls in progress.
	signing atomic.Int32
}

type fakeSession struct {
	found  []pkcs11.ObjectHandle
	signer bool // C_SignInit done
}

const fakeSlot = 7

func newFake(t *testing.T) *fakeP11 {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeP11{label: "validator", pin: "1234", present: true, epoch: 1,
		sessions: map[pkcs11.SessionHandle]*fakeSession{}, next: 1, priv: priv, id: []byte{1}}
}

func (f *fakeP11) privHandle() pkcs11.ObjectHandle { return pkcs11.ObjectHandle(f.epoch*100 + 1) }
func (f *fakeP11) pubHandle() pkcs11.ObjectHandle  { return pkcs11.ObjectHandle(f.epoch*100 + 2) }

// remove unplugs the token: sessions, login and handles are gone.
func (f *fakeP11) remove() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.present, f.loggedIn = false, false
	f.sessions = map[pkcs11.SessionHandle]*fakeSession{}
	f.epoch++
}

func (f *fakeP11) insert() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.present = true
}

func (f *fakeP11) session(sh pkcs11.SessionHandle) (*fakeSession, error) {
	if !f.present {
		return nil, pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	}
	s := f.sessions[sh]
	if s == nil {
		return nil, pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	return s, nil
}

func (f *fakeP11) GetInfo() (pkcs11.Info, error) { return pkcs11.Info{ManufacturerID: "fake"}, nil }

func (f *fakeP11) GetSlotList(bool) ([]uint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.present {
		return nil, nil
	}
	return []uint{fakeSlot}, nil
}

func (f *fakeP11) GetSlotInfo(uint) (pkcs11.SlotInfo, error) { return pkcs11.SlotInfo{}, nil }

func (f *fakeP11) GetTokenInfo(slot uint) (pkcs11.TokenInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.present || slot != fakeSlot {
		return pkcs11.TokenInfo{}, pkcs11.Error(pkcs11.CKR_SLOT_ID_INVALID)
	}
	return pkcs11.TokenInfo{Label: f.label + strings.Repeat(" ", 32-len(f.label)), Flags: pkcs11.CKF_TOKEN_INITIALIZED}, nil
}

func (f *fakeP11) OpenSession(slot uint, _ uint) (pkcs11.SessionHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.present {
		return 0, pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT)
	}
	if f.maxSessions > 0 && len(f.sessions) >= f.maxSessions {
		return 0, pkcs11.Error(pkcs11.CKR_SESSION_COUNT)
	}
	sh := f.next
	f.next++
	f.opened++
	f.sessions[sh] = &fakeSession{}
	return sh, nil
}

func (f *fakeP11) CloseSession(sh pkcs11.SessionHandle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.session(sh); err != nil {
		return err
	}
	delete(f.sessions, sh)
	if len(f.sessions) == 0 {
		f.loggedIn = false // PKCS#11: the last session closing ends the login
		f.epoch++
	}
	return nil
}

func (f *fakeP11) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.session(sh); err != nil {
		return err
	}
	switch {
	case f.pinLocked:
		return pkcs11.Error(pkcs11.CKR_PIN_LOCKED)
	case f.loggedIn:
		return pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)
	case pin != f.pin:
		return pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)
	}
	f.loggedIn = true
	return nil
}

func (f *fakeP11) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(sh)
	if err != nil {
		return err
	}
	s.found = nil
	for _, h := range []pkcs11.ObjectHandle{f.privHandle(), f.pubHandle()} {
		if h == f.privHandle() && !f.loggedIn {
			continue
		}
		match := true
		for _, a := range temp {
			v, ok := f.attr(h, a.Type)
			if !ok || !bytes.Equal(v, a.Value) {
				match = false
			}
		}
		if match {
			s.found = append(s.found, h)
		}
	}
	return nil
}

func (f *fakeP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(sh)
	if err != nil {
		return nil, false, err
	}
	n := min(max, len(s.found))
	out := s.found[:n]
	s.found = s.found[n:]
	return out, false, nil
}

func (f *fakeP11) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.session(sh)
	return err
}

// attr returns the value of attribute typ of object h.
func (f *fakeP11) attr(h pkcs11.ObjectHandle, typ uint) ([]byte, bool) {
	isPriv := h == f.privHandle()
	if !isPriv && h != f.pubHandle() {
		return nil, false
	}
	class := uint(pkcs11.CKO_PUBLIC_KEY)
	if isPriv {
		class = pkcs11.CKO_PRIVATE_KEY
	}
	switch typ {
	case pkcs11.CKA_CLASS:
		return pkcs11.NewAttribute(typ, class).Value, true
	case pkcs11.CKA_KEY_TYPE:
		return pkcs11.NewAttribute(typ, CKK_EC_EDWARDS).Value, true
	case pkcs11.CKA_LABEL:
		return []byte("consensus"), true
	case pkcs11.CKA_ID:
		return f.id, true
	case pkcs11.CKA_EC_PARAMS:
		return ecParamsEd25519String, true
	case pkcs11.CKA_EC_POINT:
		if !isPriv {
			return encodeECPoint(f.priv.Public().(ed25519.PublicKey)), true
		}
	case pkcs11.CKA_SIGN:
		return []byte{1}, isPriv
	case pkcs11.CKA_ALWAYS_AUTHENTICATE:
		return []byte{0}, isPriv
	}
	return nil, false
}

func (f *fakeP11) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.session(sh); err != nil {
		return nil, err
	}
	if o != f.privHandle() && o != f.pubHandle() {
		return nil, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)
	}
	out := make([]*pkcs11.Attribute, len(a))
	for i, x := range a {
		v, ok := f.attr(o, x.Type)
		if !ok {
			return nil, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
		}
		out[i] = &pkcs11.Attribute{Type: x.Type, Value: v}
	}
	return out, nil
}

func (f *fakeP11) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(sh)
	if err != nil {
		return err
	}
	if len(f.failSign) > 0 {
		err := f.failSign[0]
		f.failSign = f.failSign[1:]
		return err
	}
	if len(m) != 1 || m[0].Mechanism != CKM_EDDSA || m[0].Parameter != nil {
		return pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID)
	}
	if o != f.privHandle() || !f.loggedIn {
		return pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)
	}
	s.signer = true
	return nil
}

func (f *fakeP11) Sign(sh pkcs11.SessionHandle, msg []byte) ([]byte, error) {
	f.signing.Add(1)
	defer f.signing.Add(-1)
	if h := f.hold; h != nil {
		select {
		case <-h:
		case <-time.After(5 * time.Second):
			return nil, pkcs11.Error(pkcs11.CKR_FUNCTION_CANCELED)
		}
	}
	if r := f.rendezvous; r != nil {
		r <- struct{}{}
		deadline := time.After(5 * time.Second)
		for len(r) < cap(r) {
			select {
			case <-deadline:
				return nil, pkcs11.Error(pkcs11.CKR_FUNCTION_CANCELED) // never met a concurrent C_Sign
			case <-time.After(time.Millisecond):
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(sh)
	if err != nil {
		return nil, err
	}
	if !s.signer {
		return nil, pkcs11.Error(pkcs11.CKR_OPERATION_NOT_INITIALIZED)
	}
	s.signer = false
	sig := ed25519.Sign(f.priv, msg)
	if f.corruptSigs {
		sig[10] ^= 0x01
	}
	return sig, nil
}

func (f *fakeP11) GenerateKeyPair(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute, []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	return 0, 0, pkcs11.Error(pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
}

func (f *fakeP11) CreateObject(pkcs11.SessionHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	return 0, pkcs11.Error(pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
}

func (f *fakeP11) DestroyObject(pkcs11.SessionHandle, pkcs11.ObjectHandle) error {
	return pkcs11.Error(pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
}

var _ p11 = (*fakeP11)(nil)

func openFake(t *testing.T, f *fakeP11, pin string) (*Key, *logBuffer, error) {
	t.Helper()
	u := mustURI(t, "pkcs11:token=validator;object=consensus?module-path=/fake.so")
	var logs logBuffer
	k, err := openWith(f, u, []byte(pin), testLogger(&logs))
	return k, &logs, err
}

func fakeSign(k *Key, msg string) ([]byte, error) {
	return k.Sign(nil, []byte(msg), crypto.Hash(0))
}

// The token disappears while the key is open: Sign says it is not present,
// keeps saying so, and signs again once the token is back.
func TestFakeTokenGoneAndBack(t *testing.T) {
	f := newFake(t)
	k, logs, err := openFake(t, f, "1234")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	pub := f.priv.Public().(ed25519.PublicKey)
	if !k.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("wrong public key")
	}
	if _, err := fakeSign(k, "before"); err != nil {
		t.Fatal(err)
	}
	f.remove()
	for i := 0; i < 3; i++ {
		sig, err := fakeSign(k, "while gone")
		if sig != nil || !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("Sign while gone = %x, %v", sig, err)
		}
		const want = `token "validator" is not present: module "/fake.so" shows no initialised token; reconnect the HSM`
		if !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error\n%v\nwant prefix\n%s", err, want)
		}
	}
	f.insert()
	msg := "after"
	sig, err := fakeSign(k, msg)
	if err != nil || !ed25519.Verify(pub, []byte(msg), sig) {
		t.Fatalf("Sign after the token came back: %v", err)
	}
	for _, w := range []string{"CKR_DEVICE_REMOVED", "pkcs11 reconnect failed", "pkcs11 session restored"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, logs)
		}
	}
}

// Each session-loss code triggers one reconnect and a successful retry;
// other codes fail without reconnecting; a loss that repeats after the
// reconnect fails instead of looping.
func TestFakeSessionLossCodes(t *testing.T) {
	lost := []uint{
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OPERATION_ACTIVE,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_ERROR,
	}
	for _, code := range lost {
		f := newFake(t)
		k, _, err := openFake(t, f, "1234")
		if err != nil {
			t.Fatal(err)
		}
		opened := f.opened
		f.failSign = []error{pkcs11.Error(code)}
		if _, err := fakeSign(k, "m"); err != nil {
			t.Errorf("%v: Sign = %v, want success after reconnect", pkcs11.Error(code), err)
		}
		if f.opened != opened+1 {
			t.Errorf("%v: %d sessions opened, want 1", pkcs11.Error(code), f.opened-opened)
		}
		f.failSign = []error{pkcs11.Error(code), pkcs11.Error(code)}
		if _, err := fakeSign(k, "m"); !isCode(err, code) {
			t.Errorf("%v twice: Sign = %v, want that error", pkcs11.Error(code), err)
		}
		k.Close()
	}
	for _, code := range []uint{pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED} {
		f := newFake(t)
		k, _, err := openFake(t, f, "1234")
		if err != nil {
			t.Fatal(err)
		}
		opened := f.opened
		f.failSign = []error{pkcs11.Error(code)}
		_, err = fakeSign(k, "m")
		var pe pkcs11.Error
		if !errors.As(err, &pe) || uint(pe) != code || f.opened != opened {
			t.Errorf("%v: Sign = %v with %d new sessions; want the error and no reconnect", pkcs11.Error(code), err, f.opened-opened)
		}
		k.Close()
	}
}

// A signature that does not verify is an error, never returned.
func TestFakeBadSignature(t *testing.T) {
	f := newFake(t)
	k, _, err := openFake(t, f, "1234")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	f.corruptSigs = true
	sig, err := fakeSign(k, "m")
	if sig != nil || !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Sign with a corrupt token = %x, %v; want nil, ErrBadSignature", sig, err)
	}
	// At open, the self-test catches it.
	f2 := newFake(t)
	f2.corruptSigs = true
	if _, _, err := openFake(t, f2, "1234"); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "self-test") {
		t.Fatalf("Open with a corrupt token = %v", err)
	}
}

func TestFakeLoginErrors(t *testing.T) {
	f := newFake(t)
	if _, _, err := openFake(t, f, "0000"); !errors.Is(err, ErrWrongPIN) || strings.Contains(err.Error(), "0000") {
		t.Errorf("wrong PIN: %v", err)
	}
	if len(f.sessions) != 0 {
		t.Errorf("a failed open left %d sessions open", len(f.sessions))
	}
	f.pinLocked = true
	_, _, err := openFake(t, f, "1234")
	if !errors.Is(err, ErrPINLocked) || !strings.Contains(err.Error(), `token "validator": the user PIN is locked`) {
		t.Errorf("locked PIN: %v", err)
	}
}

// A key replaced behind the signer's back is refused after a reconnect.
func TestFakeKeyReplaced(t *testing.T) {
	f := newFake(t)
	k, _, err := openFake(t, f, "1234")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	_, f.priv, _ = ed25519.GenerateKey(rand.Reader)
	f.remove()
	f.insert()
	if sig, err := fakeSign(k, "m"); sig != nil || err == nil || !strings.Contains(err.Error(), "different public key") {
		t.Fatalf("Sign after key replacement = %x, %v", sig, err)
	}
}

// Two signatures on one key run at the same time on two sessions: each
// C_Sign waits for the other, which only a Key with two lanes can satisfy.
func TestFakeTwoLanesSignConcurrently(t *testing.T) {
	f := newFake(t)
	k, _, err := openFake(t, f, "1234")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if len(k.lanes) != 2 {
		t.Fatalf("key has %d sessions, want 2", len(k.lanes))
	}
	f.rendezvous = make(chan struct{}, 2)
	errs := make(chan error, 2)
	for _, m := range []string{"vote", "extension"} {
		go func() { _, err := fakeSign(k, m); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent sign: %v (the two signatures did not run at the same time)", err)
		}
	}
}

// A token that gives a key one session still signs, serially, and says so.
func TestFakeOneSessionToken(t *testing.T) {
	f := newFake(t)
	f.maxSessions = 1
	k, logs, err := openFake(t, f, "1234")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if len(k.lanes) != 1 {
		t.Fatalf("key has %d sessions, want 1", len(k.lanes))
	}
	if !strings.Contains(logs.String(), "only one session") {
		t.Errorf("no warning about the single session:\n%s", logs.String())
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fakeSign(k, fmt.Sprint("m", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// Close waits for a signature in progress, and Sign after Close fails.
func TestFakeCloseWaitsForSign(t *testing.T) {
	f := newFake(t)
	k, _, err := openFake(t, f, "1234")
	if err != nil {
		t.Fatal(err)
	}
	f.hold = make(chan struct{})
	signed := make(chan error, 1)
	go func() { _, err := fakeSign(k, "slow"); signed <- err }()
	for deadline := time.Now().Add(5 * time.Second); f.signing.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the signature never started")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- k.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a signature was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(f.hold)
	if err := <-signed; err != nil {
		t.Fatalf("the signature in progress failed: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := fakeSign(k, "after"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sign after Close: %v, want ErrClosed", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sessions) != 0 {
		t.Errorf("%d sessions left open after Close", len(f.sessions))
	}
}
