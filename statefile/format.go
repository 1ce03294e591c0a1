package statefile

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"unicode/utf8"
)

// File layout constants. See the package documentation for the format.
const (
	// FormatVersion names this format in every slot's "format" field.
	FormatVersion = "signerd-state/1"
	// SlotSize is the size of one slot; a Save rewrites exactly one slot.
	SlotSize = 4096
	// FileSize is the size of a state file: two slots.
	FileSize = 2 * SlotSize
	// MaxChainIDLen is CometBFT's limit on chain id length in bytes
	// (types.MaxChainIDLen).
	MaxChainIDLen = 50
)

const (
	crcPrefix  = "crc32c:"
	crcLineLen = len(crcPrefix) + 8 + 1 // "crc32c:1a2b3c4d\n"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ValidateChainID checks that id can name a chain in a state file: 1 to 50
// bytes (CometBFT's limit) of UTF-8 without control characters.
func ValidateChainID(id string) error {
	switch {
	case id == "":
		return errors.New("chain id must not be empty")
	case len(id) > MaxChainIDLen:
		return fmt.Errorf("chain id %q is %d bytes, at most %d allowed", id, len(id), MaxChainIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("chain id %q is not valid UTF-8", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("chain id %q contains a control character", id)
		}
	}
	return nil
}

// appendJSONString appends s as a JSON string. s is a validated chain id:
// no control characters, so only '"' and '\\' need escaping.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, c)
		}
	}
	return append(b, '"')
}

const upperHex = "0123456789ABCDEF"

func appendUpperHex(b, src []byte) []byte {
	for _, c := range src {
		b = append(b, upperHex[c>>4], upperHex[c&0xf])
	}
	return b
}

// encodeSlot fills buf with one slot: the record's JSON line, its CRC-32C
// line and space padding ending in a newline. The caller has validated r and
// chainID; it does not allocate.
func encodeSlot(buf *[SlotSize]byte, chainID string, seq uint64, r Record) error {
	b := buf[:0]
	b = append(b, `{"format":"`+FormatVersion+`","chain_id":`...)
	b = appendJSONString(b, chainID)
	b = append(b, `,"seq":"`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `","height":"`...)
	b = strconv.AppendInt(b, r.Height, 10)
	b = append(b, `","round":`...)
	b = strconv.AppendInt(b, int64(r.Round), 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, int64(r.Step), 10)
	if len(r.SignBytes) > 0 {
		b = append(b, `,"signbytes":"`...)
		b = appendUpperHex(b, r.SignBytes)
		b = append(b, '"')
	}
	if len(r.Signature) > 0 {
		b = append(b, `,"signature":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Signature)
		b = append(b, '"')
	}
	b = append(b, '}')
	n := len(b)
	// The record line, the checksum line and the final newline must fit; a
	// record that outgrew buf was appended to a new array.
	if n+1+crcLineLen+1 > SlotSize || &b[0] != &buf[0] {
		return fmt.Errorf("%w: the %s record needs %d bytes, a slot holds %d", ErrTooLarge, r.HRS, n+1+crcLineLen+1, SlotSize)
	}
	sum := crc32.Checksum(b, castagnoli)
	b = append(b, '\n')
	b = append(b, crcPrefix...)
	b = hex.AppendEncode(b, []byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	b = append(b, '\n')
	for i := len(b); i < SlotSize-1; i++ {
		buf[i] = ' '
	}
	buf[SlotSize-1] = '\n'
	return nil
}

// slotJSON is the decoded record line.
type slotJSON struct {
	Format    string `json:"format"`
	ChainID   string `json:"chain_id"`
	Seq       string `json:"seq"`
	Height    string `json:"height"`
	Round     int32  `json:"round"`
	Step      int8   `json:"step"`
	SignBytes string `json:"signbytes,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// slotState is one decoded slot.
type slotState struct {
	ok      bool
	chainID string
	seq     uint64
	rec     Record
	problem string // why the slot is not ok
	// hard is set when the slot cannot be a torn write (its checksum holds)
	// yet must not be loaded: ErrCorrupt, ErrVersion or ErrChainMismatch.
	// The whole file is refused then.
	hard error
}

// parseSlot decodes one slot. wantChain, when not empty, must be the chain id
// in the slot. A slot whose checksum fails, or whose padding is damaged, is
// "torn": not ok, not hard. A slot whose checksum holds but whose record is
// invalid, not canonical, of another version or another chain is hard.
func parseSlot(b []byte, wantChain string) (s slotState) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		s.problem = "torn: no record line"
		return s
	}
	line, rest := b[:nl], b[nl+1:]
	if len(rest) < crcLineLen || string(rest[:len(crcPrefix)]) != crcPrefix || rest[crcLineLen-1] != '\n' {
		s.problem = "torn: no checksum line"
		return s
	}
	var sumb [4]byte
	if n, err := hex.Decode(sumb[:], rest[len(crcPrefix):crcLineLen-1]); err != nil || n != 4 {
		s.problem = "torn: checksum line is not hex"
		return s
	}
	sum := uint32(sumb[0])<<24 | uint32(sumb[1])<<16 | uint32(sumb[2])<<8 | uint32(sumb[3])
	if got := crc32.Checksum(line, castagnoli); got != sum {
		s.problem = fmt.Sprintf("torn: checksum %08x does not match record (%08x)", sum, got)
		return s
	}
	hard := func(kind error, format string, args ...any) slotState {
		return slotState{problem: fmt.Sprintf(format, args...), hard: kind}
	}

	// The format decides how to read the rest, so look at it first.
	var head struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return hard(ErrCorrupt, "record is not JSON: %v", err)
	}
	if head.Format != FormatVersion {
		return hard(ErrVersion, "record format %q, this signerd reads %q", head.Format, FormatVersion)
	}
	var j slotJSON
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return hard(ErrCorrupt, "record: %v", err)
	}
	if err := ValidateChainID(j.ChainID); err != nil {
		return hard(ErrCorrupt, "record: %v", err)
	}
	if wantChain != "" && j.ChainID != wantChain {
		return hard(ErrChainMismatch, "made for chain %q, not %q", j.ChainID, wantChain)
	}
	seq, err := strconv.ParseUint(j.Seq, 10, 64)
	if err != nil {
		return hard(ErrCorrupt, "record: seq %q is not a sequence number", j.Seq)
	}
	height, err := strconv.ParseInt(j.Height, 10, 64)
	if err != nil {
		return hard(ErrCorrupt, "record: height %q is not an int64", j.Height)
	}
	r := Record{HRS: HRS{Height: height, Round: j.Round, Step: Step(j.Step)}}
	if j.SignBytes != "" {
		if r.SignBytes, err = hex.DecodeString(j.SignBytes); err != nil {
			return hard(ErrCorrupt, "record: signbytes are not hex: %v", err)
		}
	}
	if j.Signature != "" {
		if r.Signature, err = base64.StdEncoding.Strict().DecodeString(j.Signature); err != nil {
			return hard(ErrCorrupt, "record: signature is not base64: %v", err)
		}
	}
	if err := r.Validate(j.ChainID); err != nil {
		return hard(ErrCorrupt, "record: %v", err)
	}
	// Only what encodeSlot writes is accepted: this rejects duplicate or
	// differently cased keys, other spellings of numbers, lower-case hex and
	// anything else encoding/json tolerates.
	var canon [SlotSize]byte
	if err := encodeSlot(&canon, j.ChainID, seq, r); err != nil {
		return hard(ErrCorrupt, "record: %v", err)
	}
	if !bytes.Equal(canon[:nl], line) || canon[nl] != '\n' {
		return hard(ErrCorrupt, "record is not in canonical form (edited by hand?)")
	}
	if !bytes.Equal(canon[:], b) {
		s.problem = "torn: the bytes after the record line are not the ones written with it"
		return s
	}
	return slotState{ok: true, chainID: j.ChainID, seq: seq, rec: r}
}

// SlotStatus describes one slot of a state file.
type SlotStatus struct {
	Valid   bool
	Seq     uint64 // when Valid
	HRS     HRS    // when Valid
	Problem string // when not Valid
}

// Info describes a state file: what [Read] found, or an open [File]'s
// current state.
type Info struct {
	Path    string
	ChainID string
	Record  Record        // the current record (the valid slot with the higher seq)
	Seq     uint64        // its sequence number; every Save adds one
	Slot    int           // the slot that holds it, 0 or 1
	Slots   [2]SlotStatus // both slots; one torn slot is what a crash mid-Save leaves
	// StaleTemps lists temp files an interrupted Create left next to the
	// file. Read reports them; Open and Create remove them.
	StaleTemps []string
}

// Healthy reports whether both slots are valid.
func (i Info) Healthy() bool { return i.Slots[0].Valid && i.Slots[1].Valid }

// loadBytes decodes a whole state file's bytes. wantChain may be empty (Read).
func loadBytes(path string, data []byte, wantChain string) (Info, error) {
	info := Info{Path: path}
	if len(data) == 0 {
		return info, fileErr(path, ErrEmpty, nil, "file is empty (0 bytes); it was never written or was truncated")
	}
	if len(data) != FileSize {
		trim := bytes.TrimSpace(data)
		ours := bytes.Contains(data, []byte(`"format":"`+FormatVersion+`"`))
		switch {
		case ours:
		case bytes.HasPrefix(trim, []byte("{")) && bytes.Contains(data, []byte(`"format":"signerd-state/`)):
			return info, fileErr(path, ErrVersion, nil, "file is %d bytes of another signerd-state format version (this signerd reads %q)", len(data), FormatVersion)
		case bytes.HasPrefix(trim, []byte("{")) && bytes.Contains(data, []byte(`"height"`)):
			return info, fileErr(path, ErrVersion, nil, "file looks like a CometBFT priv_validator_state.json, not a signerd state file; import it instead")
		}
		return info, fileErr(path, ErrCorrupt, nil, "file is %d bytes, a state file is %d", len(data), FileSize)
	}
	var slots [2]slotState
	for i := range slots {
		slots[i] = parseSlot(data[i*SlotSize:(i+1)*SlotSize], wantChain)
		if slots[i].ok {
			info.Slots[i] = SlotStatus{Valid: true, Seq: slots[i].seq, HRS: slots[i].rec.HRS}
		} else {
			info.Slots[i] = SlotStatus{Problem: slots[i].problem}
		}
	}
	for _, kind := range []error{ErrVersion, ErrChainMismatch, ErrCorrupt} {
		for i, s := range slots {
			if s.hard == kind {
				return info, fileErr(path, kind, nil, "slot %d: %s", i, s.problem)
			}
		}
	}
	a, b := slots[0], slots[1]
	cur := 0
	switch {
	case !a.ok && !b.ok:
		return info, fileErr(path, ErrCorrupt, nil, "no valid slot (slot 0: %s; slot 1: %s)", a.problem, b.problem)
	case !a.ok:
		cur = 1
	case !b.ok:
		cur = 0
	default:
		if a.chainID != b.chainID {
			return info, fileErr(path, ErrCorrupt, nil, "slots name different chains %q and %q", a.chainID, b.chainID)
		}
		if a.seq == b.seq {
			if !a.rec.Equal(b.rec) {
				return info, fileErr(path, ErrCorrupt, nil, "both slots have seq %d but different records", a.seq)
			}
		} else if b.seq > a.seq {
			cur = 1
		}
		newer, older := slots[cur], slots[1-cur]
		if c := newer.rec.Compare(older.rec.HRS); c < 0 || (c == 0 && !bytes.Equal(newer.rec.SignBytes, older.rec.SignBytes)) {
			return info, fileErr(path, ErrCorrupt, nil, "slot %d (seq %d, %s) does not follow slot %d (seq %d, %s)",
				cur, newer.seq, newer.rec.HRS, 1-cur, older.seq, older.rec.HRS)
		}
	}
	s := slots[cur]
	info.ChainID, info.Record, info.Seq, info.Slot = s.chainID, s.rec, s.seq, cur
	return info, nil
}
