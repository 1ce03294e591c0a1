package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const base = `
[[chain]]
id = "c1"
key = "file:key.json"
state_file = "state/c1.json"

[[validator]]
chain_id = "c1"
addr = "tcp://127.0.0.1:26659"
`

func TestIssueExample(t *testing.T) {
	cfg, err := Load("testdata/issue-example.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("testdata")
	if cfg.IdentityKey != filepath.Join(dir, "identity.json") {
		t.Errorf("identity_key = %q, want it resolved against the config folder", cfg.IdentityKey)
	}
	ch, ok := cfg.Chain("cosmoshub-4")
	if !ok {
		t.Fatal("chain cosmoshub-4 missing")
	}
	if ch.StateFile != filepath.Join(dir, "state/cosmoshub-4.json") {
		t.Errorf("state_file = %q", ch.StateFile)
	}
	if ch.MaxHeight != 0 || cfg.LogLevel != "info" || cfg.LogFormat != "text" {
		t.Errorf("defaults: max_height=%d log_level=%q log_format=%q", ch.MaxHeight, cfg.LogLevel, cfg.LogFormat)
	}
	if len(cfg.Validators) != 1 || cfg.Validators[0].Addr != "tcp://10.0.1.5:26659" {
		t.Errorf("validators = %+v", cfg.Validators)
	}
	if cfg.Path == "" || cfg.Dir != dir {
		t.Errorf("path=%q dir=%q", cfg.Path, cfg.Dir)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown top key", "identity_kye = \"x\"\n" + base, `unknown key "identity_kye" on line 1`},
		{"unknown chain key", strings.Replace(base, `id = "c1"`, "id = \"c1\"\nmax_hieght = 5", 1), `unknown key "chain.max_hieght"`},
		{"no chain", "[[validator]]\nchain_id = \"c1\"\naddr = \"tcp://127.0.0.1:1\"\n", "no [[chain]] table"},
		{"no validator", strings.Split(base, "[[validator]]")[0], "no [[validator]] table"},
		{"validator names unknown chain", strings.Replace(base, `chain_id = "c1"`, `chain_id = "c2"`, 1), `chain_id "c2" has no [[chain]] table`},
		{"duplicate chain", base + "[[chain]]\nid = \"c1\"\nkey = \"file:k\"\nstate_file = \"s2\"\n", "listed twice"},
		{"shared state file", base + "[[chain]]\nid = \"c2\"\nkey = \"file:k\"\nstate_file = \"state/c1.json\"\n", "also used by chain \"c1\""},
		{"missing key", strings.Replace(base, `key = "file:key.json"`, "", 1), "key is missing"},
		{"bad key scheme", strings.Replace(base, `file:key.json`, `key.json`, 1), "key:"},
		{"missing state", strings.Replace(base, `state_file = "state/c1.json"`, "", 1), "state_file is missing"},
		{"negative max height", strings.Replace(base, `id = "c1"`, "id = \"c1\"\nmax_height = -1", 1), "max_height -1 is negative"},
		{"bad addr scheme", strings.Replace(base, "tcp://127.0.0.1:26659", "http://127.0.0.1:26659", 1), "want tcp://host:port or unix:///path"},
		{"bad port", strings.Replace(base, "26659", "99999", 1), "not a number from 1 to 65535"},
		{"relative unix", strings.Replace(base, "tcp://127.0.0.1:26659", "unix://run/x.sock", 1), "absolute socket path"},
		{"bad log level", "log_level = \"loud\"\n" + base, `log_level "loud"`},
		{"long chain id", strings.ReplaceAll(base, `"c1"`, `"`+strings.Repeat("x", 51)+`"`), "longer than 50"},
		{"chain id with space", strings.ReplaceAll(base, `"c1"`, `"c 1"`), "space or control"},
		{"wrong type", strings.Replace(base, `id = "c1"`, "id = \"c1\"\nmax_height = \"ten\"", 1), "max_height"},
		{"syntax", "[[chain]\n", "line 1"},
		{"not utf8", "\xff\xfe", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "/etc/signerd")
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestAbsolutePathsKept(t *testing.T) {
	doc := strings.Replace(base, `"state/c1.json"`, `"/var/lib/signerd/c1.json"`, 1)
	doc = "identity_key = \"/etc/signerd/id.json\"\n" + doc
	cfg, err := Parse([]byte(doc), "/somewhere/else")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdentityKey != "/etc/signerd/id.json" || cfg.Chains[0].StateFile != "/var/lib/signerd/c1.json" {
		t.Errorf("absolute paths changed: %q %q", cfg.IdentityKey, cfg.Chains[0].StateFile)
	}
}

func TestSeveralValidatorsOneChain(t *testing.T) {
	doc := base + "[[validator]]\nchain_id = \"c1\"\naddr = \"unix:///run/node2/privval.sock\"\n"
	cfg, err := Parse([]byte(doc), "/etc/signerd")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Validators) != 2 {
		t.Fatalf("validators = %d, want 2", len(cfg.Validators))
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "signerd init") {
		t.Fatalf("err = %v, want a hint naming signerd init", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(p, make([]byte, MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/issue-example.toml")
	f.Add(seed)
	f.Add([]byte(base))
	f.Add([]byte("[[chain]]\nid=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "/etc/signerd")
		if err != nil {
			return
		}
		// A valid config is internally consistent.
		for _, v := range cfg.Validators {
			if _, ok := cfg.Chain(v.ChainID); !ok {
				t.Fatalf("validator names chain %q that is not configured", v.ChainID)
			}
			if err := ValidateAddr(v.Addr); err != nil {
				t.Fatalf("accepted bad addr: %v", err)
			}
		}
		for _, c := range cfg.Chains {
			if !filepath.IsAbs(c.StateFile) || c.MaxHeight < 0 {
				t.Fatalf("accepted chain %+v", c)
			}
		}
	})
}
