package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signerd/signerd/sentrylink"
)

var updateSentry = flag.Bool("update-sentry", false, "rewrite cmd/signerd/testdata/sentry/*.golden")

const sentryTopo = "testdata/sentry/topology.toml"

// sentryCmd runs "signerd sentry args..." in-process.
func sentryCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runSentry(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func sentryGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "sentry", name+".golden")
	if *updateSentry {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/signerd -run %s -update-sentry)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs:\n%s", path, sentrylink.UnifiedDiff(path, want, []byte(got)))
	}
}

// copyConfig puts the stock config.toml in a temp folder with mode 0640.
func copyConfig(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("testdata/sentry/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, src, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSentryUsage(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		wantStderr []string
	}{
		{nil, 2, []string{"Usage: signerd sentry <command>", "plan", "verify"}},
		{[]string{"bogus"}, 2, []string{`signerd: error: unknown sentry command "bogus"`, "signerd: hint: run 'signerd sentry -h'"}},
		{[]string{"plan"}, 2, []string{"signerd: error: signerd sentry plan: --topology is required"}},
		{[]string{"apply", "--topology", sentryTopo, "--node", "validator"}, 2, []string{"--config-toml is required"}},
		{[]string{"firewall", "--topology", sentryTopo, "--node", "nope"}, 2, []string{`no node named "nope"`, `"validator", "sentry-1", "sentry-2"`}},
		{[]string{"plan", "--topology", sentryTopo, "extra"}, 2, []string{`unexpected argument "extra"`}},
		{[]string{"plan", "--topology", sentryTopo, "--bogus"}, 2, []string{"flag provided but not defined: -bogus"}},
		{[]string{"verify", "--topology", sentryTopo, "--timeout", "0s"}, 2, []string{"--timeout must be"}},
		{[]string{"plan", "--topology", "testdata/sentry/missing.toml"}, 1, []string{"signerd: error: cannot read topology", "signerd: hint: see 'signerd sentry plan -h'"}},
	}
	for _, tc := range tests {
		code, _, stderr := sentryCmd(t, tc.args...)
		if code != tc.code {
			t.Errorf("signerd sentry %v: exit %d, want %d\n%s", tc.args, code, tc.code, stderr)
		}
		for _, w := range tc.wantStderr {
			if !strings.Contains(stderr, w) {
				t.Errorf("signerd sentry %v: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
	}
	for _, sub := range []string{"plan", "apply", "firewall", "audit", "verify"} {
		code, _, stderr := sentryCmd(t, sub, "-h")
		if code != 0 || !strings.Contains(stderr, "Examples:") || !strings.Contains(stderr, "signerd sentry "+sub+" --topology") {
			t.Errorf("%s -h: exit %d, usage without examples:\n%s", sub, code, stderr)
		}
	}
}

func TestSentryBadTopologyNamesEveryProblem(t *testing.T) {
	src, err := os.ReadFile(sentryTopo)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(src), `node_id = "99887766554433221100ffeeddccbbaa99887766"`, `node_id = "xyz"`, 1)
	bad = strings.Replace(bad, `private_ip = "10.0.1.20"`, `private_ip = "signer"`, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.toml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := sentryCmd(t, "plan", "--topology", path)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{
		"signerd: error: " + path + `: sentry[2] "sentry-2" node_id: "xyz" has 3 characters`,
		"signerd: error: " + path + `: signer.private_ip: "signer" is not an IP address; fix:`,
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

func TestSentryPlanAndFirewallMatchLibrary(t *testing.T) {
	topo, err := sentrylink.LoadTopology(sentryTopo)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := sentrylink.WritePlansText(&want, topo, topo.Plans()); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := sentryCmd(t, "plan", "--topology", sentryTopo)
	if code != 0 || out != want.String() {
		t.Errorf("plan: exit %d, stderr %q; output differs from the library's", code, stderr)
	}
	code, out, _ = sentryCmd(t, "plan", "--topology", sentryTopo, "--node", "sentry-2", "--json")
	var doc struct {
		ChainID string `json:"chain_id"`
		Nodes   []struct {
			Name     string `json:"name"`
			Settings []struct {
				Key   string `json:"key"`
				Value any    `json:"value"`
			} `json:"settings"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("plan --json: exit %d, %v\n%s", code, err, out)
	}
	if len(doc.Nodes) != 1 || doc.Nodes[0].Name != "sentry-2" || doc.ChainID != "cosmoshub-4" {
		t.Errorf("plan --json --node sentry-2: %+v", doc)
	}
	for _, n := range topo.Nodes() {
		code, out, _ := sentryCmd(t, "firewall", "--topology", sentryTopo, "--node", n.Name)
		if code != 0 || out != topo.Firewall(n) {
			t.Errorf("firewall %s: exit %d or output differs from the library's", n.Name, code)
		}
	}
}

func TestSentryApply(t *testing.T) {
	cfg := copyConfig(t)
	orig, _ := os.ReadFile(cfg)
	dir := filepath.Dir(cfg)

	// Dry run: the diff, nothing written.
	code, out, stderr := sentryCmd(t, "apply", "--topology", sentryTopo, "--node", "validator", "--config-toml", cfg, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	sentryGolden(t, "apply-dry-run", strings.ReplaceAll(out, cfg, "CONFIG"))
	if now, _ := os.ReadFile(cfg); !bytes.Equal(now, orig) {
		t.Fatal("dry run changed the file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("dry run left files: %v", entries)
	}

	// Real run: summary, backup of the old bytes, same mode.
	code, out, stderr = sentryCmd(t, "apply", "--topology", sentryTopo, "--node", "validator", "--config-toml", cfg)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	backupRE := regexp.MustCompile(`backup: (\S+)`)
	m := backupRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no backup line:\n%s", out)
	}
	backup, _ := os.ReadFile(m[1])
	if !bytes.Equal(backup, orig) {
		t.Error("the backup does not hold the old file")
	}
	normal := strings.ReplaceAll(out, m[1], "BACKUP")
	sentryGolden(t, "apply", strings.ReplaceAll(normal, cfg, "CONFIG"))
	st, err := os.Stat(cfg)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode after apply = %v, %v; want 0640", st.Mode().Perm(), err)
	}

	// Second run: nothing to do, no new backup.
	code, out, _ = sentryCmd(t, "apply", "--topology", sentryTopo, "--node", "validator", "--config-toml", cfg)
	if code != 0 || !strings.Contains(out, "already matches the plan; nothing changed") {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("want the config and one backup, got %d entries", len(entries))
	}

	// The result audits clean apart from the advisory double-sign check.
	code, out, stderr = sentryCmd(t, "audit", "--topology", sentryTopo, "--node", "validator", "--config-toml", cfg)
	if code != 0 || !strings.Contains(out, "result: pass") {
		t.Errorf("audit after apply: exit %d\n%s%s", code, out, stderr)
	}
}

func TestSentryApplyErrors(t *testing.T) {
	code, _, stderr := sentryCmd(t, "apply", "--topology", sentryTopo, "--node", "validator", "--config-toml", filepath.Join(t.TempDir(), "nope.toml"))
	if code != 1 || !strings.Contains(stderr, "signerd: error: cannot open config") || !strings.Contains(stderr, "signerd: hint: point --config-toml") {
		t.Errorf("missing config: exit %d\n%s", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(bad, []byte("[p2p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = sentryCmd(t, "apply", "--topology", sentryTopo, "--node", "validator", "--config-toml", bad)
	if code != 1 || !strings.Contains(stderr, "not valid TOML") {
		t.Errorf("broken config: exit %d\n%s", code, stderr)
	}
	if now, _ := os.ReadFile(bad); string(now) != "[p2p\n" {
		t.Error("a refused apply changed the file")
	}
}

func TestSentryAudit(t *testing.T) {
	code, out, stderr := sentryCmd(t, "audit", "--topology", sentryTopo, "--node", "sentry-1", "--config-toml", "testdata/sentry/config.toml")
	if code != 1 {
		t.Fatalf("stock config: exit %d, want 1", code)
	}
	for _, w := range []string{"error   testdata/sentry/config.toml:265: [p2p] private_peer_ids: does not contain the validator's ID", "result: FAIL"} {
		if !strings.Contains(out, w) {
			t.Errorf("audit output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(stderr, "signerd: error: audit: ") || !strings.Contains(stderr, "signerd: hint: fix them") {
		t.Errorf("stderr: %s", stderr)
	}
	code, out, _ = sentryCmd(t, "audit", "--topology", sentryTopo, "--node", "sentry-1", "--config-toml", "testdata/sentry/config.toml", "--json")
	var r sentrylink.AuditReport
	if err := json.Unmarshal([]byte(out), &r); code != 1 || err != nil || len(r.Findings) == 0 {
		t.Errorf("audit --json: exit %d, %v", code, err)
	}
}

func TestSentryVerifyUnreachable(t *testing.T) {
	// Every RPC URL points at a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	src, err := os.ReadFile(sentryTopo)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		`rpc = "http://127.0.0.1:26657"`, `rpc = "http://`+dead+`"`,
		`rpc = "http://10.0.1.10:26657"`, `rpc = "http://`+dead+`"`,
		`rpc = "http://10.0.1.11:26657"`, `rpc = "http://`+dead+`"`,
		`node_key = "validator_node_key.json"`, `node_key = "`+mustAbs(t, "testdata/sentry/validator_node_key.json")+`"`,
	).Replace(string(src))
	path := filepath.Join(t.TempDir(), "topology.toml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := sentryCmd(t, "verify", "--topology", path, "--timeout", "2s")
	if code != 1 || !strings.Contains(out, `FAIL  validator "validator" is up`) || !strings.Contains(out, "unreachable") || !strings.Contains(stderr, "signerd: error: verify: 3 check(s) failed") {
		t.Errorf("verify: exit %d\n%s\n%s", code, out, stderr)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
