package statefile

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cometbft/cometbft/libs/protoio"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cosmos/gogoproto/proto"
)

// MaxSignBytes is the longest sign bytes a record may hold. A slot always
// fits a record with this many sign bytes, a 64-byte signature and a 50-byte
// chain id; realistic vote and proposal sign bytes are under 300 bytes.
const MaxSignBytes = 1536

// Wire types of the protobuf encoding.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// msgType returns the SignedMsgType a step's sign bytes carry in field 1.
func msgType(s Step) (cmtproto.SignedMsgType, bool) {
	switch s {
	case StepPropose:
		return cmtproto.ProposalType, true
	case StepPrevote:
		return cmtproto.PrevoteType, true
	case StepPrecommit:
		return cmtproto.PrecommitType, true
	}
	return 0, false
}

// Field layouts of CanonicalVote and CanonicalProposal
// (proto/tendermint/types/canonical.proto): wire type per field number.
var (
	voteFields     = [...]int8{1: wireVarint, 2: wireFixed64, 3: wireFixed64, 4: wireBytes, 5: wireBytes, 6: wireBytes}
	proposalFields = [...]int8{1: wireVarint, 2: wireFixed64, 3: wireFixed64, 4: wireVarint, 5: wireBytes, 6: wireBytes, 7: wireBytes}
)

const (
	voteChainIDField     = 6
	proposalChainIDField = 7
)

// checkSignBytes verifies, without allocating, that b is one length-delimited
// canonical message of the kind the step signs (CanonicalProposal for
// propose, CanonicalVote for prevote/precommit) whose type, height and round
// are h's and, when chainID is not empty, whose chain id is chainID. Fields
// must appear at most once, in ascending order, with their declared wire
// types, as cometbft's marshalling writes them; nothing may follow the
// message. It returns an error wrapping [ErrInvalidSignBytes].
func checkSignBytes(h HRS, b []byte, chainID string) error {
	want, ok := msgType(h.Step)
	if !ok {
		return fmt.Errorf("%w: step %s signs nothing", ErrInvalidSignBytes, h.Step)
	}
	layout, chainField := voteFields[:], uint64(voteChainIDField)
	if h.Step == StepPropose {
		layout, chainField = proposalFields[:], proposalChainIDField
	}
	l, n := binary.Uvarint(b)
	if n <= 0 {
		return fmt.Errorf("%w: no valid length prefix", ErrInvalidSignBytes)
	}
	if l != uint64(len(b)-n) {
		return fmt.Errorf("%w: length prefix says %d bytes, %d follow", ErrInvalidSignBytes, l, len(b)-n)
	}
	msg := b[n:]
	var (
		last             uint64
		typ              uint64
		height, round    int64
		chain            []byte
		haveType, haveTS bool
	)
	for len(msg) > 0 {
		tag, n := binary.Uvarint(msg)
		if n <= 0 {
			return fmt.Errorf("%w: bad field tag", ErrInvalidSignBytes)
		}
		msg = msg[n:]
		num, wt := tag>>3, int8(tag&7)
		if num == 0 || num >= uint64(len(layout)) || layout[num] != wt {
			return fmt.Errorf("%w: unexpected field %d (wire type %d) in a canonical %s", ErrInvalidSignBytes, num, wt, kindName(h.Step))
		}
		if num <= last {
			return fmt.Errorf("%w: field %d repeated or out of order", ErrInvalidSignBytes, num)
		}
		last = num
		switch wt {
		case wireVarint:
			v, n := binary.Uvarint(msg)
			if n <= 0 {
				return fmt.Errorf("%w: bad varint in field %d", ErrInvalidSignBytes, num)
			}
			msg = msg[n:]
			if num == 1 {
				typ, haveType = v, true
			}
		case wireFixed64:
			if len(msg) < 8 {
				return fmt.Errorf("%w: truncated field %d", ErrInvalidSignBytes, num)
			}
			v := int64(binary.LittleEndian.Uint64(msg))
			msg = msg[8:]
			if num == 2 {
				height = v
			} else {
				round = v
			}
		case wireBytes:
			v, n := binary.Uvarint(msg)
			if n <= 0 || v > uint64(len(msg)-n) {
				return fmt.Errorf("%w: truncated field %d", ErrInvalidSignBytes, num)
			}
			data := msg[n : n+int(v)]
			msg = msg[n+int(v):]
			if num == chainField {
				chain = data
			}
			if num == chainField-1 {
				haveTS = true
			}
		}
	}
	if !haveType || typ != uint64(want) {
		return fmt.Errorf("%w: message type %d, want %d (%s) for step %s", ErrInvalidSignBytes, typ, want, want, h.Step)
	}
	if height != h.Height || round != int64(h.Round) {
		return fmt.Errorf("%w: they sign %d/%d, filed under %s", ErrInvalidSignBytes, height, round, h)
	}
	if !haveTS {
		return fmt.Errorf("%w: no timestamp", ErrInvalidSignBytes)
	}
	if chainID != "" && string(chain) != chainID {
		return fmt.Errorf("%w: they sign for chain %q, want %q", ErrInvalidSignBytes, chain, chainID)
	}
	return nil
}

func kindName(s Step) string {
	if s == StepPropose {
		return "proposal"
	}
	return "vote"
}

// onlyTimestampDiffers decodes the recorded and the requested sign bytes of
// one step (CanonicalProposal or CanonicalVote), makes their timestamps equal
// and compares them with proto.Equal, as FilePV's
// checkVotesOnlyDifferByTimestamp / checkProposalsOnlyDifferByTimestamp do.
// It returns the recorded timestamp, whether only the timestamp differs and,
// if not, the fields that differ. Undecodable bytes are an error.
func onlyTimestampDiffers(step Step, signed, got []byte) (ts time.Time, same bool, c *ConflictError, err error) {
	if step == StepPropose {
		var a, b cmtproto.CanonicalProposal
		if err := decode(signed, &a, "recorded"); err != nil {
			return time.Time{}, false, nil, err
		}
		if err := decode(got, &b, "requested"); err != nil {
			return time.Time{}, false, nil, err
		}
		ts = a.Timestamp
		a.Timestamp = b.Timestamp
		if proto.Equal(&a, &b) {
			return ts, true, nil, nil
		}
		c := &ConflictError{}
		diff(c, a.Type != b.Type, "type")
		diff(c, a.Height != b.Height, "height")
		diff(c, a.Round != b.Round, "round")
		diff(c, a.POLRound != b.POLRound, "pol_round")
		diffBlockID(c, a.BlockID, b.BlockID)
		diff(c, a.ChainID != b.ChainID, "chain_id")
		return ts, false, c, nil
	}
	var a, b cmtproto.CanonicalVote
	if err := decode(signed, &a, "recorded"); err != nil {
		return time.Time{}, false, nil, err
	}
	if err := decode(got, &b, "requested"); err != nil {
		return time.Time{}, false, nil, err
	}
	ts = a.Timestamp
	a.Timestamp = b.Timestamp
	if proto.Equal(&a, &b) {
		return ts, true, nil, nil
	}
	c = &ConflictError{}
	diff(c, a.Type != b.Type, "type")
	diff(c, a.Height != b.Height, "height")
	diff(c, a.Round != b.Round, "round")
	diffBlockID(c, a.BlockID, b.BlockID)
	diff(c, a.ChainID != b.ChainID, "chain_id")
	return ts, false, c, nil
}

func decode(b []byte, m proto.Message, which string) error {
	if err := protoio.UnmarshalDelimited(b, m); err != nil {
		return fmt.Errorf("%w: %s sign bytes do not decode: %v", ErrInvalidSignBytes, which, err)
	}
	return nil
}

func diff(c *ConflictError, differs bool, field string) {
	if differs {
		c.Fields = append(c.Fields, field)
	}
}

func diffBlockID(c *ConflictError, a, b *cmtproto.CanonicalBlockID) {
	if (a == nil && b == nil) || (a != nil && b != nil && proto.Equal(a, b)) {
		return
	}
	c.Fields = append(c.Fields, "block_id")
	if c.Detail == "" {
		c.Detail = "signed " + blockName(a) + ", got " + blockName(b)
	}
}

func blockName(b *cmtproto.CanonicalBlockID) string {
	if b == nil {
		return "nil"
	}
	h := hex.EncodeToString(b.Hash)
	if len(h) > 12 {
		h = h[:12] + "…"
	}
	return fmt.Sprintf("block %s (parts %d)", h, b.PartSetHeader.Total)
}
