package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testenv"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

// Bounds for everything the harness waits on.
const (
	cliTimeout   = 60 * time.Second // one signerd or cometbft CLI command
	stopTimeout  = 20 * time.Second // a process to exit after SIGTERM / SIGKILL
	pollEvery    = 100 * time.Millisecond
	logTailLines = 60 // lines of each log copied into a failed test's output
)

func TestMain(m *testing.M) {
	code := softhsmtest.Run(m) // also removes the tokens
	testenv.RemoveBuilds()
	os.Exit(code)
}

// signerdBin returns $SIGNERD_BIN, or ./cmd/signerd built once per test run.
// Under -race the binary is built with -race as well: it then reports data
// races met under real load (checkSignerLog fails on them).
func signerdBin(t *testing.T) string { return testenv.Signerd(t, raceEnabled) }

// cometbftBin returns the CometBFT v0.38.26 binary, or stops the test (skip
// locally, fail under CI) when it is missing.
func cometbftBin(t *testing.T) string { return testenv.CometBFT(t) }

// run runs a command to completion with a bounded time and returns its
// stdout, its stderr and its exit code (-1 when it could not run or timed out).
func run(t *testing.T, env []string, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			code = ee.ExitCode()
		} else {
			code = -1
			fmt.Fprintf(&e, "\n[e2e: %s did not complete: %v]", filepath.Base(bin), err)
		}
	}
	return o.String(), e.String(), code
}

// mustRun is run that fails the test unless the command exits 0.
func mustRun(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, env, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// proc is one long-running child process whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited
	waitErr error         // valid after done
}

// startProc starts bin with args, appending its stdout and stderr to logPath.
// The process is SIGKILLed in t.Cleanup if it is still running then.
func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== e2e: %s: %s %s\n", time.Now().Format(time.RFC3339Nano), filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(stopTimeout):
				t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.pid())
			}
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exitCode is the exit status once the process has exited (-1 if killed by a
// signal).
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// stop sends sig and waits for the process to exit. It fails the test if the
// process does not exit within stopTimeout (and then SIGKILLs it).
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if !p.running() {
		t.Fatalf("%s (pid %d) exited before it was stopped: %v", p.name, p.pid(), p.waitErr)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s (pid %d): %v", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s (pid %d) still running %v after %v; killed", p.name, p.pid(), stopTimeout, sig)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("[cannot read %s: %v]", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// grepLines returns the lines of path that contain any of the needles.
func grepLines(t *testing.T, path string, needles ...string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hits []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		for _, n := range needles {
			if strings.Contains(sc.Text(), n) {
				hits = append(hits, sc.Text())
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hits
}

// editTOML sets keys in a CometBFT config.toml. Keys are "name" for the top
// level or "section.name"; values are TOML literals (strings quoted). Every key
// must already be in the file: a renamed key fails the test instead of being
// silently ignored.
func editTOML(t *testing.T, path string, set map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, len(set))
	section := ""
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		s := strings.TrimSpace(line)
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			section = strings.Trim(s, "[]")
			continue
		}
		name, _, ok := strings.Cut(s, "=")
		if !ok || strings.HasPrefix(s, "#") {
			continue
		}
		name = strings.TrimSpace(name)
		full := name
		if section != "" {
			full = section + "." + name
		}
		if v, ok := set[full]; ok {
			lines[i] = name + " = " + v
			seen[full] = true
		}
	}
	for k := range set {
		if !seen[k] {
			t.Fatalf("%s: key %q not found", path, k)
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// quote makes a TOML basic string.
func quote(s string) string { return strconv.Quote(s) }

// node is one CometBFT node process with its home folder.
type node struct {
	name        string
	bin         string
	home        string
	rpcPort     int
	p2pPort     int
	privvalAddr string // priv_validator_laddr
	logPath     string
	proc        *proc
	starts      int
}

// start runs `cometbft start`. The signer must already be running (or come up
// within the node's 3 s window).
func (n *node) start(t *testing.T) {
	t.Helper()
	n.starts++
	n.proc = startProc(t, fmt.Sprintf("%s (start #%d)", n.name, n.starts), n.logPath, nil, n.bin, "start", "--home", n.home)
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

// height asks the node's RPC for its latest block height.
func (n *node) height() (int64, error) {
	resp, err := statusClient.Get(fmt.Sprintf("http://127.0.0.1:%d/status", n.rpcPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	var st struct {
		Result struct {
			SyncInfo struct {
				LatestBlockHeight string `json:"latest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return 0, fmt.Errorf("decode /status: %v", err)
	}
	return strconv.ParseInt(st.Result.SyncInfo.LatestBlockHeight, 10, 64)
}

// waitHeight polls the node until its latest height is at least want and
// returns the height seen. It fails the test when the node exits or the
// deadline passes.
func (n *node) waitHeight(t *testing.T, want int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last int64
	var lastErr error
	for {
		if !n.proc.running() {
			t.Fatalf("%s exited (%v) while waiting for height %d (last seen %d)", n.name, n.proc.waitErr, want, last)
		}
		h, err := n.height()
		if err == nil {
			last, lastErr = h, nil
			if h >= want {
				return h
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: height %d not reached within %v (last seen %d, last error %v)", n.name, want, timeout, last, lastErr)
		}
		time.Sleep(pollEvery)
	}
}
