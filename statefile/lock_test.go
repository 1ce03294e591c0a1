package statefile

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLockSameProcess(t *testing.T) {
	r := voteRecord(HRS{3, 0, StepPrevote}, msg{Block: "A", Time: t0})
	path := createTemp(t, r)
	f := mustOpen(t, path)
	_, err := Open(path, testChain)
	var fe *FileError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &fe) || fe.Path != path {
		t.Fatalf("second Open = %v, want ErrLocked for %q", err, path)
	}
	for _, want := range []string{fmt.Sprintf("%q", LockPath(path)), fmt.Sprintf("process %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lock error %q does not name %s", err, want)
		}
	}
	if err := Create(path, testChain, Record{}, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("Create over an open file = %v, want ErrLocked", err)
	}
	if info, err := Read(path); err != nil || !info.Record.Equal(r) {
		t.Fatalf("Read while locked = %v, %v", info.Record, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path, testChain)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	g.Close()
}

// TestLockAcrossProcesses uses a second process (this test binary re-run as
// a child): it cannot open a file this process holds, this process cannot
// open one the child holds, and the lock is free once the holder closes it
// or is killed.
func TestLockAcrossProcesses(t *testing.T) {
	r := voteRecord(HRS{3, 0, StepPrevote}, msg{Block: "A", Time: t0})
	path := createTemp(t, r)

	// The parent holds it: the child is refused, naming our pid.
	f := mustOpen(t, path)
	out := startChild(t, "try", path).line(t, 30*time.Second)
	if !strings.HasPrefix(out, "locked: ") || !strings.Contains(out, fmt.Sprintf("process %d", os.Getpid())) ||
		!strings.Contains(out, LockPath(path)) {
		t.Fatalf("child Open while the parent holds the lock: %q", out)
	}
	f.Close()
	if out := startChild(t, "try", path).line(t, 30*time.Second); out != "opened 3/0/prevote" {
		t.Fatalf("child Open after the parent closed: %q", out)
	}

	// A child holds it: the parent is refused, naming the child's pid.
	holder := startChild(t, "hold", path)
	pid := pidOf(t, holder.line(t, 30*time.Second))
	_, err := Open(path, testChain)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", pid)) {
		t.Fatalf("Open while a child holds the lock = %v, want ErrLocked naming pid %d", err, pid)
	}
	if err := Create(path, testChain, Record{}, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("Create while a child holds the lock = %v", err)
	}
	// kill -9 the holder: the kernel drops its lock.
	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	holder.cmd.Wait()
	g, err := Open(path, testChain)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	if !g.Last().Equal(r) {
		t.Fatalf("Last = %v", g.Last())
	}
	g.Close()

	// A holder that closes normally releases it too.
	holder = startChild(t, "hold", path)
	pidOf(t, holder.line(t, 30*time.Second))
	holder.stdin.Close()
	if err := holder.cmd.Wait(); err != nil {
		t.Fatalf("holder exit: %v (%s)", err, holder.stderr.String())
	}
	g = mustOpen(t, path)
	g.Close()
}
