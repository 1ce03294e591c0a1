package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/miekg/pkcs11"
	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/hsm"
	"github.com/signerd/signerd/statefile"
)

// slotFile creates dir/name as a state file's hot path sees it: two
// preallocated statefile.SlotSize slots, synced, so later writes overwrite
// allocated blocks in place. It returns the file, a random slot's worth of
// bytes and a cleanup that closes and removes the file.
func slotFile(dir, name string) (f *os.File, buf []byte, cleanup func(), err error) {
	path := filepath.Join(dir, name)
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bare fsync file: %v", err)
	}
	cleanup = func() { f.Close(); os.Remove(path) }
	buf = make([]byte, statefile.SlotSize)
	if _, err := rand.Read(buf); err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	// Allocate both slots and make the size durable, as state-file creation does.
	for off := int64(0); off < 2*statefile.SlotSize; off += statefile.SlotSize {
		if _, err := f.WriteAt(buf, off); err != nil {
			cleanup()
			return nil, nil, nil, fmt.Errorf("bare fsync file %q: %v", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		cleanup()
		return nil, nil, nil, fmt.Errorf("bare fsync file %q: %v", path, err)
	}
	return f, buf, cleanup, nil
}

// MeasureFsync times n writes of the state file's hot path in dir: a 4 KiB
// in-place overwrite of one of two slots of a preallocated 8 KiB file
// followed by fdatasync. The file is removed afterwards.
func MeasureFsync(dir string, n int) (Dist, error) {
	f, buf, cleanup, err := slotFile(dir, "bare-fsync.bin")
	if err != nil {
		return Dist{}, err
	}
	defer cleanup()
	fd := int(f.Fd())
	samples := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		buf[0], buf[1] = byte(i), byte(i>>8) // different bytes every time
		off := int64(i%2) * statefile.SlotSize
		t0 := time.Now()
		if _, err := unix.Pwrite(fd, buf, off); err != nil {
			return Dist{}, fmt.Errorf("bare fsync pwrite: %v", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return Dist{}, fmt.Errorf("bare fsync fdatasync: %v", err)
		}
		samples = append(samples, time.Since(t0))
	}
	return Summarize(samples), nil
}

// oidEd25519 is the DER encoding of OID 1.3.101.112 (CKA_EC_PARAMS).
var oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// BareHSM is a raw PKCS#11 Ed25519 signer: C_SignInit + C_Sign on one logged-in
// session, with nothing around it. It is the floor an HSM-backed signer is
// measured against, not a signer to use.
type BareHSM struct {
	ctx    *pkcs11.Ctx
	sess   pkcs11.SessionHandle
	key    pkcs11.ObjectHandle
	pub    ed25519.PublicKey
	ownIni bool
}

// OpenBareHSM loads the PKCS#11 module lib, logs into the token labelled
// tokenLabel with pin and generates an Ed25519 key pair in it. tokenObject
// makes it a token object (CKA_TOKEN, as a production consensus key is:
// SoftHSM then re-checks the object's file on every use); otherwise it is a
// session object that lives in memory only.
func OpenBareHSM(lib, tokenLabel, pin string, tokenObject bool) (*BareHSM, error) {
	ctx := pkcs11.New(lib)
	if ctx == nil {
		return nil, fmt.Errorf("pkcs11 module %q cannot be loaded: check SIGNERD_SOFTHSM2_LIB or install softhsm2", lib)
	}
	b := &BareHSM{ctx: ctx}
	if err := ctx.Initialize(); err != nil {
		if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			ctx.Destroy()
			return nil, fmt.Errorf("pkcs11 module %q: initialize: %v", lib, err)
		}
	} else {
		b.ownIni = true
	}
	fail := func(err error) (*BareHSM, error) { b.Close(); return nil, err }
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fail(fmt.Errorf("pkcs11 slots: %v", err))
	}
	slot, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && ti.Label == tokenLabel {
			slot, found = s, true
			break
		}
	}
	if !found {
		return fail(fmt.Errorf("pkcs11 token %q not found in %q: initialise it first (softhsm2-util --init-token)", tokenLabel, lib))
	}
	if b.sess, err = ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		return fail(fmt.Errorf("pkcs11 token %q: open session: %v", tokenLabel, err))
	}
	if err := ctx.Login(b.sess, pkcs11.CKU_USER, pin); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		return fail(fmt.Errorf("pkcs11 token %q: login: %v", tokenLabel, err))
	}
	pubT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, tokenObject),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519),
	}
	privT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, tokenObject),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
	}
	pubH, privH, err := ctx.GenerateKeyPair(b.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(hsm.CKM_EC_EDWARDS_KEY_PAIR_GEN, nil)}, pubT, privT)
	if err != nil {
		return fail(fmt.Errorf("pkcs11 token %q: generate Ed25519 key: %v", tokenLabel, err))
	}
	b.key = privH
	attrs, err := ctx.GetAttributeValue(b.sess, pubH, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil || len(attrs) != 1 {
		return fail(fmt.Errorf("pkcs11 token %q: read public key: %v", tokenLabel, err))
	}
	pt := attrs[0].Value
	if len(pt) == 34 && pt[0] == 0x04 && pt[1] == 32 { // DER OCTET STRING
		pt = pt[2:]
	}
	if len(pt) != ed25519.PublicKeySize {
		return fail(fmt.Errorf("pkcs11 token %q: CKA_EC_POINT has %d bytes, want a 32-byte Ed25519 point", tokenLabel, len(pt)))
	}
	b.pub = ed25519.PublicKey(pt)
	return b, nil
}

// Public returns the generated key's public half.
func (b *BareHSM) Public() ed25519.PublicKey { return b.pub }

// Sign is one raw C_SignInit + C_Sign with CKM_EDDSA.
func (b *BareHSM) Sign(msg []byte) ([]byte, error) {
	if err := b.ctx.SignInit(b.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(hsm.CKM_EDDSA, nil)}, b.key); err != nil {
		return nil, fmt.Errorf("pkcs11 C_SignInit: %v", err)
	}
	sig, err := b.ctx.Sign(b.sess, msg)
	if err != nil {
		return nil, fmt.Errorf("pkcs11 C_Sign: %v", err)
	}
	return sig, nil
}

// Close logs out, closes the session and, if this BareHSM initialised the
// module, finalises it.
func (b *BareHSM) Close() {
	if b.ctx == nil {
		return
	}
	if b.sess != 0 {
		_ = b.ctx.Logout(b.sess)
		_ = b.ctx.CloseSession(b.sess)
	}
	if b.ownIni {
		_ = b.ctx.Finalize()
	}
	b.ctx.Destroy()
	b.ctx = nil
}

// MeasureHSMSign times n raw signatures of msg. The first signature is
// verified, so a broken module cannot pass for a fast one.
func MeasureHSMSign(b *BareHSM, msg []byte, n int) (Dist, error) {
	sig, err := b.Sign(msg)
	if err != nil {
		return Dist{}, err
	}
	if !ed25519.Verify(b.pub, msg, sig) {
		return Dist{}, errors.New("pkcs11 module returned an Ed25519 signature that does not verify")
	}
	samples := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := b.Sign(msg); err != nil {
			return Dist{}, err
		}
		samples = append(samples, time.Since(t0))
	}
	return Summarize(samples), nil
}

// MeasureParallelFloor times n rounds of a bare HSM signature running while
// another goroutine (its own OS thread: both calls leave the Go scheduler)
// does the bare state write (4 KiB pwrite + fdatasync) in dir, waiting for
// both: the best any persist ‖ sign design can do on this machine. With
// perfect overlap it equals max(sign, fsync); on a machine where the flush
// competes with the signer for CPU it approaches their sum.
func MeasureParallelFloor(b *BareHSM, msg []byte, dir string, n int) (Dist, error) {
	f, buf, cleanup, err := slotFile(dir, "bare-parallel.bin")
	if err != nil {
		return Dist{}, err
	}
	defer cleanup()
	fd := int(f.Fd())
	samples := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		buf[0], buf[1] = byte(i), byte(i>>8)
		off := int64(i%2) * statefile.SlotSize
		t0 := time.Now()
		done := make(chan error, 1)
		go func() {
			if _, err := unix.Pwrite(fd, buf, off); err != nil {
				done <- err
				return
			}
			done <- unix.Fdatasync(fd)
		}()
		_, serr := b.Sign(msg)
		if err := errors.Join(<-done, serr); err != nil {
			return Dist{}, fmt.Errorf("bare sign ‖ fsync: %v", err)
		}
		samples = append(samples, time.Since(t0))
	}
	return Summarize(samples), nil
}

// MeasureHSMThroughput runs one goroutine per BareHSM (each its own token and
// session, as signerd's chains have), signing msg back to back for dur, and
// returns the aggregate signatures per second: the ceiling the HSM itself
// puts on multi-chain throughput on this machine.
func MeasureHSMThroughput(hsms []*BareHSM, msg []byte, dur time.Duration) (float64, error) {
	counts := make([]int, len(hsms))
	errs := make([]error, len(hsms))
	done := make(chan struct{})
	start := time.Now()
	until := start.Add(dur)
	for i, b := range hsms {
		go func() {
			defer func() { done <- struct{}{} }()
			for time.Now().Before(until) {
				if _, err := b.Sign(msg); err != nil {
					errs[i] = err
					return
				}
				counts[i]++
			}
		}()
	}
	for range hsms {
		<-done
	}
	elapsed := time.Since(start)
	total := 0
	for i := range hsms {
		if errs[i] != nil {
			return 0, errs[i]
		}
		total += counts[i]
	}
	return float64(total) / elapsed.Seconds(), nil
}
