package signer

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	cryptoenc "github.com/cometbft/cometbft/crypto/encoding"
	"github.com/cometbft/cometbft/libs/protoio"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestReadFrame(t *testing.T) {
	t.Parallel()
	ping := appendFrame(nil, pingResponse)
	big := appendFrame(nil, bytes.Repeat([]byte{7}, 200_000)) // more than one growth step
	for _, tc := range []struct {
		name    string
		in      []byte
		max     int
		want    []byte
		wantErr string // substring; "EOF" means exactly io.EOF
	}{
		{name: "ping", in: ping, max: MaxFrameSize, want: pingResponse},
		{name: "empty frame", in: []byte{0}, max: MaxFrameSize, want: []byte{}},
		{name: "large frame grows as it arrives", in: big, max: MaxFrameSize, want: big[3:]},
		{name: "exactly max", in: appendFrame(nil, make([]byte, 100)), max: 100, want: make([]byte, 100)},
		{name: "clean EOF between frames", in: nil, max: MaxFrameSize, wantErr: "EOF"},
		{name: "one above max", in: appendFrame(nil, make([]byte, 101)), max: 100, wantErr: "exceeds the 100-byte limit"},
		{name: "length prefix above MaxFrameSize", in: binary.AppendUvarint(nil, uint64(MaxFrameSize)+1), max: MaxFrameSize, wantErr: "frame too large"},
		{name: "huge length prefix", in: binary.AppendUvarint(nil, 1<<62), max: MaxFrameSize, wantErr: "frame too large"},
		{name: "varint overflow", in: bytes.Repeat([]byte{0xff}, 11), max: MaxFrameSize, wantErr: "overflow"},
		{name: "cut in the length", in: []byte{0x80}, max: MaxFrameSize, wantErr: "unexpected EOF"},
		{name: "cut in the body", in: []byte{0x05, 1, 2}, max: MaxFrameSize, wantErr: "unexpected EOF"},
		{name: "lying length, little data", in: append(binary.AppendUvarint(nil, 1<<20), 1, 2, 3), max: MaxFrameSize, wantErr: "got 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readFrame(bufio.NewReader(bytes.NewReader(tc.in)), tc.max)
			switch {
			case tc.wantErr == "EOF":
				if err != io.EOF {
					t.Fatalf("err %v, want io.EOF", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("err %v", err)
			case !bytes.Equal(got, tc.want):
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
	t.Run("frames in a row, same as protoio", func(t *testing.T) {
		var in []byte
		for _, m := range [][]byte{pingResponse, {}, wrap(fieldPingRequest, nil)} {
			in = appendFrame(in, m)
			// protoio's writer produces the same framing.
			var buf bytes.Buffer
			if _, err := protoio.NewDelimitedWriter(&buf).WriteMsg(rawMsg(m)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), appendFrame(nil, m)) {
				t.Fatalf("appendFrame(%X) = %X, protoio writes %X", m, appendFrame(nil, m), buf.Bytes())
			}
		}
		r := bufio.NewReader(bytes.NewReader(in))
		for i := 0; i < 3; i++ {
			if _, err := readFrame(r, MaxFrameSize); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if _, err := readFrame(r, MaxFrameSize); err != io.EOF {
			t.Fatalf("after the last frame: %v, want io.EOF", err)
		}
	})
}

// rawMsg lets protoio write pre-encoded bytes.
type rawMsg []byte

func (m rawMsg) Marshal() ([]byte, error) { return m, nil }
func (m rawMsg) Reset()                   {}
func (m rawMsg) String() string           { return "" }
func (m rawMsg) ProtoMessage()            {}

func TestSplitMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      []byte
		field   protowire.Number
		payload []byte
		wantErr bool
	}{
		{name: "ping", in: []byte{0x3a, 0x00}, field: fieldPingRequest, payload: []byte{}},
		{name: "empty", in: nil, field: 0},
		{name: "last sum field wins", in: append(wrap(fieldPingRequest, nil), wrap(fieldPubKeyRequest, []byte{0x0a, 0x01, 'x'})...),
			field: fieldPubKeyRequest, payload: []byte{0x0a, 0x01, 'x'}},
		{name: "unknown fields skipped", in: append([]byte{0xa0, 0x06, 0x01}, wrap(fieldPingRequest, nil)...), field: fieldPingRequest, payload: []byte{}},
		{name: "sum field not length-delimited", in: []byte{0x38, 0x00}, wantErr: true},
		{name: "truncated", in: []byte{0x3a, 0x05, 0x00}, wantErr: true},
		{name: "field number zero", in: []byte{0x02, 0x00}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, p, err := splitMessage(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (f != tc.field || !bytes.Equal(p, tc.payload)) {
				t.Fatalf("got field %d payload %X, want %d %X", f, p, tc.field, tc.payload)
			}
		})
	}
}

func TestScanSkipExtensionSigning(t *testing.T) {
	t.Parallel()
	tag := protowire.AppendTag(nil, fieldSkipExtensionSigning, protowire.VarintType)
	for _, tc := range []struct {
		name    string
		in      []byte
		want    bool
		wantErr bool
	}{
		{name: "absent", in: []byte{0x12, 0x01, 'c'}, want: false},
		{name: "true", in: append(append([]byte{}, tag...), 1), want: true},
		{name: "false", in: append(append([]byte{}, tag...), 0), want: false},
		{name: "nonzero varint is true", in: append(append([]byte{}, tag...), 0x80, 0x01), want: true},
		{name: "last wins", in: append(append(append(append([]byte{}, tag...), 1), tag...), 0), want: false},
		{name: "wrong wire type", in: []byte{0x1a, 0x01, 0x01}, wantErr: true},
		{name: "truncated varint", in: append(append([]byte{}, tag...), 0x80), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scanSkipExtensionSigning(tc.in)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Fatalf("got %v, %v; want %v, err %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestPubKeyResponseDual decodes the one PubKeyResponse both ways: with the
// v0.38 Go types, and by hand as v1's PubKeyResponse{error=2,
// pub_key_bytes=3, pub_key_type=4; reserved 1}.
func TestPubKeyResponseDual(t *testing.T) {
	t.Parallel()
	chain := newTestChain(t)
	pub := testKey("consensus").Public().(ed25519.PublicKey)
	req := wrap(fieldPubKeyRequest, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), testChainID))
	resp := chain.handle(req, testLogger())

	t.Run("v0.38 types", func(t *testing.T) {
		var m privvalproto.Message
		if err := m.Unmarshal(resp); err != nil {
			t.Fatalf("v0.38 decode: %v", err)
		}
		r := m.GetPubKeyResponse()
		if r == nil || r.Error != nil {
			t.Fatalf("not a successful PubKeyResponse: %v", m.String())
		}
		pk, err := cryptoenc.PubKeyFromProto(r.PubKey)
		if err != nil {
			t.Fatalf("PubKeyFromProto: %v", err)
		}
		if !bytes.Equal(pk.Bytes(), pub) || pk.Type() != "ed25519" {
			t.Fatalf("v0.38 key %s %X, want ed25519 %X", pk.Type(), pk.Bytes(), pub)
		}
	})
	t.Run("v1 by hand", func(t *testing.T) {
		top := fields(t, resp)
		inner, ok := top[fieldPubKeyResponse].([]byte)
		if !ok || len(top) != 1 {
			t.Fatalf("response %X is not Message{2: ...}", resp)
		}
		f := fields(t, inner)
		if _, hasErr := f[2]; hasErr {
			t.Fatalf("v1 error field set in a successful response")
		}
		if got, _ := f[3].([]byte); !bytes.Equal(got, pub) {
			t.Fatalf("v1 pub_key_bytes = %X, want %X", got, pub)
		}
		if got, _ := f[4].([]byte); string(got) != "ed25519" {
			t.Fatalf("v1 pub_key_type = %q, want ed25519", got)
		}
		// Field 1 (reserved in v1, skipped by its decoder) holds the v0 key.
		if _, ok := f[1].([]byte); !ok {
			t.Fatalf("v0 field 1 missing")
		}
	})
	t.Run("answered from memory, identical every time", func(t *testing.T) {
		if again := chain.handle(req, testLogger()); !bytes.Equal(again, resp) {
			t.Fatalf("second answer differs")
		}
		if s := chain.Stats(); s.PubKeyRequests != 2 {
			t.Fatalf("PubKeyRequests = %d, want 2", s.PubKeyRequests)
		}
	})
}

func TestRefusalCodes(t *testing.T) {
	t.Parallel()
	seen := map[string]RefusalCode{}
	for _, c := range AllRefusalCodes() {
		name := c.String()
		if strings.HasPrefix(name, "refusal(") {
			t.Errorf("code %d has no name", c)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("codes %d and %d share the name %q", prev, c, name)
		}
		seen[name] = c
		if c == 0 {
			t.Error("code 0 is defined")
		}
	}
	if len(seen) != len(refusalNames) {
		t.Errorf("AllRefusalCodes lists %d codes, %d are named", len(seen), len(refusalNames))
	}
	if got := RefusalCode(99).String(); got != "refusal(99)" {
		t.Errorf("unknown code String() = %q", got)
	}
	r := &Refusal{Code: RefusalConflict, Description: "x"}
	var target *Refusal
	if !errors.As(error(r), &target) || !strings.Contains(r.Error(), "conflicting_data") {
		t.Errorf("Refusal.Error() = %q", r.Error())
	}
}
