package statefile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Child processes: the kill -9 and cross-process lock tests re-execute this
// test binary with childEnv set; TestMain then runs the child's part instead
// of the tests.
const (
	childEnv     = "STATEFILE_TEST_CHILD"
	childPathEnv = "STATEFILE_TEST_PATH"
	// childSaves bounds the save loop; the parent kills it long before.
	childSaves = 200_000
	// childLife bounds how long any child lives if its parent vanishes.
	childLife = 60 * time.Second
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode, os.Getenv(childPathEnv)))
	}
	os.Exit(m.Run())
}

func runChild(mode, path string) int {
	time.AfterFunc(childLife, func() {
		fmt.Fprintln(os.Stderr, "child: lifetime exceeded")
		os.Exit(4)
	})
	switch mode {
	case "saveloop":
		return childSaveLoop(path)
	case "hold":
		f, err := Open(path, testChain)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			return 2
		}
		fmt.Printf("held %d\n", os.Getpid())
		// Hold the lock until stdin closes or the parent kills us.
		bufio.NewReader(os.Stdin).ReadString('\n')
		f.Close()
		return 0
	case "try":
		f, err := Open(path, testChain)
		if errors.Is(err, ErrLocked) {
			fmt.Printf("locked: %v\n", err)
			return 0
		}
		if err != nil {
			fmt.Printf("error: %v\n", err)
			return 0
		}
		fmt.Printf("opened %s\n", f.Last().HRS)
		f.Close()
		return 0
	}
	fmt.Fprintf(os.Stderr, "child: unknown mode %q\n", mode)
	return 2
}

// nextHRS walks forward through proposal, prevote, precommit; every seventh
// height also goes through a second round.
func nextHRS(h HRS) HRS {
	switch {
	case h.Step == StepNone || h.Step == StepPrecommit && (h.Height%7 != 0 || h.Round > 0):
		return HRS{Height: h.Height + 1, Step: StepPropose}
	case h.Step == StepPrecommit:
		return HRS{Height: h.Height, Round: h.Round + 1, Step: StepPropose}
	}
	return HRS{Height: h.Height, Round: h.Round, Step: h.Step + 1}
}

// childSaveLoop saves increasing positions and prints each one after Save
// returned, i.e. once it is durable.
func childSaveLoop(path string) int {
	f, err := Open(path, testChain)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		return 2
	}
	h := f.Last().HRS
	for i := 0; i < childSaves; i++ {
		h = nextHRS(h)
		if err := f.Save(voteRecord(h, msg{Block: "A", Time: t0, POLRound: -1})); err != nil {
			fmt.Fprintf(os.Stderr, "child: %v\n", err)
			return 3
		}
		// os.Stdout is unbuffered: one write(2) per line.
		fmt.Printf("saved %d %d %d\n", h.Height, h.Round, h.Step)
	}
	f.Close()
	return 0
}

// child starts this test binary as a child in the given mode.
type child struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	stdin  *os.File
	stderr strings.Builder
}

func startChild(t *testing.T, mode, path string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	c.cmd.Env = append(os.Environ(), childEnv+"="+mode, childPathEnv+"="+path)
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdin, c.stdin = r, w
	c.out = bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() {
		c.stdin.Close()
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// line reads one complete output line, failing the test after timeout.
func (c *child) line(t *testing.T, timeout time.Duration) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("child output: %v (stderr: %s)", r.err, c.stderr.String())
		}
		return strings.TrimSuffix(r.s, "\n")
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		t.Fatalf("child printed nothing within %v (stderr: %s)", timeout, c.stderr.String())
	}
	return ""
}

func parseSaved(t *testing.T, line string) HRS {
	t.Helper()
	var h, r, s int64
	if _, err := fmt.Sscanf(line, "saved %d %d %d", &h, &r, &s); err != nil {
		t.Fatalf("child line %q: %v", line, err)
	}
	return HRS{Height: h, Round: int32(r), Step: Step(s)}
}

func pidOf(t *testing.T, line string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "held "))
	if err != nil || !strings.HasPrefix(line, "held ") {
		t.Fatalf("hold child said %q", line)
	}
	return pid
}
