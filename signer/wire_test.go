package signer

import (
	"bytes"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/statefile"
)

// These tests run CometBFT's own validator side (SignerListenerEndpoint +
// SignerClient, as a node with priv_validator_laddr runs them) against
// RunValidator over loopback TCP with SecretConnection and over a unix
// socket.

func TestWireTCP(t *testing.T) {
	t.Parallel()
	n := startTCPNode(t, "127.0.0.1:0", testChainID)
	testWire(t, n)
}

func TestWireUnix(t *testing.T) {
	t.Parallel()
	n := startUnixNode(t, filepath.Join(t.TempDir(), "pv.sock"), testChainID)
	testWire(t, n)
}

func testWire(t *testing.T, n *node) {
	rec := newLogRecorder()
	chain := newTestChain(t, func(o *testChainOpts) {
		o.maxHeight = 1000
		o.log = testLogger()
	})
	runSigner(t, n.addr, chain, func(c *ValidatorConfig) { c.Logger = testLoggerTee(rec) })
	n.waitConnected(t)
	pub := testKey("consensus").Public().(ed25519.PublicKey)
	c := n.client

	t.Run("pubkey and ping", func(t *testing.T) {
		pk, err := c.GetPubKey()
		if err != nil {
			t.Fatalf("GetPubKey: %v", err)
		}
		if !bytes.Equal(pk.Bytes(), pub) {
			t.Fatalf("GetPubKey = %X, want %X", pk.Bytes(), pub)
		}
		if err := c.Ping(); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	// The FilePV rule table, in order on one connection and one state.
	var first *cmtproto.Vote
	t.Run("fresh prevote is signed", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 10, 0, blockID("A"))
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, false)
		first = v
	})
	t.Run("same HRS, identical request: same signature", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 10, 0, blockID("A"))
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		if !bytes.Equal(v.Signature, first.Signature) {
			t.Fatalf("re-signed with %X, want the first signature %X", v.Signature, first.Signature)
		}
	})
	t.Run("same HRS, only the timestamp differs: stored timestamp and signature", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 10, 0, blockID("A"))
		v.Timestamp = stamp.Add(1500 * time.Millisecond)
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		if !v.Timestamp.Equal(stamp) {
			t.Errorf("timestamp %v, want the stored %v", v.Timestamp, stamp)
		}
		if !bytes.Equal(v.Signature, first.Signature) {
			t.Errorf("signature %X, want the stored %X", v.Signature, first.Signature)
		}
		verifyVote(t, pub, testChainID, v, false)
	})
	t.Run("same HRS, other block: conflicting data", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 10, 0, blockID("B"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalConflict, "10/0/prevote", "conflicting data")
	})
	t.Run("same HRS, nil instead of a block: conflicting data", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 10, 0, nilBlock)
		wantRefusal(t, c.SignVote(testChainID, v), RefusalConflict, "10/0/prevote")
	})
	t.Run("the connection survives a refusal", func(t *testing.T) {
		if err := c.Ping(); err != nil {
			t.Fatalf("Ping after refusal: %v", err)
		}
	})
	var precommit *cmtproto.Vote
	t.Run("non-nil precommit: vote and extension signed", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 10, 0, blockID("A"))
		v.Extension = []byte("extension one")
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, true)
		precommit = v
	})
	t.Run("repeated precommit, new extension: same vote signature, fresh extension signature", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 10, 0, blockID("A"))
		v.Extension = []byte("extension two")
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		if !bytes.Equal(v.Signature, precommit.Signature) {
			t.Errorf("vote signature changed on a repeat")
		}
		verifyVote(t, pub, testChainID, v, true)
		if bytes.Equal(v.ExtensionSignature, precommit.ExtensionSignature) {
			t.Errorf("extension signature was not made fresh for the new extension")
		}
	})
	t.Run("empty extension on a non-nil precommit is signed too", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 11, 0, blockID("C"))
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, true)
	})
	t.Run("step regression", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 11, 0, blockID("C"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalStepRegression, "11/0/prevote", "11/0/precommit")
	})
	t.Run("nil precommit: no extension signature", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 12, 2, nilBlock)
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, false)
	})
	t.Run("round regression", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 12, 1, blockID("D"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalRoundRegression, "12/1/prevote", "12/2/precommit")
	})
	t.Run("height regression", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 11, 5, blockID("C"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalHeightRegression, "11/5/precommit")
	})
	t.Run("wrong chain id", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, 0, blockID("E"))
		wantRefusal(t, c.SignVote("other-chain", v), RefusalWrongChainID, "20/0/prevote", `"other-chain"`, testChainID)
	})
	t.Run("above max height", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 1001, 0, blockID("E"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalAboveMaxHeight, "1001/0/prevote", "1000")
	})
	t.Run("prevote with an extension", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, 0, blockID("E"))
		v.Extension = []byte("not allowed")
		wantRefusal(t, c.SignVote(testChainID, v), RefusalUnexpectedExtension, "20/0/prevote")
	})
	t.Run("nil precommit with an extension", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 20, 0, nilBlock)
		v.Extension = []byte("not allowed")
		wantRefusal(t, c.SignVote(testChainID, v), RefusalUnexpectedExtension, "20/0/precommit")
	})
	t.Run("vote of type proposal", func(t *testing.T) {
		v := newVote(cmtproto.ProposalType, 20, 0, blockID("E"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalInvalidType, "height 20")
	})
	t.Run("half-empty block id", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, 0, blockID("E"))
		v.BlockID.PartSetHeader = cmtproto.PartSetHeader{}
		wantRefusal(t, c.SignVote(testChainID, v), RefusalInvalidRequest, "20/0/prevote")
	})
	t.Run("short block hash", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, 0, blockID("E"))
		v.BlockID.Hash = v.BlockID.Hash[:31]
		wantRefusal(t, c.SignVote(testChainID, v), RefusalInvalidRequest, "31 bytes")
	})
	t.Run("zero height", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 0, 0, blockID("E"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalInvalidRequest, "height")
	})
	t.Run("negative round", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, -1, blockID("E"))
		wantRefusal(t, c.SignVote(testChainID, v), RefusalInvalidRequest, "round")
	})
	t.Run("another validator's address", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, 0, blockID("E"))
		v.ValidatorAddress = bytes.Repeat([]byte{7}, 20)
		wantRefusal(t, c.SignVote(testChainID, v), RefusalWrongValidator, "20/0/prevote")
	})
	t.Run("no validator address is accepted", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 20, 0, blockID("E"))
		v.ValidatorAddress = nil
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, false)
	})

	// Proposals follow the same rules at step propose.
	var prop *cmtproto.Proposal
	t.Run("fresh proposal", func(t *testing.T) {
		p := newProposal(30, 1, 0, blockID("P"))
		if err := c.SignProposal(testChainID, p); err != nil {
			t.Fatalf("SignProposal: %v", err)
		}
		if !ed25519.Verify(pub, types.ProposalSignBytes(testChainID, p), p.Signature) {
			t.Fatalf("proposal signature does not verify")
		}
		prop = p
	})
	t.Run("repeated proposal: same signature", func(t *testing.T) {
		p := newProposal(30, 1, 0, blockID("P"))
		if err := c.SignProposal(testChainID, p); err != nil {
			t.Fatalf("SignProposal: %v", err)
		}
		if !bytes.Equal(p.Signature, prop.Signature) {
			t.Fatalf("signature changed on a repeat")
		}
	})
	t.Run("proposal, only timestamp differs: stored timestamp", func(t *testing.T) {
		p := newProposal(30, 1, 0, blockID("P"))
		p.Timestamp = stamp.Add(time.Hour)
		if err := c.SignProposal(testChainID, p); err != nil {
			t.Fatalf("SignProposal: %v", err)
		}
		if !p.Timestamp.Equal(stamp) || !bytes.Equal(p.Signature, prop.Signature) {
			t.Fatalf("got timestamp %v signature %X, want the stored %v and %X", p.Timestamp, p.Signature, stamp, prop.Signature)
		}
	})
	t.Run("proposal, other block: conflicting data", func(t *testing.T) {
		wantRefusal(t, c.SignProposal(testChainID, newProposal(30, 1, 0, blockID("Q"))), RefusalConflict, "30/1/propose")
	})
	t.Run("proposal, other pol round: conflicting data", func(t *testing.T) {
		wantRefusal(t, c.SignProposal(testChainID, newProposal(30, 1, -1, blockID("P"))), RefusalConflict, "30/1/propose")
	})
	t.Run("prevote after the proposal at the same round", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 30, 1, blockID("P"))
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, false)
	})
	t.Run("proposal regression", func(t *testing.T) {
		wantRefusal(t, c.SignProposal(testChainID, newProposal(30, 1, 0, blockID("P"))), RefusalStepRegression, "30/1/propose")
	})
	t.Run("invalid proposals", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			p    *cmtproto.Proposal
			code RefusalCode
		}{
			{"pol round equal to round", newProposal(40, 1, 1, blockID("P")), RefusalInvalidRequest},
			{"pol round below -1", newProposal(40, 1, -2, blockID("P")), RefusalInvalidRequest},
			{"nil block", newProposal(40, 1, 0, nilBlock), RefusalInvalidRequest},
			{"zero height", newProposal(0, 1, 0, blockID("P")), RefusalInvalidRequest},
			{"type prevote", func() *cmtproto.Proposal {
				p := newProposal(40, 1, 0, blockID("P"))
				p.Type = cmtproto.PrevoteType
				return p
			}(), RefusalInvalidType},
			{"above max height", newProposal(5000, 0, -1, blockID("P")), RefusalAboveMaxHeight},
		} {
			wantRefusal(t, c.SignProposal(testChainID, tc.p), tc.code)
		}
		if err := c.SignProposal("other-chain", newProposal(40, 0, -1, blockID("P"))); err == nil {
			t.Fatal("proposal for another chain was signed")
		} else {
			wantRefusal(t, err, RefusalWrongChainID)
		}
	})
	t.Run("after refusals the next request still works", func(t *testing.T) {
		v := newVote(cmtproto.PrevoteType, 41, 0, blockID("F"))
		if err := c.SignVote(testChainID, v); err != nil {
			t.Fatalf("SignVote: %v", err)
		}
		verifyVote(t, pub, testChainID, v, false)
	})
	t.Run("state, stats and logs", func(t *testing.T) {
		last := chain.state.Last()
		if want := (statefile.HRS{Height: 41, Round: 0, Step: statefile.StepPrevote}); last.HRS != want {
			t.Errorf("state at %s, want %s", last.HRS, want)
		}
		s := chain.Stats()
		if s.VotesSigned == 0 || s.ProposalsSigned != 3 || s.ExtensionsSigned != 3 {
			t.Errorf("stats %+v: want votes > 0, 3 proposals, 3 extensions", s)
		}
		if s.LastSigned != last.HRS || s.LastSignedAt.IsZero() {
			t.Errorf("stats last signed %s at %v, want %s", s.LastSigned, s.LastSignedAt, last.HRS)
		}
		for _, code := range []RefusalCode{RefusalConflict, RefusalStepRegression, RefusalRoundRegression, RefusalHeightRegression,
			RefusalWrongChainID, RefusalAboveMaxHeight, RefusalUnexpectedExtension, RefusalInvalidType, RefusalInvalidRequest, RefusalWrongValidator} {
			if s.Refusals[code] == 0 {
				t.Errorf("stats: no %s refusal counted", code)
			}
		}
		warns := rec.find("refused to sign")
		if len(warns) == 0 {
			t.Fatal("no refusal was logged")
		}
		for _, w := range warns {
			if w.Attrs["code"] == "" || w.Attrs["reason"] == "" || w.Attrs["refusal"] == "" {
				t.Errorf("refusal log %+v lacks code, refusal or reason", w)
			}
		}
		if len(rec.find("signed vote")) == 0 || len(rec.find("connected to validator")) == 0 {
			t.Errorf("no debug signature log or no connect log")
		}
	})
}
