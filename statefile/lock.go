package statefile

import (
	"bytes"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// LockPath returns the lock file that guards the state file at path.
func LockPath(path string) string { return path + ".lock" }

// lockFile takes an exclusive flock on LockPath(path) without waiting and
// writes this process's pid into it. flock locks belong to the open file
// description, so a second lock attempt conflicts even within one process,
// and the kernel drops the lock when the holder dies. The lock file is never
// removed: removing it would let two processes lock two different inodes.
func lockFile(path string) (*os.File, error) {
	lp := LockPath(path)
	lf, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fileErr(path, nil, err, "cannot open lock file %q", lp)
	}
	if err := flock(lf, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readPid(lf)
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if holder != "" {
				return nil, fileErr(path, ErrLocked, nil, "in use by process %s (lock file %q); stop it first", holder, lp)
			}
			return nil, fileErr(path, ErrLocked, nil, "in use by another process (lock file %q); stop it first", lp)
		}
		return nil, fileErr(path, ErrLocked, err, "cannot lock %q", lp)
	}
	pid := strconv.AppendInt(nil, int64(os.Getpid()), 10)
	pid = append(pid, '\n')
	if err := lf.Truncate(0); err == nil {
		_, err = lf.WriteAt(pid, 0)
	}
	// The pid only improves the error message of a competing process; the
	// lock itself already holds, so a failure to write it is not fatal.
	return lf, nil
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// readPid returns the pid written in a lock file, or "" if there is none.
func readPid(f *os.File) string {
	var buf [32]byte
	n, _ := f.ReadAt(buf[:], 0)
	s := string(bytes.TrimSpace(buf[:n]))
	if _, err := strconv.Atoi(s); err != nil {
		return ""
	}
	return s
}

// unlockFile releases the lock and closes the lock file.
func unlockFile(lf *os.File) error {
	uerr := flock(lf, unix.LOCK_UN)
	cerr := lf.Close()
	if uerr != nil {
		return uerr
	}
	return cerr
}
