package signer

import (
	"fmt"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
)

// RefusalCode is the code of a RemoteSignerError that signerd sends instead of
// a signature. Every reason has its own code so that node logs, signerd logs
// and [Stats] can be matched up. The table in the package documentation lists
// them; codes are part of the wire contract and never change meaning.
//
// Code 0 is never sent: CometBFT's own handler sends 0 for every error, so a 0
// seen in a node log did not come from signerd.
type RefusalCode int32

// The refusal codes. Codes 1–12 are policy refusals (the request was not
// acceptable); codes 13–15 are internal failures (the request was acceptable
// but signerd could not complete it; a retry may succeed).
const (
	RefusalInvalidRequest      RefusalCode = 1  // malformed request: bad height, round, block id, timestamp, undecodable payload
	RefusalConflict            RefusalCode = 2  // same height/round/step already signed with different data (double-sign attempt)
	RefusalHeightRegression    RefusalCode = 3  // height below the last signed height
	RefusalRoundRegression     RefusalCode = 4  // same height, round below the last signed round
	RefusalStepRegression      RefusalCode = 5  // same height and round, step below the last signed step
	RefusalWrongChainID        RefusalCode = 6  // the request names another chain id than this connection's chain
	RefusalInvalidType         RefusalCode = 7  // vote type not prevote/precommit, or proposal type not proposal
	RefusalAboveMaxHeight      RefusalCode = 8  // height above the chain's configured max_height
	RefusalUnexpectedExtension RefusalCode = 9  // vote extension on a prevote or a nil precommit
	RefusalWrongValidator      RefusalCode = 10 // validator_address is set and is not this key's address
	RefusalRawBytes            RefusalCode = 11 // raw-bytes signing (v1 SignBytes, Celestia SignRawBytes; Message field 9) is refused
	RefusalNoSignBytes         RefusalCode = 12 // the state file holds this height/round/step but no sign bytes to compare with
	RefusalKeyError            RefusalCode = 13 // internal: the key (HSM) failed to sign
	RefusalStateError          RefusalCode = 14 // internal: the state file could not be written; the signature was dropped
	RefusalInternal            RefusalCode = 15 // internal: any other failure (a bug); nothing was signed
)

// refusalNames are the stable snake_case names used in logs and status output.
var refusalNames = map[RefusalCode]string{
	RefusalInvalidRequest:      "invalid_request",
	RefusalConflict:            "conflicting_data",
	RefusalHeightRegression:    "height_regression",
	RefusalRoundRegression:     "round_regression",
	RefusalStepRegression:      "step_regression",
	RefusalWrongChainID:        "wrong_chain_id",
	RefusalInvalidType:         "invalid_type",
	RefusalAboveMaxHeight:      "above_max_height",
	RefusalUnexpectedExtension: "unexpected_extension",
	RefusalWrongValidator:      "wrong_validator_address",
	RefusalRawBytes:            "raw_bytes_refused",
	RefusalNoSignBytes:         "no_sign_bytes",
	RefusalKeyError:            "key_error",
	RefusalStateError:          "state_write_error",
	RefusalInternal:            "internal_error",
}

// String returns the code's stable snake_case name, e.g. "height_regression".
func (c RefusalCode) String() string {
	if n, ok := refusalNames[c]; ok {
		return n
	}
	return fmt.Sprintf("refusal(%d)", int32(c))
}

// Internal reports whether c is an internal failure rather than a policy
// refusal.
func (c RefusalCode) Internal() bool {
	return c == RefusalKeyError || c == RefusalStateError || c == RefusalInternal
}

// AllRefusalCodes lists every defined code in ascending order.
func AllRefusalCodes() []RefusalCode {
	out := make([]RefusalCode, 0, len(refusalNames))
	for c := RefusalInvalidRequest; c <= RefusalInternal; c++ {
		out = append(out, c)
	}
	return out
}

// Refusal is the reason a request was not signed. It travels to the node as a
// RemoteSignerError with Code and Description.
type Refusal struct {
	Code        RefusalCode
	Description string // names the height/round/step (when known) and the reason
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("refused (%s, code %d): %s", r.Code, int32(r.Code), r.Description)
}

// proto returns r as the wire RemoteSignerError.
func (r *Refusal) proto() *privvalproto.RemoteSignerError {
	return &privvalproto.RemoteSignerError{Code: int32(r.Code), Description: r.Description}
}

func refusef(code RefusalCode, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Description: fmt.Sprintf(format, args...)}
}
