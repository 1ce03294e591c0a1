//go:build cgo

package hsm

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"

	"github.com/miekg/pkcs11"
)

// newIDLen is the length of the random CKA_ID given to a key whose URI has
// no id.
const newIDLen = 16

// adminSession is a short-lived session for Generate, Import and List.
type adminSession struct {
	ctx   p11
	sh    pkcs11.SessionHandle
	token string
}

// withSession loads u's module, finds its token, opens a session (read-write
// if rw), logs in if needPIN or u has a PIN, runs fn and cleans up.
func withSession(u *URI, rw, needPIN bool, logger *slog.Logger, fn func(s adminSession) error) error {
	var pin []byte
	if needPIN || u.hasPIN() {
		var err error
		if pin, err = u.readPIN(); err != nil {
			return err
		}
		defer clear(pin)
	}
	mod, err := acquireModule(u.ModulePath, logger)
	if err != nil {
		return err
	}
	defer mod.release()
	return sessionOn(mod.ctx, u, rw, pin, fn)
}

// sessionOn is withSession after the module is loaded (the test seam).
func sessionOn(ctx p11, u *URI, rw bool, pin []byte, fn func(s adminSession) error) error {
	tok, err := findToken(ctx, u, false)
	if err != nil {
		return err
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION)
	if rw {
		flags |= pkcs11.CKF_RW_SESSION
	}
	sh, err := ctx.OpenSession(tok.slot, flags)
	if err != nil {
		return p11Error(err, "opening a session on token %q failed", tok.label)
	}
	defer func() { _ = ctx.CloseSession(sh) }()
	if pin != nil {
		if err := login(ctx, sh, pin, tok.label); err != nil {
			return err
		}
	}
	return fn(adminSession{ctx: ctx, sh: sh, token: tok.label})
}

// checkNew checks u can name a new key and refuses if the token already has
// an object with its label or id (of any class: signerd never shadows or
// overwrites an object).
func (s adminSession) checkNew(u *URI) error {
	if u.Object != "" {
		hs, err := findObjects(s.ctx, s.sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object)})
		if err != nil {
			return p11Error(err, "searching token %q for %q failed", s.token, u.Object)
		}
		if len(hs) > 0 {
			return newError(ErrObjectExists, nil, fmt.Sprintf(
				"token %q already has %d object(s) labelled %q; signerd never overwrites keys: choose another object= (see: signerd keys list --key <token URI>)", s.token, len(hs), u.Object))
		}
	}
	if len(u.ID) > 0 {
		hs, err := findObjects(s.ctx, s.sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID)})
		if err != nil {
			return p11Error(err, "searching token %q for id %s failed", s.token, pctEncode(string(u.ID), ""))
		}
		if len(hs) > 0 {
			return newError(ErrObjectExists, nil, fmt.Sprintf(
				"token %q already has %d object(s) with id %s; choose another id= or leave id out to get a random one", s.token, len(hs), pctEncode(string(u.ID), "")))
		}
	}
	return nil
}

// checkNewURI checks the attributes Generate and Import need.
func checkNewURI(u *URI, op string) error {
	if err := checkKeyURI(u, op); err != nil {
		return err
	}
	if u.Object == "" {
		return uriError("%s needs object=LABEL in the key uri to label the new key", op)
	}
	return nil
}

// keyTemplates returns the public and private key templates of a new key:
// token objects; the private key private, sensitive, not extractable and
// only for signing; the public key readable without login.
func keyTemplates(label string, id, params []byte) (pub, priv []*pkcs11.Attribute) {
	pub = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, CKK_EC_EDWARDS),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	priv = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, CKK_EC_EDWARDS),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	return pub, priv
}

// curveParamsRejected reports whether a token refused CKA_EC_PARAMS itself,
// so the other edwards25519 encoding is worth a try.
func curveParamsRejected(err error) bool {
	switch errCode(err) {
	case pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_CURVE_NOT_SUPPORTED, pkcs11.CKR_DOMAIN_PARAMS_INVALID, pkcs11.CKR_TEMPLATE_INCONSISTENT:
		return true
	}
	return false
}

// Generate creates a new Ed25519 key pair inside the token u selects, labelled
// u.Object with CKA_ID u.ID: the private key a token object that is private,
// sensitive and never extractable, plus a public key object so the key can be
// shown and listed without touching the private key. It refuses if any object
// with that label or id exists ([ErrObjectExists]). If u has no id, Generate
// picks a random 16-byte id and stores it in u.ID, so u.String() then prints
// the full URI of the new key. The new key is checked by signing a self-test
// message before Generate returns its public key.
func Generate(u *URI, logger *slog.Logger) (ed25519.PublicKey, error) {
	logger = discardIfNil(logger)
	if err := checkNewURI(u, "generate"); err != nil {
		return nil, err
	}
	var pub ed25519.PublicKey
	err := withSession(u, true, true, logger, func(s adminSession) error {
		var err error
		pub, err = s.generate(u)
		return err
	})
	if err != nil {
		return nil, err
	}
	logger.Info("generated Ed25519 key in token", "key", u.String(), "public_key", fmt.Sprintf("%x", []byte(pub)))
	return pub, nil
}

// newID returns u's id, or a fresh random one that no object in the token
// uses yet.
func (s adminSession) newID(u *URI) ([]byte, error) {
	if len(u.ID) > 0 {
		return u.ID, nil
	}
	id := make([]byte, newIDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("generating a key id: %w", err)
	}
	c := u.Clone()
	c.Object, c.ID = "", id
	if err := s.checkNew(c); err != nil {
		return nil, err
	}
	return id, nil
}

func (s adminSession) generate(u *URI) (ed25519.PublicKey, error) {
	if err := s.checkNew(u); err != nil {
		return nil, err
	}
	id, err := s.newID(u)
	if err != nil {
		return nil, err
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(CKM_EC_EDWARDS_KEY_PAIR_GEN, nil)}
	var pubH, privH pkcs11.ObjectHandle
	for _, params := range [][]byte{ecParamsEd25519OID, ecParamsEd25519String} {
		pubT, privT := keyTemplates(u.Object, id, params)
		pubH, privH, err = s.ctx.GenerateKeyPair(s.sh, mech, pubT, privT)
		if err == nil || !curveParamsRejected(err) {
			break
		}
	}
	if err != nil {
		if errCode(err) == pkcs11.CKR_MECHANISM_INVALID {
			return nil, newError(ErrWrongKeyType, err, fmt.Sprintf(
				"token %q cannot generate Ed25519 keys (no CKM_EC_EDWARDS_KEY_PAIR_GEN); it needs PKCS#11 3.0 EdDSA support", s.token))
		}
		return nil, p11Error(err, "token %q failed to generate an Ed25519 key pair", s.token)
	}
	v, err := getAttrs(s.ctx, s.sh, pubH, pkcs11.CKA_EC_POINT)
	if err == nil {
		var pub ed25519.PublicKey
		if pub, err = parseECPoint(v[0]); err == nil {
			if err = s.selfTest(privH, pub); err == nil {
				if len(u.ID) == 0 {
					u.ID = id
				}
				return pub, nil
			}
		}
	}
	s.destroy(pubH, privH)
	return nil, fmt.Errorf("token %q generated a key pair that fails its check, so it was removed again: %w", s.token, err)
}

// Import stores priv in the token u selects as a private key object (private,
// sensitive, not extractable) plus its public key object, labelled u.Object
// with CKA_ID u.ID (a random 16-byte id stored in u.ID if u has none). It
// refuses if an object with that label or id exists. The imported key signs
// a self-test message before Import returns; on any failure nothing is left
// in the token. Import does not keep or log priv; the caller zeroes it.
func Import(u *URI, priv ed25519.PrivateKey, logger *slog.Logger) (ed25519.PublicKey, error) {
	logger = discardIfNil(logger)
	if err := checkNewURI(u, "import"); err != nil {
		return nil, err
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("import: Ed25519 private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	pub := ed25519.NewKeyFromSeed(priv.Seed()).Public().(ed25519.PublicKey)
	if !bytes.Equal(pub, priv[32:]) {
		return nil, fmt.Errorf("import: the Ed25519 private key's public half does not match its seed; the key is corrupt")
	}
	err := withSession(u, true, true, logger, func(s adminSession) error {
		return s.importKey(u, priv, pub)
	})
	if err != nil {
		return nil, err
	}
	logger.Info("imported Ed25519 key into token", "key", u.String(), "public_key", fmt.Sprintf("%x", []byte(pub)))
	return pub, nil
}

func (s adminSession) importKey(u *URI, priv ed25519.PrivateKey, pub ed25519.PublicKey) error {
	if err := s.checkNew(u); err != nil {
		return err
	}
	id, err := s.newID(u)
	if err != nil {
		return err
	}
	// CKA_VALUE of an Ed25519 private key is the 32-byte seed (RFC 8032
	// private key). SoftHSM 2.6.1 accepts a 64-byte seed||public value at
	// C_CreateObject but then fails C_Sign with CKR_GENERAL_ERROR (measured).
	seed := bytes.Clone(priv.Seed())
	defer clear(seed)
	var privH pkcs11.ObjectHandle
	var params []byte
	for _, params = range [][]byte{ecParamsEd25519OID, ecParamsEd25519String} {
		_, privT := keyTemplates(u.Object, id, params)
		privT = append(privT, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params), pkcs11.NewAttribute(pkcs11.CKA_VALUE, seed))
		privH, err = s.ctx.CreateObject(s.sh, privT)
		if err == nil || !curveParamsRejected(err) {
			break
		}
	}
	if err != nil {
		return p11Error(err, "token %q refused to import the Ed25519 private key", s.token)
	}
	pubT, _ := keyTemplates(u.Object, id, params)
	pubT = append(pubT, pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, encodeECPoint(pub)))
	pubH, err := s.ctx.CreateObject(s.sh, pubT)
	if err != nil {
		s.destroy(privH)
		return p11Error(err, "token %q refused the public key object (the private key was removed again)", s.token)
	}
	if err := s.selfTest(privH, pub); err != nil {
		s.destroy(pubH, privH)
		return fmt.Errorf("token %q imported a key that fails its check, so it was removed again: %w", s.token, err)
	}
	if len(u.ID) == 0 {
		u.ID = id
	}
	return nil
}

// selfTest signs selfTestMessage with privH and verifies it with pub.
func (s adminSession) selfTest(privH pkcs11.ObjectHandle, pub ed25519.PublicKey) error {
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(CKM_EDDSA, nil)}
	if err := s.ctx.SignInit(s.sh, mech, privH); err != nil {
		return p11Error(err, "self-test C_SignInit")
	}
	sig, err := s.ctx.Sign(s.sh, selfTestMessage)
	if err != nil {
		return p11Error(err, "self-test C_Sign")
	}
	if !ed25519.Verify(pub, selfTestMessage, sig) {
		return newError(ErrBadSignature, nil, "self-test signature does not verify against the public key")
	}
	return nil
}

// destroy removes objects created by a failed Generate or Import.
func (s adminSession) destroy(hs ...pkcs11.ObjectHandle) {
	for _, h := range hs {
		_ = s.ctx.DestroyObject(s.sh, h)
	}
}

// List returns every Ed25519 key pair in the token u selects (object and id,
// if present, filter the list; type may be "private" or "public"). Keys are
// found through their public key objects, sorted by label then id. If u
// names a PIN, List logs in and also reports which keys have their private
// key; a private key without a public key object is logged as a warning and
// left out (signerd cannot use it). Without a PIN nothing private is touched.
func List(u *URI, logger *slog.Logger) ([]KeyInfo, error) {
	logger = discardIfNil(logger)
	if u == nil || u.ModulePath == "" {
		return nil, uriError("module-path is missing; add ?module-path=/absolute/path/to/module.so")
	}
	var out []KeyInfo
	err := withSession(u, false, false, logger, func(s adminSession) error {
		var err error
		out, err = s.list(u, logger)
		return err
	})
	return out, err
}

func (s adminSession) list(u *URI, logger *slog.Logger) ([]KeyInfo, error) {
	edwards := pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, CKK_EC_EDWARDS)
	pubs, err := findObjects(s.ctx, s.sh, selectTemplate(u, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), edwards))
	if err != nil {
		return nil, p11Error(err, "listing public keys in token %q failed", s.token)
	}
	var out []KeyInfo
	for _, h := range pubs {
		v, err := getAttrs(s.ctx, s.sh, h, pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
		if err != nil {
			return nil, p11Error(err, "reading a public key in token %q failed", s.token)
		}
		if !isEd25519Params(v[2]) {
			continue
		}
		pub, err := parseECPoint(v[3])
		if err != nil {
			logger.Warn("skipping unreadable Ed25519 public key", "token", s.token, "object", string(v[0]), "error", err.Error())
			continue
		}
		out = append(out, KeyInfo{Label: string(v[0]), ID: v[1], Public: pub})
	}
	privs, err := findObjects(s.ctx, s.sh, selectTemplate(u, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), edwards))
	if err != nil {
		return nil, p11Error(err, "listing private keys in token %q failed", s.token)
	}
	for _, h := range privs {
		o, err := readObject(s.ctx, s.sh, h)
		if err != nil || !o.isEd25519(pkcs11.CKO_PRIVATE_KEY) {
			continue
		}
		found := false
		for i := range out {
			if matchesPair(out[i], o) {
				out[i].HasPrivate, found = true, true
			}
		}
		if !found {
			logger.Warn("Ed25519 private key without a public key object (not usable by signerd)", "token", s.token, "object", o.label, "id", pctEncode(string(o.id), ""))
		}
	}
	for i := range out {
		ku := u.Clone()
		ku.Object, ku.ID, ku.Type = out[i].Label, out[i].ID, ""
		out[i].URI = ku.String()
	}
	slices.SortFunc(out, func(a, b KeyInfo) int {
		return cmp.Or(cmp.Compare(a.Label, b.Label), bytes.Compare(a.ID, b.ID))
	})
	return out, nil
}

// matchesPair reports whether private key o belongs to the listed public key
// (same id, or same label when neither has an id).
func matchesPair(k KeyInfo, o object) bool {
	if len(k.ID) > 0 || len(o.id) > 0 {
		return bytes.Equal(k.ID, o.id)
	}
	return k.Label == o.label
}
