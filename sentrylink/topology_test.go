package sentrylink

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleTopology = "testdata/topology.toml"

// validatorIDFromCometBFT is `cometbft show-node-id` (v0.38.26) for
// testdata/validator_node_key.json.
const validatorIDFromCometBFT = "cc1b0a5673788552164768e5a95620457f922f39"

func loadSample(t testing.TB) *Topology {
	t.Helper()
	topo, err := LoadTopology(sampleTopology)
	if err != nil {
		t.Fatalf("LoadTopology: %v", err)
	}
	return topo
}

func TestLoadSampleTopology(t *testing.T) {
	topo := loadSample(t)
	if topo.ChainID != "cosmoshub-4" {
		t.Errorf("chain_id = %q", topo.ChainID)
	}
	if topo.Validator.ID != validatorIDFromCometBFT {
		t.Errorf("validator ID from node_key = %s, cometbft says %s", topo.Validator.ID, validatorIDFromCometBFT)
	}
	if got := topo.Sentries[0].ID; got != "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d" {
		t.Errorf("sentry-1 ID not normalised to lower case: %s", got)
	}
	if got := topo.Validator.RPCLaddr; got != "tcp://127.0.0.1:26657" {
		t.Errorf("validator rpc laddr = %q", got)
	}
	if got := topo.Sentries[1].RPCLaddr; got != "tcp://10.0.1.11:26657" {
		t.Errorf("sentry-2 rpc laddr = %q", got)
	}
	if len(topo.Signers) != 1 || topo.Signers[0].String() != "10.0.1.20" {
		t.Errorf("signers = %v", topo.Signers)
	}
	if _, err := topo.Node("nope"); err == nil || !strings.Contains(err.Error(), `"sentry-2"`) {
		t.Errorf("Node(nope) error should list the nodes, got %v", err)
	}
	if topo.Policy.Sentry.SendRate != 5120000 || topo.Policy.Firewall.NewConnsPerMinute != 20 {
		t.Errorf("default policy not applied: %+v", topo.Policy)
	}
}

func TestPolicyOverrides(t *testing.T) {
	src := readSample(t) + `
[policy.sentry]
max_num_inbound_peers = 100
dial_timeout = "1500ms"
[policy.firewall]
admin_sources = ["192.0.2.0/24", "192.0.2.7"]
new_conns_per_minute = 30
`
	topo, err := ParseTopology([]byte(src), sampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	if topo.Policy.Sentry.MaxNumInboundPeers != 100 || topo.Policy.Sentry.MaxNumOutboundPeers != 40 {
		t.Errorf("override not merged with defaults: %+v", topo.Policy.Sentry)
	}
	if topo.Policy.Sentry.DialTimeout != "1.5s" {
		t.Errorf("dial_timeout not normalised: %q", topo.Policy.Sentry.DialTimeout)
	}
	if got := sortedPrefixes(topo.Policy.Firewall.AdminSources); len(got) != 1 || got[0].String() != "192.0.2.0/24" {
		t.Errorf("covered admin source not merged: %v", got)
	}
}

func readSample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(sampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTopologyErrors changes the sample one way at a time and checks the
// error names the key and says how to fix it.
func TestTopologyErrors(t *testing.T) {
	sample := readSample(t)
	s1 := `node_id = "1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D"`
	tests := []struct {
		name     string
		old, new string
		want     []string // substrings of the error
	}{
		{"one sentry", sample[strings.Index(sample, "[[sentry]]\nname = \"sentry-2\""):], "", []string{"[[sentry]]", "1 sentries; at least 2 are required", "fix:"}},
		{"short id", s1, `node_id = "1a2b"`, []string{`sentry[1] "sentry-1" node_id`, "has 4 characters", "show-node-id"}},
		{"id with address", s1, `node_id = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d@10.0.1.10:26656"`, []string{"node_id", "is an address, not a node ID"}},
		{"non-hex id", s1, `node_id = "zz2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"`, []string{"is not hex"}},
		{"id and key disagree", `node_key = "validator_node_key.json"`, `node_key = "validator_node_key.json"` + "\nnode_id = \"99887766554433221100ffeeddccbbaa99887700\"", []string{"does not match node_key"}},
		{"missing key file", `node_key = "validator_node_key.json"`, `node_key = "nope.json"`, []string{"validator node_key", "nope.json", "relative paths start at the topology file's folder"}},
		{"no id", `node_key = "validator_node_key.json"`, ``, []string{"validator node_id: missing"}},
		{"duplicate id", `node_id = "99887766554433221100ffeeddccbbaa99887766"`, s1, []string{"same node ID"}},
		{"duplicate name", `name = "sentry-2"`, `name = "sentry-1"`, []string{"name used twice"}},
		{"duplicate ip", `private_addr = "10.0.1.11:26656"`, `private_addr = "10.0.1.10:26656"`, []string{"same IP as"}},
		{"hostname private addr", `private_addr = "10.0.1.10:26656"`, `private_addr = "sentry1.internal:26656"`, []string{"is not an IP:port"}},
		{"public addr with id", `public_addr = "203.0.113.50:26656"`, `public_addr = "abc@203.0.113.50:26656"`, []string{"public_addr", "not host:port"}},
		{"validator rpc public", `rpc = "http://127.0.0.1:26657"`, `rpc = "http://10.0.1.5:26657"`, []string{"validator.rpc", "not a loopback URL"}},
		{"sentry rpc public", `rpc = "http://10.0.1.10:26657"`, `rpc = "http://203.0.113.50:26657"`, []string{"rpc", "would expose /net_info"}},
		{"rpc not a url", `rpc = "http://10.0.1.10:26657"`, `rpc = "10.0.1.10:26657"`, []string{"is not an http(s)://host:port URL"}},
		{"no signer", "[signer]\nprivate_ip = \"10.0.1.20\"\n", "", []string{"[signer]: missing"}},
		{"signer bad ip", `private_ip = "10.0.1.20"`, `private_ip = "10.0.1.20/32"`, []string{"signer.private_ip", "is not an IP address"}},
		{"signer is a sentry", `private_ip = "10.0.1.20"`, `private_ip = "10.0.1.10"`, []string{"signer.private_ip", "run signerd on its own host"}},
		{"privval on p2p port", `privval_addr = "10.0.1.5:26659"`, `privval_addr = "10.0.1.5:26656"`, []string{"uses the p2p port"}},
		{"privval other ip", `privval_addr = "10.0.1.5:26659"`, `privval_addr = "10.0.1.6:26659"`, []string{"differs from private_addr"}},
		{"rpc on the p2p port", `rpc = "http://10.0.1.10:26657"`, `rpc = "http://10.0.1.10:26656"`, []string{`"sentry-1" rpc`, "RPC port 26656 is also the node's p2p or privval port"}},
		{"unknown key", `chain_id = "cosmoshub-4"`, "chain_id = \"cosmoshub-4\"\nchainid = \"x\"", []string{"topology.toml:3", "chainid: unknown key"}},
		{"wrong type", `chain_id = "cosmoshub-4"`, `chain_id = 4`, []string{"chain_id"}},
		{"no chain id", `chain_id = "cosmoshub-4"`, ``, []string{"chain_id: missing"}},
		{"bad policy", `chain_id = "cosmoshub-4"`, "[policy.sentry]\nsend_rate = 0\nhandshake_timeout = \"0s\"\n[policy.firewall]\ninput_policy = \"reject\"\nadmin_sources = [\"1.2.3\"]\n",
			[]string{"policy.sentry.send_rate", "policy.sentry.handshake_timeout", "policy.firewall.input_policy", "policy.firewall.admin_sources", "chain_id: missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(sample, tc.old) {
				t.Fatalf("sample lacks %q", tc.old)
			}
			src := strings.Replace(sample, tc.old, tc.new, 1)
			_, err := ParseTopology([]byte(src), sampleTopology)
			if err == nil {
				t.Fatalf("ParseTopology succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
		})
	}
}

func TestNodeIDFromKeyJSON(t *testing.T) {
	b, err := os.ReadFile("testdata/validator_node_key.json")
	if err != nil {
		t.Fatal(err)
	}
	id, err := NodeIDFromKeyJSON(b)
	if err != nil || id != validatorIDFromCometBFT {
		t.Fatalf("NodeIDFromKeyJSON = %s, %v; want %s", id, err, validatorIDFromCometBFT)
	}
	bad := []struct{ in, want string }{
		{`{}`, `no "priv_key"`},
		{`{"priv_key":{"type":"tendermint/PrivKeySecp256k1","value":"AA=="}}`, "priv_key.type"},
		{`{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"!!"}}`, "not base64"},
		{`{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"AAAA"}}`, "holds 3 bytes"},
		{`not json`, "not a node_key.json"},
	}
	for _, tc := range bad {
		if _, err := NodeIDFromKeyJSON([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NodeIDFromKeyJSON(%s) error = %v, want %q", tc.in, err, tc.want)
		}
	}
	// A damaged public half (seed and public key disagree) is detected.
	var kf struct {
		PrivKey struct{ Type, Value string } `json:"priv_key"`
	}
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(kf.PrivKey.Value)
	raw[63] ^= 1
	damaged := fmt.Sprintf(`{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":%q}}`, base64.StdEncoding.EncodeToString(raw))
	if _, err := NodeIDFromKeyJSON([]byte(damaged)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged key: err = %v, want a damaged-key error", err)
	}
}

func TestParseNodeID(t *testing.T) {
	good := map[string]NodeID{
		"cc1b0a5673788552164768e5a95620457f922f39": "cc1b0a5673788552164768e5a95620457f922f39",
		"CC1B0A5673788552164768E5A95620457F922F39": "cc1b0a5673788552164768e5a95620457f922f39",
	}
	for in, want := range good {
		if got, err := ParseNodeID(in); err != nil || got != want {
			t.Errorf("ParseNodeID(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "cc1b", "cc1b0a5673788552164768e5a95620457f922f3g", "cc1b0a5673788552164768e5a95620457f922f39@1.2.3.4:1", " cc1b0a5673788552164768e5a95620457f922f3"} {
		if _, err := ParseNodeID(in); err == nil {
			t.Errorf("ParseNodeID(%q) succeeded", in)
		}
	}
}

func FuzzParseTopology(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	files2, _ := filepath.Glob("testdata/topology/*.toml")
	for _, p := range append(files, files2...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("chain_id = 1\n[[sentry]]\n[[sentry]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := ParseTopology(data, "testdata/fuzz.toml")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// Everything downstream of a valid topology works and is deterministic.
		for _, n := range topo.Nodes() {
			p := topo.Plan(n)
			if len(p.Settings) == 0 {
				t.Fatalf("empty plan for %s", n.Name)
			}
			if a, b := topo.Firewall(n), topo.Firewall(n); a != b {
				t.Fatal("firewall output is not deterministic")
			}
		}
	})
}
