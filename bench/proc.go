package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a child process the harness started; it is stopped by its PID.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// StartProcess starts bin with args and env (added to the harness's own),
// stdout and stderr going to logPath.
func StartProcess(name, bin string, args, env []string, logPath string) (*Process, error) {
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s (%s): %v", name, bin, err)
	}
	p := &Process{Name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to 10 s, then SIGKILLs. Only this PID is
// signalled.
func (p *Process) Stop() error {
	defer p.log.Close()
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for 10 s and was killed", p.Name, p.PID())
}

// RSS reads VmRSS and VmHWM of the process from /proc/PID/status, in bytes.
func RSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/%d/status: unexpected %s line %q", pid, k, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %v", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS line", pid)
	}
	return rss, hwm, nil
}

// SignerdChain is one [[chain]] of a signerd config the harness writes, with
// the [[validator]] addresses that sign for it.
type SignerdChain struct {
	ChainID   string
	KeyRef    string // pkcs11: URI or file:PATH
	KeyJSON   string // priv_validator_key.json holding the same key (import source, verification)
	StateFile string
	Addrs     []string
}

// Signerd is a signerd home the harness set up: config, identity and state
// files in Dir, driven through the real binary's CLI.
type Signerd struct {
	Bin    string
	Dir    string
	Config string
	Env    []string // e.g. SOFTHSM2_CONF
}

// tomlString quotes s as a TOML basic string (JSON escaping is valid TOML).
func tomlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// NewSignerd writes dir/signerd.toml for chains and creates every chain's
// state file at height 0 with `signerd state init`.
func NewSignerd(bin, dir string, env []string, chains []SignerdChain) (*Signerd, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "identity_key = %s\nlog_level = \"warn\"\n", tomlString(filepath.Join(dir, "identity.json")))
	for _, c := range chains {
		fmt.Fprintf(&b, "\n[[chain]]\nid = %s\nkey = %s\nstate_file = %s\n", tomlString(c.ChainID), tomlString(c.KeyRef), tomlString(c.StateFile))
	}
	for _, c := range chains {
		for _, a := range c.Addrs {
			fmt.Fprintf(&b, "\n[[validator]]\nchain_id = %s\naddr = %s\n", tomlString(c.ChainID), tomlString(a))
		}
	}
	s := &Signerd{Bin: bin, Dir: dir, Config: filepath.Join(dir, "signerd.toml"), Env: env}
	if err := os.WriteFile(s.Config, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	for _, c := range chains {
		if err := os.MkdirAll(filepath.Dir(c.StateFile), 0o700); err != nil {
			return nil, err
		}
		if _, err := s.Run("state", "init", "--config", s.Config, "--chain", c.ChainID, "--height", "0"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run runs one signerd CLI command and returns its stdout; a failure
// carries stderr.
func (s *Signerd) Run(args ...string) (string, error) {
	return runSignerd(s.Bin, s.Env, args...)
}

func runSignerd(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("signerd %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Start runs `signerd start` with stderr logged to Dir/signerd.log.
func (s *Signerd) Start() (*Process, error) {
	return StartProcess("signerd", s.Bin, []string{"start", "--config", s.Config}, s.Env, filepath.Join(s.Dir, "signerd.log"))
}

// ImportKey puts the priv_validator_key.json at from into the token key
// uri names (`signerd keys import`).
func ImportKey(bin string, env []string, uri, from string) error {
	_, err := runSignerd(bin, env, "keys", "import", "--key", uri, "--from", from)
	return err
}

// BuildSignerd builds ./cmd/signerd of the module rooted at repo into dir and
// returns the binary's path.
func BuildSignerd(repo, dir string) (string, error) {
	out := filepath.Join(dir, "signerd")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/signerd")
	cmd.Dir = repo
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/signerd in %q: %v: %s", repo, err, strings.TrimSpace(errb.String()))
	}
	return out, nil
}

// ModuleRoot finds the folder holding go.mod, from dir upwards.
func ModuleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod found above " + dir)
		}
		d = parent
	}
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTick = 100

// ProcessCPU returns the user + system CPU time process pid (0: this
// process) has used so far, from /proc/PID/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}
