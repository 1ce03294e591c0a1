package sentry

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFirewallRules loads the rulesets `signerd sentry firewall` prints into
// a validator's and a sentry's namespaces and probes them with plain TCP
// connections from the other roles (no CometBFT needed): who may reach the
// p2p, privval, RPC, API and SSH ports, and the per-source-IP limit on new
// connections to the sentry's public p2p port.
func TestFirewallRules(t *testing.T) {
	l := newLab(t)
	signerd := signerdBin(t)
	const attackerIP = "10.251.7.66"
	ns := map[string]string{
		"val":  l.node("val", valIP),
		"s1":   l.node("s1", s1IP, s1Public),
		"s2":   l.node("s2", s2IP),
		"sig":  l.node("sig", signerIP),
		"evil": l.node("evil", attackerIP),
	}
	dir := t.TempDir()
	writeTopo := func(name, policy string) string {
		src := fmt.Sprintf(`chain_id = "fw-test"
[validator]
name = "validator"
node_id = "cc1b0a5673788552164768e5a95620457f922f39"
private_addr = "%s:26656"
privval_addr = "%s:26659"
rpc = "http://127.0.0.1:26657"
[signer]
private_ip = %q
[[sentry]]
name = "sentry-1"
node_id = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
private_addr = "%s:26656"
public_addr = "%s:26656"
rpc = "http://%s:26657"
[[sentry]]
name = "sentry-2"
node_id = "99887766554433221100ffeeddccbbaa99887766"
private_addr = "%s:26656"
public_addr = "203.0.113.51:26656"
rpc = "http://%s:26657"
%s`, valIP, valIP, signerIP, s1IP, s1Public, s1IP, s2IP, s2IP, policy)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	load := func(topo, node, netns string) {
		t.Helper()
		rules, err := runCmd(nil, "", signerd, "sentry", "firewall", "--topology", topo, "--node", node)
		if err != nil {
			t.Fatalf("signerd sentry firewall --node %s: %v\n%s", node, err, rules)
		}
		path := filepath.Join(dir, node+".nft")
		if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		l.run(l.ip, "netns", "exec", netns, "nft", "-f", path)
	}
	topo := writeTopo("topology.toml", "")
	load(topo, "validator", ns["val"])
	load(topo, "sentry-1", ns["s1"])

	// Listeners on every interesting port of both hosts; they accept and
	// close.
	for _, host := range []string{"val", "s1"} {
		for _, port := range []string{"22", "26656", "26657", "26659", "1317"} {
			ln, err := listenIn(ns[host], "0.0.0.0:"+port)
			if err != nil {
				t.Fatalf("listen in %s on %s: %v", host, port, err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
	}
	probe := func(from, addr string) bool {
		c, err := dialIn(ns[from], addr, 300*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	expect := func(from, addr string, open bool, why string) {
		t.Helper()
		if got := probe(from, addr); got != open {
			t.Errorf("%s -> %s: connected=%v, want %v (%s)", from, addr, got, open, why)
		}
	}

	// The validator.
	v := func(port string) string { return net.JoinHostPort(valIP, port) }
	expect("s1", v("26656"), true, "p2p from a sentry's private IP")
	expect("s2", v("26656"), true, "p2p from a sentry's private IP")
	expect("evil", v("26656"), false, "p2p from anyone else")
	expect("sig", v("26656"), false, "the signer has no business on p2p")
	expect("sig", v("26659"), true, "privval from the signer")
	expect("s1", v("26659"), false, "privval from a sentry")
	expect("evil", v("26659"), false, "privval from anyone else")
	expect("evil", v("26657"), false, "RPC is loopback only")
	expect("s1", v("26657"), false, "RPC is loopback only")
	expect("evil", v("1317"), false, "API ports closed")
	expect("evil", v("22"), true, "SSH is not locked out while admin_sources is empty")

	// The sentry.
	s := func(ip, port string) string { return net.JoinHostPort(ip, port) }
	expect("evil", s(s1Public, "26656"), true, "public p2p")
	expect("val", s(s1IP, "26657"), true, "RPC from the validator, for verify")
	expect("evil", s(s1IP, "26657"), false, "RPC closed to the public")
	expect("evil", s(s1Public, "26657"), false, "RPC closed to the public")
	expect("s2", s(s1IP, "26657"), false, "RPC closed to other sentries")
	expect("evil", s(s1Public, "1317"), false, "API ports closed")
	expect("evil", s(s1Public, "22"), true, "SSH is not locked out")

	// Per-source-IP limit: 20/minute with a burst of 20 for new public p2p
	// connections; the validator and the other sentries are exempt. The
	// attacker already used one connection above.
	count := func(from, addr string, n int) (ok int) {
		for i := 0; i < n; i++ {
			if probe(from, addr) {
				ok++
			}
		}
		return ok
	}
	began := time.Now()
	got := count("evil", s(s1Public, "26656"), 30)
	// The meter refills one token every 3 s; a slow machine earns a few more.
	maxOK := 20 + int(time.Since(began)/(3*time.Second)) + 1
	if got < 15 || got > maxOK || got == 30 {
		t.Errorf("attacker: %d of 30 new p2p connections accepted in %v, want 15..%d and some refused (burst 20, then 1 every 3 s)",
			got, time.Since(began).Round(time.Millisecond), maxOK)
	}
	if got := count("val", s(s1IP, "26656"), 30); got != 30 {
		t.Errorf("validator: %d of 30 connections accepted, want all (exempt from the limit)", got)
	}
	if got := count("s2", s(s1IP, "26656"), 30); got != 30 {
		t.Errorf("sentry-2: %d of 30 connections accepted, want all (exempt from the limit)", got)
	}
	// Another public source has its own budget.
	if !probe("sig", s(s1Public, "26656")) {
		t.Errorf("a second public source was refused: the limit must be per source IP")
	}
	counters, err := runCmd(nil, "", l.ip, "netns", "exec", ns["s1"], "nft", "list", "chain", "inet", "signerd_sentrylink", "input")
	if err != nil || !strings.Contains(counters, "limit rate over 20/minute") {
		t.Fatalf("nft list: %v\n%s", err, counters)
	}
	t.Logf("attacker accepted %d/30; sentry-1 input chain after the run:\n%s", got, counters)

	// With admin_sources set, SSH is open to them only; reloading replaces
	// the table (no duplicate rules).
	topo2 := writeTopo("topology-admin.toml", fmt.Sprintf("[policy.firewall]\nadmin_sources = [%q]\n", signerIP+"/32"))
	load(topo2, "validator", ns["val"])
	expect("sig", v("22"), true, "SSH from admin_sources")
	expect("evil", v("22"), false, "SSH from anyone else once admin_sources is set")
	listing, err := runCmd(nil, "", l.ip, "netns", "exec", ns["val"], "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(listing, "table inet signerd_sentrylink"); n != 1 {
		t.Errorf("after a reload the validator has %d sentrylink tables:\n%s", n, listing)
	}
	if strings.Contains(listing, "ssh from anywhere") {
		t.Errorf("the reload kept the old SSH rule:\n%s", listing)
	}
}
