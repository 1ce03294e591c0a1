package signer

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/statefile"
)

const testChainID = "signer-test-chain"

// stamp is the timestamp of test votes and proposals.
var stamp = time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)

// testKey is a deterministic software Ed25519 key named name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("signerd test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// newState creates a fresh state file for chainID in a temp dir and opens it.
func newState(t testing.TB, chainID string) *statefile.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), chainID+".state")
	if err := statefile.Create(path, chainID, statefile.Record{}, false); err != nil {
		t.Fatalf("creating state: %v", err)
	}
	f, err := statefile.Open(path, chainID)
	if err != nil {
		t.Fatalf("opening state: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

type testChainOpts struct {
	chainID   string
	key       crypto.Signer
	maxHeight int64
	log       *slog.Logger
}

// newTestChain returns a chain with a software key and a fresh state file.
func newTestChain(t testing.TB, mods ...func(*testChainOpts)) *Chain {
	t.Helper()
	o := testChainOpts{chainID: testChainID, key: testKey("consensus")}
	for _, m := range mods {
		m(&o)
	}
	c, err := NewChain(ChainConfig{
		ChainID: o.chainID, Key: o.key, State: newState(t, o.chainID), MaxHeight: o.maxHeight, Logger: o.log,
	})
	if err != nil {
		t.Fatalf("NewChain: %v", err)
	}
	return c
}

// testLogger returns a logger that prints to stderr when SIGNER_TEST_LOG=1
// and discards otherwise.
func testLogger() *slog.Logger {
	if os.Getenv("SIGNER_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testLoggerTee logs into rec and, with SIGNER_TEST_LOG=1, to stderr too.
func testLoggerTee(rec *logRecorder) *slog.Logger {
	return slog.New(teeHandler{rec, testLogger().Handler()})
}

type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	_ = h.a.Handle(ctx, r.Clone())
	if h.b.Enabled(ctx, r.Level) {
		return h.b.Handle(ctx, r)
	}
	return nil
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{h.a.WithGroup(g), h.b.WithGroup(g)}
}

// logRecorder is a slog.Handler that keeps every record for assertions.
type logRecorder struct {
	mu      *sync.Mutex
	records *[]logEntry
	attrs   []slog.Attr
}

type logEntry struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, records: &[]logEntry{}}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	e := logEntry{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		e.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		e.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, e)
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &n
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

func (h *logRecorder) entries() []logEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logEntry(nil), *h.records...)
}

// find returns the entries whose message contains msg.
func (h *logRecorder) find(msg string) []logEntry {
	var out []logEntry
	for _, e := range h.entries() {
		if strings.Contains(e.Msg, msg) {
			out = append(out, e)
		}
	}
	return out
}

// node is CometBFT's own validator side of the privval protocol: a
// SignerListenerEndpoint and a SignerClient, as a node runs them.
type node struct {
	endpoint *privval.SignerListenerEndpoint
	client   *privval.SignerClient
	addr     string // the signer's ValidatorConfig.Addr for this node
}

// startTCPNode listens on hostport ("127.0.0.1:0" for any port) with
// SecretConnection, as a node with priv_validator_laddr = tcp://... does.
func startTCPNode(t testing.TB, hostport, chainID string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	tl := privval.NewTCPListener(ln, cmted25519.GenPrivKey())
	return startNode(t, tl, "tcp://"+ln.Addr().String(), chainID)
}

// startUnixNode listens on a unix socket, as a node with
// priv_validator_laddr = unix://... does.
func startUnixNode(t testing.TB, path, chainID string) *node {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return startNode(t, privval.NewUnixListener(ln), "unix://"+path, chainID)
}

func startNode(t testing.TB, ln net.Listener, addr, chainID string) *node {
	t.Helper()
	ep := privval.NewSignerListenerEndpoint(cmtlog.NewNopLogger(), ln)
	client, err := privval.NewSignerClient(ep, chainID)
	if err != nil {
		t.Fatalf("NewSignerClient: %v", err)
	}
	n := &node{endpoint: ep, client: client, addr: addr}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	if n.endpoint.IsRunning() {
		_ = n.endpoint.Stop()
	}
}

// waitConnected blocks until the signer has connected (bounded).
func (n *node) waitConnected(t testing.TB) {
	t.Helper()
	if err := n.client.WaitForConnection(10 * time.Second); err != nil {
		t.Fatalf("signer did not connect to %s: %v", n.addr, err)
	}
}

// runSigner runs RunValidator towards addr for chain until the test ends
// (or the returned stop is called) and checks that it returns ctx.Err().
func runSigner(t testing.TB, addr string, chain *Chain, mods ...func(*ValidatorConfig)) (stop func()) {
	t.Helper()
	cfg := ValidatorConfig{Addr: addr, Identity: testKey("identity"), Logger: testLogger()}
	for _, m := range mods {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunValidator(ctx, cfg, chain) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("RunValidator returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("RunValidator did not return within 10 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// blockID is a complete block id derived from name.
func blockID(name string) cmtproto.BlockID {
	h := sha256.Sum256([]byte("block " + name))
	p := sha256.Sum256([]byte("parts " + name))
	return cmtproto.BlockID{Hash: h[:], PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: p[:]}}
}

// nilBlock is the block id of a nil vote.
var nilBlock = cmtproto.BlockID{}

func newVote(typ cmtproto.SignedMsgType, height int64, round int32, bid cmtproto.BlockID) *cmtproto.Vote {
	return &cmtproto.Vote{
		Type: typ, Height: height, Round: round, BlockID: bid, Timestamp: stamp,
		ValidatorAddress: cmted25519.PubKey(testKey("consensus").Public().(ed25519.PublicKey)).Address(),
		ValidatorIndex:   3,
	}
}

func newProposal(height int64, round, polRound int32, bid cmtproto.BlockID) *cmtproto.Proposal {
	return &cmtproto.Proposal{
		Type: cmtproto.ProposalType, Height: height, Round: round, PolRound: polRound, BlockID: bid, Timestamp: stamp,
	}
}

// verifyVote checks v's signature (and extension signature, if wantExt)
// against pub.
func verifyVote(t testing.TB, pub ed25519.PublicKey, chainID string, v *cmtproto.Vote, wantExt bool) {
	t.Helper()
	if !ed25519.Verify(pub, types.VoteSignBytes(chainID, v), v.Signature) {
		t.Errorf("vote %d/%d/%v: signature does not verify", v.Height, v.Round, v.Type)
	}
	switch {
	case wantExt && !ed25519.Verify(pub, types.VoteExtensionSignBytes(chainID, v), v.ExtensionSignature):
		t.Errorf("vote %d/%d/%v: extension signature does not verify", v.Height, v.Round, v.Type)
	case !wantExt && len(v.ExtensionSignature) != 0:
		t.Errorf("vote %d/%d/%v: unexpected extension signature %X", v.Height, v.Round, v.Type, v.ExtensionSignature)
	}
}

// wantRefusal checks that err is a RemoteSignerError with code want.
func wantRefusal(t testing.TB, err error, want RefusalCode, descContains ...string) {
	t.Helper()
	var rse *privval.RemoteSignerError
	if !errors.As(err, &rse) {
		t.Fatalf("got error %v (%T), want a RemoteSignerError with code %d (%s)", err, err, want, want)
	}
	if RefusalCode(rse.Code) != want {
		t.Fatalf("got refusal code %d (%s): %q; want %d (%s)", rse.Code, RefusalCode(rse.Code), rse.Description, want, want)
	}
	for _, s := range descContains {
		if !strings.Contains(rse.Description, s) {
			t.Errorf("refusal description %q does not mention %q", rse.Description, s)
		}
	}
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hexHRS(h int64, r int32, s statefile.Step) string {
	return fmt.Sprint(statefile.HRS{Height: h, Round: r, Step: s})
}
