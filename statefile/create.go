package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Create writes a new state file at path for chain chainID holding r, both
// slots alike (slot 0 seq 1, slot 1 seq 0), through the atomic path: a temp
// file in the same folder, write, fsync, rename over path, fsync of the
// folder. A crash at any point leaves either the old file or the new one,
// never a mix. It creates the parent folder (0700) if missing, takes the
// file's lock (so it cannot replace a file a running signerd has open) and
// refuses an existing file ([ErrExists]) unless overwrite. r must pass
// [Record.Validate] for chainID. This is the path for `state init`, import
// and re-initialisation; signing uses [File.Save].
func Create(path, chainID string, r Record, overwrite bool) error {
	if err := ValidateChainID(chainID); err != nil {
		return fmt.Errorf("state file %q: %w", path, err)
	}
	if err := r.Validate(chainID); err != nil {
		return fmt.Errorf("state file %q: refusing to create: %w", path, err)
	}
	var data [FileSize]byte
	if err := encodeSlot((*[SlotSize]byte)(data[:SlotSize]), chainID, 1, r); err != nil {
		return fmt.Errorf("state file %q: refusing to create: %w", path, err)
	}
	if err := encodeSlot((*[SlotSize]byte)(data[SlotSize:]), chainID, 0, r); err != nil {
		return fmt.Errorf("state file %q: refusing to create: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fileErr(path, nil, err, "cannot create its folder")
	}
	if err := checkAbsent(path, overwrite); err != nil {
		return err
	}
	lf, err := lockFile(path)
	if err != nil {
		return err
	}
	defer unlockFile(lf)
	staleTemps(path, true)
	// Check again under the lock: another Create may have won the race.
	if err := checkAbsent(path, overwrite); err != nil {
		return err
	}
	return writeAtomic(path, data[:])
}

// checkAbsent refuses a non-regular path, and an existing file unless
// overwrite.
func checkAbsent(path string, overwrite bool) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fileErr(path, nil, err, "cannot stat")
	case !st.Mode().IsRegular():
		return fileErr(path, ErrNotRegular, nil, "not a regular file (%s); refusing to replace it", st.Mode().Type())
	case !overwrite:
		return fileErr(path, ErrExists, nil, "file already exists; refusing to overwrite it")
	}
	return nil
}

// testOnlyBeforeRename, when set by a test, runs between the temp file's
// fsync and the rename; an error stands in for a crash at that point.
var testOnlyBeforeRename func(tempName string) error

// writeAtomic replaces path with data: temp file in the same folder, write,
// chmod 0600, fsync, close, rename, fsync of the folder. On error the temp
// file is removed and path is untouched (unless the error is the folder
// sync, after the rename).
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return fileErr(path, nil, err, "cannot create a temp file")
	}
	name := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fileErr(path, nil, err, "cannot write temp file %q", name)
	}
	if err = tmp.Chmod(0o600); err != nil {
		return fileErr(path, nil, err, "cannot chmod temp file %q", name)
	}
	if err = tmp.Sync(); err != nil {
		return fileErr(path, nil, err, "cannot sync temp file %q", name)
	}
	if err = tmp.Close(); err != nil {
		return fileErr(path, nil, err, "cannot close temp file %q", name)
	}
	if testOnlyBeforeRename != nil {
		if err = testOnlyBeforeRename(name); err != nil {
			return fileErr(path, nil, err, "interrupted before renaming temp file %q", name)
		}
	}
	if err = os.Rename(name, path); err != nil {
		return fileErr(path, nil, err, "cannot rename temp file %q into place", name)
	}
	if err = syncDir(dir); err != nil {
		return fileErr(path, nil, err, "written, but syncing folder %q failed: the new file may not survive a power loss; run the command again", dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
