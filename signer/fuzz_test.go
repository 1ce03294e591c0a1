package signer

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/signerd/signerd/statefile"
)

// FuzzReadFrame feeds arbitrary bytes to the frame reader: it must never
// panic, never return more than the cap, never allocate far beyond the bytes
// actually received, and a frame it returns must re-encode to the bytes it
// consumed.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range vectorFrames(f) {
		f.Add(fr)
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, uint64(MaxFrameSize)+1))
	f.Add(append(binary.AppendUvarint(nil, uint64(MaxFrameSize)), 1, 2, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 16 // a small cap so the fuzzer can cross it
		r := bufio.NewReader(bytes.NewReader(data))
		consumed := 0
		for {
			msg, err := readFrame(r, max)
			if err != nil {
				return
			}
			if len(msg) > max {
				t.Fatalf("frame of %d bytes above the cap %d", len(msg), max)
			}
			if cap(msg) > 2*len(data)+64<<10 {
				t.Fatalf("allocated %d bytes for %d input bytes", cap(msg), len(data))
			}
			enc := appendFrame(nil, msg)
			if consumed+len(enc) > len(data) || !bytes.Equal(data[consumed:consumed+len(enc)], enc) {
				// A non-minimal uvarint prefix reads fine but re-encodes
				// shorter; only the body must match then.
				if !bytes.Contains(data[consumed:], msg) {
					t.Fatalf("frame body not found in the input")
				}
				return
			}
			consumed += len(enc)
		}
	})
}

// FuzzHandleRequest feeds arbitrary bytes to the request handler as a frame
// payload. Whatever comes in, the answer is a well-formed Message of the
// response type matching the request (or empty for a frame that is no
// request), it never panics, and any signature it releases verifies and is
// already covered by the state file.
func FuzzHandleRequest(f *testing.F) {
	for _, fr := range vectorFrames(f) {
		msg, err := readFrame(bufio.NewReader(bytes.NewReader(fr)), MaxFrameSize)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Add([]byte{})
	f.Add([]byte{0x1a, 0x00})
	f.Add([]byte{0x2a, 0x00})
	chain := newTestChain(f)
	pub := testKey("consensus").Public().(ed25519.PublicKey)
	log := testLogger()
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := chain.handle(data, log)
		reqField, _, reqErr := splitMessage(data)
		respField, respPayload, err := splitMessage(resp)
		if err != nil {
			t.Fatalf("response %X does not decode: %v", resp, err)
		}
		want := map[protowire.Number]protowire.Number{
			fieldPubKeyRequest:       fieldPubKeyResponse,
			fieldSignVoteRequest:     fieldSignedVoteResponse,
			fieldSignProposalRequest: fieldSignedProposalResp,
			fieldPingRequest:         fieldPingResponse,
			fieldSignBytesRequest:    fieldSignBytesResponse,
		}[reqField]
		if reqErr != nil {
			want = 0
		}
		if respField != want {
			t.Fatalf("request field %d answered with field %d, want %d", reqField, respField, want)
		}
		if want == 0 {
			if len(resp) != 0 {
				t.Fatalf("non-request answered with %X, want an empty message", resp)
			}
			return
		}
		if want == fieldSignBytesResponse {
			code, _ := remoteErr(t, fields(t, respPayload)[2].([]byte))
			if code != RefusalRawBytes {
				t.Fatalf("raw bytes request answered with code %d", code)
			}
			return
		}
		var m privvalproto.Message
		if err := m.Unmarshal(resp); err != nil {
			t.Fatalf("response does not decode with the v0.38 types: %v", err)
		}
		last := chain.state.Last().HRS
		switch r := m.Sum.(type) {
		case *privvalproto.Message_SignedVoteResponse:
			if r.SignedVoteResponse.Error == nil {
				v := &r.SignedVoteResponse.Vote
				if !ed25519.Verify(pub, types.VoteSignBytes(testChainID, v), v.Signature) {
					t.Fatalf("released vote signature does not verify")
				}
				step := statefile.StepPrevote
				if v.Type == cmtproto.PrecommitType {
					step = statefile.StepPrecommit
				}
				if (statefile.HRS{Height: v.Height, Round: v.Round, Step: step}).Compare(last) > 0 {
					t.Fatalf("released a signature for a position past the durable state %s", last)
				}
			} else if r.SignedVoteResponse.Error.Code == 0 {
				t.Fatalf("refusal with code 0")
			}
		case *privvalproto.Message_SignedProposalResponse:
			if r.SignedProposalResponse.Error == nil {
				p := &r.SignedProposalResponse.Proposal
				if !ed25519.Verify(pub, types.ProposalSignBytes(testChainID, p), p.Signature) {
					t.Fatalf("released proposal signature does not verify")
				}
				if (statefile.HRS{Height: p.Height, Round: p.Round, Step: statefile.StepPropose}).Compare(last) > 0 {
					t.Fatalf("released a signature for a position past the durable state %s", last)
				}
			} else if r.SignedProposalResponse.Error.Code == 0 {
				t.Fatalf("refusal with code 0")
			}
		}
	})
}
