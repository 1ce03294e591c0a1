//go:build cgo

package hsm

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/pkcs11"
)

// maxObjects bounds a FindObjects loop: a token with more matching objects
// than this is not one signerd manages.
const maxObjects = 10000

// trimPadded trims the blank (or NUL) padding of a fixed-size PKCS#11 string.
func trimPadded(s string) string { return strings.TrimRight(s, " \x00") }

// tokenDesc names the token a URI selects, for messages.
func tokenDesc(u *URI) string {
	switch {
	case u.Token != "":
		return fmt.Sprintf("token %q", u.Token)
	case u.Serial != "":
		return fmt.Sprintf("token with serial %q", u.Serial)
	case u.SlotID != nil:
		return fmt.Sprintf("token in slot %d", *u.SlotID)
	}
	return "token"
}

// keyDesc names the key a URI selects, for messages.
func keyDesc(u *URI) string {
	switch {
	case u.Object != "" && len(u.ID) > 0:
		return fmt.Sprintf("key %q (id %s)", u.Object, pctEncode(string(u.ID), ""))
	case u.Object != "":
		return fmt.Sprintf("key %q", u.Object)
	case len(u.ID) > 0:
		return fmt.Sprintf("key with id %s", pctEncode(string(u.ID), ""))
	}
	return "key"
}

// foundToken is the slot holding the token a URI selects.
type foundToken struct {
	slot  uint
	label string
}

// findToken returns the one initialised token matching u's library, slot and
// token attributes. gone selects the wording for a token that disappeared
// while a key was open ("is not present").
func findToken(ctx p11, u *URI, gone bool) (foundToken, error) {
	if u.LibraryManufacturer != "" || u.LibraryDescription != "" || u.LibraryVersion != "" {
		info, err := ctx.GetInfo()
		if err != nil {
			return foundToken{}, moduleError(err, "pkcs11 module %q: C_GetInfo failed: %v", u.ModulePath, err)
		}
		ver := fmt.Sprintf("%d.%d", info.LibraryVersion.Major, info.LibraryVersion.Minor)
		if (u.LibraryManufacturer != "" && u.LibraryManufacturer != trimPadded(info.ManufacturerID)) ||
			(u.LibraryDescription != "" && u.LibraryDescription != trimPadded(info.LibraryDescription)) ||
			(u.LibraryVersion != "" && u.LibraryVersion != ver) {
			return foundToken{}, newError(ErrTokenNotFound, nil, fmt.Sprintf(
				"pkcs11 module %q is library-manufacturer=%q library-description=%q library-version=%s, which does not match the key uri; fix the library-* attributes or module-path",
				u.ModulePath, trimPadded(info.ManufacturerID), trimPadded(info.LibraryDescription), ver))
		}
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return foundToken{}, newError(ErrTokenNotFound, err, fmt.Sprintf("pkcs11 module %q: listing slots failed: %v", u.ModulePath, err))
	}
	var matches []foundToken
	var present, unreadable []string
	for _, slot := range slots {
		if u.SlotID != nil && uint64(slot) != *u.SlotID {
			continue
		}
		if u.SlotDescription != "" || u.SlotManufacturer != "" {
			si, err := ctx.GetSlotInfo(slot)
			if err != nil {
				unreadable = append(unreadable, fmt.Sprintf("slot %d (%v)", slot, err))
				continue
			}
			if (u.SlotDescription != "" && u.SlotDescription != trimPadded(si.SlotDescription)) ||
				(u.SlotManufacturer != "" && u.SlotManufacturer != trimPadded(si.ManufacturerID)) {
				continue
			}
		}
		ti, err := ctx.GetTokenInfo(slot)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("slot %d (%v)", slot, err))
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		label := trimPadded(ti.Label)
		present = append(present, strconv.Quote(label))
		if (u.Token != "" && u.Token != label) ||
			(u.Manufacturer != "" && u.Manufacturer != trimPadded(ti.ManufacturerID)) ||
			(u.Model != "" && u.Model != trimPadded(ti.Model)) ||
			(u.Serial != "" && u.Serial != trimPadded(ti.SerialNumber)) {
			continue
		}
		matches = append(matches, foundToken{slot: slot, label: label})
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		var b strings.Builder
		if gone {
			fmt.Fprintf(&b, "%s is not present: ", tokenDesc(u))
		} else {
			fmt.Fprintf(&b, "%s not found: ", tokenDesc(u))
		}
		if len(present) == 0 {
			fmt.Fprintf(&b, "module %q shows no initialised token", u.ModulePath)
		} else {
			fmt.Fprintf(&b, "tokens present in module %q: %s", u.ModulePath, strings.Join(present, ", "))
		}
		if len(unreadable) > 0 {
			fmt.Fprintf(&b, "; unreadable: %s", strings.Join(unreadable, ", "))
		}
		if gone {
			b.WriteString("; reconnect the HSM (signing resumes when the token is back)")
		} else {
			b.WriteString("; check token= (and serial=, slot-*) in the key uri")
		}
		return foundToken{}, newError(ErrTokenNotFound, nil, b.String())
	}
	var labels []string
	for _, m := range matches {
		labels = append(labels, fmt.Sprintf("%q (slot %d)", m.label, m.slot))
	}
	return foundToken{}, newError(ErrAmbiguous, nil, fmt.Sprintf(
		"the key uri matches %d tokens: %s; add token= or serial= to pick one", len(matches), strings.Join(labels, ", ")))
}

// findObjects returns every object matching temp.
func findObjects(ctx p11, sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(sh, temp); err != nil {
		return nil, err
	}
	var all []pkcs11.ObjectHandle
	for len(all) <= maxObjects {
		hs, _, err := ctx.FindObjects(sh, 100)
		if err != nil {
			_ = ctx.FindObjectsFinal(sh)
			return nil, err
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := ctx.FindObjectsFinal(sh); err != nil {
		return nil, err
	}
	return all, nil
}

// attrUint decodes a CK_ULONG attribute value (native byte order).
func attrUint(v []byte) (uint64, bool) {
	switch len(v) {
	case 8:
		return binary.NativeEndian.Uint64(v), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(v)), true
	}
	return 0, false
}

// attrBool decodes a CK_BBOOL attribute value.
func attrBool(v []byte) bool { return len(v) == 1 && v[0] != 0 }

// getAttrs reads attributes that the object is known to have. PKCS#11 fails
// the whole call when one attribute is invalid for the object, so callers
// group only attributes valid for the object's class.
func getAttrs(ctx p11, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, types ...uint) ([][]byte, error) {
	temp := make([]*pkcs11.Attribute, len(types))
	for i, t := range types {
		temp[i] = pkcs11.NewAttribute(t, nil)
	}
	attrs, err := ctx.GetAttributeValue(sh, o, temp)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(types))
	for _, a := range attrs {
		for i, t := range types {
			if a.Type == t {
				out[i] = a.Value
			}
		}
	}
	return out, nil
}

// object is what signerd reads about a PKCS#11 object to classify it.
type object struct {
	handle  pkcs11.ObjectHandle
	class   uint64
	keyType uint64 // valid for key classes
	params  []byte // CKA_EC_PARAMS for EC and Edwards keys
	label   string
	id      []byte
}

// isEd25519 reports whether o is an Ed25519 key of class class.
func (o object) isEd25519(class uint64) bool {
	return o.class == class && o.keyType == CKK_EC_EDWARDS && isEd25519Params(o.params)
}

// describe says what o is, for wrong-key-type messages.
func (o object) describe() string {
	switch o.class {
	case pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_SECRET_KEY:
		kind := map[uint64]string{pkcs11.CKO_PRIVATE_KEY: "private key", pkcs11.CKO_PUBLIC_KEY: "public key", pkcs11.CKO_SECRET_KEY: "secret key"}[o.class]
		name := keyTypeName(o.keyType, o.params)
		article := "a"
		if strings.ContainsRune("AEIOU", rune(name[0])) || strings.HasPrefix(name, "RSA") {
			article = "an"
		}
		return fmt.Sprintf("%s %s %s", article, name, kind)
	case pkcs11.CKO_CERTIFICATE:
		return "a certificate"
	case pkcs11.CKO_DATA:
		return "a data object"
	}
	return fmt.Sprintf("an object of class 0x%x", o.class)
}

func keyTypeName(kt uint64, params []byte) string {
	switch kt {
	case pkcs11.CKK_RSA:
		return "RSA (CKK_RSA)"
	case pkcs11.CKK_EC:
		return "ECDSA (CKK_EC)"
	case CKK_EC_EDWARDS:
		return "Edwards (CKK_EC_EDWARDS, " + curveName(params) + ")"
	case pkcs11.CKK_AES:
		return "AES (CKK_AES)"
	case pkcs11.CKK_GENERIC_SECRET:
		return "generic secret (CKK_GENERIC_SECRET)"
	}
	return fmt.Sprintf("key type 0x%x", kt)
}

// readObject reads the attributes that classify o.
func readObject(ctx p11, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (object, error) {
	o := object{handle: h}
	v, err := getAttrs(ctx, sh, h, pkcs11.CKA_CLASS, pkcs11.CKA_LABEL, pkcs11.CKA_ID)
	if err != nil {
		return o, err
	}
	o.class, _ = attrUint(v[0])
	o.label = string(v[1])
	o.id = v[2]
	switch o.class {
	case pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_SECRET_KEY:
	default:
		return o, nil
	}
	v, err = getAttrs(ctx, sh, h, pkcs11.CKA_KEY_TYPE)
	if err != nil {
		return o, err
	}
	o.keyType, _ = attrUint(v[0])
	if o.keyType == pkcs11.CKK_EC || o.keyType == CKK_EC_EDWARDS {
		if v, err := getAttrs(ctx, sh, h, pkcs11.CKA_EC_PARAMS); err == nil {
			o.params = v[0]
		}
	}
	return o, nil
}

// selectTemplate is the FindObjects template for u's object and id.
func selectTemplate(u *URI, extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
	var t []*pkcs11.Attribute
	if u.Object != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	return append(t, extra...)
}

// findPrivateKey returns the one Ed25519 private key matching u's object
// and id. Other objects under that label/id make the error say what they are.
func findPrivateKey(ctx p11, sh pkcs11.SessionHandle, u *URI, token string) (object, error) {
	hs, err := findObjects(ctx, sh, selectTemplate(u))
	if err != nil {
		return object{}, p11Error(err, "searching token %q for %s failed", token, keyDesc(u))
	}
	var keys, others []object
	hasPublic := false
	for _, h := range hs {
		o, err := readObject(ctx, sh, h)
		if err != nil {
			return object{}, p11Error(err, "reading an object of %s in token %q failed", keyDesc(u), token)
		}
		switch {
		case o.isEd25519(pkcs11.CKO_PRIVATE_KEY):
			keys = append(keys, o)
		case o.isEd25519(pkcs11.CKO_PUBLIC_KEY):
			hasPublic = true
		default:
			others = append(others, o)
		}
	}
	switch {
	case len(keys) == 1:
		return keys[0], nil
	case len(keys) > 1:
		return object{}, newError(ErrAmbiguous, nil, fmt.Sprintf(
			"%d Ed25519 private keys in token %q match %s; add id= (see: signerd keys list --key <token URI>)", len(keys), token, keyDesc(u)))
	case len(others) > 0:
		// Name the object the user most likely meant: a private key first.
		slices.SortStableFunc(others, func(a, b object) int {
			return cmp.Compare(classRank(a.class), classRank(b.class))
		})
		return object{}, newError(ErrWrongKeyType, nil, fmt.Sprintf(
			"%s in token %q is %s, not an Ed25519 private key (CKK_EC_EDWARDS on edwards25519); point the uri at an Ed25519 key or create one with: signerd keys generate",
			keyDesc(u), token, others[0].describe()))
	case hasPublic:
		return object{}, newError(ErrObjectNotFound, nil, fmt.Sprintf(
			"token %q has the public key of %s but no private key this login can use; check the PIN's user and id= (see: signerd keys list --key <token URI>)",
			token, keyDesc(u)))
	}
	return object{}, newError(ErrObjectNotFound, nil, fmt.Sprintf(
		"%s not found in token %q; list the token's keys with: signerd keys list --key <token URI>", keyDesc(u), token))
}

// classRank orders object classes for wrong-key-type messages.
func classRank(class uint64) int {
	switch class {
	case pkcs11.CKO_PRIVATE_KEY:
		return 0
	case pkcs11.CKO_SECRET_KEY:
		return 1
	case pkcs11.CKO_PUBLIC_KEY:
		return 2
	}
	return 3
}

// findPublicKey returns the Ed25519 public key stored beside priv: the public
// key object with the same CKA_ID (or, when priv has no id, the same label).
func findPublicKey(ctx p11, sh pkcs11.SessionHandle, priv object, token string) (ed25519.PublicKey, error) {
	temp := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, CKK_EC_EDWARDS),
	}
	if len(priv.id) > 0 {
		temp = append(temp, pkcs11.NewAttribute(pkcs11.CKA_ID, priv.id))
	} else {
		temp = append(temp, pkcs11.NewAttribute(pkcs11.CKA_LABEL, priv.label))
	}
	hs, err := findObjects(ctx, sh, temp)
	if err != nil {
		return nil, p11Error(err, "searching token %q for the public key of %q failed", token, priv.label)
	}
	var pub ed25519.PublicKey
	for _, h := range hs {
		v, err := getAttrs(ctx, sh, h, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
		if err != nil {
			return nil, p11Error(err, "reading the public key of %q in token %q failed", priv.label, token)
		}
		if !isEd25519Params(v[0]) {
			continue
		}
		p, err := parseECPoint(v[1])
		if err != nil {
			return nil, newError(ErrWrongKeyType, nil, fmt.Sprintf("public key of %q in token %q: %v", priv.label, token, err))
		}
		if pub != nil && !bytes.Equal(pub, p) {
			return nil, newError(ErrAmbiguous, nil, fmt.Sprintf(
				"token %q holds different Ed25519 public keys with the id/label of %q; give each key its own id", token, priv.label))
		}
		pub = p
	}
	if pub == nil {
		return nil, newError(ErrObjectNotFound, nil, fmt.Sprintf(
			"the public key object of %q is missing from token %q; signerd needs it to check signatures (keys made by signerd keys generate/import have one)",
			priv.label, token))
	}
	return pub, nil
}

// p11Error wraps a PKCS#11 failure that has no more specific class.
func p11Error(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// login logs the session's user in. CKR_USER_ALREADY_LOGGED_IN is success:
// login state is shared by every session of the process on one token.
func login(ctx p11, sh pkcs11.SessionHandle, pin []byte, token string) error {
	err := ctx.Login(sh, pkcs11.CKU_USER, string(pin))
	switch errCode(err) {
	case pkcs11.CKR_OK, pkcs11.CKR_USER_ALREADY_LOGGED_IN:
		return nil
	case pkcs11.CKR_PIN_INCORRECT:
		return newError(ErrWrongPIN, err, fmt.Sprintf("token %q rejected the PIN (CKR_PIN_INCORRECT); check the pin-source file (repeated failures may lock the token)", token))
	case pkcs11.CKR_PIN_LEN_RANGE:
		return newError(ErrWrongPIN, err, fmt.Sprintf("token %q rejected the PIN: wrong length (CKR_PIN_LEN_RANGE); check the pin-source file", token))
	case pkcs11.CKR_PIN_LOCKED:
		return newError(ErrPINLocked, err, fmt.Sprintf("token %q: the user PIN is locked (CKR_PIN_LOCKED); the security officer must unlock it with the HSM's tools", token))
	}
	return p11Error(err, "login to token %q failed", token)
}
