package hsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type uriVectors struct {
	Comment string `json:"comment"`
	Good    []struct {
		In        string `json:"in"`
		Canonical string `json:"canonical"`
	} `json:"good"`
	Bad []struct {
		In  string `json:"in"`
		Err string `json:"err"`
	} `json:"bad"`
}

func loadURIVectors(t testing.TB) uriVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "uri_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v uriVectors
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("testdata/uri_vectors.json: %v", err)
	}
	if len(v.Good) == 0 || len(v.Bad) == 0 {
		t.Fatal("testdata/uri_vectors.json: no vectors")
	}
	return v
}

func TestParseURIVectors(t *testing.T) {
	v := loadURIVectors(t)
	for _, tc := range v.Good {
		u, err := ParseURI(tc.In)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.In, err)
			continue
		}
		if got := u.String(); got != tc.Canonical {
			t.Errorf("ParseURI(%q).String()\n got %s\nwant %s", tc.In, got, tc.Canonical)
		}
		// The canonical form parses to the same URI (pin-value aside, which
		// String redacts).
		c, err := ParseURI(u.encode(false))
		if err != nil {
			t.Errorf("canonical form of %q does not parse: %v", tc.In, err)
		} else if !reflect.DeepEqual(c, u) {
			t.Errorf("canonical form of %q parses to %+v, want %+v", tc.In, c, u)
		}
	}
	for _, tc := range v.Bad {
		u, err := ParseURI(tc.In)
		if err == nil {
			t.Errorf("ParseURI(%q) = %s, want error containing %q", tc.In, u, tc.Err)
			continue
		}
		if !errors.Is(err, ErrInvalidURI) {
			t.Errorf("ParseURI(%q) error %v does not match ErrInvalidURI", tc.In, err)
		}
		if !strings.Contains(err.Error(), tc.Err) {
			t.Errorf("ParseURI(%q) error\n got %v\nwant it to contain %q", tc.In, err, tc.Err)
		}
		if !strings.HasPrefix(err.Error(), "invalid pkcs11 uri: ") {
			t.Errorf("ParseURI(%q) error %q lacks the invalid pkcs11 uri prefix", tc.In, err)
		}
	}
}

func TestParseURIFields(t *testing.T) {
	u, err := ParseURI("pkcs11:token=val%20idator;serial=abc;slot-id=7;library-version=2;object=cons;id=%00%FFa;type=private?module-path=/usr/lib/x.so&module-name=x&pin-source=env:PIN_VAR")
	if err != nil {
		t.Fatal(err)
	}
	slot := uint64(7)
	want := &URI{
		Token: "val idator", Serial: "abc", SlotID: &slot, LibraryVersion: "2.0",
		Object: "cons", ID: []byte{0x00, 0xff, 'a'}, Type: "private",
		ModulePath: "/usr/lib/x.so", ModuleName: "x", PinSource: "env:PIN_VAR",
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("got %+v\nwant %+v", u, want)
	}
}

func TestParseURILimits(t *testing.T) {
	long := "pkcs11:object=" + strings.Repeat("a", MaxURILen) + "?module-path=/m.so"
	if _, err := ParseURI(long); err == nil || !strings.Contains(err.Error(), "longer than the 8192-byte limit") {
		t.Errorf("over-long uri: %v", err)
	}
	if _, err := ParseURI("pkcs11:token=\xff?module-path=/m.so"); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

// A PIN in pin-value never shows in String or in a parse error.
func TestURIRedactsPIN(t *testing.T) {
	const pin = "s3cr3t-PIN-81723"
	u, err := ParseURI("pkcs11:token=t;object=o?module-path=/m.so&pin-value=" + pin)
	if err != nil {
		t.Fatal(err)
	}
	if s := u.String(); strings.Contains(s, pin) || !strings.Contains(s, "pin-value=REDACTED") {
		t.Errorf("String() = %q", s)
	}
	if s := u.Clone().String(); strings.Contains(s, pin) {
		t.Errorf("Clone().String() = %q", s)
	}
	for _, in := range []string{
		"pkcs11:token=t?module-path=/m.so&pin-value=" + pin + " x",
		"pkcs11:token=t?module-path=/m.so&pin-value=" + pin + "%zz",
		"pkcs11:token=t?module-path=/m.so&pin-value=" + pin + "&pin-value=" + pin,
		"pkcs11:token=t?module-path=/m.so&pin-source=file:/p&pin-value=" + pin,
		"pkcs11:token=t;pin-value=" + pin + "?module-path=/m.so",
		"pkcs11:token=t?pin-value=" + pin,
		"pkcs11:token=t?module-path=/m.so&pin-value:" + pin,
		"pkcs11:token=t?module-path=/m.so&PIN-VALUE" + pin + "=1",
	} {
		_, err := ParseURI(in)
		if err == nil {
			t.Errorf("ParseURI accepted %q", in)
			continue
		}
		if strings.Contains(err.Error(), pin) || strings.Contains(err.Error(), pin[:6]) {
			t.Errorf("error for %q contains the PIN: %v", in, err)
		}
	}
}

func TestResolvePaths(t *testing.T) {
	for _, tc := range []struct{ src, base, want string }{
		{"file:hsm.pin", "/etc/signerd", "file:/etc/signerd/hsm.pin"},
		{"hsm.pin", "/etc/signerd", "/etc/signerd/hsm.pin"},
		{"file:../x/hsm.pin", "/etc/signerd", "file:/etc/x/hsm.pin"},
		{"file:/abs/hsm.pin", "/etc/signerd", "file:/abs/hsm.pin"},
		{"file:///abs/hsm.pin", "/etc/signerd", "file:///abs/hsm.pin"},
		{"env:PIN", "/etc/signerd", "env:PIN"},
		{"file:hsm.pin", "", "file:hsm.pin"},
	} {
		u := &URI{ModulePath: "/m.so", PinSource: tc.src}
		u.ResolvePaths(tc.base)
		if u.PinSource != tc.want {
			t.Errorf("ResolvePaths(%q) on %q = %q, want %q", tc.base, tc.src, u.PinSource, tc.want)
		}
	}
	var nilURI *URI
	nilURI.ResolvePaths("/x") // must not panic
}

func TestCloneIsDeep(t *testing.T) {
	slot := uint64(3)
	u := &URI{Token: "t", ID: []byte{1, 2}, SlotID: &slot, ModulePath: "/m.so"}
	c := u.Clone()
	c.ID[0], *c.SlotID = 9, 9
	if u.ID[0] != 1 || *u.SlotID != 3 {
		t.Fatal("Clone shares ID or SlotID with the original")
	}
}

// FuzzParseURI: no panic; whatever parses re-encodes to a canonical form that
// parses to an equal URI and re-encodes byte for byte; String never holds
// pin-value.
func FuzzParseURI(f *testing.F) {
	v := loadURIVectors(f)
	for _, tc := range v.Good {
		f.Add(tc.In)
	}
	for _, tc := range v.Bad {
		f.Add(tc.In)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("error %v does not match ErrInvalidURI", err)
			}
			return
		}
		enc := u.encode(false)
		u2, err := ParseURI(enc)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", enc, s, err)
		}
		if !reflect.DeepEqual(u, u2) {
			t.Fatalf("round trip of %q via %q: %+v != %+v", s, enc, u, u2)
		}
		if enc2 := u2.encode(false); enc2 != enc {
			t.Fatalf("canonical form not stable: %q then %q", enc, enc2)
		}
		// String is the canonical form with the PIN replaced, nothing else.
		if u.pinValue != "" {
			r := u.Clone()
			r.pinValue = redactedPIN
			if got, want := u.String(), r.encode(false); got != want {
				t.Fatalf("String() = %q, want %q", got, want)
			}
		}
	})
}
