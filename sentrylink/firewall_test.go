package sentrylink

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testenv"
)

// requireNft returns the paths of nft and unshare, or stops the test.
func requireNft(t *testing.T) (nft, unshare string) {
	t.Helper()
	testenv.RequireRoot(t, "nft -c and loading rules in a private network namespace need CAP_NET_ADMIN")
	nft, err := exec.LookPath("nft")
	if err != nil {
		testenv.Unavailable(t, "nft not found: apt-get install nftables")
	}
	unshare, err = exec.LookPath("unshare")
	if err != nil {
		testenv.Unavailable(t, "unshare not found: apt-get install util-linux")
	}
	return nft, unshare
}

// inPrivateNetns runs nft args inside a new, throw-away network namespace
// (unshare --net), so nothing can touch the host's rules.
func inPrivateNetns(t *testing.T, unshare string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, unshare, append([]string{"--net"}, args...)...).CombinedOutput()
	return string(out), err
}

func allTopologies(t *testing.T) []*Topology {
	t.Helper()
	paths := []string{sampleTopology}
	more, _ := filepath.Glob("testdata/topology/*.toml")
	var out []*Topology
	for _, p := range append(paths, more...) {
		topo, err := LoadTopology(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, topo)
	}
	return out
}

// TestFirewallNftCheck: every generated ruleset, for every role of every
// test topology, passes nft -c -f; a broken one does not (so the check can
// fail).
func TestFirewallNftCheck(t *testing.T) {
	nft, unshare := requireNft(t)
	dir := t.TempDir()
	for _, topo := range allTopologies(t) {
		for _, n := range topo.Nodes() {
			path := filepath.Join(dir, filepath.Base(topo.Path)+"-"+n.Name+".nft")
			if err := os.WriteFile(path, []byte(topo.Firewall(n)), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := inPrivateNetns(t, unshare, nft, "-c", "-f", path); err != nil {
				t.Errorf("%s %s: nft -c: %v\n%s", topo.Path, n.Name, err, out)
			}
		}
	}
	bad := filepath.Join(dir, "bad.nft")
	rules := strings.Replace(loadSample(t).Firewall(loadSample(t).Validator), "tcp dport 26656", "tcp dport 266560", 1)
	if err := os.WriteFile(bad, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := inPrivateNetns(t, unshare, nft, "-c", "-f", bad); err == nil {
		t.Errorf("nft -c accepted an invalid port:\n%s", out)
	}
}

// TestFirewallLoadsTwice loads each ruleset twice into a private network
// namespace: the declare/delete/define preamble makes reloading safe, and
// the table holds the rules afterwards.
func TestFirewallLoadsTwice(t *testing.T) {
	nft, unshare := requireNft(t)
	dir := t.TempDir()
	topo := loadSample(t)
	for _, n := range topo.Nodes() {
		path := filepath.Join(dir, n.Name+".nft")
		if err := os.WriteFile(path, []byte(topo.Firewall(n)), 0o600); err != nil {
			t.Fatal(err)
		}
		script := nft + " -f " + path + " && " + nft + " -f " + path + " && " + nft + " list table inet " + FirewallTable
		out, err := inPrivateNetns(t, unshare, "sh", "-c", script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", n.Name, err, out)
		}
		wantRule := "tcp dport 26656 ip saddr @sentries_v4 accept"
		if n.Role == RoleSentry {
			wantRule = "add @p2p_meter_v4 { ip saddr limit rate over 20/minute burst 20 packets }"
		}
		if strings.Count(out, wantRule) != 1 {
			t.Errorf("%s: after two loads, want the rule %q exactly once:\n%s", n.Name, wantRule, out)
		}
	}
}
