package sentrylink

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ApplyFileResult is the outcome of [NodePlan.ApplyFile].
type ApplyFileResult struct {
	*ApplyResult
	// Path is the file that was (or would be) edited, after resolving
	// symbolic links.
	Path string
	// Backup is the copy of the old file, empty when nothing was written.
	Backup string
}

// ApplyFile applies the plan to the config.toml at path. With dryRun, or
// when nothing needs to change, it writes nothing. Otherwise it first copies
// the old file to a backup next to it (path.signerd-backup-<UTC time>, never
// overwriting one), then replaces the file atomically: a temporary file in
// the same folder with the old file's mode (and owner, when running as
// root), fsync, rename, fsync of the folder. If the file changed while apply
// ran, it stops without writing.
func (p *NodePlan) ApplyFile(path string, dryRun bool, now time.Time) (res *ApplyFileResult, err error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open config: %w", err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("cannot open config: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", real)
	}
	old, err := readFileLimit(real, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	ar, err := p.ApplyTo(old)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", real, err)
	}
	res = &ApplyFileResult{ApplyResult: ar, Path: real}
	if dryRun || !ar.Changed() {
		return res, nil
	}
	backup, err := writeBackup(real, old, st.Mode().Perm(), now)
	if err != nil {
		return nil, err
	}
	res.Backup = backup
	if err := replaceFile(real, old, ar.New, st); err != nil {
		return nil, fmt.Errorf("%w (the backup %s holds the old file)", err, backup)
	}
	return res, nil
}

func writeBackup(path string, data []byte, perm fs.FileMode, now time.Time) (string, error) {
	base := path + ".signerd-backup-" + now.UTC().Format("20060102T150405Z")
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("cannot write backup: %w; nothing was changed", err)
		}
		_, werr := f.Write(data)
		serr := f.Sync()
		cerr := f.Close()
		if err := errors.Join(werr, serr, cerr); err != nil {
			os.Remove(name)
			return "", fmt.Errorf("cannot write backup %s: %w; nothing was changed", name, err)
		}
		return name, nil
	}
	return "", fmt.Errorf("cannot write backup: %s and 99 numbered variants exist; remove old backups", base)
}

// replaceFile atomically replaces path with data, provided path still holds
// old.
func replaceFile(path string, old, data []byte, st fs.FileInfo) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".signerd-*")
	if err != nil {
		return fmt.Errorf("cannot create a temporary file in %s: %w; nothing was changed", dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w; nothing was changed", tmp.Name(), err)
	}
	if err = tmp.Chmod(st.Mode().Perm()); err != nil {
		return fmt.Errorf("cannot set the mode of %s: %w; nothing was changed", tmp.Name(), err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != os.Geteuid() || int(sys.Gid) != os.Getegid()) {
		if err = tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
			return fmt.Errorf("cannot give %s the owner of %s: %w; nothing was changed (run apply as the file's owner or as root)", tmp.Name(), path, err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %w; nothing was changed", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cannot close %s: %w; nothing was changed", tmp.Name(), err)
	}
	now, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot re-read %s: %w; nothing was changed", path, err)
	}
	if !bytes.Equal(now, old) {
		return errors.New(path + " changed while apply ran; nothing was changed: run apply again")
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot replace %s: %w; nothing was changed", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return fmt.Errorf("%s was replaced but syncing its folder failed: %w", path, serr)
		}
	}
	return nil
}
