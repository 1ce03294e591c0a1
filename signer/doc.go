// Package signer speaks CometBFT's privval protocol to validator nodes and
// decides, per chain, what may be signed.
//
// It owns three things:
//
//   - the wire codec: frames of uvarint(length) || protobuf Message, read with
//     a [MaxFrameSize] cap, decoded with the v0.38 Go types plus the v1 fields
//     those types lack (SignVoteRequest.skip_extension_signing, the v1
//     PubKeyResponse fields, Message fields 9 and 10);
//   - the connection loop, [RunValidator]: one goroutine per validator
//     address dials the node (tcp with a SecretConnection under a persistent
//     identity key, or a unix socket), answers requests one at a time, closes
//     on any error and redials with capped exponential backoff forever;
//   - the signing policy, [Chain]: chain id, max height, request validation,
//     the double-sign rules (through [statefile]), vote extensions and
//     refusals.
//
// The consensus key is only a [crypto.Signer] whose Public() is an
// [ed25519.PublicKey]; this package never sees PKCS#11.
//
// # Invariants
//
//   - A signature leaves the process only after the record naming its
//     height/round/step and sign bytes is durable in the chain's state file.
//     For a new position the write and the key's signature run concurrently
//     (the HSM call overlaps the fsync); the response waits for both, and if
//     the write fails the signature is dropped and the request refused.
//   - One mutex per [Chain], held from the decision through the write, the
//     signature and the vote-extension signature. Every connection to that
//     chain shares it, so two nodes asking for one height/round/step get the
//     same signature (or a refusal), never two. Different chains share nothing
//     on the signing path.
//   - One request, one response: the connection reads one frame, answers it
//     and only then reads the next. Nothing is pipelined.
//   - Refusals are in band: a RemoteSignerError with a distinct
//     [RefusalCode] and a description naming the height/round/step and the
//     reason, in the response type that matches the request. The connection
//     stays up. Nothing in this package panics; a panic from below is turned
//     into a RefusalInternal answer.
//   - Ping and PubKey requests are answered from memory, never from the key:
//     the dual-encoded PubKeyResponse is computed once per chain.
//
// # Versions
//
// The one PubKeyResponse carries both the v0.34–v0.40 field pub_key=1
// (tendermint.crypto.PublicKey{ed25519}) and v1's pub_key_bytes=3 and
// pub_key_type=4 ("ed25519"); each node version skips the fields it does not
// know, so no per-connection dialect is needed. v1's skip_extension_signing
// is honoured (it saves one key operation per non-nil precommit); without it
// the extension of every non-nil precommit is signed fresh, as FilePV does,
// even when the vote itself is a repeat.
//
// # Refusal codes
//
//	code  name                     meaning
//	   1  invalid_request          malformed request: height ≤ 0, round < 0, bad pol round, block id with
//	                               wrong hash lengths or half-empty, timestamp out of range, negative
//	                               validator index, undecodable payload, no vote/proposal, or a frame
//	                               that is no request at all (see below)
//	   2  conflicting_data         this height/round/step was already signed with different data: a
//	                               double-sign attempt (the same code tmkms uses for double signs)
//	   3  height_regression        height below the last signed height
//	   4  round_regression         same height, round below the last signed round
//	   5  step_regression          same height and round, step below the last signed step
//	   6  wrong_chain_id           the request's chain id is not the chain this connection signs for
//	                               (PubKeyRequest included)
//	   7  invalid_type             a vote whose type is not prevote/precommit, or a proposal whose type
//	                               is not proposal
//	   8  above_max_height         height above the chain's max_height
//	   9  unexpected_extension     a vote extension on a prevote or a nil precommit
//	  10  wrong_validator_address  validator_address set and not this key's address
//	  11  raw_bytes_refused        Message field 9 (v1 SignBytesRequest, Celestia SignRawBytesRequest):
//	                               unchecked raw signing would be a signing oracle; answered in field 10
//	  12  no_sign_bytes            the state holds this height/round/step without sign bytes (a FilePV
//	                               import), so a repeat cannot be checked; move the state past it
//	  13  key_error                internal: the key (HSM) failed to sign
//	  14  state_write_error        internal: the state file could not be written; signature dropped
//	  15  internal_error           internal: anything else (a bug); nothing was released
//
// Code 0 is never sent (CometBFT's own handler sends 0 for every error).
// Codes 13–15 are internal failures, logged at error; the others at warn.
//
// # Frames that are not requests
//
// A frame whose length prefix is malformed, exceeds [MaxFrameSize] or is cut
// short closes the connection: the byte stream can no longer be trusted to
// be in step, and the loop redials. A complete frame whose content is not a
// protobuf Message, has no request field, or holds a type nobody defines as
// a request (a response type, an unknown field) is answered with an empty
// Message and counted as invalid_request: there is no response type to carry
// a RemoteSignerError, and an empty answer keeps the one-request/
// one-response rhythm, so the node fails just that call at once (its
// SignerClient reports "unexpected response") rather than waiting 5 s for a
// reply or losing its connection. A request type that is known but whose
// payload does not decode gets a RemoteSignerError in its own response type.
// Nothing is ever signed for any of these.
package signer
