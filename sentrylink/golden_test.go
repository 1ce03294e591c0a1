package sentrylink

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/sentrylink/internal/tomlpatch"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./sentrylink -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking the change):\n%s",
			path, UnifiedDiff(path, want, got))
	}
}

var goldenTopologies = []struct{ name, path string }{
	{"sample", sampleTopology},
	{"policy", "testdata/topology/policy.toml"},
}

func TestPlanGolden(t *testing.T) {
	for _, gt := range goldenTopologies {
		topo, err := LoadTopology(gt.path)
		if err != nil {
			t.Fatal(err)
		}
		var txt, js bytes.Buffer
		if err := WritePlansText(&txt, topo, topo.Plans()); err != nil {
			t.Fatal(err)
		}
		if err := WritePlansJSON(&js, topo, topo.Plans()); err != nil {
			t.Fatal(err)
		}
		golden(t, "plan-"+gt.name+".txt", txt.Bytes())
		golden(t, "plan-"+gt.name+".json", js.Bytes())
	}
}

func TestFirewallGolden(t *testing.T) {
	for _, gt := range goldenTopologies {
		topo, err := LoadTopology(gt.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range topo.Nodes() {
			golden(t, "firewall-"+gt.name+"-"+n.Name+".nft", []byte(topo.Firewall(n)))
		}
	}
}

var applyInputs = []string{"cometbft-v0.38.26-default.toml", "config-messy.toml"}

// TestApplyGolden applies each node's plan to CometBFT's stock config.toml
// and to a hand-edited one, and checks the result, the change list and the
// dry-run diff against golden files.
func TestApplyGolden(t *testing.T) {
	topo := loadSample(t)
	for _, in := range applyInputs {
		src, err := os.ReadFile(filepath.Join("testdata", in))
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(in, ".toml")
		for _, p := range topo.Plans() {
			res, err := p.ApplyTo(src)
			if err != nil {
				t.Fatalf("%s on %s: %v", p.Name, in, err)
			}
			var changes strings.Builder
			for _, c := range res.Changes {
				changes.WriteString(c.String() + "\n")
			}
			prefix := "apply-" + base + "-" + p.Name
			golden(t, prefix+".toml", res.New)
			golden(t, prefix+".changes", []byte(changes.String()))
			golden(t, prefix+".diff", []byte(UnifiedDiff("config.toml", res.Old, res.New)))
		}
	}
}

// stripOwned removes every entry the plan owns (and their kebab-case
// spellings) so what remains can be compared byte for byte.
func stripOwned(t *testing.T, p *NodePlan, src []byte) []byte {
	t.Helper()
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]bool{}
	for _, s := range p.Settings {
		owned[s.Key.String()] = true
		owned[strings.ReplaceAll(s.Key.String(), "_", "-")] = true
	}
	ed := doc.NewEditor()
	for _, e := range doc.All() {
		if owned[strings.Join(e.FullKey(), ".")] {
			ed.Remove(e)
		}
	}
	out, err := ed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func applyInputsWithCRLF(t *testing.T) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, in := range applyInputs {
		src, err := os.ReadFile(filepath.Join("testdata", in))
		if err != nil {
			t.Fatal(err)
		}
		m[in] = src
		m[in+" (CRLF)"] = bytes.ReplaceAll(src, []byte("\n"), []byte("\r\n"))
	}
	return m
}

// TestApplyPreservesUnownedBytes: outside the owned keys the file is byte for
// byte the same, line endings included.
func TestApplyPreservesUnownedBytes(t *testing.T) {
	for _, gt := range goldenTopologies {
		topo, err := LoadTopology(gt.path)
		if err != nil {
			t.Fatal(err)
		}
		for name, src := range applyInputsWithCRLF(t) {
			for _, p := range topo.Plans() {
				res, err := p.ApplyTo(src)
				if err != nil {
					t.Fatalf("%s/%s: %v", name, p.Name, err)
				}
				if !res.Changed() {
					t.Fatalf("%s/%s: nothing changed", name, p.Name)
				}
				if a, b := stripOwned(t, p, src), stripOwned(t, p, res.New); !bytes.Equal(a, b) {
					t.Errorf("%s/%s: bytes outside the owned keys changed:\n%s", name, p.Name, UnifiedDiff(name, a, b))
				}
				if strings.HasSuffix(name, "(CRLF)") && bytes.Count(res.New, []byte("\n")) != bytes.Count(res.New, []byte("\r\n")) {
					t.Errorf("%s/%s: a bare LF was written into a CRLF file", name, p.Name)
				}
			}
		}
	}
}

// TestApplyIdempotent: applying twice changes nothing the second time, and
// the result passes audit without errors or warnings.
func TestApplyIdempotent(t *testing.T) {
	for _, gt := range goldenTopologies {
		topo, err := LoadTopology(gt.path)
		if err != nil {
			t.Fatal(err)
		}
		for name, src := range applyInputsWithCRLF(t) {
			for _, p := range topo.Plans() {
				first, err := p.ApplyTo(src)
				if err != nil {
					t.Fatal(err)
				}
				second, err := p.ApplyTo(first.New)
				if err != nil {
					t.Fatal(err)
				}
				if second.Changed() || !bytes.Equal(second.New, first.New) {
					t.Errorf("%s/%s: second apply changed %v", name, p.Name, second.Changes)
				}
				r := p.Audit(first.New, name)
				for _, f := range r.Findings {
					if f.Severity >= SeverityWarning && !notOwned(p, f.Key) {
						t.Errorf("%s/%s: after apply, audit finds %s %s: %s", name, p.Name, f.Severity, f.Key, f.Problem)
					}
				}
			}
		}
	}
}

// notOwned reports whether an audit finding concerns a key the plan does
// not own, which apply therefore leaves as it was: the messy config's unknown
// key, and its kebab-case private-peer-ids on a validator (whose plan does
// not include private_peer_ids).
func notOwned(p *NodePlan, key string) bool {
	if key == "p2p.unknown_key" {
		return true
	}
	return p.Role == RoleValidator && key == "p2p.private-peer-ids"
}

func TestApplyRefusals(t *testing.T) {
	topo := loadSample(t)
	p := topo.Plan(topo.Validator)
	for _, tc := range []struct{ src, want string }{
		{"[p2p\n", "not valid TOML"},
		{"[p2p]\npex = true\npex = false\n", "not valid TOML"},
		{"p2p = { pex = true }\n", "inline table"},
	} {
		if _, err := p.ApplyTo([]byte(tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ApplyTo(%q) error = %v, want %q", tc.src, err, tc.want)
		}
	}
}
