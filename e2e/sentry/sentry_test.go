package sentry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testenv"
	"github.com/signerd/signerd/sentrylink"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

func TestMain(m *testing.M) {
	code := softhsmtest.Run(m)
	testenv.RemoveBuilds()
	os.Exit(code)
}

// The private network of the test (inside its own namespaces only).
const (
	valIP     = "10.251.7.5"
	s1IP      = "10.251.7.10"
	s2IP      = "10.251.7.11"
	s1Public  = "10.251.7.50" // the sentries' "public" addresses, on the same bridge
	s2Public  = "10.251.7.51"
	signerIP  = "10.251.7.20"
	publicIP  = "10.251.7.100"
	p2pPort   = "26656"
	rpcPort   = "26657"
	privvPort = "26659"
)

func cometbftBin(t *testing.T) string { return testenv.CometBFT(t) }

// signerdBin returns $SIGNERD_BIN or ./cmd/signerd built once per test
// process: the commands under test are the real binary's.
func signerdBin(t *testing.T) string { return testenv.Signerd(t, false) }

// node is one CometBFT node of the test network.
type node struct {
	name, ns, home string
	id             string
	rpc            string // base URL reachable inside ns
	proc           *proc
}

// chainNet is the running test network.
type chainNet struct {
	t        *testing.T
	lab      *lab
	dir      string
	cometbft string
	signerd  string
	chainID  string
	topology string
	val      *node
	s1, s2   *node
	pub      *node
	signer   *proc
	signerNS string
}

func (c *chainNet) cmt(args ...string) string {
	c.t.Helper()
	out, err := runCmd(nil, "", c.cometbft, args...)
	if err != nil {
		c.t.Fatalf("cometbft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// sentryCmd runs the signerd binary: "signerd sentry args..." (in ns when
// ns is not empty) and returns its output and exit code.
func (c *chainNet) sentryCmd(ns string, args ...string) (string, int) {
	c.t.Helper()
	argv := append([]string{"sentry"}, args...)
	bin := c.signerd
	if ns != "" {
		argv = append([]string{"netns", "exec", ns, c.signerd}, argv...)
		bin = c.lab.ip
	}
	out, err := runCmd(nil, "", bin, argv...)
	if code := exitCode(err); code < 0 {
		c.t.Fatalf("signerd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, exitCode(err)
}

// setKeys writes test-only settings (not part of the topology) into a
// config.toml, with sentrylink's own comment-preserving editor.
func setKeys(t *testing.T, path string, settings ...sentrylink.Setting) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&sentrylink.NodePlan{Settings: settings}).ApplyTo(src)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := os.WriteFile(path, res.New, 0o644); err != nil {
		t.Fatal(err)
	}
}

func strSetting(section, name, v string) sentrylink.Setting {
	return sentrylink.Setting{Key: sentrylink.ConfigKey{Section: section, Name: name}, Kind: sentrylink.KindString, Value: v}
}

func boolSetting(section, name string, v bool) sentrylink.Setting {
	return sentrylink.Setting{Key: sentrylink.ConfigKey{Section: section, Name: name}, Kind: sentrylink.KindBool, Value: v}
}

// height returns the node's latest block height from /status.
func (n *node) height() (int64, error) {
	var st struct {
		Result struct {
			SyncInfo struct {
				LatestBlockHeight string `json:"latest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if err := getJSON(n.ns, n.rpc+"/status", &st); err != nil {
		return 0, err
	}
	return strconv.ParseInt(st.Result.SyncInfo.LatestBlockHeight, 10, 64)
}

func (n *node) netInfo() (*sentrylink.NetInfo, error) {
	var r struct {
		Result sentrylink.NetInfo `json:"result"`
	}
	if err := getJSON(n.ns, n.rpc+"/net_info", &r); err != nil {
		return nil, err
	}
	return &r.Result, nil
}

func getJSON(ns, url string, out any) error {
	resp, err := httpIn(ns).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func peerIDs(ni *sentrylink.NetInfo) map[string]string {
	m := map[string]string{}
	for _, p := range ni.Peers {
		m[p.NodeInfo.ID] = p.RemoteIP
	}
	return m
}

// waitHeight waits until n reaches at least h.
func (c *chainNet) waitHeight(n *node, h int64, timeout time.Duration) int64 {
	c.t.Helper()
	var got int64
	waitFor(c.t, timeout, fmt.Sprintf("%s to reach height %d", n.name, h), func() (bool, string) {
		if n.proc != nil && n.proc.exited() {
			c.t.Fatalf("%s exited: %v\n%s", n.name, n.proc.err, tail(n.proc.log, logTail))
		}
		var err error
		got, err = n.height()
		if err != nil {
			return false, err.Error()
		}
		return got >= h, fmt.Sprintf("height %d", got)
	})
	return got
}

// newChainNet builds the namespaces, the nodes' homes, the topology file and
// each node's config: test-only settings first, then `signerd sentry apply`
// for the validator and the sentries. Nothing is started.
func newChainNet(t *testing.T) *chainNet {
	t.Helper()
	c := &chainNet{t: t, lab: newLab(t), dir: t.TempDir(), cometbft: cometbftBin(t), signerd: signerdBin(t)}
	l := c.lab
	c.val = &node{name: "validator", ns: l.node("val", valIP), rpc: "http://127.0.0.1:" + rpcPort}
	c.s1 = &node{name: "sentry-1", ns: l.node("s1", s1IP, s1Public), rpc: "http://" + s1IP + ":" + rpcPort}
	c.s2 = &node{name: "sentry-2", ns: l.node("s2", s2IP, s2Public), rpc: "http://" + s2IP + ":" + rpcPort}
	c.pub = &node{name: "public", ns: l.node("pub", publicIP), rpc: "http://127.0.0.1:" + rpcPort}
	c.signerNS = l.node("sig", signerIP)

	for _, n := range []*node{c.val, c.s1, c.s2, c.pub} {
		n.home = filepath.Join(c.dir, n.name)
		c.cmt("init", "--home", n.home)
		n.id = strings.TrimSpace(c.cmt("show-node-id", "--home", n.home))
	}
	// One chain: the validator's genesis everywhere.
	gen, err := os.ReadFile(filepath.Join(c.val.home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		ChainID string `json:"chain_id"`
	}
	if err := json.Unmarshal(gen, &g); err != nil || g.ChainID == "" {
		t.Fatalf("genesis chain_id: %v", err)
	}
	c.chainID = g.ChainID
	for _, n := range []*node{c.s1, c.s2, c.pub} {
		if err := os.WriteFile(filepath.Join(n.home, "config", "genesis.json"), gen, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The consensus key moves to the signer host: the validator keeps none
	// (CometBFT writes a throw-away key file at start; it is never used).
	signerDir := filepath.Join(c.dir, "signer")
	if err := os.MkdirAll(signerDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config/priv_validator_key.json", "data/priv_validator_state.json"} {
		src := filepath.Join(c.val.home, f)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(signerDir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(c.val.home, "config", "priv_validator_key.json")); err != nil {
		t.Fatal(err)
	}

	// Test-only settings, outside sentrylink's keys: the built-in app, fast
	// blocks, readable monikers. The public node is a plain full node that
	// peers with the sentries' public addresses.
	for _, n := range []*node{c.val, c.s1, c.s2, c.pub} {
		setKeys(t, filepath.Join(n.home, "config", "config.toml"),
			strSetting("", "proxy_app", "kvstore"),
			strSetting("", "moniker", n.name),
			strSetting("consensus", "timeout_commit", "100ms"),
			// Followers keep up with 100 ms blocks only if gossip does not
			// sleep the default 100 ms between rounds.
			strSetting("consensus", "peer_gossip_sleep_duration", "10ms"))
	}
	setKeys(t, filepath.Join(c.pub.home, "config", "config.toml"),
		strSetting("p2p", "persistent_peers", c.s1.id+"@"+s1Public+":"+p2pPort+","+c.s2.id+"@"+s2Public+":"+p2pPort),
		boolSetting("p2p", "addr_book_strict", false),
		strSetting("rpc", "laddr", "tcp://0.0.0.0:"+rpcPort))

	c.topology = c.writeTopology("topology.toml", c.s2.id)
	return c
}

// writeTopology writes the topology; sentry2ID lets a test lie about
// sentry-2. The validator and sentry-1 are named by node_key.json, sentry-2
// by node_id, so both forms are exercised.
func (c *chainNet) writeTopology(name, sentry2ID string) string {
	c.t.Helper()
	topo := fmt.Sprintf(`chain_id = %q

[validator]
name = "validator"
node_key = %q
private_addr = "%s:%s"
privval_addr = "%s:%s"
rpc = "http://127.0.0.1:%s"

[signer]
private_ip = %q

[[sentry]]
name = "sentry-1"
node_key = %q
private_addr = "%s:%s"
public_addr = "%s:%s"
rpc = "http://%s:%s"
addrbook = %q

[[sentry]]
name = "sentry-2"
node_id = %q
private_addr = "%s:%s"
public_addr = "%s:%s"
rpc = "http://%s:%s"
addrbook = %q
`, c.chainID,
		filepath.Join(c.val.home, "config", "node_key.json"), valIP, p2pPort, valIP, privvPort, rpcPort,
		signerIP,
		filepath.Join(c.s1.home, "config", "node_key.json"), s1IP, p2pPort, s1Public, p2pPort, s1IP, rpcPort, filepath.Join(c.s1.home, "config", "addrbook.json"),
		strings.ToUpper(sentry2ID), s2IP, p2pPort, s2Public, p2pPort, s2IP, rpcPort, filepath.Join(c.s2.home, "config", "addrbook.json"))
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(topo), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// configure runs signerd sentry apply (twice: the second must change
// nothing), audit and firewall for the validator and both sentries, and
// loads each firewall inside the node's namespace.
func (c *chainNet) configure() {
	c.t.Helper()
	for _, n := range []*node{c.val, c.s1, c.s2} {
		cfg := filepath.Join(n.home, "config", "config.toml")
		out, code := c.sentryCmd("", "apply", "--topology", c.topology, "--node", n.name, "--config-toml", cfg)
		if code != 0 || !strings.Contains(out, "change(s)") {
			c.t.Fatalf("apply %s: exit %d\n%s", n.name, code, out)
		}
		out, code = c.sentryCmd("", "apply", "--topology", c.topology, "--node", n.name, "--config-toml", cfg)
		if code != 0 || !strings.Contains(out, "nothing changed") {
			c.t.Fatalf("second apply %s: exit %d\n%s", n.name, code, out)
		}
		out, code = c.sentryCmd("", "audit", "--topology", c.topology, "--node", n.name, "--config-toml", cfg)
		if code != 0 || !strings.Contains(out, "result: pass") || strings.Contains(out, "warning ") {
			c.t.Fatalf("audit %s after apply: exit %d\n%s", n.name, code, out)
		}
		rules, code := c.sentryCmd("", "firewall", "--topology", c.topology, "--node", n.name)
		if code != 0 {
			c.t.Fatalf("firewall %s: exit %d\n%s", n.name, code, rules)
		}
		path := filepath.Join(c.dir, n.name+".nft")
		if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
			c.t.Fatal(err)
		}
		c.lab.run(c.lab.ip, "netns", "exec", n.ns, "nft", "-f", path)
	}
}

// startSigner starts signerd in the signer host's namespace, with the
// validator's key imported into a SoftHSM token and its state imported from
// the node's priv_validator_state.json. signerd dials the validator's
// priv_validator_laddr over the private link, through the validator's
// firewall (which admits the privval port from the signer's IP only).
func (c *chainNet) startSigner() {
	c.t.Helper()
	signerDir := filepath.Join(c.dir, "signer")
	tok := softhsmtest.New(c.t, "sentry-e2e")
	keyURI := tok.URI("consensus")
	if out, err := runCmd(tok.Env(), "", c.signerd, "keys", "import", "--key", keyURI,
		"--from", filepath.Join(signerDir, "priv_validator_key.json")); err != nil {
		c.t.Fatalf("signerd keys import: %v\n%s", err, out)
	}
	// The key now lives only in the token.
	if err := os.Remove(filepath.Join(signerDir, "priv_validator_key.json")); err != nil {
		c.t.Fatal(err)
	}
	cfgPath := filepath.Join(signerDir, "signerd.toml")
	cfg := fmt.Sprintf(`identity_key = "identity.json"
log_level = "debug"

[[chain]]
id = %q
key = %q
state_file = "state/%s.json"

[[validator]]
chain_id = %q
addr = "tcp://%s:%s"
`, c.chainID, keyURI, c.chainID, c.chainID, valIP, privvPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if out, err := runCmd(tok.Env(), "", c.signerd, "state", "import", "--config", cfgPath, "--chain", c.chainID,
		"--from", filepath.Join(signerDir, "priv_validator_state.json")); err != nil {
		c.t.Fatalf("signerd state import: %v\n%s", err, out)
	}
	c.signer = c.lab.start("signer", c.signerNS, c.dir, tok.Env(), c.signerd, "start", "--config", cfgPath)
}

func (c *chainNet) startNode(n *node) {
	n.proc = c.lab.start(n.name, n.ns, c.dir, nil, c.cometbft, "start", "--home", n.home)
}

// TestSentryNetwork is the end-to-end test of issue 3: a single-validator
// chain behind two sentries, configured only by `signerd sentry apply`,
// firewalled by `signerd sentry firewall`, signing through signerd (key in SoftHSM)
// over the private link, checked by `signerd sentry verify`.
func TestSentryNetwork(t *testing.T) {
	start := time.Now()
	step := func(what string) { t.Logf("%6.2fs  %s", time.Since(start).Seconds(), what) }

	c := newChainNet(t)
	step("namespaces, homes and topology ready")
	c.configure()
	step("apply (twice), audit and firewall done for validator, sentry-1, sentry-2")

	c.startSigner()
	for _, n := range []*node{c.val, c.s1, c.s2, c.pub} {
		c.startNode(n)
	}
	h := c.waitHeight(c.val, 3, 60*time.Second)
	step(fmt.Sprintf("validator made blocks through signerd + SoftHSM over the private link (height %d)", h))
	if c.signer.exited() {
		t.Fatalf("the signer exited:\n%s", tail(c.signer.log, logTail))
	}
	if !connectedLine(tail(c.signer.log, 200), "remote="+valIP+":"+privvPort) {
		t.Fatalf("the signer log shows no connection to the validator:\n%s", tail(c.signer.log, logTail))
	}

	// Blocks reach the public node, which only knows the sentries.
	target := c.waitHeight(c.val, h+5, 30*time.Second)
	c.waitHeight(c.pub, target, 60*time.Second)
	step(fmt.Sprintf("public node reached height %d through the sentries", target))

	// Every link of the topology is up before verify runs.
	waitFor(t, 60*time.Second, "validator peered with both sentries and both sentries with the validator", func() (bool, string) {
		vi, err := c.val.netInfo()
		if err != nil {
			return false, err.Error()
		}
		got := peerIDs(vi)
		state := fmt.Sprintf("validator peers %v", got)
		if got[c.s1.id] != s1IP || got[c.s2.id] != s2IP || len(got) != 2 {
			return false, state
		}
		for _, s := range []*node{c.s1, c.s2} {
			si, err := s.netInfo()
			if err != nil {
				return false, err.Error()
			}
			if peerIDs(si)[c.val.id] != valIP {
				return false, fmt.Sprintf("%s peers %v", s.name, peerIDs(si))
			}
		}
		return true, state
	})
	pi, err := c.pub.netInfo()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := peerIDs(pi)[c.val.id]; ok {
		t.Fatalf("the public node is connected to the validator: %v", peerIDs(pi))
	}
	step("all links up; public node peers: " + fmt.Sprint(peerIDs(pi)))

	// verify, from the validator host (its RPC is loopback).
	out, code := c.sentryCmd(c.val.ns, "verify", "--topology", c.topology, "--public", "http://"+publicIP+":"+rpcPort)
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Fatalf("verify on the live network: exit %d\n%s", code, out)
	}
	if n := strings.Count(out, "PASS  "); n < 9 {
		t.Fatalf("verify passed only %d checks:\n%s", n, out)
	}
	t.Logf("verify:\n%s", out)
	step("signerd sentry verify passes")

	// The public node cannot reach the validator's p2p, privval or RPC port;
	// it can reach a sentry's public p2p port (so the failures are the
	// firewall's doing, not a broken network).
	for _, port := range []string{p2pPort, privvPort, rpcPort} {
		if conn, err := dialIn(c.pub.ns, valIP+":"+port, time.Second); err == nil {
			conn.Close()
			t.Errorf("the public node connected to the validator's port %s", port)
		}
	}
	if conn, err := dialIn(c.pub.ns, s1IP+":"+rpcPort, time.Second); err == nil {
		conn.Close()
		t.Errorf("the public node reached sentry-1's RPC port")
	}
	conn, err := dialIn(c.pub.ns, s1Public+":"+p2pPort, 2*time.Second)
	if err != nil {
		t.Fatalf("control: the public node cannot reach sentry-1's public p2p port: %v", err)
	}
	conn.Close()
	step("public node blocked from validator p2p/privval/rpc and sentry RPC; sentry p2p reachable")

	// A wrong topology (sentry-2's ID replaced by the public node's) fails.
	wrong := c.writeTopology("wrong-topology.toml", c.pub.id)
	out, code = c.sentryCmd(c.val.ns, "verify", "--topology", wrong, "--public", "http://"+publicIP+":"+rpcPort)
	if code != 1 || !strings.Contains(out, `FAIL  validator "validator" is connected to sentry "sentry-2"`) ||
		!strings.Contains(out, `FAIL  validator "validator" has no peers other than its sentries`) {
		t.Fatalf("verify with a wrong topology: exit %d\n%s", code, out)
	}
	step("verify fails on a wrong topology")

	// Failover: stop sentry-1; the chain keeps reaching the public node
	// through sentry-2.
	c.s1.proc.stop(t)
	waitFor(t, 30*time.Second, "validator to drop sentry-1", func() (bool, string) {
		vi, err := c.val.netInfo()
		if err != nil {
			return false, err.Error()
		}
		_, has := peerIDs(vi)[c.s1.id]
		return !has, fmt.Sprint(peerIDs(vi))
	})
	hv, err := c.val.height()
	if err != nil {
		t.Fatal(err)
	}
	hp0, err := c.pub.height()
	if err != nil {
		t.Fatal(err)
	}
	hp := c.waitHeight(c.pub, hp0+10, 60*time.Second)
	c.waitHeight(c.val, hv+10, 30*time.Second)
	pi, err = c.pub.netInfo()
	if err != nil {
		t.Fatal(err)
	}
	if got := peerIDs(pi); len(got) != 1 || got[c.s2.id] != s2Public {
		t.Fatalf("with sentry-1 down the public node's peers are %v, want only sentry-2 at %s", got, s2Public)
	}
	step(fmt.Sprintf("sentry-1 stopped; public node advanced %d -> %d through sentry-2 alone", hp0, hp))
	out, code = c.sentryCmd(c.val.ns, "verify", "--topology", c.topology)
	if code != 1 || !strings.Contains(out, `FAIL  sentry "sentry-1" is up`) || strings.Count(out, "FAIL  ") != 2 {
		t.Fatalf("verify with sentry-1 down: want exactly the sentry-1 checks to fail (exit 1):\n%s", out)
	}
	// sentry-1 saved its address book when it stopped: no validator in it.
	ab := filepath.Join(c.s1.home, "config", "addrbook.json")
	leaks, total, err := sentrylink.AddrBookLeaks(ab, sentrylink.NodeID(c.val.id), netip.MustParseAddr(valIP))
	if err != nil || len(leaks) > 0 {
		t.Fatalf("sentry-1 address book %s: %d entries, leaks %v, %v", ab, total, leaks, err)
	}
	step(fmt.Sprintf("verify reports only sentry-1 down; its address book (%d entries) has no validator", total))

	// The public node's address book, saved when it stops, never learned
	// the validator through PEX.
	c.pub.proc.stop(t)
	ab = filepath.Join(c.pub.home, "config", "addrbook.json")
	leaks, total, err = sentrylink.AddrBookLeaks(ab, sentrylink.NodeID(c.val.id), netip.MustParseAddr(valIP))
	if err != nil || len(leaks) > 0 || total == 0 {
		t.Fatalf("public address book %s: %d entries, leaks %v, %v", ab, total, leaks, err)
	}
	step(fmt.Sprintf("public node's address book (%d entries) has no validator: %s", total, addrBookSummary(t, ab)))
}

// addrBookSummary lists the id@ip:port entries of an addrbook.json.
func addrBookSummary(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var book struct {
		Addrs []struct {
			Addr struct {
				ID   string `json:"id"`
				IP   string `json:"ip"`
				Port int    `json:"port"`
			} `json:"addr"`
		} `json:"addrs"`
	}
	if err := json.Unmarshal(b, &book); err != nil {
		return err.Error()
	}
	var s []string
	for _, a := range book.Addrs {
		s = append(s, fmt.Sprintf("%s@%s:%d", a.Addr.ID[:8], a.Addr.IP, a.Addr.Port))
	}
	return strings.Join(s, ", ")
}

// connectedLine reports whether a signerd log line says it connected to the
// validator at remote ("remote=IP:port").
func connectedLine(log, remote string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="connected to validator"`) && strings.Contains(line, remote) {
			return true
		}
	}
	return false
}
