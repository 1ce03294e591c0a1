package statefile

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/signerd/signerd/internal/testenv"
)

// filePVKey is the key of the real FilePV used in tests; as an
// ed25519.PrivateKey it signs exactly as FilePV does.
var filePVKey = cmted25519.GenPrivKeyFromSecret([]byte("signerd statefile tests"))

// realFilePV returns a CometBFT FilePV (the real privval code) whose state
// lives in dir.
func realFilePV(dir string) (*privval.FilePV, string) {
	state := filepath.Join(dir, "priv_validator_state.json")
	return privval.NewFilePV(filePVKey, filepath.Join(dir, "priv_validator_key.json"), state), state
}

func cmtVote(h HRS, m msg) *cmtproto.Vote {
	typ := cmtproto.PrevoteType
	if h.Step == StepPrecommit {
		typ = cmtproto.PrecommitType
	}
	return &cmtproto.Vote{Type: typ, Height: h.Height, Round: h.Round, BlockID: blockID(m.Block), Timestamp: m.Time}
}

func cmtProposal(h HRS, m msg) *cmtproto.Proposal {
	return &cmtproto.Proposal{Type: cmtproto.ProposalType, Height: h.Height, Round: h.Round, PolRound: m.POLRound,
		BlockID: blockID(m.Block), Timestamp: m.Time}
}

// filePVSigned are states written by the real FilePV after signing one
// message each; they are also committed under testdata/filepv.
var filePVSigned = []struct {
	file string
	hrs  HRS
	m    msg
}{
	{"signed-proposal.json", HRS{12, 1, StepPropose}, msg{Block: "A", Time: t0, POLRound: -1}},
	{"signed-prevote.json", HRS{12, 1, StepPrevote}, msg{Block: "A", Time: t0}},
	{"signed-nil-prevote.json", HRS{12, 2, StepPrevote}, msg{Time: t0}},
	{"signed-precommit.json", HRS{1234, 0, StepPrecommit}, msg{Block: "B", Time: t0.Add(time.Second)}},
}

// TestFilePVRealStates: the states CometBFT's own FilePV writes parse into
// the right records, format back byte for byte, import through Create and
// Open, and answer a repeated request with FilePV's signature.
func TestFilePVRealStates(t *testing.T) {
	for _, c := range filePVSigned {
		t.Run(c.file, func(t *testing.T) {
			pv, statePath := realFilePV(t.TempDir())
			var sig []byte
			if c.hrs.Step == StepPropose {
				p := cmtProposal(c.hrs, c.m)
				if err := pv.SignProposal(testChain, p); err != nil {
					t.Fatal(err)
				}
				sig = p.Signature
			} else {
				v := cmtVote(c.hrs, c.m)
				if err := pv.SignVote(testChain, v); err != nil {
					t.Fatal(err)
				}
				sig = v.Signature
			}
			data := readFile(t, statePath)
			golden := filepath.Join("testdata", "filepv", c.file)
			if *update {
				writeFile(t, golden, data)
			}
			if want := readFile(t, golden); !bytes.Equal(data, want) {
				t.Fatalf("FilePV wrote\n%s\nwant (%s)\n%s", data, golden, want)
			}
			r, err := ParseFilePV(data)
			if err != nil {
				t.Fatalf("ParseFilePV: %v", err)
			}
			sb := signBytes(c.hrs, c.m)
			if r.HRS != c.hrs || !bytes.Equal(r.SignBytes, sb) || !bytes.Equal(r.Signature, sig) {
				t.Fatalf("parsed %v sign bytes %X sig %X; want %v %X %X", r, r.SignBytes, r.Signature, c.hrs, sb, sig)
			}
			if got := FormatFilePV(r); !bytes.Equal(got, data) {
				t.Fatalf("FormatFilePV =\n%s\nwant FilePV's\n%s", got, data)
			}
			path := filepath.Join(t.TempDir(), "s.state")
			if err := Create(path, testChain, r, false); err != nil {
				t.Fatalf("Create from FilePV state: %v", err)
			}
			f := mustOpen(t, path)
			defer f.Close()
			if !f.Last().Equal(r) {
				t.Fatalf("imported Last = %v", f.Last())
			}
			d, err := f.Last().Decide(c.hrs, sb)
			if err != nil || d.Action != ResignSame || !bytes.Equal(d.Signature, sig) {
				t.Fatalf("repeat after import: %+v, %v; want resign-same with FilePV's signature", d, err)
			}
			// Importing into another chain's file is refused: the sign bytes
			// name test-chain.
			err = Create(filepath.Join(t.TempDir(), "o.state"), "other-chain", r, false)
			if !errors.Is(err, ErrInvalidSignBytes) || !strings.Contains(err.Error(), `"other-chain"`) {
				t.Fatalf("import into another chain = %v", err)
			}
		})
	}
}

// TestCometBFTInitState parses the fresh state `cometbft init` writes: the
// committed copy always, and one made now by the real binary.
func TestCometBFTInitState(t *testing.T) {
	check := func(t *testing.T, data []byte) {
		r, err := ParseFilePV(data)
		if err != nil {
			t.Fatalf("ParseFilePV(%q): %v", data, err)
		}
		if !r.Equal(Record{}) {
			t.Fatalf("fresh FilePV state parsed as %v", r)
		}
		if got := FormatFilePV(r); !bytes.Equal(got, data) {
			t.Fatalf("FormatFilePV = %q, want %q", got, data)
		}
	}
	check(t, readFile(t, "testdata/filepv/cometbft-init.json"))

	bin := testenv.CometBFT(t)
	home := t.TempDir()
	if out, err := exec.Command(bin, "init", "--home", home).CombinedOutput(); err != nil {
		t.Fatalf("cometbft init: %v\n%s", err, out)
	}
	check(t, readFile(t, filepath.Join(home, "data", "priv_validator_state.json")))
}

func TestFormatFilePV(t *testing.T) {
	r := voteRecord(HRS{5, 0, StepPrevote}, msg{Block: "A", Time: t0})
	// Without a signature the sign bytes are left out: FilePV would panic
	// on sign bytes without a signature at a repeated HRS.
	got := string(FormatFilePV(r))
	if want := "{\n  \"height\": \"5\",\n  \"round\": 0,\n  \"step\": 2\n}"; got != want {
		t.Fatalf("FormatFilePV without signature = %q, want %q", got, want)
	}
	back, err := ParseFilePV([]byte(got))
	if err != nil || back.HRS != r.HRS || back.SignBytes != nil {
		t.Fatalf("round trip = %v, %v", back, err)
	}
	r.Signature = ed25519.Sign(ed25519.PrivateKey(filePVKey), r.SignBytes)
	back, err = ParseFilePV(FormatFilePV(r))
	if err != nil || !back.Equal(r) {
		t.Fatalf("round trip with signature = %v, %v; want %v", back, err, r)
	}
}

func TestParseFilePVRejects(t *testing.T) {
	sb5 := fmt.Sprintf("%X", signBytes(HRS{5, 0, StepPrevote}, msg{Block: "A", Time: t0}))
	sig := strings.Repeat("A", 86) + "=="
	cases := []struct{ name, json, want string }{
		{"empty", ``, "not JSON"},
		{"array", `[1]`, "not a JSON object"},
		{"string", `"x"`, "not a JSON object"},
		{"height number", `{"height":5,"round":0,"step":0}`, "height 5 is not a quoted integer"},
		{"height leading zero", `{"height":"05","round":0,"step":0}`, `height "05" is not a decimal int64`},
		{"height plus", `{"height":"+5","round":0,"step":0}`, `height "+5"`},
		{"height overflow", `{"height":"9223372036854775808","round":0,"step":0}`, "not a decimal int64"},
		{"height NaN", `{"height":"NaN","round":0,"step":0}`, "not a decimal int64"},
		{"negative height", `{"height":"-1","round":0,"step":0}`, "negative height -1"},
		{"round string (tmkms style)", `{"height":"1","round":"0","step":2}`, `round "0" is not an int32`},
		{"round fraction", `{"height":"1","round":0.5,"step":2}`, "round 0.5 is not an int32"},
		{"round overflow", `{"height":"1","round":2147483648,"step":2}`, "not an int32"},
		{"negative round", `{"height":"1","round":-1,"step":2}`, "negative round"},
		{"step 4", `{"height":"1","round":0,"step":4}`, "unknown step 4"},
		{"step string", `{"height":"1","round":0,"step":"prevote"}`, "not a number 0-3"},
		{"missing step", `{"height":"1","round":0}`, `"step" is missing`},
		{"null height", `{"height":null,"round":0,"step":0}`, `"height" is missing`},
		{"unknown key", `{"height":"1","round":0,"step":0,"block_id":{}}`, `unknown key "block_id"`},
		{"re-cased key", `{"Height":"1","height":"1","round":0,"step":0}`, `unknown key "Height"`},
		{"duplicate key", `{"height":"1","height":"2","round":0,"step":0}`, `"height" appears twice`},
		{"trailing data", `{"height":"1","round":0,"step":0} x`, "after the JSON object"},
		{"two objects", `{"height":"1","round":0,"step":0}{}`, "after the JSON object"},
		{"truncated", `{"height":"1","round":0,`, "not JSON"},
		{"signature without signbytes", `{"height":"5","round":0,"step":2,"signature":"` + sig + `"}`, "signature but no sign bytes"},
		{"short signature", `{"height":"5","round":0,"step":2,"signature":"AAAA","signbytes":"` + sb5 + `"}`, "3 bytes, want 64"},
		{"signature not base64", `{"height":"5","round":0,"step":2,"signature":"!!","signbytes":"` + sb5 + `"}`, "signature is not base64"},
		{"signbytes not hex", `{"height":"5","round":0,"step":2,"signature":"` + sig + `","signbytes":"XYZ"}`, "signbytes are not hex"},
		{"signbytes of another height", `{"height":"6","round":0,"step":2,"signature":"` + sig + `","signbytes":"` + sb5 + `"}`, "they sign 5/0, filed under 6/0/prevote"},
		{"signbytes of another step", `{"height":"5","round":0,"step":3,"signature":"` + sig + `","signbytes":"` + sb5 + `"}`, "message type 1"},
		{"signbytes at step none", `{"height":"5","round":0,"step":0,"signature":"` + sig + `","signbytes":"` + sb5 + `"}`, "step none signs nothing"},
		{"made-up signbytes", `{"height":"1234","round":1,"step":3,"signature":"` + sig + `","signbytes":"0A0B"}`, "invalid sign bytes"},
	}
	for _, c := range cases {
		r, err := ParseFilePV([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "priv_validator_state: ") {
			t.Errorf("%s: ParseFilePV = %v, %v; want an error containing %q", c.name, r, err, c.want)
		}
	}
	// Accepted variants: any key order, compact or indented, lower-case hex,
	// explicit nulls for the optional fields.
	for _, ok := range []string{
		`{"step":0,"round":0,"height":"0"}`,
		`{"height":"5","round":0,"step":2,"signature":"` + sig + `","signbytes":"` + strings.ToLower(sb5) + `"}`,
		`{"height":"5","round":0,"step":2,"signature":null,"signbytes":null}`,
		"\n{\n\t\"height\": \"7\", \"round\": 3, \"step\": 1 }\n",
	} {
		if _, err := ParseFilePV([]byte(ok)); err != nil {
			t.Errorf("ParseFilePV(%q): %v", ok, err)
		}
	}
}
