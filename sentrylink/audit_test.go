package sentrylink

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type auditVector struct {
	path, desc, node string
	wantSev          string // "" for none
	wantKey          string
	src              []byte
}

func readAuditVectors(t testing.TB) []auditVector {
	t.Helper()
	paths, err := filepath.Glob("testdata/audit/*.toml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no audit vectors: %v", err)
	}
	var out []auditVector
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v := auditVector{path: p, src: src}
		sc := bufio.NewScanner(bytes.NewReader(src))
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "# ") {
				break
			}
			k, val, _ := strings.Cut(strings.TrimPrefix(line, "# "), ": ")
			switch k {
			case "audit vector":
				v.desc = val
			case "node":
				v.node = val
			case "want":
				if val != "none" {
					v.wantSev, v.wantKey, _ = strings.Cut(val, " ")
				}
			}
		}
		if v.node == "" || v.desc == "" {
			t.Fatalf("%s: header needs '# audit vector:', '# node:' and '# want:' lines", p)
		}
		out = append(out, v)
	}
	return out
}

// TestAuditVectors runs audit on each config in testdata/audit: every bad
// config differs from a clean one in one way and must give exactly the one
// finding its header names; the clean ones give none.
func TestAuditVectors(t *testing.T) {
	topo := loadSample(t)
	for _, v := range readAuditVectors(t) {
		t.Run(strings.TrimSuffix(filepath.Base(v.path), ".toml"), func(t *testing.T) {
			n, err := topo.Node(v.node)
			if err != nil {
				t.Fatal(err)
			}
			r := topo.Plan(n).Audit(v.src, "config.toml")
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if v.wantSev == "" {
				if len(r.Findings) != 0 {
					t.Fatalf("%s: want no findings, got:\n%s", v.desc, text.String())
				}
				return
			}
			if len(r.Findings) != 1 {
				t.Fatalf("%s: want exactly one finding (%s %s), got %d:\n%s", v.desc, v.wantSev, v.wantKey, len(r.Findings), text.String())
			}
			f := r.Findings[0]
			if f.Severity.String() != v.wantSev || f.Key != v.wantKey {
				t.Fatalf("%s: got %s %s, want %s %s:\n%s", v.desc, f.Severity, f.Key, v.wantSev, v.wantKey, text.String())
			}
			if f.Problem == "" || f.Why == "" || f.Fix == "" {
				t.Errorf("finding lacks problem, why or fix: %+v", f)
			}
			if f.Key != "config.toml" && f.Key != "consensus.double_sign_check_height" && f.Line == 0 && !strings.Contains(f.Problem, "absent") {
				t.Errorf("finding for a key present in the file has no line: %+v", f)
			}
			if got, want := r.Failed(), v.wantSev == "error"; got != want {
				t.Errorf("Failed() = %v, want %v", got, want)
			}
		})
	}
}

// TestAuditStock audits CometBFT's untouched config.toml: for the validator
// the dangerous defaults are errors.
func TestAuditStock(t *testing.T) {
	topo := loadSample(t)
	src, err := os.ReadFile("testdata/cometbft-v0.38.26-default.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := topo.Plan(topo.Validator).Audit(src, "config.toml")
	want := map[string]Severity{
		"p2p.pex":              SeverityError,
		"priv_validator_laddr": SeverityError,
		"p2p.persistent_peers": SeverityWarning,
	}
	got := map[string]Severity{}
	for _, f := range r.Findings {
		got[f.Key] = f.Severity
	}
	for k, sev := range want {
		if got[k] != sev {
			t.Errorf("finding for %s = %v, want %v (all: %v)", k, got[k], sev, got)
		}
	}
	if !r.Failed() {
		t.Error("stock config passes the validator audit")
	}
	// The sentry's stock config lacks the validator in private_peer_ids.
	r = topo.Plan(topo.Sentries[0]).Audit(src, "config.toml")
	found := false
	for _, f := range r.Findings {
		found = found || (f.Key == "p2p.private_peer_ids" && f.Severity == SeverityError)
	}
	if !found {
		t.Errorf("stock sentry config: no private_peer_ids error")
	}
}

// TestAuditMissingKeys: an absent key reads as CometBFT's default, so a
// config without [p2p] pex is a validator with PEX on.
func TestAuditMissingKeys(t *testing.T) {
	topo := loadSample(t)
	r := topo.Plan(topo.Validator).Audit([]byte("moniker = \"v\"\n"), "config.toml")
	var pex *Finding
	for i := range r.Findings {
		if r.Findings[i].Key == "p2p.pex" {
			pex = &r.Findings[i]
		}
	}
	if pex == nil || pex.Severity != SeverityError || !strings.Contains(pex.Why, "default (true)") {
		t.Fatalf("absent pex: got %+v", pex)
	}
}

func FuzzAuditConfig(f *testing.F) {
	paths, _ := filepath.Glob("testdata/audit/*.toml")
	paths = append(paths, "testdata/cometbft-v0.38.26-default.toml", "testdata/config-messy.toml")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	topo := loadSample(f)
	plans := topo.Plans()[:2] // the validator and one sentry: both roles
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, p := range plans {
			r := p.Audit(src, "config.toml")
			for _, fd := range r.Findings {
				if fd.Key == "" || fd.Problem == "" {
					t.Fatalf("finding without key or problem: %+v", fd)
				}
			}
			// apply either refuses or produces a file that a second apply
			// leaves alone.
			res, err := p.ApplyTo(src)
			if err != nil {
				continue
			}
			again, err := p.ApplyTo(res.New)
			if err != nil {
				t.Fatalf("second apply failed: %v\ninput: %q\nfirst output: %q", err, src, res.New)
			}
			if again.Changed() {
				t.Fatalf("apply is not idempotent: %v\ninput: %q", again.Changes, src)
			}
		}
	})
}

// TestAuditBoundsFindings: a list with hundreds of bad entries gives a
// bounded report whose last finding counts the rest.
func TestAuditBoundsFindings(t *testing.T) {
	topo := loadSample(t)
	var b strings.Builder
	b.WriteString("[p2p]\nprivate_peer_ids = \"" + string(topo.Validator.ID))
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, ",bad%d", i)
	}
	b.WriteString("\"\n")
	r := topo.Plan(topo.Sentries[0]).Audit([]byte(b.String()), "config.toml")
	n := 0
	var last Finding
	for _, f := range r.Findings {
		if f.Key == "p2p.private_peer_ids" {
			n++
			last = f
		}
	}
	if n != maxFindingsPerKey+1 || !strings.Contains(last.Problem, "490 more findings") || last.Severity != SeverityError {
		t.Fatalf("%d findings for the key, last %+v", n, last)
	}
}
