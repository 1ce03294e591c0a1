package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/signer"
)

// Deadlines for the chain to reach a height. Blocks come every ~50-100 ms, so
// these are generous bounds, not expectations.
const (
	firstBlocksTimeout = 60 * time.Second
	moreBlocksTimeout  = 45 * time.Second
	// A follower catches up through consensus gossip only (never block
	// sync: its key is the only validator), at 2-3 blocks/s when idle.
	catchUpTimeout = 90 * time.Second
)

// TestTCPValidatorRestartAndSignerKill is the main end-to-end run: one
// validator over tcp:// (SecretConnection), its key in SoftHSM. The chain
// makes 30 blocks, survives a validator restart (signerd reconnects by
// itself) and a kill -9 of signerd, and the signer's state keeps up.
func TestTCPValidatorRestartAndSignerKill(t *testing.T) {
	c := setupChain(t, chainOpts{})
	n := c.nodes[0]
	t0 := time.Now()
	c.startAll(t)
	h := n.waitHeight(t, 30, firstBlocksTimeout)
	t.Logf("height %d after %s", h, since(t0))

	// Validator restart: signerd is not touched and must redial by itself.
	signerPID := c.signer.pid()
	n.proc.stop(t, syscall.SIGTERM)
	n.start(t)
	t1 := time.Now()
	h = n.waitHeight(t, h+15, moreBlocksTimeout)
	if !c.signer.running() || c.signer.pid() != signerPID {
		t.Fatalf("signerd did not survive the validator restart")
	}
	t.Logf("validator restarted: height %d after %s", h, since(t1))

	// Signer crash: kill -9, start again; the node waits for it.
	c.signer.stop(t, syscall.SIGKILL)
	c.startSigner(t)
	t2 := time.Now()
	h = n.waitHeight(t, h+15, moreBlocksTimeout)
	t.Logf("signerd killed and restarted: height %d after %s", h, since(t2))

	// A restarted node may ask again for a step it had already moved past
	// (e.g. its proposal after signerd signed its prevote): FilePV and
	// signerd refuse that as a step or round regression. Nothing else.
	c.finish(t, mustHeight(t, n), signer.RefusalStepRegression, signer.RefusalRoundRegression)
}

// TestUnixSocketWithVoteExtensions is a shorter run over unix://, with vote
// extensions enabled so that signerd signs extensions for a real node.
func TestUnixSocketWithVoteExtensions(t *testing.T) {
	c := setupChain(t, chainOpts{unix: true, voteExtensions: true})
	n := c.nodes[0]
	t0 := time.Now()
	c.startAll(t)
	h := n.waitHeight(t, 20, firstBlocksTimeout)
	t.Logf("height %d after %s", h, since(t0))
	if s := c.finish(t, mustHeight(t, n)); s.extensions == 0 {
		t.Errorf("vote extensions are enabled but signerd signed none")
	}
}

// TestTwoNodesOneSigner runs two peered nodes of one chain, both acting as the
// one validator and both dialed by one signerd. The state is shared, so the key
// never signs twice: whichever node asks first for a height/round/step gets the
// signature, the other one is refused (height regression) and follows the
// chain through its peer. Blocks keep coming, and the lagging node catches up
// after a restart.
func TestTwoNodesOneSigner(t *testing.T) {
	// The follower gets blocks through consensus gossip only (a node whose
	// key is the only validator never block-syncs): with a 50 ms
	// timeout_commit the leader runs away from it, 300 ms keeps the gap to
	// tens of blocks. A follower refused its proposal waits timeout_propose
	// for the leader's: shorten it from 3 s.
	tSetup := time.Now()
	c := setupChain(t, chainOpts{nodes: 2, timeoutCommit: "300ms",
		nodeConfig: map[string]string{"consensus.timeout_propose": quote("500ms")}})
	t0 := time.Now()
	t.Logf("set up in %s", since(tSetup))
	c.startAll(t)
	c.nodes[0].waitHeight(t, 10, firstBlocksTimeout)
	c.nodes[1].waitHeight(t, 10, firstBlocksTimeout)
	connected := strings.Join(grepLines(t, c.signerLog, `msg="connected to validator"`), "\n")
	for _, n := range c.nodes {
		if !strings.Contains(connected, "validator="+n.privvalAddr) {
			t.Fatalf("signerd never connected to %s at %s", n.name, n.privvalAddr)
		}
	}
	lead, lag := c.nodes[0], c.nodes[1]
	hLead, hLag := mustHeight(t, lead), mustHeight(t, lag)
	if hLag > hLead {
		lead, lag, hLead, hLag = lag, lead, hLag, hLead
	}
	t.Logf("after %s: %s leads at %d, %s at %d", since(t0), lead.name, hLead, lag.name, hLag)

	// Blocks keep coming, on both.
	hLead = lead.waitHeight(t, hLead+10, moreBlocksTimeout)
	hLag = lag.waitHeight(t, hLead, moreBlocksTimeout)

	// The lagging node restarts, signerd redials it, and it catches up with
	// the height the chain had when it stopped, while the chain goes on.
	t1 := time.Now()
	lag.proc.stop(t, syscall.SIGTERM)
	t.Logf("%s stopped in %s", lag.name, since(t1))
	target := mustHeight(t, lead)
	lag.start(t)
	t1 = time.Now()
	hLag = lag.waitHeight(t, target, catchUpTimeout)
	hLead = lead.waitHeight(t, target+5, moreBlocksTimeout)
	t.Logf("%s restarted and caught up to %d in %s; %s at %d", lag.name, hLag, since(t1), lead.name, hLead)

	last := max(mustHeight(t, lead), mustHeight(t, lag))
	// Whichever node asks first for a height/round/step wins; the other is
	// refused: regressions, and conflicting data when the two nodes ask to
	// sign different things at one step (e.g. a nil and a block prevote).
	s := c.finish(t, last, signer.RefusalConflict, signer.RefusalHeightRegression,
		signer.RefusalRoundRegression, signer.RefusalStepRegression)
	// The follower asks for heights the leader's requests already moved the
	// one shared state past: refusals show both go through the same state.
	if s.refusals == 0 {
		t.Errorf("no refusal with two nodes signing through one state: is the state shared?")
	}
}

func mustHeight(t *testing.T, n *node) int64 {
	t.Helper()
	h, err := n.height()
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return h
}

// TestStartRefusesBadState checks that `signerd start` refuses to run with a
// missing, empty or corrupt state file, says which file and how to fix it,
// and never creates or rewrites the file. No node or token is needed: the
// state is checked before anything else is opened.
func TestStartRefusesBadState(t *testing.T) {
	bin := signerdBin(t)
	for _, tc := range []struct {
		name    string
		content *string // nil: no file
	}{
		{"missing", nil},
		{"empty", ptr("")},
		{"corrupt", ptr(strings.Repeat("not a state file\n", 600))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "signer")
			mustRun(t, nil, bin, "init", "--home", home)
			keyFile := filepath.Join(home, "priv_validator_key.json")
			writeKeyFile(t, keyFile)
			state := filepath.Join(home, "state", "test-chain.json")
			cfg := filepath.Join(home, "signerd.toml")
			conf := `identity_key = "identity.json"
[[chain]]
id = "test-chain"
key = "file:priv_validator_key.json"
state_file = "state/test-chain.json"
[[validator]]
chain_id = "test-chain"
addr = "tcp://127.0.0.1:1"
`
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.content != nil {
				if err := os.WriteFile(state, []byte(*tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			_, stderr, code := run(t, nil, bin, "start", "--config", cfg)
			if code <= 0 {
				t.Fatalf("signerd start exit %d, want a non-zero exit\nstderr:\n%s", code, stderr)
			}
			errLine, hints := "", ""
			for _, l := range strings.Split(stderr, "\n") {
				switch {
				case strings.HasPrefix(l, "signerd: error: "):
					errLine = l
				case strings.HasPrefix(l, "signerd: hint: "):
					hints += l + "\n"
				}
			}
			if !strings.Contains(errLine, state) {
				t.Errorf("error line does not name the state file %s:\n%s", state, stderr)
			}
			if !strings.Contains(hints, "signerd state import") {
				t.Errorf("no hint naming `signerd state import`:\n%s", stderr)
			}

			got, err := os.ReadFile(state)
			switch {
			case tc.content == nil && !os.IsNotExist(err):
				t.Errorf("signerd start created %s (err %v)", state, err)
			case tc.content != nil && (err != nil || string(got) != *tc.content):
				t.Errorf("signerd start changed %s (err %v, %d bytes)", state, err, len(got))
			}
			// Nothing else appears beside it but statefile's lock file
			// (flock on state.lock, kept on purpose).
			entries, err := os.ReadDir(filepath.Dir(state))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != filepath.Base(state) && e.Name() != filepath.Base(state)+".lock" {
					t.Errorf("signerd start left %s in the state folder", e.Name())
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// writeKeyFile writes a fresh CometBFT priv_validator_key.json.
func writeKeyFile(t *testing.T, path string) {
	t.Helper()
	pub, priv := newEd25519(t)
	doc := map[string]any{
		"address":  address(pub),
		"pub_key":  map[string]string{"type": "tendermint/PubKeyEd25519", "value": b64(pub)},
		"priv_key": map[string]string{"type": "tendermint/PrivKeyEd25519", "value": b64(priv)},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newEd25519(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// address is CometBFT's validator address of an Ed25519 key: the first 20
// bytes of SHA-256 of the public key, upper-case hex.
func address(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return strings.ToUpper(hex.EncodeToString(sum[:20]))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
