package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/config"
	"github.com/signerd/signerd/internal/testenv"
	"github.com/signerd/signerd/statefile"
)

// runCmd runs signerd in-process and returns its exit status and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("signerd %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// cometbftInit makes a CometBFT home with a real priv_validator_key.json and
// priv_validator_state.json.
func cometbftInit(t *testing.T) string {
	t.Helper()
	bin := testenv.CometBFT(t)
	home := t.TempDir()
	if out, err := exec.Command(bin, "init", "--home", home).CombinedOutput(); err != nil {
		t.Fatalf("cometbft init: %v\n%s", err, out)
	}
	return home
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		code    int
		wantErr string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"keys"}, 2, "missing subcommand"},
		{[]string{"keys", "show"}, 2, "--key is required"},
		{[]string{"keys", "import", "--key", "file:x.json", "--from", "y"}, 2, "must be a pkcs11: URI"},
		{[]string{"state", "show"}, 2, "--config is required"},
		{[]string{"state", "init", "--config", "c", "--chain", "x"}, 2, "--height is required"},
		{[]string{"start", "--config", "c", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"init", "--nope"}, 2, "flag provided but not defined"},
	} {
		code, _, errs := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.wantErr) {
			t.Errorf("signerd %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.wantErr)
		}
	}
}

func TestVersion(t *testing.T) {
	out := mustRun(t, "version")
	if !strings.HasPrefix(out, "signerd ") || !strings.Contains(out, "privval") {
		t.Errorf("version output %q", out)
	}
}

func TestInitWritesValidConfigAndRefusesOverwrite(t *testing.T) {
	home := filepath.Join(t.TempDir(), "signerd")
	out := mustRun(t, "init", "--home", home)
	if !strings.Contains(out, "peer id") {
		t.Errorf("init output lacks the identity's peer id: %q", out)
	}
	cfg, err := config.Load(filepath.Join(home, "signerd.toml"))
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if cfg.IdentityKey != filepath.Join(home, "identity.json") {
		t.Errorf("identity_key = %q", cfg.IdentityKey)
	}
	st, err := os.Stat(filepath.Join(home, "identity.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity.json: %v mode %v, want 0600", err, st.Mode())
	}
	before, _ := os.ReadFile(filepath.Join(home, "signerd.toml"))
	code, _, errs := runCmd(t, "init", "--home", home)
	if code == 0 || !strings.Contains(errs, "already exists") {
		t.Fatalf("second init: exit %d stderr %q", code, errs)
	}
	after, _ := os.ReadFile(filepath.Join(home, "signerd.toml"))
	if !bytes.Equal(before, after) {
		t.Error("second init changed the config")
	}
}

// writeConfig writes a config for one chain with a file: key.
func writeConfig(t *testing.T, dir, chainID, keyRef string) string {
	t.Helper()
	p := filepath.Join(dir, "signerd.toml")
	doc := `identity_key = "identity.json"
[[chain]]
id = "` + chainID + `"
key = "` + keyRef + `"
state_file = "state/` + chainID + `.json"
[[validator]]
chain_id = "` + chainID + `"
addr = "tcp://127.0.0.1:1"
`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeysShowFileKey(t *testing.T) {
	node := cometbftInit(t)
	keyFile := filepath.Join(node, "config/priv_validator_key.json")
	var pv struct {
		Address string          `json:"address"`
		PubKey  json.RawMessage `json:"pub_key"`
	}
	data, _ := os.ReadFile(keyFile)
	if err := json.Unmarshal(data, &pv); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "keys", "show", "--key", "file:"+keyFile, "--json")
	var got struct {
		Address string          `json:"address"`
		PubKey  json.RawMessage `json:"pub_key"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("keys show --json: %v\n%s", err, out)
	}
	if got.Address != pv.Address {
		t.Errorf("address %s, key file says %s", got.Address, pv.Address)
	}
	if !jsonEqual(t, got.PubKey, pv.PubKey) {
		t.Errorf("pub_key %s, key file says %s", got.PubKey, pv.PubKey)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestStateImportShowExport(t *testing.T) {
	node := cometbftInit(t)
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, "c1", "file:"+filepath.Join(node, "config/priv_validator_key.json"))

	// A FilePV state with a signature, as a validator leaves it.
	vote := &cmtproto.Vote{
		Type: cmtproto.PrecommitType, Height: 1234, Round: 1,
		BlockID: cmtproto.BlockID{Hash: bytes.Repeat([]byte{1}, 32),
			PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{2}, 32)}},
		Timestamp: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
	}
	signBytes := types.VoteSignBytes("c1", vote)
	pvState := `{"height":"1234","round":1,"step":3,"signature":"` +
		strings.Repeat("A", 86) + `==","signbytes":"` + strings.ToUpper(hex.EncodeToString(signBytes)) + `"}`
	src := filepath.Join(dir, "priv_validator_state.json")
	if err := os.WriteFile(src, []byte(pvState), 0o600); err != nil {
		t.Fatal(err)
	}
	// Missing state: show names the fix.
	code, out, errs := runCmd(t, "state", "show", "--config", cfgPath)
	if code == 0 || !strings.Contains(out+errs, "signerd state import") {
		t.Fatalf("show on missing state: exit %d\n%s%s", code, out, errs)
	}
	mustRun(t, "state", "import", "--config", cfgPath, "--chain", "c1", "--from", src)
	out = mustRun(t, "state", "show", "--config", cfgPath, "--chain", "c1")
	if !strings.Contains(out, "height 1234, round 1, step precommit") {
		t.Errorf("state show: %q", out)
	}
	exported := mustRun(t, "state", "export", "--config", cfgPath, "--chain", "c1")
	rec, err := statefile.ParseFilePV([]byte(exported))
	if err != nil {
		t.Fatalf("export is not a FilePV state: %v\n%s", err, exported)
	}
	if rec.Height != 1234 || rec.Round != 1 || rec.Step != statefile.StepPrecommit || !bytes.Equal(rec.SignBytes, signBytes) {
		t.Errorf("exported %+v", rec)
	}

	// A second import is refused without --force, and never goes backwards.
	code, _, errs = runCmd(t, "state", "import", "--config", cfgPath, "--chain", "c1", "--from", src)
	if code == 0 || !strings.Contains(errs, "already exists") {
		t.Errorf("re-import without --force: exit %d %q", code, errs)
	}
	older := filepath.Join(dir, "older.json")
	os.WriteFile(older, []byte(`{"height":"1000","round":0,"step":0}`), 0o600)
	code, _, errs = runCmd(t, "state", "import", "--config", cfgPath, "--chain", "c1", "--from", older, "--force")
	if code == 0 || !strings.Contains(errs, "older") {
		t.Errorf("import of an older state with --force: exit %d %q", code, errs)
	}
	newer := filepath.Join(dir, "newer.json")
	os.WriteFile(newer, []byte(`{"height":"2000","round":0,"step":0}`), 0o600)
	mustRun(t, "state", "import", "--config", cfgPath, "--chain", "c1", "--from", newer, "--force")
	out = mustRun(t, "state", "show", "--config", cfgPath, "--json")
	var shown []map[string]any
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown) != 1 || shown[0]["height"] != "2000" {
		t.Errorf("state show --json after forced import: %v %q", err, out)
	}
}

func TestStartRefusesMissingState(t *testing.T) {
	node := cometbftInit(t)
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, "c1", "file:"+filepath.Join(node, "config/priv_validator_key.json"))
	code, _, errs := runCmd(t, "start", "--config", cfgPath)
	if code != 1 {
		t.Fatalf("start without state: exit %d, want 1\n%s", code, errs)
	}
	stateFile := filepath.Join(dir, "state/c1.json")
	if !strings.Contains(errs, stateFile) || !strings.Contains(errs, "signerd state import") {
		t.Errorf("error does not name the file and the fix:\n%s", errs)
	}
	if _, err := os.Stat(stateFile); !os.IsNotExist(err) {
		t.Errorf("start created a state file: %v", err)
	}
}

func TestStateInit(t *testing.T) {
	node := cometbftInit(t)
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, "c1", "file:"+filepath.Join(node, "config/priv_validator_key.json"))
	mustRun(t, "state", "init", "--config", cfgPath, "--chain", "c1", "--height", "50")
	out := mustRun(t, "state", "show", "--config", cfgPath)
	if !strings.Contains(out, "height 50, round 0, step none") {
		t.Errorf("state show after init: %q", out)
	}
	code, _, errs := runCmd(t, "state", "init", "--config", cfgPath, "--chain", "nope", "--height", "1")
	if code == 0 || !strings.Contains(errs, `chain "nope" is not in`) {
		t.Errorf("init of an unknown chain: exit %d %q", code, errs)
	}
}

// TestStartLoadsTornState: a state file with one torn slot (what a crash in
// the middle of a write leaves) starts, from the intact slot, with a warning.
func TestStartLoadsTornState(t *testing.T) {
	node := cometbftInit(t)
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, "c1", "file:"+filepath.Join(node, "config/priv_validator_key.json"))
	mustRun(t, "state", "init", "--config", cfgPath, "--chain", "c1", "--height", "7")
	stateFile := filepath.Join(dir, "state/c1.json")
	info, err := statefile.Read(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(stateFile)
	other := 1 - info.Slot
	data[other*statefile.SlotSize+20] ^= 0xff
	if err := os.WriteFile(stateFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start sets everything up, then stops at once
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"start", "--config", cfgPath}, &out, &errb); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, errb.String())
	}
	for _, want := range []string{"interrupted by a crash", "torn:", `last_signed=7/0/none`, `msg=summary`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, errb.String())
		}
	}
}
