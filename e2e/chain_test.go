package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/signer"
)

// chainOpts shapes one test chain.
type chainOpts struct {
	nodes          int               // nodes sharing the genesis; every one is dialed by signerd (default 1)
	unix           bool              // priv_validator_laddr over unix:// instead of tcp://
	voteExtensions bool              // vote extensions enabled from height 1
	timeoutCommit  string            // consensus.timeout_commit (default 50ms)
	nodeConfig     map[string]string // more config.toml settings (see editTOML)
}

// testChain is one single-validator chain whose validator key lives in a
// SoftHSM token and signs only through signerd.
type testChain struct {
	dir         string
	signerd     string
	tok         token
	env         []string // for signerd: SOFTHSM2_CONF
	chainID     string
	genesisAddr string // the genesis validator's address (hex)
	genesisPub  string // its public key (base64)
	cfgPath     string // signerd.toml
	stateFile   string
	signerLog   string
	signer      *proc
	signerRuns  int
	nodes       []*node
}

// setupChain makes the SoftHSM token, the node homes and the signer home, and
// moves the validator's key and state into signerd. Nothing runs yet.
func setupChain(t *testing.T, o chainOpts) *testChain {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 1
	}
	if o.timeoutCommit == "" {
		o.timeoutCommit = "50ms"
	}
	cometbft := cometbftBin(t)
	c := &testChain{dir: t.TempDir(), signerd: signerdBin(t)}
	c.tok = newToken(t)
	c.env = []string{"SOFTHSM2_CONF=" + c.tok.conf}
	c.signerLog = filepath.Join(c.dir, "signerd.log")

	// Node homes: node0 made the genesis; the others share it.
	for i := range o.nodes {
		n := &node{
			name:    fmt.Sprintf("node%d", i),
			bin:     cometbft,
			home:    filepath.Join(c.dir, fmt.Sprintf("node%d", i)),
			logPath: filepath.Join(c.dir, fmt.Sprintf("node%d.log", i)),
		}
		mustRun(t, nil, cometbft, "init", "--home", n.home)
		c.nodes = append(c.nodes, n)
	}
	genesis := filepath.Join(c.nodes[0].home, "config", "genesis.json")
	c.readGenesis(t, genesis, o.voteExtensions)
	for _, n := range c.nodes[1:] {
		copyFile(t, genesis, filepath.Join(n.home, "config", "genesis.json"))
	}

	// The signer's home, then the key into the token.
	home := filepath.Join(c.dir, "signer")
	mustRun(t, nil, c.signerd, "init", "--home", home)
	keyFile := filepath.Join(c.nodes[0].home, "config", "priv_validator_key.json")
	out := mustRun(t, c.env, c.signerd, "keys", "import", "--key", c.tok.uri, "--from", keyFile)
	c.checkNoPIN(t, "keys import output", out)
	c.checkKeyMatchesGenesis(t)

	// From here on no node holds the key: its file is gone. (A node with
	// priv_validator_laddr set writes a fresh junk key file on start; that key
	// is in no genesis.)
	for _, n := range c.nodes {
		kf := filepath.Join(n.home, "config", "priv_validator_key.json")
		if err := os.Remove(kf); err != nil {
			t.Fatal(err)
		}
	}

	// Ports and config.
	ports := freePorts(t, 3*o.nodes)
	sockDir := ""
	if o.unix {
		// unix socket paths are limited to 107 bytes: keep them short.
		d, err := os.MkdirTemp("", "sd-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		sockDir = d
	}
	for i, n := range c.nodes {
		n.rpcPort, n.p2pPort = ports[3*i], ports[3*i+1]
		if o.unix {
			n.privvalAddr = "unix://" + filepath.Join(sockDir, n.name+".sock")
		} else {
			n.privvalAddr = fmt.Sprintf("tcp://127.0.0.1:%d", ports[3*i+2])
		}
		set := map[string]string{
			"moniker":                  quote(n.name),
			"proxy_app":                quote("kvstore"),
			"priv_validator_laddr":     quote(n.privvalAddr),
			"rpc.laddr":                quote(fmt.Sprintf("tcp://127.0.0.1:%d", n.rpcPort)),
			"p2p.laddr":                quote(fmt.Sprintf("tcp://127.0.0.1:%d", n.p2pPort)),
			"p2p.addr_book_strict":     "false",
			"p2p.allow_duplicate_ip":   "true",
			"p2p.pex":                  "false",
			"consensus.timeout_commit": quote(o.timeoutCommit),
		}
		for k, v := range o.nodeConfig {
			set[k] = v
		}
		if i > 0 {
			id := strings.TrimSpace(mustRun(t, nil, cometbft, "show-node-id", "--home", c.nodes[0].home))
			set["p2p.persistent_peers"] = quote(fmt.Sprintf("%s@127.0.0.1:%d", id, c.nodes[0].p2pPort))
		}
		editTOML(t, filepath.Join(n.home, "config", "config.toml"), set)
	}

	c.writeSignerConfig(t, home)
	out = mustRun(t, nil, c.signerd, "state", "import", "--config", c.cfgPath, "--chain", c.chainID,
		"--from", filepath.Join(c.nodes[0].home, "data", "priv_validator_state.json"))
	if _, err := os.Stat(c.stateFile); err != nil {
		t.Fatalf("state import printed %q but %s: %v", out, c.stateFile, err)
	}

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range c.nodes {
			t.Logf("---- %s log %s ----\n%s", n.name, n.logPath, tail(n.logPath, logTailLines))
		}
		t.Logf("---- signerd log %s ----\n%s", c.signerLog, tail(c.signerLog, logTailLines))
	})
	return c
}

// readGenesis takes the chain id and the validator out of genesis.json and,
// if asked, enables vote extensions from height 1.
func (c *testChain) readGenesis(t *testing.T, path string, voteExtensions bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		ChainID    string `json:"chain_id"`
		Validators []struct {
			Address string `json:"address"`
			PubKey  struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"pub_key"`
		} `json:"validators"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if g.ChainID == "" || len(g.Validators) != 1 || g.Validators[0].PubKey.Type != "tendermint/PubKeyEd25519" {
		t.Fatalf("%s: want a chain id and one ed25519 validator, got %+v", path, g)
	}
	c.chainID, c.genesisAddr, c.genesisPub = g.ChainID, g.Validators[0].Address, g.Validators[0].PubKey.Value
	if !voteExtensions {
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	cp, _ := doc["consensus_params"].(map[string]any)
	abci, _ := cp["abci"].(map[string]any)
	if abci == nil {
		t.Fatalf("%s: no consensus_params.abci", path)
	}
	abci["vote_extensions_enable_height"] = "1"
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkKeyMatchesGenesis asserts that the key signerd holds is the genesis
// validator: the node's blocks can then only come from signerd.
func (c *testChain) checkKeyMatchesGenesis(t *testing.T) {
	t.Helper()
	out := mustRun(t, c.env, c.signerd, "keys", "show", "--key", c.tok.uri, "--json")
	c.checkNoPIN(t, "keys show output", out)
	var shown struct {
		Address string `json:"address"`
		PubKey  struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"pub_key"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("keys show --json: %v\n%s", err, out)
	}
	if shown.PubKey.Value != c.genesisPub || !strings.EqualFold(shown.Address, c.genesisAddr) {
		t.Fatalf("signerd keys show = %s %s, genesis validator = %s %s", shown.Address, shown.PubKey.Value, c.genesisAddr, c.genesisPub)
	}
}

func (c *testChain) writeSignerConfig(t *testing.T, home string) {
	t.Helper()
	c.cfgPath = filepath.Join(home, "signerd.toml")
	c.stateFile = filepath.Join(home, "state", c.chainID+".json")
	var b strings.Builder
	fmt.Fprintf(&b, "identity_key = \"identity.json\"\nlog_level = \"info\"\n\n")
	fmt.Fprintf(&b, "[[chain]]\nid = %s\nkey = %s\nstate_file = %s\n", quote(c.chainID), quote(c.tok.uri), quote("state/"+c.chainID+".json"))
	for _, n := range c.nodes {
		fmt.Fprintf(&b, "\n[[validator]]\nchain_id = %s\naddr = %s\n", quote(c.chainID), quote(n.privvalAddr))
	}
	if err := os.WriteFile(c.cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSigner starts `signerd start` at debug level (the most it ever logs).
func (c *testChain) startSigner(t *testing.T) {
	t.Helper()
	c.signerRuns++
	c.signer = startProc(t, fmt.Sprintf("signerd (run #%d)", c.signerRuns), c.signerLog, c.env,
		c.signerd, "start", "--config", c.cfgPath, "--log-level", "debug")
}

// summary is what signerd's "summary" log line reports for one chain.
type summary struct {
	votes, proposals, extensions uint64
	refusals                     uint64
	refusalsByCode               string // as logged, e.g. "height_regression:3"
}

// stopSigner stops signerd with SIGTERM, checks it exits 0, and returns the
// summary it logged on the way out.
func (c *testChain) stopSigner(t *testing.T) summary {
	t.Helper()
	c.signer.stop(t, syscall.SIGTERM)
	if code := c.signer.exitCode(); code != 0 {
		t.Fatalf("signerd exited %d after SIGTERM, want 0", code)
	}
	lines := grepLines(t, c.signerLog, "msg=summary")
	if len(lines) == 0 {
		t.Fatalf("signerd logged no summary line on SIGTERM")
	}
	return parseSummary(t, lines[len(lines)-1])
}

// parseSummary reads the counters of signerd's summary line:
// "msg=summary chain=ID stats.votes_signed=30 stats.proposals_signed=15
// stats.extensions_signed=15 ... stats.refusals=0 stats.refusals_by_code=...".
func parseSummary(t *testing.T, line string) summary {
	t.Helper()
	num := func(name string) uint64 {
		m := regexp.MustCompile(`\bstats\.` + name + `=([0-9]+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("signerd's summary line has no stats.%s counter: %s", name, line)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}
	s := summary{
		votes: num("votes_signed"), proposals: num("proposals_signed"), extensions: num("extensions_signed"),
		refusals: num("refusals"),
	}
	if m := regexp.MustCompile(`\bstats\.refusals_by_code=("(?:[^"\\]|\\.)*"|\S*)`).FindStringSubmatch(line); m != nil {
		s.refusalsByCode = strings.Trim(m[1], `"`)
	}
	return s
}

// startAll starts the signer first, then every node (the node gives the signer
// 3 s to connect, the signer redials until it does).
func (c *testChain) startAll(t *testing.T) {
	t.Helper()
	c.startSigner(t)
	for _, n := range c.nodes {
		n.start(t)
	}
}

// stopNodes stops every running node with SIGTERM.
func (c *testChain) stopNodes(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		if n.proc != nil && n.proc.running() {
			n.proc.stop(t, syscall.SIGTERM)
		}
	}
}

// signerState returns the height signerd's state file records, through
// `signerd state show --json` (signerd must be stopped).
func (c *testChain) signerState(t *testing.T) int64 {
	t.Helper()
	out := mustRun(t, nil, c.signerd, "state", "show", "--config", c.cfgPath, "--chain", c.chainID, "--json")
	var st []struct {
		ChainID string `json:"chain_id"`
		Height  string `json:"height"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("state show --json: %v\n%s", err, out)
	}
	var h int64
	if _, err := fmt.Sscan(st[0].Height, &h); err != nil || st[0].ChainID != c.chainID {
		t.Fatalf("state show --json: chain %q height %q", st[0].ChainID, st[0].Height)
	}
	return h
}

// checkNoPIN fails if text contains the token's PIN.
func (c *testChain) checkNoPIN(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, c.tok.pin) {
		t.Fatalf("%s contains the PIN", what)
	}
}

// checkSignerLog checks signerd's log: no PIN anywhere, no data race, and
// every refusal one of the allowed codes.
func (c *testChain) checkSignerLog(t *testing.T, allowed []signer.RefusalCode) {
	t.Helper()
	b, err := os.ReadFile(c.signerLog)
	if err != nil {
		t.Fatal(err)
	}
	c.checkNoPIN(t, "signerd's log "+c.signerLog, string(b))
	if hits := grepLines(t, c.signerLog, "WARNING: DATA RACE"); len(hits) > 0 {
		t.Errorf("the race detector found %d data races in signerd; see %s", len(hits), c.signerLog)
	}
	codeRE := regexp.MustCompile(`\bcode=([0-9]+)`)
	for _, l := range grepLines(t, c.signerLog, `msg="refused`) {
		m := codeRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("signerd refusal without a code: %s", l)
			continue
		}
		if code, _ := strconv.Atoi(m[1]); !slices.Contains(allowed, signer.RefusalCode(code)) {
			t.Errorf("signerd refused with %s, not expected here (allowed: %v): %s", signer.RefusalCode(code), allowed, l)
		}
	}
}

// checkNodeLogs checks that no node saw a double sign by this validator, and
// that every refusal a node got from signerd has an allowed code.
func (c *testChain) checkNodeLogs(t *testing.T, allowed []signer.RefusalCode) {
	t.Helper()
	codeRE := regexp.MustCompile(`signerEndpoint returned error #([0-9]+)`)
	for _, n := range c.nodes {
		if hits := grepLines(t, n.logPath, "byzantine", "conflicting vote from ourselves", "DuplicateVoteEvidence"); len(hits) > 0 {
			t.Errorf("%s log: %d lines about double signing, first: %s", n.name, len(hits), hits[0])
		}
		for _, l := range grepLines(t, n.logPath, "signerEndpoint returned error") {
			m := codeRE.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("%s log: signer error without a code: %s", n.name, l)
				continue
			}
			if code, _ := strconv.Atoi(m[1]); !slices.Contains(allowed, signer.RefusalCode(code)) {
				t.Errorf("%s got refusal %s, not expected here (allowed: %v): %s", n.name, signer.RefusalCode(code), allowed, l)
			}
		}
	}
}

// finish stops the nodes and the signer and checks what every test checks:
// the signer's state is not behind the chain, no PIN or double sign in the
// logs, and no refusal but the allowed ones. It returns the last signer run's
// summary.
func (c *testChain) finish(t *testing.T, lastHeight int64, allowed ...signer.RefusalCode) summary {
	t.Helper()
	c.stopNodes(t)
	s := c.stopSigner(t)
	t.Logf("signerd's last run: %d votes, %d proposals, %d extensions signed; %d refusals %s", s.votes, s.proposals, s.extensions, s.refusals, s.refusalsByCode)
	if s.votes == 0 || s.proposals == 0 {
		t.Errorf("signerd's last run signed %d votes and %d proposals: want some of both", s.votes, s.proposals)
	}
	if len(allowed) == 0 && s.refusals != 0 {
		t.Errorf("signerd refused %d requests: %s", s.refusals, s.refusalsByCode)
	}
	if got := c.signerState(t); got < lastHeight-1 {
		t.Errorf("signerd state height %d, chain reached %d: the state is behind the chain", got, lastHeight)
	}
	c.checkSignerLog(t, allowed)
	c.checkNodeLogs(t, allowed)
	return s
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// since formats an elapsed time for logs.
func since(t0 time.Time) string { return time.Since(t0).Round(10 * time.Millisecond).String() }
