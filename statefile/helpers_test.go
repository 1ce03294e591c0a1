package statefile

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
)

const testChain = "test-chain"

// blockID returns a deterministic block id for a label; "" and "nil" give
// the nil block id.
func blockID(label string) cmtproto.BlockID {
	if label == "" || label == "nil" {
		return cmtproto.BlockID{}
	}
	hash := sha256.Sum256([]byte("block:" + label))
	parts := sha256.Sum256([]byte("parts:" + label))
	return cmtproto.BlockID{Hash: hash[:], PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: parts[:]}}
}

// msg describes a vote or proposal; its kind follows the HRS step.
type msg struct {
	Block    string    // block label; "" or "nil" for a nil vote
	Parts    uint32    // part-set total override (0 keeps 1)
	Time     time.Time // timestamp
	POLRound int32     // proposals only
	Chain    string    // chain id override
}

// signBytes builds the canonical sign bytes for m at h with cometbft's own
// types.VoteSignBytes / types.ProposalSignBytes.
func signBytes(h HRS, m msg) []byte {
	chain := m.Chain
	if chain == "" {
		chain = testChain
	}
	bid := blockID(m.Block)
	if m.Parts != 0 && bid.Hash != nil {
		bid.PartSetHeader.Total = m.Parts
	}
	switch h.Step {
	case StepPropose:
		return types.ProposalSignBytes(chain, &cmtproto.Proposal{
			Type: cmtproto.ProposalType, Height: h.Height, Round: h.Round, PolRound: m.POLRound,
			BlockID: bid, Timestamp: m.Time,
		})
	case StepPrevote, StepPrecommit:
		typ := cmtproto.PrevoteType
		if h.Step == StepPrecommit {
			typ = cmtproto.PrecommitType
		}
		return types.VoteSignBytes(chain, &cmtproto.Vote{
			Type: typ, Height: h.Height, Round: h.Round, BlockID: bid, Timestamp: m.Time,
		})
	}
	return nil // step none signs nothing
}

// parseHRS parses "height/round/step" with a step name.
func parseHRS(s string) (HRS, error) {
	p := strings.Split(s, "/")
	if len(p) != 3 {
		return HRS{}, fmt.Errorf("hrs %q: want height/round/step", s)
	}
	h, err := strconv.ParseInt(p[0], 10, 64)
	if err != nil {
		return HRS{}, fmt.Errorf("hrs %q: %v", s, err)
	}
	r, err := strconv.ParseInt(p[1], 10, 32)
	if err != nil {
		return HRS{}, fmt.Errorf("hrs %q: %v", s, err)
	}
	for st := StepNone; st <= StepPrecommit; st++ {
		if st.String() == p[2] {
			return HRS{Height: h, Round: int32(r), Step: st}, nil
		}
	}
	return HRS{}, fmt.Errorf("hrs %q: unknown step %q", s, p[2])
}

func mustHRS(t testing.TB, s string) HRS {
	t.Helper()
	h, err := parseHRS(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// voteRecord is a record at h for message m, without signature.
func voteRecord(h HRS, m msg) Record {
	return Record{HRS: h, SignBytes: signBytes(h, m)}
}

// createTemp creates a state file for testChain holding r in a temp dir.
func createTemp(t testing.TB, r Record) string {
	t.Helper()
	path := t.TempDir() + "/state/" + testChain + ".state"
	if err := Create(path, testChain, r, false); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return path
}

func mustOpen(t testing.TB, path string) *File {
	t.Helper()
	f, err := Open(path, testChain)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f
}
