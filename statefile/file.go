package statefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// maxReadSize bounds how much of an oversized file is read to describe it.
const maxReadSize = 1 << 20

// File is an open, locked state file. Its methods are safe for concurrent
// use; the signer serialises decide → save → release itself.
type File struct {
	path    string
	chainID string

	mu     sync.Mutex
	f      *os.File
	fd     int
	lock   *os.File
	closed bool
	failed error // first write/sync error; refuses later saves

	last  Record
	seq   uint64
	slot  int // slot holding last
	slots [2]SlotStatus
	temps []string // stale temps removed by Open

	buf [SlotSize]byte // reused by Save
}

// Open opens the state file at path for chain chainID and takes its lock
// (flock on path+".lock", held until Close). It loads the valid slot with
// the higher sequence number; one torn slot beside a valid one is what a
// crash during Save leaves and is reported by [File.Info], not refused.
//
// It refuses, with a [*FileError] naming the file, a missing file
// ([ErrMissing]), an empty one ([ErrEmpty]), one without a valid slot or with
// an invalid record under a good checksum ([ErrCorrupt]), one made for
// another chain ([ErrChainMismatch]) or in another format ([ErrVersion]),
// and one locked by another process or File ([ErrLocked], naming the lock
// file and the holder's pid). It never starts from a fresh state: only
// [Create] makes one. Temp files left by an interrupted Create are removed.
func Open(path, chainID string) (*File, error) {
	if err := ValidateChainID(chainID); err != nil {
		return nil, fmt.Errorf("state file %q: %w", path, err)
	}
	if err := checkRegular(path, os.Stat); err != nil {
		return nil, err
	}
	lf, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	sf := &File{path: path, chainID: chainID, lock: lf}
	ok := false
	defer func() {
		if !ok {
			if sf.f != nil {
				sf.f.Close()
			}
			unlockFile(lf)
		}
	}()
	sf.temps = staleTemps(path, true)
	sf.f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fileErr(path, ErrMissing, nil, "file does not exist")
		}
		return nil, fileErr(path, nil, err, "cannot open")
	}
	data, err := readAll(path, sf.f)
	if err != nil {
		return nil, err
	}
	info, err := loadBytes(path, data, chainID)
	if err != nil {
		return nil, err
	}
	sf.fd = int(sf.f.Fd())
	sf.last, sf.seq, sf.slot, sf.slots = info.Record, info.Seq, info.Slot, info.Slots
	ok = true
	return sf, nil
}

// checkRegular reports a missing or non-regular path as a *FileError.
func checkRegular(path string, stat func(string) (fs.FileInfo, error)) error {
	st, err := stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fileErr(path, ErrMissing, nil, "file does not exist")
	case err != nil:
		return fileErr(path, nil, err, "cannot stat")
	case !st.Mode().IsRegular():
		return fileErr(path, ErrNotRegular, nil, "not a regular file (%s)", st.Mode().Type())
	}
	return nil
}

func readAll(path string, f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fileErr(path, nil, err, "cannot stat")
	}
	if !st.Mode().IsRegular() {
		return nil, fileErr(path, ErrNotRegular, nil, "not a regular file (%s)", st.Mode().Type())
	}
	if st.Size() > maxReadSize {
		return nil, fileErr(path, ErrCorrupt, nil, "file is %d bytes, a state file is %d", st.Size(), FileSize)
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, maxReadSize))
	if err != nil {
		return nil, fileErr(path, nil, err, "cannot read")
	}
	return data, nil
}

// Read loads the state file at path without locking it or changing
// anything, for `signerd state show` while signerd runs. It refuses what
// [Open] refuses except a lock and a chain id it cannot know. A Save running
// concurrently may show as one torn slot.
func Read(path string) (Info, error) {
	if err := checkRegular(path, os.Stat); err != nil {
		return Info{Path: path}, err
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{Path: path}, fileErr(path, ErrMissing, nil, "file does not exist")
		}
		return Info{Path: path}, fileErr(path, nil, err, "cannot open")
	}
	defer f.Close()
	data, err := readAll(path, f)
	if err != nil {
		return Info{Path: path}, err
	}
	info, err := loadBytes(path, data, "")
	info.StaleTemps = staleTemps(path, false)
	return info, err
}

// Path returns the state file's path.
func (f *File) Path() string { return f.path }

// ChainID returns the chain the state file belongs to.
func (f *File) ChainID() string { return f.chainID }

// Last returns the last durable record. Its slices must not be modified.
func (f *File) Last() Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// Info describes the open file: current record, sequence number, slot
// health and the stale temp files Open removed (in StaleTemps).
func (f *File) Info() Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Info{
		Path: f.path, ChainID: f.chainID, Record: f.last, Seq: f.seq, Slot: f.slot,
		Slots: f.slots, StaleTemps: append([]string(nil), f.temps...),
	}
}

// Save makes r the last record: it writes r into the slot that does not
// hold the current record (one pwrite of the whole 4096-byte slot), calls
// fdatasync once and only then updates [File.Last]. When Save returns nil, r
// is durable; when it returns an error, Last is unchanged and the caller must
// not release a signature for r.
//
// Save refuses a record that fails [Record.Validate] for the file's chain
// (out-of-range fields, sign bytes that are not a canonical vote or proposal
// of r's HRS and chain, more than [MaxSignBytes] of them), a record below
// the current one (*[RegressionError]) and one at the current HRS with other
// sign bytes (*[ConflictError]): the file never moves backwards. After a
// failed write or sync every later Save fails with [ErrWriteFailed] until
// the file is reopened.
func (f *File) Save(r Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fileErr(f.path, ErrClosed, nil, "cannot save %s: file is closed", r.HRS)
	}
	if f.failed != nil {
		return fileErr(f.path, ErrWriteFailed, f.failed, "refusing to save %s; reopen the file (restart signerd) to re-read it from disk", r.HRS)
	}
	if err := r.Validate(f.chainID); err != nil {
		return fmt.Errorf("state file %q: refusing to save: %w", f.path, err)
	}
	switch r.Compare(f.last.HRS) {
	case -1:
		return fmt.Errorf("state file %q: refusing to save: %w", f.path, &RegressionError{Last: f.last.HRS, Got: r.HRS})
	case 0:
		if !bytes.Equal(r.SignBytes, f.last.SignBytes) {
			return fmt.Errorf("state file %q: refusing to save: %w", f.path,
				&ConflictError{HRS: r.HRS, Signed: f.last.SignBytes, Got: r.SignBytes})
		}
	}
	if f.seq == math.MaxUint64 {
		return fileErr(f.path, ErrCorrupt, nil, "sequence number exhausted")
	}
	seq, slot := f.seq+1, 1-f.slot
	if err := encodeSlot(&f.buf, f.chainID, seq, r); err != nil {
		return fmt.Errorf("state file %q: refusing to save: %w", f.path, err)
	}
	if _, err := f.f.WriteAt(f.buf[:], int64(slot)*SlotSize); err != nil {
		f.failed = err
		f.slots[slot] = SlotStatus{Problem: "write failed: " + err.Error()}
		return fileErr(f.path, ErrWriteFailed, err, "cannot write %s to slot %d", r.HRS, slot)
	}
	if err := fdatasync(f.fd); err != nil {
		f.failed = err
		f.slots[slot] = SlotStatus{Problem: "sync failed: " + err.Error()}
		return fileErr(f.path, ErrWriteFailed, err, "cannot sync %s in slot %d", r.HRS, slot)
	}
	f.last = Record{HRS: r.HRS, SignBytes: clone(r.SignBytes), Signature: clone(r.Signature)}
	f.seq, f.slot = seq, slot
	f.slots[slot] = SlotStatus{Valid: true, Seq: seq, HRS: r.HRS}
	return nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func fdatasync(fd int) error {
	for {
		err := unix.Fdatasync(fd)
		if err != unix.EINTR {
			return err
		}
	}
}

// Close releases the lock and closes the file. It is idempotent.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.f.Close()
	if uerr := unlockFile(f.lock); err == nil {
		err = uerr
	}
	if err != nil {
		return fileErr(f.path, nil, err, "close")
	}
	return nil
}

// tempPrefix starts the names of Create's temp files (os.CreateTemp adds
// random digits).
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// staleTemps lists (and, if remove, deletes) temp files an interrupted
// Create left next to path. Callers that remove hold the lock, so no Create
// is writing one.
func staleTemps(path string, remove bool) []string {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		m := filepath.Join(dir, e.Name())
		if remove && os.Remove(m) != nil {
			continue
		}
		out = append(out, m)
	}
	return out
}
