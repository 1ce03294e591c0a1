package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }

// TestKeysSoftHSM walks the migration of a real CometBFT key into SoftHSM
// through the CLI, and the key commands' refusals.
func TestKeysSoftHSM(t *testing.T) {
	tok := softhsmtest.New(t, "cli-keys")
	node := cometbftInit(t)
	keyFile := filepath.Join(node, "config/priv_validator_key.json")
	var pv struct {
		Address string `json:"address"`
	}
	data, _ := os.ReadFile(keyFile)
	if err := json.Unmarshal(data, &pv); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "keys", "import", "--key", tok.URI("consensus"), "--from", keyFile)
	if !strings.Contains(out, "address:  "+pv.Address) || !strings.Contains(out, "a test signature matches") {
		t.Errorf("keys import output:\n%s", out)
	}
	out = mustRun(t, "keys", "show", "--key", tok.URI("consensus"))
	if !strings.Contains(out, "address:  "+pv.Address) || !strings.Contains(out, `"type":"tendermint/PubKeyEd25519"`) {
		t.Errorf("keys show output:\n%s", out)
	}
	if strings.Contains(out, tok.PIN) {
		t.Errorf("keys show printed the PIN:\n%s", out)
	}

	// Importing onto an existing label is refused and changes nothing.
	code, _, errs := runCmd(t, "keys", "import", "--key", tok.URI("consensus"), "--from", keyFile)
	if code != 1 || !strings.Contains(errs, "never overwrites keys") {
		t.Errorf("second import: exit %d stderr %q", code, errs)
	}

	out = mustRun(t, "keys", "generate", "--key", tok.URI("fresh"))
	if !strings.Contains(out, "generated a new Ed25519 key") || strings.Contains(out, "address:  "+pv.Address) {
		t.Errorf("keys generate output:\n%s", out)
	}

	out = mustRun(t, "keys", "list", "--key", tok.URI(""), "--json")
	var listed []map[string]any
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	if len(listed) != 2 {
		t.Fatalf("keys list: %d keys, want 2:\n%s", len(listed), out)
	}
	var addrs []string
	for _, k := range listed {
		addrs = append(addrs, k["address"].(string))
		if !strings.Contains(k["uri"].(string), "object=") {
			t.Errorf("listed uri %q names no object", k["uri"])
		}
	}
	if !strings.Contains(strings.Join(addrs, ","), pv.Address) {
		t.Errorf("keys list addresses %v lack the imported %s", addrs, pv.Address)
	}
}

func TestKeysSoftHSMErrors(t *testing.T) {
	tok := softhsmtest.New(t, "cli-keyerr")
	mustRun(t, "keys", "generate", "--key", tok.URI("k"))

	wrongPIN := filepath.Join(t.TempDir(), "wrong.pin")
	if err := os.WriteFile(wrongPIN, []byte("not-the-pin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withPIN := func(uri, pinFile string) string {
		i := strings.Index(uri, "&pin-source=")
		return uri[:i] + "&pin-source=file:" + pinFile
	}
	worldReadable := filepath.Join(t.TempDir(), "open.pin")
	if err := os.WriteFile(worldReadable, []byte(tok.PIN), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"wrong pin", withPIN(tok.URI("k"), wrongPIN), "PIN"},
		{"world-readable pin file", withPIN(tok.URI("k"), worldReadable), "chmod 600"},
		{"missing object", tok.URI("nope"), "signerd keys list"},
		{"missing token", strings.Replace(tok.URI("k"), "token=cli-keyerr", "token=no-such-token", 1), "no-such-token"},
		{"unknown uri attribute", strings.Replace(tok.URI("k"), ";object=k", ";object=k;colour=blue", 1), "colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd(t, "keys", "show", "--key", tc.uri)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d stderr %q; want exit 1 and %q", code, errs, tc.want)
			}
			if strings.Contains(out+errs, tok.PIN) {
				t.Errorf("the PIN appears in the output")
			}
		})
	}
}
