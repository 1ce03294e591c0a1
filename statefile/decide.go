package statefile

import (
	"bytes"
	"fmt"
	"time"
)

// Record is the last signature's position and what was signed there.
type Record struct {
	HRS
	// SignBytes are the length-delimited canonical sign bytes signed at HRS;
	// nil for a fresh state or a FilePV state imported without them.
	SignBytes []byte
	// Signature is kept when known (FilePV import); the hot path does not
	// store it, because Ed25519 is deterministic: signing SignBytes again
	// gives the same signature.
	Signature []byte
}

// Equal reports whether r and o hold the same position, sign bytes and
// signature (nil and empty slices are equal).
func (r Record) Equal(o Record) bool {
	return r.HRS == o.HRS && bytes.Equal(r.SignBytes, o.SignBytes) && bytes.Equal(r.Signature, o.Signature)
}

// String formats r for logs: its position and sizes, never the bytes.
func (r Record) String() string {
	return fmt.Sprintf("%s (%d sign bytes, signature %t)", r.HRS, len(r.SignBytes), len(r.Signature) > 0)
}

// Validate checks r's ranges and consistency: height and round not negative,
// a known step, no sign bytes or signature at step none, a position that
// signs something at height 1 or above, sign bytes that are a canonical
// vote/proposal for exactly r's HRS (and chainID unless empty) of at most
// [MaxSignBytes], and a 64-byte signature only next to sign bytes.
func (r Record) Validate(chainID string) error {
	switch {
	case r.Height < 0:
		return fmt.Errorf("%w: negative height %d", ErrInvalidRecord, r.Height)
	case r.Round < 0:
		return fmt.Errorf("%w: negative round %d", ErrInvalidRecord, r.Round)
	case !r.Step.Valid():
		return fmt.Errorf("%w: unknown step %d (want 0 none, 1 propose, 2 prevote, 3 precommit)", ErrInvalidRecord, int8(r.Step))
	case r.Step == StepNone && (len(r.SignBytes) > 0 || len(r.Signature) > 0):
		return fmt.Errorf("%w: %s holds sign bytes or a signature but step none signs nothing", ErrInvalidRecord, r.HRS)
	case r.Step != StepNone && r.Height < 1:
		return fmt.Errorf("%w: %s: nothing is signed below height 1", ErrInvalidRecord, r.HRS)
	case len(r.Signature) > 0 && len(r.SignBytes) == 0:
		return fmt.Errorf("%w: %s has a signature but no sign bytes", ErrInvalidRecord, r.HRS)
	case len(r.Signature) > 0 && len(r.Signature) != 64:
		return fmt.Errorf("%w: %s: signature is %d bytes, want 64 (Ed25519)", ErrInvalidRecord, r.HRS, len(r.Signature))
	case len(r.SignBytes) > MaxSignBytes:
		return fmt.Errorf("%w: %s: %d sign bytes, at most %d fit a state slot", ErrTooLarge, r.HRS, len(r.SignBytes), MaxSignBytes)
	}
	if len(r.SignBytes) > 0 {
		if err := checkSignBytes(r.HRS, r.SignBytes, chainID); err != nil {
			return fmt.Errorf("%s: %w", r.HRS, err)
		}
	}
	return nil
}

// Action is what [Record.Decide] allows for a request.
type Action int

// The actions, per CometBFT FilePV.
const (
	// SignFresh: the request is past the record; sign its bytes, persist
	// them with [File.Save] and release the signature only after both.
	SignFresh Action = iota + 1
	// ResignSame: the request repeats the recorded sign bytes exactly;
	// answer with the stored signature or sign the same bytes again.
	ResignSame
	// ResignWithStoredTimestamp: the request differs from the recorded sign
	// bytes only in its timestamp; answer with the signature of the
	// recorded bytes and the recorded timestamp.
	ResignWithStoredTimestamp
)

func (a Action) String() string {
	switch a {
	case SignFresh:
		return "sign-fresh"
	case ResignSame:
		return "resign-same"
	case ResignWithStoredTimestamp:
		return "resign-with-stored-timestamp"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Decision is what to sign for a request and what the response carries.
type Decision struct {
	Action Action
	// SignBytes are the bytes to sign: the request's (SignFresh, ResignSame)
	// or the recorded ones (ResignWithStoredTimestamp).
	SignBytes []byte
	// Signature is the stored signature when the record has one for these
	// bytes; nil otherwise (sign SignBytes again).
	Signature []byte
	// Timestamp is, for ResignWithStoredTimestamp, the recorded timestamp
	// the response's vote or proposal must carry.
	Timestamp time.Time
}

// Decide applies CometBFT FilePV's double-sign rules (privval/file.go
// CheckHRS, signVote, signProposal) to a request at req with the given
// length-delimited canonical sign bytes, last being the last signed record:
//
//   - req below last: *[RegressionError] (height, round or step);
//   - req equal to last: [ErrNoSignBytes] if last has none; [ResignSame] if
//     the bytes are identical; [ResignWithStoredTimestamp] if the canonical
//     messages differ only in their timestamp; otherwise *[ConflictError];
//   - req above last: [SignFresh].
//
// Beyond FilePV it refuses, with [ErrInvalidRequest] or
// [ErrInvalidSignBytes], a request that cannot be signed (height below 1,
// negative round, step none or unknown) and sign bytes that are not exactly
// one canonical message of req's step, height and round (FilePV computes the
// bytes itself, so it never meets such bytes). Undecodable recorded bytes are
// an error, never a panic. Decide does not change last.
func (last Record) Decide(req HRS, signBytes []byte) (Decision, error) {
	if req.Height < 1 || req.Round < 0 || req.Step == StepNone || !req.Step.Valid() {
		return Decision{}, fmt.Errorf("%w: %s: need height ≥ 1, round ≥ 0 and step propose, prevote or precommit", ErrInvalidRequest, req)
	}
	if err := checkSignBytes(req, signBytes, ""); err != nil {
		return Decision{}, fmt.Errorf("request at %s: %w", req, err)
	}
	switch req.Compare(last.HRS) {
	case 1:
		return Decision{Action: SignFresh, SignBytes: signBytes}, nil
	case -1:
		return Decision{}, &RegressionError{Last: last.HRS, Got: req}
	}
	if len(last.SignBytes) == 0 {
		return Decision{}, fmt.Errorf("%w: %s (the state was imported without them, so a repeat of this one position cannot be checked and is refused)", ErrNoSignBytes, req)
	}
	if bytes.Equal(signBytes, last.SignBytes) {
		return Decision{Action: ResignSame, SignBytes: signBytes, Signature: last.Signature}, nil
	}
	ts, same, conflict, err := onlyTimestampDiffers(req.Step, last.SignBytes, signBytes)
	if err != nil {
		return Decision{}, fmt.Errorf("at %s: %w", req, err)
	}
	if !same {
		conflict.HRS, conflict.Signed, conflict.Got = req, last.SignBytes, signBytes
		return Decision{}, conflict
	}
	return Decision{Action: ResignWithStoredTimestamp, SignBytes: last.SignBytes, Signature: last.Signature, Timestamp: ts}, nil
}
