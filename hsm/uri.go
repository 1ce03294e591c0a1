package hsm

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxURILen caps the length of a pkcs11: URI accepted by [ParseURI]: room for
// a PATH_MAX (4096) module path plus a long pin-source and every token field
// percent-encoded. Anything longer is not a key reference.
const MaxURILen = 8192

// redactedPIN replaces pin-value in [URI.String].
const redactedPIN = "REDACTED"

// URI is a parsed RFC 7512 pkcs11: URI. The zero value of a field means the
// attribute is absent (ParseURI rejects empty values, so absent and empty
// cannot be confused). Fields hold decoded values.
//
// Path attributes select the library, slot, token and object; query
// attributes say how to load the module and where the PIN comes from.
type URI struct {
	// Token attributes (CK_TOKEN_INFO): label, manufacturerID, model,
	// serialNumber.
	Token, Manufacturer, Model, Serial string
	// Slot attributes (CK_SLOT_INFO and the CK_SLOT_ID). Slot IDs are not
	// stable across module initialisations on every token (SoftHSM derives
	// them from the serial only after a restart); prefer token or serial.
	SlotDescription, SlotManufacturer string
	SlotID                            *uint64
	// Library attributes (CK_INFO). LibraryVersion is canonical "M.N"
	// ("M" in a URI means "M.0", RFC 7512 section 2.3).
	LibraryManufacturer, LibraryDescription, LibraryVersion string
	// Object is the CKA_LABEL of the key, ID its CKA_ID (raw bytes: in the
	// URI every byte is percent-encoded, never hex).
	Object string
	ID     []byte
	// Type is "" (any), "private" or "public". Open, Generate and Import
	// accept "" or "private"; List accepts both.
	Type string

	// ModulePath is the absolute path of the PKCS#11 module (required).
	// ModuleName (RFC 7512's library name without path) is kept for
	// round-tripping but never used to load anything.
	ModulePath, ModuleName string
	// PinSource is where the user PIN comes from: "file:PATH", a bare PATH,
	// or "env:VARNAME" (a signerd extension). Relative paths are resolved by
	// [URI.ResolvePaths] or, failing that, against the working directory.
	PinSource string

	// pinValue is the inline PIN (pin-value). Only for tests; never printed.
	pinValue string
}

// attribute kinds: where an attribute belongs and how its value is checked.
type attrSpec struct {
	name  string
	query bool
	// maxBytes caps the decoded value (0: no cap beyond MaxURILen). Token,
	// slot and library fields are fixed-size blank-padded PKCS#11 strings: a
	// longer value could never match anything.
	maxBytes int
}

// attrOrder lists every supported attribute in canonical (String) order.
var attrOrder = []attrSpec{
	{name: "token", maxBytes: 32},
	{name: "manufacturer", maxBytes: 32},
	{name: "model", maxBytes: 16},
	{name: "serial", maxBytes: 16},
	{name: "slot-description", maxBytes: 64},
	{name: "slot-manufacturer", maxBytes: 32},
	{name: "slot-id"},
	{name: "library-manufacturer", maxBytes: 32},
	{name: "library-description", maxBytes: 32},
	{name: "library-version"},
	{name: "object"},
	{name: "id"},
	{name: "type"},
	{name: "module-path", query: true},
	{name: "module-name", query: true},
	{name: "pin-source", query: true},
	{name: "pin-value", query: true},
}

func lookupAttr(name string) (attrSpec, bool) {
	for _, a := range attrOrder {
		if a.name == name {
			return a, true
		}
	}
	return attrSpec{}, false
}

func knownAttrs(query bool) string {
	var names []string
	for _, a := range attrOrder {
		if a.query == query {
			names = append(names, a.name)
		}
	}
	return strings.Join(names, ", ")
}

func uriError(format string, args ...any) error {
	return newError(ErrInvalidURI, nil, "invalid pkcs11 uri: "+fmt.Sprintf(format, args...))
}

// ParseURI parses a pkcs11: URI strictly by RFC 7512:
//   - the scheme is "pkcs11:" (case-insensitive); path attributes are
//     separated by ";", query attributes by "&";
//   - attribute names are lower-case; unknown attributes (vendor "x-" ones
//     included), a path attribute in the query or a query attribute in the
//     path, and repeated attributes are errors naming the attribute;
//   - values use only the characters RFC 7512 allows unencoded in their
//     component, everything else percent-encoded; percent-encoding must be
//     well-formed; decoded text values must be valid UTF-8 (id is raw bytes);
//   - empty values are rejected (an empty object or token label would select
//     nothing useful and usually hides a typo);
//   - module-path is required and absolute; pin-source and pin-value are
//     mutually exclusive; type, if present, is "private" or "public".
//
// Input longer than [MaxURILen] or not valid UTF-8 is rejected. Errors match
// [ErrInvalidURI] and never quote the input (it may carry a PIN).
func ParseURI(s string) (*URI, error) {
	if len(s) > MaxURILen {
		return nil, uriError("uri is %d bytes, longer than the %d-byte limit", len(s), MaxURILen)
	}
	if !utf8.ValidString(s) {
		return nil, uriError("uri is not valid UTF-8")
	}
	const scheme = "pkcs11:"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return nil, uriError("uri must start with %q", scheme)
	}
	rest := s[len(scheme):]
	path, query, hasQuery := strings.Cut(rest, "?")
	if i := strings.IndexByte(path, '#'); i >= 0 {
		return nil, uriError("fragment (#) is not allowed in a pkcs11 uri; percent-encode a literal # as %%23")
	}
	if hasQuery && strings.IndexByte(query, '#') >= 0 {
		return nil, uriError("fragment (#) is not allowed in a pkcs11 uri; percent-encode a literal # as %%23")
	}
	u := &URI{}
	seen := map[string]bool{}
	if err := u.parseComponent(path, false, seen); err != nil {
		return nil, err
	}
	if hasQuery {
		if err := u.parseComponent(query, true, seen); err != nil {
			return nil, err
		}
	}
	if u.ModulePath == "" {
		return nil, uriError("module-path is missing; signerd loads the PKCS#11 module from it: add ?module-path=/absolute/path/to/module.so (e.g. /usr/lib/softhsm/libsofthsm2.so)")
	}
	if u.PinSource != "" && u.pinValue != "" {
		return nil, uriError("pin-source and pin-value are both set; keep one (pin-source for real use, pin-value only in tests)")
	}
	return u, nil
}

// parseComponent parses the path (query=false) or query component.
func (u *URI) parseComponent(comp string, query bool, seen map[string]bool) error {
	where, sep := "path", ";"
	if query {
		where, sep = "query", "&"
	}
	if comp == "" {
		if query {
			return uriError("empty query after \"?\"; remove the \"?\" or add attributes")
		}
		return nil
	}
	for _, part := range strings.Split(comp, sep) {
		if part == "" {
			return uriError("empty attribute in the %s (a stray %q)", where, sep)
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok {
			return uriError("%s attribute %q has no \"=value\"", where, safeName(name))
		}
		if err := checkName(name, query); err != nil {
			return err
		}
		if seen[name] {
			return uriError("attribute %q appears more than once", name)
		}
		seen[name] = true
		if raw == "" {
			return uriError("attribute %q has an empty value; remove it or give a value", name)
		}
		val, err := decodeValue(name, raw, query)
		if err != nil {
			return err
		}
		if err := u.set(name, raw, val); err != nil {
			return err
		}
	}
	return nil
}

// safeName returns name for an error message: shortened if it is long, and
// cut after "pin-value" if it starts so (a mistyped "pin-value:1234" must not
// print the PIN).
func safeName(name string) string {
	if len(name) >= 9 && strings.EqualFold(name[:9], "pin-value") {
		if len(name) > 9 {
			return name[:9] + "..."
		}
		return name
	}
	if len(name) > 40 {
		return name[:40] + "..."
	}
	return name
}

func checkName(name string, query bool) error {
	where := "path"
	if query {
		where = "query"
	}
	if name == "" {
		return uriError("%s attribute with an empty name", where)
	}
	spec, ok := lookupAttr(name)
	switch {
	case ok && spec.query == query:
		return nil
	case ok && spec.query:
		return uriError("%q is a query attribute; move it after \"?\" (path ;-separated, query &-separated)", name)
	case ok:
		return uriError("%q is a path attribute; move it before \"?\" (path ;-separated, query &-separated)", name)
	case strings.HasPrefix(name, "x-"):
		return uriError("vendor attribute %q is not supported by signerd", safeName(name))
	case lookupFold(name) != "":
		return uriError("unknown %s attribute %q; attribute names are lower-case: %q", where, safeName(name), lookupFold(name))
	}
	return uriError("unknown %s attribute %q (known: %s)", where, safeName(name), knownAttrs(query))
}

func lookupFold(name string) string {
	for _, a := range attrOrder {
		if strings.EqualFold(a.name, name) {
			return a.name
		}
	}
	return ""
}

const (
	unreservedChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	// RFC 7512 pk11-res-avail: reserved characters usable unencoded in both
	// components.
	resAvail       = ":[]@!$'()*+,="
	pathResAvail   = resAvail + "&"
	queryResAvail  = resAvail + "/?|"
	pathAllowed    = unreservedChars + pathResAvail
	queryAllowed   = unreservedChars + queryResAvail
	hexDigitsUpper = "0123456789ABCDEF"
)

// decodeValue checks the raw characters of a value and percent-decodes it.
func decodeValue(name, raw string, query bool) ([]byte, error) {
	allowed := pathAllowed
	if query {
		allowed = queryAllowed
	}
	secret := name == "pin-value"
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || unhex(raw[i+1]) < 0 || unhex(raw[i+2]) < 0 {
				return nil, uriError("attribute %q has a malformed percent-encoding (want %% followed by two hex digits)", name)
			}
			out = append(out, byte(unhex(raw[i+1])<<4|unhex(raw[i+2])))
			i += 2
			continue
		}
		if strings.IndexByte(allowed, c) < 0 {
			if secret {
				return nil, uriError("attribute %q contains a character that must be percent-encoded", name)
			}
			if c < 0x20 || c >= 0x7f {
				return nil, uriError("attribute %q contains byte 0x%02x, which must be percent-encoded (as %%%02X)", name, c, c)
			}
			return nil, uriError("attribute %q contains %q, which must be percent-encoded (as %%%02X)", name, c, c)
		}
		out = append(out, c)
	}
	return out, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// set stores one decoded attribute value after checking it.
func (u *URI) set(name, raw string, val []byte) error {
	if name == "id" {
		u.ID = val
		return nil
	}
	if !utf8.Valid(val) {
		if name == "pin-value" {
			return uriError("attribute %q is not valid UTF-8 after percent-decoding", name)
		}
		return uriError("attribute %q is not valid UTF-8 after percent-decoding; only id may hold raw bytes", name)
	}
	if bytes.IndexByte(val, 0) >= 0 {
		return uriError("attribute %q contains a NUL byte (%%00)", name)
	}
	spec, _ := lookupAttr(name)
	if spec.maxBytes > 0 && len(val) > spec.maxBytes {
		return uriError("attribute %q is %d bytes; PKCS#11 limits it to %d, so it can never match", name, len(val), spec.maxBytes)
	}
	s := string(val)
	switch name {
	case "token":
		u.Token = s
	case "manufacturer":
		u.Manufacturer = s
	case "model":
		u.Model = s
	case "serial":
		u.Serial = s
	case "slot-description":
		u.SlotDescription = s
	case "slot-manufacturer":
		u.SlotManufacturer = s
	case "slot-id":
		// RFC 7512: pk11-slot-id = "slot-id" "=" 1*DIGIT (literal digits).
		if !allDigits(raw) {
			return uriError("slot-id must be a decimal number")
		}
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return uriError("slot-id is out of range")
		}
		u.SlotID = &n
	case "library-manufacturer":
		u.LibraryManufacturer = s
	case "library-description":
		u.LibraryDescription = s
	case "library-version":
		v, err := parseLibraryVersion(raw)
		if err != nil {
			return err
		}
		u.LibraryVersion = v
	case "object":
		u.Object = s
	case "type":
		switch raw {
		case "private", "public":
			u.Type = raw
		case "cert", "secret-key", "data":
			return uriError("type=%s is not supported: signerd uses Ed25519 private keys (type=private) and lists public keys (type=public)", raw)
		default:
			return uriError("type must be \"private\" or \"public\"")
		}
	case "module-path":
		if !filepath.IsAbs(s) {
			return uriError("module-path %q must be an absolute path (e.g. /usr/lib/softhsm/libsofthsm2.so)", s)
		}
		u.ModulePath = s
	case "module-name":
		if strings.ContainsRune(s, '/') {
			return uriError("module-name %q must be a name without a path; use module-path for the module's location", s)
		}
		u.ModuleName = s
	case "pin-source":
		if _, err := parsePINSource(s); err != nil {
			return err
		}
		u.PinSource = s
	case "pin-value":
		if s == redactedPIN {
			return uriError("pin-value was redacted when this uri was printed; put the PIN in a 0600 file and use pin-source=file:PATH")
		}
		u.pinValue = s
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseLibraryVersion checks "M" or "M.N" (decimal, each one byte) and returns
// the canonical "M.N".
func parseLibraryVersion(raw string) (string, error) {
	maj, minor, hasMinor := strings.Cut(raw, ".")
	if !hasMinor {
		minor = "0"
	}
	if !allDigits(maj) || !allDigits(minor) {
		return "", uriError("library-version must be \"M\" or \"M.N\" with decimal numbers")
	}
	m, err1 := strconv.ParseUint(maj, 10, 8)
	n, err2 := strconv.ParseUint(minor, 10, 8)
	if err1 != nil || err2 != nil {
		return "", uriError("library-version numbers must be 0-255 (CK_VERSION bytes)")
	}
	return fmt.Sprintf("%d.%d", m, n), nil
}

// String returns the canonical form of u: attributes in a fixed order, values
// percent-encoded where RFC 7512 requires it (id always fully encoded, hex
// upper-case). pin-value, if any, is printed as "REDACTED"; ParseURI refuses
// that value, so a printed URI cannot be mistaken for one carrying a PIN.
func (u *URI) String() string {
	if u == nil {
		return ""
	}
	return u.encode(true)
}

// encode renders u; redact replaces pin-value.
func (u *URI) encode(redact bool) string {
	var path, query []string
	for _, a := range attrOrder {
		var enc string
		switch a.name {
		case "slot-id":
			if u.SlotID == nil {
				continue
			}
			enc = strconv.FormatUint(*u.SlotID, 10)
		case "id":
			if len(u.ID) == 0 {
				continue
			}
			enc = pctEncode(string(u.ID), "") // id: every byte encoded
		default:
			v := u.field(a.name)
			if v == "" {
				continue
			}
			if a.name == "pin-value" && redact {
				v = redactedPIN
			}
			if a.query {
				enc = pctEncode(v, queryAllowed)
			} else {
				enc = pctEncode(v, pathAllowed)
			}
		}
		if a.query {
			query = append(query, a.name+"="+enc)
		} else {
			path = append(path, a.name+"="+enc)
		}
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// field returns the string value of a text attribute.
func (u *URI) field(name string) string {
	switch name {
	case "token":
		return u.Token
	case "manufacturer":
		return u.Manufacturer
	case "model":
		return u.Model
	case "serial":
		return u.Serial
	case "slot-description":
		return u.SlotDescription
	case "slot-manufacturer":
		return u.SlotManufacturer
	case "library-manufacturer":
		return u.LibraryManufacturer
	case "library-description":
		return u.LibraryDescription
	case "library-version":
		return u.LibraryVersion
	case "object":
		return u.Object
	case "type":
		return u.Type
	case "module-path":
		return u.ModulePath
	case "module-name":
		return u.ModuleName
	case "pin-source":
		return u.PinSource
	case "pin-value":
		return u.pinValue
	}
	return ""
}

// pctEncode returns s with every byte outside allowed percent-encoded.
func pctEncode(s, allowed string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(allowed, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigitsUpper[c>>4])
		b.WriteByte(hexDigitsUpper[c&0xf])
	}
	return b.String()
}

// Clone returns a deep copy of u (the inline PIN included).
func (u *URI) Clone() *URI {
	if u == nil {
		return nil
	}
	c := *u
	c.ID = bytes.Clone(u.ID)
	if u.SlotID != nil {
		id := *u.SlotID
		c.SlotID = &id
	}
	return &c
}

// ResolvePaths makes a relative pin-source file path absolute by joining it
// to baseDir (the configuration file's folder; the CLI passes the working
// directory). It does nothing when baseDir is empty, the path is absolute, or
// the source is not a file.
func (u *URI) ResolvePaths(baseDir string) {
	if u == nil || baseDir == "" || u.PinSource == "" {
		return
	}
	ps, err := parsePINSource(u.PinSource)
	if err != nil || ps.env != "" || filepath.IsAbs(ps.path) {
		return
	}
	abs := filepath.Join(baseDir, ps.path)
	if ps.fileScheme {
		u.PinSource = "file:" + abs
	} else {
		u.PinSource = abs
	}
}

// SetPINValue sets an inline PIN (pin-value), replacing any pin-source. It
// exists for tests and fixtures; real configurations use pin-source.
func (u *URI) SetPINValue(pin string) {
	u.pinValue = pin
	if pin != "" {
		u.PinSource = ""
	}
}

// hasPIN reports whether u names a PIN (pin-source or pin-value).
func (u *URI) hasPIN() bool { return u.PinSource != "" || u.pinValue != "" }
