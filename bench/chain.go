package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ChainSetup is how the benchmark chain's validator signs.
type ChainSetup string

// The chain setups compared in one run.
const (
	ChainSignerdSoftHSM ChainSetup = "signerd+softhsm"
	ChainSignerdFile    ChainSetup = "signerd+file"
	ChainFilePV         ChainSetup = "in-process FilePV"
)

// ChainConfig is one chain benchmark: a fresh single-validator CometBFT
// node (kvstore app, timeout_commit = 0s) whose blocks/s are counted over a
// fixed window.
type ChainConfig struct {
	CometBFT string        // the cometbft v0.38.26 binary
	Signerd  string        // the signerd binary (signerd setups)
	HSM      *SoftHSM      // for ChainSignerdSoftHSM
	Dir      string        // node home, signer home and logs go here
	Duration time.Duration // the measured window
	// Warmup is the number of blocks to wait for before the window opens.
	Warmup int64
}

// ChainResult is what one chain run produced.
type ChainResult struct {
	Setup      ChainSetup
	Blocks     int64
	Elapsed    time.Duration
	FirstBlock time.Duration // from node start to height 1
}

// BlocksPerSec is the block rate over the window.
func (c *ChainResult) BlocksPerSec() float64 { return float64(c.Blocks) / c.Elapsed.Seconds() }

// freePorts reserves n distinct loopback ports (released just before use).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// setTOML replaces the first line "key = ..." after the [section] header
// ("" for the top level) in a CometBFT config.toml.
func setTOML(doc, section, key, value string) (string, error) {
	lines := strings.Split(doc, "\n")
	cur := ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			cur = strings.Trim(t, "[]")
			continue
		}
		if cur == section && strings.HasPrefix(t, key+" ") && strings.Contains(t, "=") {
			lines[i] = key + " = " + value
			return strings.Join(lines, "\n"), nil
		}
	}
	return "", fmt.Errorf("config.toml: no %q in section [%s]", key, section)
}

// RunChain runs one chain benchmark for setup.
func RunChain(ctx context.Context, cfg ChainConfig, setup ChainSetup) (*ChainResult, error) {
	if cfg.Warmup <= 0 {
		cfg.Warmup = 5
	}
	home := filepath.Join(cfg.Dir, "node")
	if out, err := exec.Command(cfg.CometBFT, "init", "--home", home).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cometbft init: %v: %s", err, out)
	}
	gen, err := os.ReadFile(filepath.Join(home, "config", "genesis.json"))
	if err != nil {
		return nil, err
	}
	var g struct {
		ChainID string `json:"chain_id"`
	}
	if err := json.Unmarshal(gen, &g); err != nil || g.ChainID == "" {
		return nil, fmt.Errorf("genesis.json: no chain_id (%v)", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	rpc := fmt.Sprintf("127.0.0.1:%d", ports[0])
	pvAddr := fmt.Sprintf("tcp://127.0.0.1:%d", ports[2])
	cfgPath := filepath.Join(home, "config", "config.toml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	doc := string(b)
	sets := []struct{ section, key, value string }{
		{"", "proxy_app", `"kvstore"`},
		{"rpc", "laddr", tomlString("tcp://" + rpc)},
		{"p2p", "laddr", tomlString(fmt.Sprintf("tcp://127.0.0.1:%d", ports[1]))},
		{"consensus", "timeout_commit", `"0s"`},
	}
	if setup != ChainFilePV {
		sets = append(sets, struct{ section, key, value string }{"", "priv_validator_laddr", tomlString(pvAddr)})
	}
	for _, s := range sets {
		if doc, err = setTOML(doc, s.section, s.key, s.value); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		return nil, err
	}

	// The signer first: the node exits if none connects within about 3 s.
	if setup != ChainFilePV {
		stop, err := startChainSigner(cfg, setup, home, g.ChainID, pvAddr)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	node, err := StartProcess("cometbft", cfg.CometBFT, []string{"start", "--home", home}, nil, filepath.Join(cfg.Dir, "node.log"))
	if err != nil {
		return nil, err
	}
	defer node.Stop()
	started := time.Now()
	res := &ChainResult{Setup: setup}

	h, err := waitHeight(ctx, node, rpc, 1, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (see %s)", setup, err, filepath.Join(cfg.Dir, "node.log"))
	}
	res.FirstBlock = time.Since(started)
	if h, err = waitHeight(ctx, node, rpc, h+cfg.Warmup, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%s: %w", setup, err)
	}
	t0 := time.Now()
	// The measurement window itself: a fixed time, not a synchronisation.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(cfg.Duration):
	}
	h1, err := height(rpc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setup, err)
	}
	res.Elapsed = time.Since(t0)
	res.Blocks = h1 - h
	if exited, err := node.Exited(); exited {
		return nil, fmt.Errorf("%s: cometbft exited during the window: %v", setup, err)
	}
	if err := node.Stop(); err != nil {
		return nil, err
	}
	return res, nil
}

// startChainSigner sets up signerd for the node's own key and starts it.
func startChainSigner(cfg ChainConfig, setup ChainSetup, home, chainID, pvAddr string) (func() error, error) {
	sdir := filepath.Join(cfg.Dir, "signerd")
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, err
	}
	keyJSON := filepath.Join(home, "config", "priv_validator_key.json")
	var env []string
	ref := "file:" + keyJSON
	if setup == ChainSignerdSoftHSM {
		if cfg.HSM == nil {
			return nil, fmt.Errorf("%s: no SoftHSM configured", setup)
		}
		env = append(env, cfg.HSM.Env())
		tok, err := cfg.HSM.InitToken(fmt.Sprintf("chain%d", tokenSeq.Add(1)))
		if err != nil {
			return nil, err
		}
		ref = cfg.HSM.KeyURI(tok, "consensus")
		if err := ImportKey(cfg.Signerd, env, ref, keyJSON); err != nil {
			return nil, err
		}
	}
	sd, err := NewSignerd(cfg.Signerd, sdir, env, []SignerdChain{{
		ChainID: chainID, KeyRef: ref, KeyJSON: keyJSON, StateFile: filepath.Join(sdir, "state.json"), Addrs: []string{pvAddr},
	}})
	if err != nil {
		return nil, err
	}
	p, err := sd.Start()
	if err != nil {
		return nil, err
	}
	return p.Stop, nil
}

var heightRE = regexp.MustCompile(`"latest_block_height"\s*:\s*"(\d+)"`)

// height asks the node's RPC for its latest block height.
func height(rpc string) (int64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + rpc + "/status")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	mm := heightRE.FindSubmatch(body)
	if mm == nil {
		return 0, fmt.Errorf("rpc %s/status: no latest_block_height", rpc)
	}
	return strconv.ParseInt(string(mm[1]), 10, 64)
}

// waitHeight polls the node until it reaches want (bounded by limit) and
// returns the height seen.
func waitHeight(ctx context.Context, node *Process, rpc string, want int64, limit time.Duration) (int64, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if exited, err := node.Exited(); exited {
			return 0, fmt.Errorf("cometbft exited: %v", err)
		}
		if h, err := height(rpc); err == nil && h >= want {
			return h, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("node did not reach height %d within %s", want, limit)
}
