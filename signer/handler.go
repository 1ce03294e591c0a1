package signer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/signerd/signerd/statefile"
)

// handle answers one request Message (the frame's payload, without the
// length prefix) with one response Message. It never fails and never panics:
// whatever msg holds, the answer is a well-formed Message (see the package
// documentation for the cases).
func (c *Chain) handle(msg []byte, log *slog.Logger) (resp []byte) {
	field, payload, err := splitMessage(msg)
	if err != nil {
		return c.refuseUnknown(log, fmt.Sprintf("undecodable request (%d bytes): %v", len(msg), err))
	}
	defer func() {
		// Last line of defence: a bug below must not take down every chain
		// in the process. c.mu is released by its own defer; no signature
		// can have been released.
		if p := recover(); p != nil {
			log.Error("bug: panic while handling a request; refused", "panic", fmt.Sprint(p), "message_field", int(field))
			resp = c.refuse(log, field, refusef(RefusalInternal, "internal error while handling the request"))
		}
	}()
	switch field {
	case fieldPingRequest:
		c.countPing()
		return pingResponse
	case fieldPubKeyRequest:
		return c.handlePubKey(payload, log)
	case fieldSignVoteRequest:
		return c.handleSignVote(payload, log)
	case fieldSignProposalRequest:
		return c.handleSignProposal(payload, log)
	case fieldSignBytesRequest:
		return c.refuse(log, field, refusef(RefusalRawBytes,
			"raw-bytes signing (Message field 9: CometBFT v1 SignBytesRequest or Celestia SignRawBytesRequest) is refused: "+
				"the bytes are not checked against the height/round/step state, so it would be a signing oracle for the consensus key"))
	case 0:
		return c.refuseUnknown(log, fmt.Sprintf("request message (%d bytes) has no request field", len(msg)))
	}
	return c.refuseUnknown(log, fmt.Sprintf("Message field %d is not a request this signer answers", field))
}

// refuseUnknown answers a frame whose request type cannot be named with an
// empty Message: there is no response type to carry a RemoteSignerError,
// and an empty answer keeps the one-request/one-response rhythm, so the node
// fails just that call (ErrUnexpectedResponse) instead of waiting 5 s for a
// reply or losing the connection.
func (c *Chain) refuseUnknown(log *slog.Logger, reason string) []byte {
	c.countRefusal(RefusalInvalidRequest)
	log.Warn("refused request", "code", int32(RefusalInvalidRequest), "refusal", RefusalInvalidRequest.String(),
		"reason", reason+"; answered with an empty message")
	return emptyMessage
}

// refuse logs r and returns it in the response type matching the request
// field.
func (c *Chain) refuse(log *slog.Logger, field protowire.Number, r *Refusal) []byte {
	c.countRefusal(r.Code)
	level := slog.LevelWarn
	if r.Code.Internal() {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "refused to sign", "code", int32(r.Code), "refusal", r.Code.String(), "reason", r.Description)
	var m privvalproto.Message
	switch field {
	case fieldPubKeyRequest:
		m.Sum = &privvalproto.Message_PubKeyResponse{PubKeyResponse: &privvalproto.PubKeyResponse{Error: r.proto()}}
	case fieldSignVoteRequest:
		m.Sum = &privvalproto.Message_SignedVoteResponse{SignedVoteResponse: &privvalproto.SignedVoteResponse{Error: r.proto()}}
	case fieldSignProposalRequest:
		m.Sum = &privvalproto.Message_SignedProposalResponse{SignedProposalResponse: &privvalproto.SignedProposalResponse{Error: r.proto()}}
	case fieldSignBytesRequest:
		return rawBytesRefusal(r)
	default:
		return emptyMessage
	}
	b, err := m.Marshal()
	if err != nil { // empty vote/proposal plus two scalars: cannot fail
		return emptyMessage
	}
	return b
}

func (c *Chain) handlePubKey(payload []byte, log *slog.Logger) []byte {
	var req privvalproto.PubKeyRequest
	if err := req.Unmarshal(payload); err != nil {
		return c.refuse(log, fieldPubKeyRequest, refusef(RefusalInvalidRequest, "public key request: undecodable: %v", err))
	}
	if req.ChainId != c.chainID {
		return c.refuse(log, fieldPubKeyRequest, wrongChain("public key request", req.ChainId, c.chainID))
	}
	c.countPubKey()
	return c.pubKeyResp
}

func wrongChain(what, got, want string) *Refusal {
	return refusef(RefusalWrongChainID, "%s: request is for chain id %q, but this connection signs for chain id %q", what, got, want)
}

func (c *Chain) handleSignVote(payload []byte, log *slog.Logger) []byte {
	const field = fieldSignVoteRequest
	var req privvalproto.SignVoteRequest
	if err := req.Unmarshal(payload); err != nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "sign vote request: undecodable: %v", err))
	}
	skipExt, err := scanSkipExtensionSigning(payload)
	if err != nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "sign vote request: %v", err))
	}
	vote := req.Vote
	if vote == nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "sign vote request carries no vote"))
	}
	if r := c.validateVote(vote); r != nil {
		return c.refuse(log, field, r)
	}
	step, _ := voteStep(vote.Type)
	hrs := statefile.HRS{Height: vote.Height, Round: vote.Round, Step: step}
	what := "vote " + hrs.String()
	if req.ChainId != c.chainID {
		return c.refuse(log, field, wrongChain(what, req.ChainId, c.chainID))
	}
	if c.maxHeight > 0 && vote.Height > c.maxHeight {
		return c.refuse(log, field, refusef(RefusalAboveMaxHeight, "%s: height is above this chain's max_height %d", what, c.maxHeight))
	}
	signBytes, err := signBytesSafely(func() []byte { return types.VoteSignBytes(c.chainID, vote) })
	if err != nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "%s: %v", what, err))
	}
	var extBytes []byte
	if extensionAllowed(vote) && !skipExt {
		if extBytes, err = signBytesSafely(func() []byte { return types.VoteExtensionSignBytes(c.chainID, vote) }); err != nil {
			return c.refuse(log, field, refusef(RefusalInvalidRequest, "%s: vote extension: %v", what, err))
		}
	}

	start := time.Now()
	out, r := c.decideAndSign(hrs, signBytes, extBytes, what)
	if r != nil {
		return c.refuse(log, field, r)
	}
	signed := *vote
	signed.Signature = out.sig
	signed.ExtensionSignature = out.extSig // nil clears any the request carried
	if out.useStored {
		signed.Timestamp = out.timestamp
	}
	m := privvalproto.Message{Sum: &privvalproto.Message_SignedVoteResponse{
		SignedVoteResponse: &privvalproto.SignedVoteResponse{Vote: signed}}}
	b, err := m.Marshal()
	if err != nil {
		return c.refuse(log, field, refusef(RefusalInternal, "%s: encoding the signed vote: %v", what, err))
	}
	c.countSigned(hrs, out.extSig != nil)
	elapsed := time.Since(start)
	if log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("signed vote", "type", voteTypeName(vote.Type), "height", hrs.Height, "round", hrs.Round,
			"decision", out.action, "extension_signed", out.extSig != nil, "skip_extension_signing", skipExt,
			"duration", elapsed)
	}
	warnIfSlow(log, voteTypeName(vote.Type), hrs, elapsed)
	return b
}

func (c *Chain) handleSignProposal(payload []byte, log *slog.Logger) []byte {
	const field = fieldSignProposalRequest
	var req privvalproto.SignProposalRequest
	if err := req.Unmarshal(payload); err != nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "sign proposal request: undecodable: %v", err))
	}
	p := req.Proposal
	if p == nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "sign proposal request carries no proposal"))
	}
	if r := validateProposal(p); r != nil {
		return c.refuse(log, field, r)
	}
	hrs := statefile.HRS{Height: p.Height, Round: p.Round, Step: statefile.StepPropose}
	what := "proposal " + hrs.String()
	if req.ChainId != c.chainID {
		return c.refuse(log, field, wrongChain(what, req.ChainId, c.chainID))
	}
	if c.maxHeight > 0 && p.Height > c.maxHeight {
		return c.refuse(log, field, refusef(RefusalAboveMaxHeight, "%s: height is above this chain's max_height %d", what, c.maxHeight))
	}
	signBytes, err := signBytesSafely(func() []byte { return types.ProposalSignBytes(c.chainID, p) })
	if err != nil {
		return c.refuse(log, field, refusef(RefusalInvalidRequest, "%s: %v", what, err))
	}

	start := time.Now()
	out, r := c.decideAndSign(hrs, signBytes, nil, what)
	if r != nil {
		return c.refuse(log, field, r)
	}
	signed := *p
	signed.Signature = out.sig
	if out.useStored {
		signed.Timestamp = out.timestamp
	}
	m := privvalproto.Message{Sum: &privvalproto.Message_SignedProposalResponse{
		SignedProposalResponse: &privvalproto.SignedProposalResponse{Proposal: signed}}}
	b, err := m.Marshal()
	if err != nil {
		return c.refuse(log, field, refusef(RefusalInternal, "%s: encoding the signed proposal: %v", what, err))
	}
	c.countSigned(hrs, false)
	elapsed := time.Since(start)
	if log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("signed proposal", "type", "proposal", "height", hrs.Height, "round", hrs.Round,
			"decision", out.action, "duration", elapsed)
	}
	warnIfSlow(log, "proposal", hrs, elapsed)
	return b
}

// slowSignature is when a signature is worth a warning: the node gives up
// on a request after 5 s, and every millisecond adds to block time.
const slowSignature = time.Second

// warnIfSlow logs a signature that took longer than slowSignature, so a
// stalling HSM or disk shows without debug logging.
func warnIfSlow(log *slog.Logger, typ string, hrs statefile.HRS, d time.Duration) {
	if d > slowSignature {
		log.Warn("slow signature", "type", typ, "height", hrs.Height, "round", hrs.Round, "duration", d,
			"hint", "the node gives up after 5 s; check the HSM and the state file's disk (fdatasync latency)")
	}
}

func voteTypeName(t cmtproto.SignedMsgType) string {
	switch t {
	case cmtproto.PrevoteType:
		return "prevote"
	case cmtproto.PrecommitType:
		return "precommit"
	}
	return t.String()
}
