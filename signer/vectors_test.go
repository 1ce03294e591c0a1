package signer

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"google.golang.org/protobuf/encoding/protowire"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors from the current code")

const vectorDir = "testdata/vectors"

// vector is one exchange: a request frame as a node sends it and the
// signer's response frame. They run in order on one chain with a fresh state
// and max height 100, like cometbft's TestPrivvalVectors but with both
// directions and the state's effect pinned.
type vector struct {
	name string
	desc string
	req  func(t testing.TB) []byte // the Message (unframed)
}

func vectorTable() []vector {
	vote := func(typ cmtproto.SignedMsgType, h int64, r int32, bid cmtproto.BlockID, mod ...func(*cmtproto.Vote)) *cmtproto.Vote {
		v := newVote(typ, h, r, bid)
		for _, m := range mod {
			m(v)
		}
		return v
	}
	sv := func(v *cmtproto.Vote, chainID string) func(t testing.TB) []byte {
		return func(t testing.TB) []byte { return signVoteRequest(t, v, chainID) }
	}
	msg := func(m *privvalproto.Message) func(t testing.TB) []byte {
		return func(t testing.TB) []byte { return mustMarshal(t, m) }
	}
	pubReq := func(chainID string) *privvalproto.Message {
		return &privvalproto.Message{Sum: &privvalproto.Message_PubKeyRequest{PubKeyRequest: &privvalproto.PubKeyRequest{ChainId: chainID}}}
	}
	withExt := func(v *cmtproto.Vote) { v.Extension = []byte("extension") }
	return []vector{
		{"01-ping", "PingRequest → PingResponse", msg(&privvalproto.Message{Sum: &privvalproto.Message_PingRequest{PingRequest: &privvalproto.PingRequest{}}})},
		{"02-pubkey", "PubKeyRequest → dual PubKeyResponse (v0 field 1 + v1 fields 3, 4)", msg(pubReq(testChainID))},
		{"03-pubkey-wrong-chain", "PubKeyRequest for another chain → PubKeyResponse{error code 6}", msg(pubReq("other-chain"))},
		{"04-prevote", "prevote 1/0 → signed", sv(vote(cmtproto.PrevoteType, 1, 0, blockID("A")), testChainID)},
		{"05-prevote-repeat", "same prevote → same signature", sv(vote(cmtproto.PrevoteType, 1, 0, blockID("A")), testChainID)},
		{"06-prevote-timestamp-only", "same prevote, later timestamp → stored timestamp and signature",
			sv(vote(cmtproto.PrevoteType, 1, 0, blockID("A"), func(v *cmtproto.Vote) { v.Timestamp = stamp.Add(time.Second) }), testChainID)},
		{"07-prevote-conflict", "prevote 1/0 for another block → code 2", sv(vote(cmtproto.PrevoteType, 1, 0, blockID("B")), testChainID)},
		{"08-precommit-extension", "non-nil precommit 1/0 with an extension → vote and extension signed",
			sv(vote(cmtproto.PrecommitType, 1, 0, blockID("A"), withExt), testChainID)},
		{"09-precommit-skip-extension", "v1 request with skip_extension_signing=true → no extension signature",
			func(t testing.TB) []byte {
				return appendSkip(t, signVoteRequest(t, vote(cmtproto.PrecommitType, 2, 0, blockID("A"), withExt), testChainID), 1)
			}},
		{"10-nil-precommit", "nil precommit 3/0 → signed, no extension signature", sv(vote(cmtproto.PrecommitType, 3, 0, nilBlock), testChainID)},
		{"11-proposal", "proposal 4/0 → signed", msg(&privvalproto.Message{Sum: &privvalproto.Message_SignProposalRequest{
			SignProposalRequest: &privvalproto.SignProposalRequest{Proposal: newProposal(4, 0, -1, blockID("P")), ChainId: testChainID}}})},
		{"12-height-regression", "prevote 1/0 after 4/0 → code 3", sv(vote(cmtproto.PrevoteType, 1, 0, blockID("A")), testChainID)},
		{"13-vote-wrong-chain", "prevote for another chain → code 6", sv(vote(cmtproto.PrevoteType, 5, 0, blockID("A")), "other-chain")},
		{"14-above-max-height", "prevote at 101 with max height 100 → code 8", sv(vote(cmtproto.PrevoteType, 101, 0, blockID("A")), testChainID)},
		{"15-prevote-with-extension", "prevote carrying an extension → code 9", sv(vote(cmtproto.PrevoteType, 5, 0, blockID("A"), withExt), testChainID)},
		{"16-vote-type-proposal", "SignVoteRequest with type 32 → code 7", sv(vote(cmtproto.ProposalType, 5, 0, blockID("A")), testChainID)},
		{"17-sign-bytes", "v1 SignBytesRequest (field 9) → Message field 10 {error code 11}",
			func(testing.TB) []byte {
				return wrap(fieldSignBytesRequest, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("bytes")))
			}},
		{"18-garbage", "undecodable message → empty message", func(testing.TB) []byte { return []byte{0xff, 0xff, 0xff} }},
		{"19-response-as-request", "a PingResponse sent to the signer → empty message", func(testing.TB) []byte { return pingResponse }},
	}
}

func TestVectors(t *testing.T) {
	t.Parallel()
	chain := newTestChain(t, func(o *testChainOpts) { o.maxHeight = 100 })
	names := map[string]bool{}
	for _, v := range vectorTable() {
		names[v.name+".txt"] = true
		path := filepath.Join(vectorDir, v.name+".txt")
		req := appendFrame(nil, v.req(t))
		// The handler sees the frame as the connection loop reads it.
		msg, err := readFrame(bufio.NewReader(bytes.NewReader(req)), MaxFrameSize)
		if err != nil {
			t.Fatalf("%s: reading own request frame: %v", v.name, err)
		}
		resp := appendFrame(nil, chain.handle(msg, testLogger()))
		if *update {
			content := fmt.Sprintf("# %s\nrequest %x\nresponse %x\n", v.desc, req, resp)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		wantReq, wantResp := readVector(t, path)
		if !bytes.Equal(req, wantReq) {
			t.Errorf("%s: request encodes as\n%x\nwant\n%x", v.name, req, wantReq)
		}
		if !bytes.Equal(resp, wantResp) {
			t.Errorf("%s: response\n%x\nwant\n%x", v.name, resp, wantResp)
		}
	}
	entries, err := os.ReadDir(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !names[e.Name()] {
			t.Errorf("stale vector file %s: not in vectorTable", e.Name())
		}
	}
}

// readVector parses a vector file strictly: comment lines, then exactly one
// request and one response line of lower-case hex.
func readVector(t testing.TB, path string) (req, resp []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestVectors -update to create it)", err)
	}
	got := map[string][]byte{}
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok || (key != "request" && key != "response") {
			t.Fatalf("%s:%d: want \"request <hex>\" or \"response <hex>\", got %q", path, i+1, line)
		}
		if _, dup := got[key]; dup {
			t.Fatalf("%s:%d: second %s line", path, i+1, key)
		}
		b, err := hex.DecodeString(val)
		if err != nil || strings.ToLower(val) != val {
			t.Fatalf("%s:%d: bad hex %q", path, i+1, val)
		}
		got[key] = b
	}
	if got["request"] == nil || got["response"] == nil {
		t.Fatalf("%s: needs a request and a response line", path)
	}
	return got["request"], got["response"]
}

// vectorFrames returns every pinned request frame, sorted by file name, for
// fuzz seeds.
func vectorFrames(t testing.TB) [][]byte {
	paths, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var out [][]byte
	for _, p := range paths {
		req, _ := readVector(t, p)
		out = append(out, req)
	}
	return out
}
