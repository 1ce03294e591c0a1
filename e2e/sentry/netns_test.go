package sentry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/internal/testenv"
)

// Bounds for everything the test waits on.
const (
	cmdTimeout  = 60 * time.Second // one ip/nft/cometbft/signerd CLI command
	stopTimeout = 15 * time.Second // a process to exit after SIGTERM, then SIGKILL
	pollEvery   = 100 * time.Millisecond
	logTail     = 40 // lines of each log copied into a failed test's output
)

// lab is a set of network namespaces joined by a bridge that lives in its
// own namespace, following the recipe in the team's sentry notes (§7). Every
// name starts with a per-run prefix; nothing is created in the root
// namespace, and t.Cleanup removes everything.
type lab struct {
	t      *testing.T
	ip     string // path of the ip binary
	prefix string // e.g. "sl3fa2"
	bridge string // the bridge's namespace
	nodes  map[string]string
	next   int
}

// newLab creates the bridge namespace. It stops the test (skip locally, fail
// under CI=true) when root, ip or nft is missing.
func newLab(t *testing.T) *lab {
	t.Helper()
	testenv.RequireRoot(t, "the test creates network namespaces and loads nftables rules in them")
	ip, err := exec.LookPath("ip")
	if err != nil {
		testenv.Unavailable(t, "ip (iproute2) not found: apt-get install iproute2")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		testenv.Unavailable(t, "nft not found: apt-get install nftables")
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ip: ip, prefix: "sl" + hex.EncodeToString(b[:]), nodes: map[string]string{}}
	l.bridge = l.prefix + "br"
	rootTables := l.rootNftTables()
	// Registered first, so it runs last: after the namespaces are gone,
	// nothing with the prefix may remain anywhere.
	t.Cleanup(func() {
		out, _ := exec.Command(ip, "netns", "list").CombinedOutput()
		if strings.Contains(string(out), l.prefix) {
			t.Errorf("namespaces left behind: %s", out)
		}
		out, _ = exec.Command(ip, "-o", "link", "show").CombinedOutput()
		if strings.Contains(string(out), l.prefix) {
			t.Errorf("links left in the root namespace: %s", out)
		}
		if after := l.rootNftTables(); after != rootTables {
			t.Errorf("the root namespace's nftables tables changed:\nbefore: %q\nafter:  %q", rootTables, after)
		}
	})
	l.addNetns(l.bridge)
	l.run(ip, "-n", l.bridge, "link", "add", "br0", "type", "bridge")
	l.run(ip, "-n", l.bridge, "link", "set", "br0", "up")
	return l
}

func (l *lab) rootNftTables() string {
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		return "error: " + err.Error()
	}
	return string(out)
}

func (l *lab) addNetns(ns string) {
	l.t.Helper()
	l.run(l.ip, "netns", "add", ns)
	l.t.Cleanup(func() {
		if out, err := exec.Command(l.ip, "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v %s", ns, err, out)
		}
	})
	l.run(l.ip, "-n", ns, "link", "set", "lo", "up")
}

// node creates the namespace for one host, cabled to the bridge, with the
// given addresses (the first is the primary, used as source address).
func (l *lab) node(name string, addrs ...string) string {
	l.t.Helper()
	ns := l.prefix + name
	l.addNetns(ns)
	l.next++
	host := fmt.Sprintf("%sh%d", l.prefix, l.next) // inside the node
	port := fmt.Sprintf("%sp%d", l.prefix, l.next) // on the bridge
	if len(host) > 15 {
		l.t.Fatalf("interface name %q is longer than 15 characters", host)
	}
	// Created inside the node's namespace with its peer placed straight into
	// the bridge's: the root namespace never holds either end.
	l.run(l.ip, "-n", ns, "link", "add", host, "type", "veth", "peer", "name", port, "netns", l.bridge)
	l.run(l.ip, "-n", l.bridge, "link", "set", port, "master", "br0", "up")
	for _, a := range addrs {
		l.run(l.ip, "-n", ns, "addr", "add", a+"/24", "dev", host)
	}
	l.run(l.ip, "-n", ns, "link", "set", host, "up")
	l.nodes[name] = ns
	return ns
}

// run runs a command that must succeed within cmdTimeout.
func (l *lab) run(bin string, args ...string) string {
	l.t.Helper()
	out, err := runCmd(nil, "", bin, args...)
	if err != nil {
		l.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// runCmd runs a command to completion (bounded) and returns its combined
// output. A non-zero exit is an *exec.ExitError.
func runCmd(env []string, stdin string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("did not finish within %v: %w", cmdTimeout, err)
	}
	return b.String(), err
}

// exitCode returns the exit code of a runCmd error (0 for nil, -1 when the
// command did not run to an exit).
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// inNetns runs f on an OS thread switched into namespace ns. Sockets f
// creates belong to ns for their whole life. The thread is switched back
// before it is released; if that fails it stays locked and Go discards it
// when the goroutine ends.
func inNetns(ns string, f func() error) error {
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("cannot switch the thread back from %s: %w", ns, err)
			return // the thread stays locked: the runtime terminates it
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// dialIn opens a TCP connection from inside namespace ns.
func dialIn(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// listenIn opens a TCP listener inside namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// httpIn is an HTTP client whose connections are made inside ns.
func httpIn(ns string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialIn(ns, addr, 3*time.Second)
			},
		},
	}
}

// proc is a long-running process the test started, inside a namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	once sync.Once
}

// start runs bin inside ns (ip netns exec), logging to dir/name.log. The
// process is stopped by its PID in t.Cleanup if the test has not stopped it.
func (l *lab) start(name, ns, dir string, env []string, bin string, args ...string) *proc {
	l.t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command(l.ip, append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// ip netns exec execs the command, so cmd.Process.Pid is the node's PID.
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.t.Cleanup(func() {
		p.stop(l.t)
		if l.t.Failed() {
			l.t.Logf("--- last %d lines of %s ---\n%s", logTail, logPath, tail(logPath, logTail))
		}
		if keep := os.Getenv("SENTRYLINK_E2E_LOGS"); keep != "" {
			if b, err := os.ReadFile(logPath); err == nil && os.MkdirAll(keep, 0o755) == nil {
				_ = os.WriteFile(filepath.Join(keep, filepath.Base(logPath)), b, 0o644)
			}
		}
	})
	return p
}

// stop sends SIGTERM to the process, then SIGKILL after stopTimeout, and
// waits for it. It is safe to call more than once.
func (p *proc) stop(t *testing.T) {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			t.Logf("%s (pid %d) ignored SIGTERM for %v; killing it", p.name, p.cmd.Process.Pid, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond every pollEvery until it returns true or timeout
// passes; it fails the test with what on timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last state: %s)", timeout, what, last)
		}
		time.Sleep(pollEvery)
	}
}
