package statefile

import (
	"errors"
	"fmt"
)

// Kinds of state-file problems. Each is returned wrapped in a [*FileError]
// that names the file; test for them with [errors.Is]. The CLI maps each kind
// to the command that fixes it.
var (
	// ErrMissing: the state file does not exist.
	ErrMissing = errors.New("state file does not exist")
	// ErrEmpty: the state file exists but holds zero bytes.
	ErrEmpty = errors.New("state file is empty")
	// ErrCorrupt: no slot holds a valid record, or a slot holds a record that
	// passed its checksum but is invalid (not a torn write).
	ErrCorrupt = errors.New("state file is corrupt")
	// ErrChainMismatch: the file was created for another chain id.
	ErrChainMismatch = errors.New("state file belongs to another chain")
	// ErrVersion: the file is not in this version's format (another
	// signerd-state version, or a CometBFT priv_validator_state.json).
	ErrVersion = errors.New("state file has an unsupported format")
	// ErrLocked: another process (or another [File] in this one) holds the
	// file's lock.
	ErrLocked = errors.New("state file is locked")
	// ErrExists: [Create] found a file at the path and was not asked to
	// overwrite it.
	ErrExists = errors.New("state file already exists")
	// ErrNotRegular: the path names a directory, device or other non-regular
	// file.
	ErrNotRegular = errors.New("state file is not a regular file")
	// ErrClosed: the [File] was closed.
	ErrClosed = errors.New("state file is closed")
	// ErrWriteFailed: an earlier write or sync of this [File] failed. After a
	// failed fdatasync the kernel may have dropped the dirty page, so the open
	// File refuses all further saves; reopening re-reads the file from disk.
	ErrWriteFailed = errors.New("an earlier write to the state file failed")
)

// Errors about records and sign bytes rather than files.
var (
	// ErrNoSignBytes: a request repeats the recorded height/round/step but the
	// record holds no sign bytes to compare with (for example a FilePV state
	// imported without them), so whether it conflicts cannot be decided.
	ErrNoSignBytes = errors.New("no sign bytes recorded for this height/round/step")
	// ErrInvalidSignBytes: sign bytes are not a length-delimited canonical vote
	// or proposal for the height/round/step (and chain) they are filed under.
	ErrInvalidSignBytes = errors.New("invalid sign bytes")
	// ErrInvalidRecord: a record's fields are out of range or inconsistent.
	ErrInvalidRecord = errors.New("invalid state record")
	// ErrInvalidRequest: a request's height/round/step cannot be signed
	// (height below 1, negative round, step not propose/prevote/precommit).
	ErrInvalidRequest = errors.New("invalid signing request")
	// ErrTooLarge: sign bytes longer than [MaxSignBytes] do not fit a slot.
	ErrTooLarge = errors.New("sign bytes too large for a state slot")
)

// FileError is a problem with one state file. Kind is one of the Err*
// sentinels above and is matched by [errors.Is]; Err, when set, is the
// underlying cause (an *os.PathError, say) and is matched too.
type FileError struct {
	Path   string // the state file
	Kind   error  // ErrMissing, ErrCorrupt, ...; nil for a plain I/O failure
	Detail string // what exactly is wrong, without the path
	Err    error  // underlying cause, or nil
}

func (e *FileError) Error() string {
	msg := fmt.Sprintf("state file %q: %s", e.Path, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the kind and the cause, for [errors.Is] and [errors.As].
func (e *FileError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Kind, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func fileErr(path string, kind error, cause error, format string, args ...any) *FileError {
	return &FileError{Path: path, Kind: kind, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// RegressionError refuses a request whose height/round/step is below the last
// one signed. Its message says which of the three regressed.
type RegressionError struct {
	Last HRS // the last height/round/step signed
	Got  HRS // the request
}

// Component names what regressed: "height", "round" or "step" (or "" if Got
// is not below Last, which [Record.Decide] never returns).
func (e *RegressionError) Component() string {
	switch {
	case e.Got.Height < e.Last.Height:
		return "height"
	case e.Got.Height > e.Last.Height:
		return ""
	case e.Got.Round < e.Last.Round:
		return "round"
	case e.Got.Round > e.Last.Round:
		return ""
	case e.Got.Step < e.Last.Step:
		return "step"
	}
	return ""
}

func (e *RegressionError) Error() string {
	c := e.Component()
	if c == "" {
		c = "no"
	}
	return fmt.Sprintf("%s regression: last signed %s, got %s", c, e.Last, e.Got)
}

// ConflictError refuses a request at the last signed height/round/step whose
// sign bytes differ from the signed ones in more than the timestamp: signing
// it would be a double sign.
type ConflictError struct {
	HRS    HRS
	Fields []string // canonical fields that differ besides the timestamp, e.g. ["block_id"]
	Detail string   // e.g. "signed block 3F2A19C0…, got nil"; may be empty
	Signed []byte   // the recorded sign bytes
	Got    []byte   // the request's sign bytes
}

func (e *ConflictError) Error() string {
	msg := fmt.Sprintf("conflicting data at %s: already signed other data", e.HRS)
	if len(e.Fields) > 0 {
		msg += fmt.Sprintf(" (%s differs", joinFields(e.Fields))
		if e.Detail != "" {
			msg += ": " + e.Detail
		}
		msg += ")"
	}
	return msg
}

func joinFields(f []string) string {
	s := ""
	for i, x := range f {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}
