package signer

import (
	"bufio"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	cryptoproto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protowire"
)

// MaxFrameSize bounds the length prefix of a frame read from a validator.
//
// v0.38, v0.39 and v1.0 nodes never send more than 10 KiB (their own reader
// cap), but v0.40 nodes send up to types.MaxVoteExtensionSize +
// 2*types.MaxSignatureSize + 1024 bytes (1 MiB + 2×3309 + 1024 = 1,056,242)
// for a precommit carrying a maximal vote extension. 1 MiB + 8 KiB
// (1,056,768) covers that with room for the request envelope, and is small
// enough that one connection can never make signerd hold more than about
// 1 MiB for a frame.
const MaxFrameSize = types.MaxVoteExtensionSize + 8<<10

// Message.sum field numbers (tendermint.privval.Message in v0.34–v0.40,
// cometbft.privval.v1.Message in v1). Fields 9 and 10 are v1's
// SignBytesRequest/SignBytesResponse and Celestia's SignRawBytesRequest/
// SignedRawBytesResponse; both responses carry the error in field 2.
const (
	fieldPubKeyRequest       protowire.Number = 1
	fieldPubKeyResponse      protowire.Number = 2
	fieldSignVoteRequest     protowire.Number = 3
	fieldSignedVoteResponse  protowire.Number = 4
	fieldSignProposalRequest protowire.Number = 5
	fieldSignedProposalResp  protowire.Number = 6
	fieldPingRequest         protowire.Number = 7
	fieldPingResponse        protowire.Number = 8
	fieldSignBytesRequest    protowire.Number = 9
	fieldSignBytesResponse   protowire.Number = 10
)

// Field numbers inside request and response payloads that the v0.38 Go types
// do not know.
const (
	fieldSkipExtensionSigning protowire.Number = 3 // v1 SignVoteRequest.skip_extension_signing (bool)
	fieldPubKeyBytes          protowire.Number = 3 // v1 PubKeyResponse.pub_key_bytes
	fieldPubKeyType           protowire.Number = 4 // v1 PubKeyResponse.pub_key_type
	fieldRawBytesError        protowire.Number = 2 // SignBytesResponse.error / SignedRawBytesResponse.error
)

// pingResponse is Message{ping_response: PingResponse{}}.
var pingResponse = []byte{0x42, 0x00}

// emptyMessage is the reply to a frame that is not a request signerd can
// name (see the package documentation, "Frames that are not requests").
var emptyMessage = []byte{}

// errFrameTooLarge is returned by readFrame for a length prefix above the cap.
var errFrameTooLarge = errors.New("frame too large")

// readFrame reads one frame, uvarint(len) || message, and returns the
// message bytes. A length above max fails before anything is allocated; the
// buffer grows only as bytes actually arrive, so a lying length prefix
// cannot make signerd allocate max bytes up front. io.EOF means the peer
// closed cleanly between frames.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("reading frame length: %w", err)
	}
	if l > uint64(max) {
		return nil, fmt.Errorf("%w: length prefix %d exceeds the %d-byte limit", errFrameTooLarge, l, max)
	}
	n := int(l)
	const step = 64 << 10
	buf := make([]byte, 0, min(n, step))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading %d-byte frame (got %d): %w", n, len(buf), err)
		}
	}
	return buf, nil
}

// appendFrame appends uvarint(len(msg)) || msg to dst.
func appendFrame(dst, msg []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(msg)))
	return append(dst, msg...)
}

// splitMessage scans the top level of a privval Message and returns the
// number and payload of its sum field. Like the generated decoders, the last
// occurrence wins and unknown fields are skipped. A Message with no sum
// field returns field 0. It fails only on bytes that are not protobuf, or on
// a sum field (1–10) that is not length-delimited.
func splitMessage(b []byte) (field protowire.Number, payload []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, fmt.Errorf("malformed message tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num >= fieldPubKeyRequest && num <= fieldSignBytesResponse {
			if typ != protowire.BytesType {
				return 0, nil, fmt.Errorf("message field %d has wire type %d, want length-delimited", num, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, nil, fmt.Errorf("malformed message field %d: %v", num, protowire.ParseError(n))
			}
			field, payload = num, v
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, nil, fmt.Errorf("malformed message field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return field, payload, nil
}

// scanSkipExtensionSigning reads v1's SignVoteRequest.skip_extension_signing
// (field 3, bool) from the raw request payload; the v0.38 Go type drops it.
// Absent means false. The last occurrence wins, as for any proto3 scalar.
func scanSkipExtensionSigning(payload []byte) (bool, error) {
	skip := false
	b := payload
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, fmt.Errorf("malformed sign vote request: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num == fieldSkipExtensionSigning {
			if typ != protowire.VarintType {
				return false, fmt.Errorf("skip_extension_signing (field 3) has wire type %d, want varint", typ)
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false, fmt.Errorf("malformed skip_extension_signing: %v", protowire.ParseError(n))
			}
			skip = v != 0
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false, fmt.Errorf("malformed sign vote request field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return skip, nil
}

// wrap returns Message{field: payload}.
func wrap(field protowire.Number, payload []byte) []byte {
	out := protowire.AppendTag(make([]byte, 0, len(payload)+8), field, protowire.BytesType)
	return protowire.AppendBytes(out, payload)
}

// pubKeyResponse returns the dual-encoded Message{pub_key_response} for pk:
// the v0.34–v0.40 field pub_key=1 (tendermint.crypto.PublicKey{ed25519}) and
// v1's pub_key_bytes=3 and pub_key_type=4, appended as raw fields. Each
// decoder skips the fields it does not know (v1 only reserves field 1), so
// v0.34–v0.40 and v1.0 nodes all accept the one answer.
func pubKeyResponse(pk ed25519.PublicKey) ([]byte, error) {
	v0 := privvalproto.PubKeyResponse{
		PubKey: cryptoproto.PublicKey{Sum: &cryptoproto.PublicKey_Ed25519{Ed25519: append([]byte(nil), pk...)}},
	}
	inner, err := v0.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding public key response: %w", err)
	}
	inner = protowire.AppendTag(inner, fieldPubKeyBytes, protowire.BytesType)
	inner = protowire.AppendBytes(inner, pk)
	inner = protowire.AppendTag(inner, fieldPubKeyType, protowire.BytesType)
	inner = protowire.AppendString(inner, "ed25519")
	return wrap(fieldPubKeyResponse, inner), nil
}

// rawBytesRefusal returns Message{10: {error=2: RemoteSignerError}}, the
// answer to a Message field 9 request (v1 SignBytesRequest or Celestia
// SignRawBytesRequest; both responses carry the error in field 2).
func rawBytesRefusal(r *Refusal) []byte {
	e, err := r.proto().Marshal()
	if err != nil { // a RemoteSignerError is two scalar fields: cannot fail
		e = nil
	}
	inner := protowire.AppendTag(nil, fieldRawBytesError, protowire.BytesType)
	inner = protowire.AppendBytes(inner, e)
	return wrap(fieldSignBytesResponse, inner)
}
