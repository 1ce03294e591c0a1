package signer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/statefile"
)

// hashSize is the length of block and part-set hashes (SHA-256).
const hashSize = 32

// The range a protobuf Timestamp can hold (0001-01-01 to 9999-12-31 UTC).
// Sign bytes for a time outside it cannot be encoded.
var (
	minTimestamp = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTimestamp = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// signOutcome is what decideAndSign produced.
type signOutcome struct {
	sig       []byte
	extSig    []byte // nil unless an extension signature was asked for
	timestamp time.Time
	useStored bool // replace the request's timestamp with timestamp
	action    statefile.Action
}

// decideAndSign applies the double-sign rules to (hrs, signBytes) and signs.
// extBytes, if non-nil, are vote-extension sign bytes, signed fresh every
// time (FilePV does; extensions are not deterministic). what names the
// request in refusals ("vote 12/0/prevote").
//
// c.mu is held from the decision until the signatures are ready. For a new
// position the record {hrs, signBytes} is written to disk while the key signs
// (the HSM call overlaps the fsync), and the signatures are returned only
// after both succeeded. If the write fails the signatures are dropped.
func (c *Chain) decideAndSign(hrs statefile.HRS, signBytes, extBytes []byte, what string) (signOutcome, *Refusal) {
	c.mu.Lock()
	defer c.mu.Unlock()

	last := c.state.Last()
	d, err := last.Decide(hrs, signBytes)
	if err != nil {
		return signOutcome{}, decideRefusal(err, what)
	}
	out := signOutcome{action: d.Action}
	switch d.Action {
	case statefile.SignFresh:
		saved := make(chan error, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					saved <- fmt.Errorf("state write panicked: %v", p)
				}
			}()
			saved <- c.state.Save(statefile.Record{HRS: hrs, SignBytes: signBytes})
		}()
		var signErr error
		out.sig, out.extSig, signErr = c.signWithExtension(signBytes, extBytes)
		saveErr := <-saved // always wait: the write must finish before we answer
		if saveErr != nil {
			return signOutcome{}, refusef(RefusalStateError,
				"%s: state file write failed, signature dropped: %v", what, saveErr)
		}
		if signErr != nil {
			return signOutcome{}, refusef(RefusalKeyError, "%s: consensus key failed to sign: %v", what, signErr)
		}
		return out, nil

	case statefile.ResignSame, statefile.ResignWithStoredTimestamp:
		// Ed25519 is deterministic: signing the stored bytes again gives the
		// signature released before. Use the stored one when it is known.
		var signErr error
		if len(d.Signature) > 0 {
			out.sig = d.Signature
			if extBytes != nil {
				if out.extSig, signErr = c.sign(extBytes); signErr != nil {
					signErr = fmt.Errorf("vote extension: %w", signErr)
				}
			}
		} else {
			out.sig, out.extSig, signErr = c.signWithExtension(d.SignBytes, extBytes)
		}
		if signErr != nil {
			return signOutcome{}, refusef(RefusalKeyError, "%s: consensus key failed to sign: %v", what, signErr)
		}
		if d.Action == statefile.ResignWithStoredTimestamp {
			out.timestamp, out.useStored = d.Timestamp, true
		}
		return out, nil
	}
	return signOutcome{}, refusef(RefusalInternal, "%s: state decision %v is unknown to this signer", what, d.Action)
}

// signWithExtension signs msg and, when ext is not nil, ext at the same
// time: an HSM key has a session for each (package hsm keeps two), so a
// non-nil precommit costs one signature's latency, not two. Neither result
// leaves until the caller has also seen the state write finish.
func (c *Chain) signWithExtension(msg, ext []byte) (sig, extSig []byte, err error) {
	if ext == nil {
		sig, err = c.sign(msg)
		return sig, nil, err
	}
	var extErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		extSig, extErr = c.sign(ext)
	}()
	sig, err = c.sign(msg)
	<-done
	switch {
	case err != nil:
		return nil, nil, err
	case extErr != nil:
		return nil, nil, fmt.Errorf("vote extension: %w", extErr)
	}
	return sig, extSig, nil
}

// decideRefusal maps a statefile decision error to a refusal.
func decideRefusal(err error, what string) *Refusal {
	var regr *statefile.RegressionError
	var confl *statefile.ConflictError
	switch {
	case errors.As(err, &regr):
		code := RefusalStepRegression
		switch regr.Component() {
		case "height":
			code = RefusalHeightRegression
		case "round":
			code = RefusalRoundRegression
		}
		return refusef(code, "%s: %s regression: last signed %s", what, regr.Component(), regr.Last)
	case errors.As(err, &confl):
		// confl names the HRS itself; keep only what differs.
		detail := strings.TrimPrefix(confl.Error(), fmt.Sprintf("conflicting data at %s: ", confl.HRS))
		return refusef(RefusalConflict, "%s: conflicting data: %s; double-sign attempt refused", what, detail)
	case errors.Is(err, statefile.ErrNoSignBytes):
		return refusef(RefusalNoSignBytes, "%s: %v", what, err)
	case errors.Is(err, statefile.ErrInvalidRequest), errors.Is(err, statefile.ErrInvalidSignBytes), errors.Is(err, statefile.ErrTooLarge):
		return refusef(RefusalInvalidRequest, "%s: %v", what, err)
	}
	return refusef(RefusalInternal, "%s: state decision failed: %v", what, err)
}

// validateBlockID checks lengths and consistency: a block id is either nil
// (all fields empty) or complete (32-byte hash, total > 0, 32-byte part-set
// hash).
func validateBlockID(b *cmtproto.BlockID) error {
	if n := len(b.Hash); n != 0 && n != hashSize {
		return fmt.Errorf("block id hash is %d bytes, want 0 or %d", n, hashSize)
	}
	if n := len(b.PartSetHeader.Hash); n != 0 && n != hashSize {
		return fmt.Errorf("part set header hash is %d bytes, want 0 or %d", n, hashSize)
	}
	if !types.ProtoBlockIDIsNil(b) && !blockIDComplete(b) {
		return fmt.Errorf("block id must be empty or complete (hash %d bytes, part set total %d, part set hash %d bytes)",
			len(b.Hash), b.PartSetHeader.Total, len(b.PartSetHeader.Hash))
	}
	return nil
}

func blockIDComplete(b *cmtproto.BlockID) bool {
	return len(b.Hash) == hashSize && b.PartSetHeader.Total > 0 && len(b.PartSetHeader.Hash) == hashSize
}

func validateTimestamp(t time.Time) error {
	if t.Before(minTimestamp) || t.After(maxTimestamp) {
		return fmt.Errorf("timestamp %s is outside the encodable range (years 1 to 9999)", t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// voteStep maps a vote type to its step; ok is false for other types.
func voteStep(t cmtproto.SignedMsgType) (statefile.Step, bool) {
	switch t {
	case cmtproto.PrevoteType:
		return statefile.StepPrevote, true
	case cmtproto.PrecommitType:
		return statefile.StepPrecommit, true
	}
	return 0, false
}

// validateVote checks everything about v that does not need the state.
func (c *Chain) validateVote(v *cmtproto.Vote) *Refusal {
	step, ok := voteStep(v.Type)
	if !ok {
		return refusef(RefusalInvalidType,
			"vote at height %d round %d: type %d (%s) is not prevote (1) or precommit (2)", v.Height, v.Round, int32(v.Type), v.Type)
	}
	what := fmt.Sprintf("vote %s", statefile.HRS{Height: v.Height, Round: v.Round, Step: step})
	if v.Height <= 0 {
		return refusef(RefusalInvalidRequest, "%s: height must be positive", what)
	}
	if v.Round < 0 {
		return refusef(RefusalInvalidRequest, "%s: round must not be negative", what)
	}
	if err := validateBlockID(&v.BlockID); err != nil {
		return refusef(RefusalInvalidRequest, "%s: %v", what, err)
	}
	if err := validateTimestamp(v.Timestamp); err != nil {
		return refusef(RefusalInvalidRequest, "%s: %v", what, err)
	}
	if v.ValidatorIndex < 0 {
		return refusef(RefusalInvalidRequest, "%s: validator index %d is negative", what, v.ValidatorIndex)
	}
	if len(v.Extension) > 0 && !extensionAllowed(v) {
		return refusef(RefusalUnexpectedExtension,
			"%s: carries a %d-byte vote extension, but extensions are only allowed on non-nil precommits", what, len(v.Extension))
	}
	if len(v.Extension) > types.MaxVoteExtensionSize {
		return refusef(RefusalInvalidRequest, "%s: vote extension is %d bytes, above the %d-byte maximum",
			what, len(v.Extension), types.MaxVoteExtensionSize)
	}
	if len(v.ValidatorAddress) > 0 && !bytes.Equal(v.ValidatorAddress, c.address) {
		return refusef(RefusalWrongValidator, "%s: validator address %X is not this key's address %X",
			what, v.ValidatorAddress, c.address)
	}
	return nil
}

// extensionAllowed reports whether v is a non-nil precommit, the only vote
// that carries (and gets) a vote extension signature.
func extensionAllowed(v *cmtproto.Vote) bool {
	return v.Type == cmtproto.PrecommitType && !types.ProtoBlockIDIsNil(&v.BlockID)
}

// validateProposal checks everything about p that does not need the state.
func validateProposal(p *cmtproto.Proposal) *Refusal {
	hrs := statefile.HRS{Height: p.Height, Round: p.Round, Step: statefile.StepPropose}
	if p.Type != cmtproto.ProposalType {
		return refusef(RefusalInvalidType, "proposal at height %d round %d: type %d (%s) is not proposal (32)",
			p.Height, p.Round, int32(p.Type), p.Type)
	}
	what := fmt.Sprintf("proposal %s", hrs)
	if p.Height <= 0 {
		return refusef(RefusalInvalidRequest, "%s: height must be positive", what)
	}
	if p.Round < 0 {
		return refusef(RefusalInvalidRequest, "%s: round must not be negative", what)
	}
	if p.PolRound < -1 || p.PolRound >= p.Round {
		return refusef(RefusalInvalidRequest, "%s: pol round %d must be -1 or in [0, round %d)", what, p.PolRound, p.Round)
	}
	if err := validateBlockID(&p.BlockID); err != nil {
		return refusef(RefusalInvalidRequest, "%s: %v", what, err)
	}
	if !blockIDComplete(&p.BlockID) {
		return refusef(RefusalInvalidRequest, "%s: block id must be complete (a proposal cannot be nil)", what)
	}
	if err := validateTimestamp(p.Timestamp); err != nil {
		return refusef(RefusalInvalidRequest, "%s: %v", what, err)
	}
	return nil
}

// signBytesSafely runs a CometBFT sign-bytes function, which panics if
// encoding fails; validation makes that impossible, but a panic must never
// take the signer down, so it becomes an error.
func signBytesSafely(f func() []byte) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("encoding sign bytes: %v", p)
		}
	}()
	return f(), nil
}
