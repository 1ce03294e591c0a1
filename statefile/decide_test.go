package statefile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// testKey is a software Ed25519 key for tests (the signer's HSM key stands
// in for it in production).
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

type vectorMsg struct {
	HRS         string  `json:"hrs"`
	Block       string  `json:"block"`
	Parts       uint32  `json:"parts"`
	Time        string  `json:"time"`
	POLRound    *int32  `json:"pol_round"`
	Chain       string  `json:"chain"`
	RawHex      *string `json:"raw_hex"`       // sign bytes given literally
	BytesFor    string  `json:"bytes_for"`     // build the sign bytes for this HRS instead of hrs
	AppendHex   string  `json:"append_hex"`    // bytes appended to the sign bytes
	Signature   bool    `json:"signature"`     // last only: store testKey's signature
	NoSignBytes bool    `json:"no_sign_bytes"` // last only: record without sign bytes
}

type vectorWant struct {
	Action  string   `json:"action"`  // sign-fresh, resign-same, resign-with-stored-timestamp
	Error   string   `json:"error"`   // error kind, see errorKind
	Message string   `json:"message"` // substring of the error message
	Fields  []string `json:"fields"`  // ConflictError.Fields
}

type vector struct {
	Name string     `json:"name"`
	Last vectorMsg  `json:"last"`
	Req  vectorMsg  `json:"req"`
	Want vectorWant `json:"want"`
}

// build returns the HRS, sign bytes and timestamp a vector message describes.
func (m vectorMsg) build(t testing.TB) (HRS, []byte, time.Time) {
	t.Helper()
	h := mustHRS(t, m.HRS)
	ts := t0
	if m.Time != "" {
		var err error
		if ts, err = time.Parse(time.RFC3339Nano, m.Time); err != nil {
			t.Fatalf("time %q: %v", m.Time, err)
		}
	}
	if m.RawHex != nil {
		b, err := hex.DecodeString(*m.RawHex)
		if err != nil {
			t.Fatalf("raw_hex: %v", err)
		}
		return h, b, ts
	}
	if h.Step == StepNone || m.NoSignBytes {
		return h, nil, ts
	}
	pol := int32(-1)
	if m.POLRound != nil {
		pol = *m.POLRound
	}
	bh := h
	if m.BytesFor != "" {
		bh = mustHRS(t, m.BytesFor)
	}
	sb := signBytes(bh, msg{Block: m.Block, Parts: m.Parts, Time: ts, POLRound: pol, Chain: m.Chain})
	if m.AppendHex != "" {
		extra, err := hex.DecodeString(m.AppendHex)
		if err != nil {
			t.Fatalf("append_hex: %v", err)
		}
		sb = append(sb, extra...)
	}
	return h, sb, ts
}

// errorKind classifies a Decide error for the vectors.
func errorKind(err error) string {
	var re *RegressionError
	var ce *ConflictError
	switch {
	case errors.As(err, &re):
		return re.Component() + "-regression"
	case errors.As(err, &ce):
		return "conflict"
	case errors.Is(err, ErrNoSignBytes):
		return "no-sign-bytes"
	case errors.Is(err, ErrInvalidRequest):
		return "invalid-request"
	case errors.Is(err, ErrInvalidSignBytes):
		return "invalid-sign-bytes"
	}
	return "unclassified: " + err.Error()
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile("testdata/decide_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Comment string   `json:"comment"`
		Vectors []vector `json:"vectors"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("decide_vectors.json: %v", err)
	}
	if len(file.Vectors) < 30 {
		t.Fatalf("decide_vectors.json: only %d vectors", len(file.Vectors))
	}
	return file.Vectors
}

func TestDecideVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			if (v.Want.Action == "") == (v.Want.Error == "") {
				t.Fatal("vector needs exactly one of want.action and want.error")
			}
			lh, lb, lts := v.Last.build(t)
			last := Record{HRS: lh, SignBytes: lb}
			if v.Last.Signature {
				last.Signature = ed25519.Sign(testKey, lb)
			}
			rh, rb, _ := v.Req.build(t)
			d, err := last.Decide(rh, rb)
			if v.Want.Error != "" {
				if err == nil {
					t.Fatalf("Decide = %s, want error %s", d.Action, v.Want.Error)
				}
				if got := errorKind(err); got != v.Want.Error {
					t.Fatalf("error kind %q (%v), want %q", got, err, v.Want.Error)
				}
				if !strings.Contains(err.Error(), v.Want.Message) {
					t.Errorf("error %q does not contain %q", err, v.Want.Message)
				}
				var ce *ConflictError
				if errors.As(err, &ce) {
					if !slices.Equal(ce.Fields, v.Want.Fields) {
						t.Errorf("conflict fields %v, want %v", ce.Fields, v.Want.Fields)
					}
					if ce.HRS != rh || !bytes.Equal(ce.Signed, lb) || !bytes.Equal(ce.Got, rb) {
						t.Errorf("conflict error carries %s %x %x", ce.HRS, ce.Signed, ce.Got)
					}
				}
				seen["error:"+v.Want.Error] = true
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v, want %s", err, v.Want.Action)
			}
			if d.Action.String() != v.Want.Action {
				t.Fatalf("Decide = %s, want %s", d.Action, v.Want.Action)
			}
			seen[v.Want.Action] = true
			switch d.Action {
			case SignFresh:
				if !bytes.Equal(d.SignBytes, rb) || d.Signature != nil || !d.Timestamp.IsZero() {
					t.Errorf("sign-fresh decision %+v: want the request's bytes only", d)
				}
			case ResignSame:
				if !bytes.Equal(d.SignBytes, rb) || !bytes.Equal(d.Signature, last.Signature) || !d.Timestamp.IsZero() {
					t.Errorf("resign-same decision %+v: want request bytes and stored signature %x", d, last.Signature)
				}
			case ResignWithStoredTimestamp:
				if !bytes.Equal(d.SignBytes, lb) {
					t.Errorf("sign bytes %x, want the stored %x", d.SignBytes, lb)
				}
				if !bytes.Equal(d.Signature, last.Signature) {
					t.Errorf("signature %x, want the stored %x", d.Signature, last.Signature)
				}
				if !d.Timestamp.Equal(lts) {
					t.Errorf("timestamp %v, want the stored %v", d.Timestamp, lts)
				}
				// The stored bytes with the stored timestamp are what the
				// response's message re-encodes to.
				if d.Signature != nil && !ed25519.Verify(testKey.Public().(ed25519.PublicKey), d.SignBytes, d.Signature) {
					t.Error("stored signature does not verify over the returned sign bytes")
				}
			}
		})
	}
	for _, k := range []string{"sign-fresh", "resign-same", "resign-with-stored-timestamp",
		"error:height-regression", "error:round-regression", "error:step-regression",
		"error:conflict", "error:no-sign-bytes", "error:invalid-sign-bytes", "error:invalid-request"} {
		if !seen[k] {
			t.Errorf("no passing vector covers %s", k)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{
		SignFresh: "sign-fresh", ResignSame: "resign-same",
		ResignWithStoredTimestamp: "resign-with-stored-timestamp", 0: "action(0)",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	good := voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0})
	sig := ed25519.Sign(testKey, good.SignBytes)
	cases := []struct {
		name  string
		r     Record
		chain string
		want  string // "" = valid
	}{
		{"fresh", Record{}, testChain, ""},
		{"init at height", Record{HRS: HRS{100, 0, StepNone}}, testChain, ""},
		{"vote", good, testChain, ""},
		{"vote with signature", Record{good.HRS, good.SignBytes, sig}, testChain, ""},
		{"no sign bytes", Record{HRS: HRS{10, 0, StepPrevote}}, testChain, ""},
		{"any chain", good, "", ""},
		{"negative height", Record{HRS: HRS{-1, 0, StepNone}}, "", "negative height"},
		{"negative round", Record{HRS: HRS{1, -2, StepPrevote}}, "", "negative round"},
		{"unknown step", Record{HRS: HRS{1, 0, 4}}, "", "unknown step 4"},
		{"step none with bytes", Record{HRS: HRS{10, 0, StepNone}, SignBytes: good.SignBytes}, "", "step none signs nothing"},
		{"height 0 prevote", Record{HRS: HRS{0, 0, StepPrevote}}, "", "below height 1"},
		{"signature without bytes", Record{HRS: HRS{10, 0, StepPrevote}, Signature: sig}, "", "signature but no sign bytes"},
		{"short signature", Record{good.HRS, good.SignBytes, sig[:63]}, "", "63 bytes, want 64"},
		{"bytes for other step", Record{HRS: HRS{10, 0, StepPrecommit}, SignBytes: good.SignBytes}, "", "message type 1"},
		{"other chain", good, "other-chain", `chain "test-chain", want "other-chain"`},
		{"too large", Record{HRS: good.HRS, SignBytes: make([]byte, MaxSignBytes+1)}, "", "at most 1536"},
	}
	for _, c := range cases {
		err := c.r.Validate(c.chain)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: Validate: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: Validate = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestRegressionComponent(t *testing.T) {
	e := &RegressionError{Last: HRS{5, 1, StepPrevote}, Got: HRS{5, 1, StepPrevote}}
	if e.Component() != "" {
		t.Errorf("equal HRS: component %q", e.Component())
	}
	e.Got = HRS{6, 0, StepNone}
	if e.Component() != "" {
		t.Errorf("higher HRS: component %q", e.Component())
	}
}
