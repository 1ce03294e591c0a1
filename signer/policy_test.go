package signer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/statefile"
)

// These tests drive Chain.handle directly with a software key, for the
// failure paths a real node cannot provoke.

// handleVote runs a SignVoteRequest through c.handle.
func handleVote(t testing.TB, c *Chain, v *cmtproto.Vote) (*cmtproto.Vote, *privvalproto.RemoteSignerError) {
	t.Helper()
	var m privvalproto.Message
	if err := m.Unmarshal(c.handle(signVoteRequest(t, v, c.chainID), testLogger())); err != nil {
		t.Fatal(err)
	}
	r := m.GetSignedVoteResponse()
	if r == nil {
		t.Fatalf("not a SignedVoteResponse: %v", m.String())
	}
	return &r.Vote, r.Error
}

func wantCode(t testing.TB, e *privvalproto.RemoteSignerError, want RefusalCode, descContains ...string) {
	t.Helper()
	if e == nil {
		t.Fatalf("signed, want refusal %d (%s)", want, want)
	}
	if RefusalCode(e.Code) != want {
		t.Fatalf("refusal %d (%s) %q, want %d (%s)", e.Code, RefusalCode(e.Code), e.Description, want, want)
	}
	for _, s := range descContains {
		if !strings.Contains(e.Description, s) {
			t.Errorf("description %q does not mention %q", e.Description, s)
		}
	}
}

// saveWatchingKey signs only once the state file shows a new record, or
// fails after 5 s. Signing succeeds only if the write runs while the key
// signs: the persist ‖ sign design.
type saveWatchingKey struct {
	ed25519.PrivateKey
	state  func() statefile.HRS
	before statefile.HRS
}

func (k *saveWatchingKey) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Second)
	for k.state() == k.before {
		if time.Now().After(deadline) {
			return nil, errors.New("the state write did not run while the key was signing")
		}
		time.Sleep(time.Millisecond)
	}
	return k.PrivateKey.Sign(r, msg, o)
}

func TestPersistRunsWhileKeySigns(t *testing.T) {
	t.Parallel()
	key := &saveWatchingKey{PrivateKey: testKey("consensus")}
	c := newTestChain(t, func(o *testChainOpts) { o.key = key })
	key.state = func() statefile.HRS { return c.state.Last().HRS }
	key.before = c.state.Last().HRS
	v, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")))
	if e != nil {
		t.Fatalf("refused: %d %s", e.Code, e.Description)
	}
	verifyVote(t, c.PubKey(), testChainID, v, false)
}

func TestStateWriteFailureDropsSignature(t *testing.T) {
	t.Parallel()
	c := newTestChain(t)
	if _, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 1, 0, blockID("A"))); e != nil {
		t.Fatal(e.Description)
	}
	if err := c.state.(*statefile.File).Close(); err != nil { // every later Save fails
		t.Fatal(err)
	}
	v, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 2, 0, blockID("A")))
	wantCode(t, e, RefusalStateError, "2/0/prevote", "signature dropped")
	if len(v.Signature) != 0 {
		t.Fatalf("signature %X released although the state write failed", v.Signature)
	}
	if got := c.Stats().Refusals[RefusalStateError]; got != 1 {
		t.Fatalf("state_write_error counted %d times", got)
	}
}

type failingKey struct {
	ed25519.PrivateKey
	sig   []byte // returned instead of a signature when err is nil
	err   error
	calls atomic.Int64
}

func (k *failingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	k.calls.Add(1)
	return k.sig, k.err
}

func TestKeyFailures(t *testing.T) {
	t.Parallel()
	t.Run("key error", func(t *testing.T) {
		k := &failingKey{PrivateKey: testKey("consensus"), err: errors.New("CKR_DEVICE_REMOVED")}
		c := newTestChain(t, func(o *testChainOpts) { o.key = k })
		v, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")))
		wantCode(t, e, RefusalKeyError, "1/0/prevote", "CKR_DEVICE_REMOVED")
		if len(v.Signature) != 0 {
			t.Fatal("signature released")
		}
		// The record was written; a retry is a repeat and fails the same way.
		_, e = handleVote(t, c, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")))
		wantCode(t, e, RefusalKeyError)
	})
	t.Run("wrong-size signature", func(t *testing.T) {
		k := &failingKey{PrivateKey: testKey("consensus"), sig: make([]byte, 63)}
		c := newTestChain(t, func(o *testChainOpts) { o.key = k })
		_, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")))
		wantCode(t, e, RefusalKeyError, "63-byte signature")
	})
	t.Run("extension signature fails", func(t *testing.T) {
		k := &extFailKey{PrivateKey: testKey("consensus")}
		c := newTestChain(t, func(o *testChainOpts) { o.key = k })
		v := newVote(cmtproto.PrecommitType, 1, 0, blockID("A"))
		v.Extension = []byte("x")
		got, e := handleVote(t, c, v)
		wantCode(t, e, RefusalKeyError)
		if len(got.Signature) != 0 || len(got.ExtensionSignature) != 0 {
			t.Fatal("a signature was released")
		}
	})
}

// extFailKey signs votes but fails on vote-extension sign bytes: a
// length-delimited CanonicalVoteExtension starts with field 1 (extension,
// tag 0x0a), a CanonicalVote with field 1 (type, tag 0x08).
type extFailKey struct{ ed25519.PrivateKey }

func (k *extFailKey) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	if len(msg) > 1 && msg[1] == 0x0a {
		return nil, errors.New("extension signing failed")
	}
	return k.PrivateKey.Sign(r, msg, o)
}

// TestImportedState covers FilePV imports: a stored signature is returned
// as-is (the key is not asked), and a position imported without sign bytes
// cannot be repeated.
func TestImportedState(t *testing.T) {
	t.Parallel()
	v := newVote(cmtproto.PrevoteType, 7, 0, blockID("A"))
	sb := types.VoteSignBytes(testChainID, v)
	stored := ed25519.Sign(testKey("consensus"), sb)
	hrs := statefile.HRS{Height: 7, Round: 0, Step: statefile.StepPrevote}

	open := func(t *testing.T, r statefile.Record, key crypto.Signer) *Chain {
		path := filepath.Join(t.TempDir(), "imported.state")
		if err := statefile.Create(path, testChainID, r, false); err != nil {
			t.Fatal(err)
		}
		st, err := statefile.Open(path, testChainID)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		c, err := NewChain(ChainConfig{ChainID: testChainID, Key: key, State: st})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("stored signature", func(t *testing.T) {
		k := &failingKey{PrivateKey: testKey("consensus"), err: errors.New("key must not be used")}
		c := open(t, statefile.Record{HRS: hrs, SignBytes: sb, Signature: stored}, k)
		got, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 7, 0, blockID("A")))
		if e != nil {
			t.Fatalf("refused: %s", e.Description)
		}
		if !bytes.Equal(got.Signature, stored) || k.calls.Load() != 0 {
			t.Fatalf("got %X after %d key calls, want the stored signature and no key call", got.Signature, k.calls.Load())
		}
	})
	t.Run("no sign bytes", func(t *testing.T) {
		c := open(t, statefile.Record{HRS: hrs}, testKey("consensus"))
		_, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 7, 0, blockID("A")))
		wantCode(t, e, RefusalNoSignBytes, "7/0/prevote")
		// The next step is fine.
		if _, e := handleVote(t, c, newVote(cmtproto.PrecommitType, 7, 0, blockID("A"))); e != nil {
			t.Fatalf("refused: %s", e.Description)
		}
	})
}

func TestValidateVoteTable(t *testing.T) {
	t.Parallel()
	c := newTestChain(t)
	for _, tc := range []struct {
		name string
		mod  func(v *cmtproto.Vote)
		want RefusalCode
	}{
		{"valid prevote", func(*cmtproto.Vote) {}, 0},
		{"valid nil prevote", func(v *cmtproto.Vote) { v.BlockID = nilBlock }, 0},
		{"unknown type 3", func(v *cmtproto.Vote) { v.Type = 3 }, RefusalInvalidType},
		{"type 0", func(v *cmtproto.Vote) { v.Type = 0 }, RefusalInvalidType},
		{"negative height", func(v *cmtproto.Vote) { v.Height = -1 }, RefusalInvalidRequest},
		{"part set hash 33 bytes", func(v *cmtproto.Vote) { v.BlockID.PartSetHeader.Hash = make([]byte, 33) }, RefusalInvalidRequest},
		{"part set only", func(v *cmtproto.Vote) { v.BlockID.Hash = nil }, RefusalInvalidRequest},
		{"hash only, total 0", func(v *cmtproto.Vote) { v.BlockID.PartSetHeader.Total = 0 }, RefusalInvalidRequest},
		{"nil block with total", func(v *cmtproto.Vote) { v.BlockID = cmtproto.BlockID{PartSetHeader: cmtproto.PartSetHeader{Total: 1}} }, RefusalInvalidRequest},
		{"negative validator index", func(v *cmtproto.Vote) { v.ValidatorIndex = -1 }, RefusalInvalidRequest},
		{"timestamp year 10000", func(v *cmtproto.Vote) { v.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, RefusalInvalidRequest},
		{"short validator address", func(v *cmtproto.Vote) { v.ValidatorAddress = []byte{1} }, RefusalWrongValidator},
		{"extension too large", func(v *cmtproto.Vote) {
			v.Type = cmtproto.PrecommitType
			v.Extension = make([]byte, types.MaxVoteExtensionSize+1)
		}, RefusalInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVote(cmtproto.PrevoteType, 1, 0, blockID("A"))
			tc.mod(v)
			r := c.validateVote(v)
			switch {
			case tc.want == 0 && r != nil:
				t.Fatalf("refused: %v", r)
			case tc.want != 0 && (r == nil || r.Code != tc.want):
				t.Fatalf("got %v, want code %d (%s)", r, tc.want, tc.want)
			}
		})
	}
}

// TestHandleNeverPanicsOnOutOfRangeTimestamp: a vote built in Go (not
// decoded from the wire) with a time protobuf cannot encode must be refused,
// not crash the process.
func TestHandleNeverPanicsOnOutOfRangeTimestamp(t *testing.T) {
	t.Parallel()
	c := newTestChain(t)
	v := newVote(cmtproto.PrevoteType, 1, 0, blockID("A"))
	v.Timestamp = time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC)
	if r := c.validateVote(v); r == nil || r.Code != RefusalInvalidRequest {
		t.Fatalf("validateVote = %v", r)
	}
	if _, err := signBytesSafely(func() []byte { return types.VoteSignBytes(testChainID, v) }); err == nil {
		t.Fatal("signBytesSafely did not turn the encoding panic into an error")
	}
}

func TestStatsLogValue(t *testing.T) {
	t.Parallel()
	c := newTestChain(t)
	if _, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 3, 1, blockID("A"))); e != nil {
		t.Fatal(e.Description)
	}
	_, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 2, 0, blockID("A")))
	wantCode(t, e, RefusalHeightRegression)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("summary", "stats", c.Stats())
	if _, e := handleVote(t, c, newVote(cmtproto.PrecommitType, 3, 1, blockID("A"))); e != nil {
		t.Fatal(e.Description)
	}
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("summary", "stats", c.Stats())
	s := c.Stats()
	if s.VotesSigned != 2 || s.PrevotesSigned != 1 || s.PrecommitsSigned != 1 || s.ProposalsSigned != 0 {
		t.Errorf("stats %+v: want 1 prevote + 1 precommit = 2 votes", s)
	}
	for _, want := range []string{"stats.votes_signed=2", "stats.prevotes_signed=1", "stats.precommits_signed=1", "stats.refusals=1", `stats.refusals_by_code="height_regression=1"`, "stats.last_signed=3/1/precommit"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary %q lacks %q", buf.String(), want)
		}
	}
}

type panickingKey struct{ ed25519.PrivateKey }

func (panickingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { panic("driver bug") }

func TestPanickingKeyIsRefusedNotFatal(t *testing.T) {
	t.Parallel()
	c := newTestChain(t, func(o *testChainOpts) { o.key = panickingKey{testKey("consensus")} })
	_, e := handleVote(t, c, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")))
	wantCode(t, e, RefusalKeyError, "panicked", "driver bug")
	// The state write ran to completion before the answer.
	if got := c.state.Last().HRS; got != (statefile.HRS{Height: 1, Round: 0, Step: statefile.StepPrevote}) {
		t.Fatalf("state at %s", got)
	}
}

// pairedKey signs only when two signatures meet: the first to arrive waits
// (at most 5 s) for a second, then both proceed. A non-nil precommit's vote
// and vote extension must be signed at the same time (an HSM key has a
// session for each); signed one after the other, the first one times out.
type pairedKey struct {
	ed25519.PrivateKey
	mu      sync.Mutex
	waiting int
	gen     int
}

func (k *pairedKey) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	k.mu.Lock()
	gen := k.gen
	k.waiting++
	if k.waiting == 2 {
		k.waiting, k.gen = 0, k.gen+1
		k.mu.Unlock()
		return k.PrivateKey.Sign(r, msg, o)
	}
	k.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		k.mu.Lock()
		met := k.gen != gen
		if !met && time.Now().After(deadline) {
			k.waiting--
			k.mu.Unlock()
			return nil, errors.New("signed alone: the vote and its extension were not signed concurrently")
		}
		k.mu.Unlock()
		if met {
			return k.PrivateKey.Sign(r, msg, o)
		}
	}
}

func TestVoteAndExtensionSignedConcurrently(t *testing.T) {
	t.Parallel()
	key := &pairedKey{PrivateKey: testKey("consensus")}
	c := newTestChain(t, func(o *testChainOpts) { o.key = key })
	pc := newVote(cmtproto.PrecommitType, 1, 0, blockID("A"))
	pc.Extension = []byte("ext")
	for _, what := range []string{"fresh", "repeat"} {
		v, e := handleVote(t, c, pc)
		if e != nil {
			t.Fatalf("%s precommit refused: %d %s", what, e.Code, e.Description)
		}
		verifyVote(t, c.PubKey(), testChainID, v, true)
	}
}

// slowKey takes longer than slowSignature to sign.
type slowKey struct{ ed25519.PrivateKey }

func (k slowKey) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	time.Sleep(slowSignature + 100*time.Millisecond) // a stalling HSM, not synchronisation
	return k.PrivateKey.Sign(r, msg, o)
}

func TestSlowSignatureWarns(t *testing.T) {
	t.Parallel()
	rec := newLogRecorder()
	c := newTestChain(t, func(o *testChainOpts) { o.key = slowKey{testKey("consensus")} })
	var m privvalproto.Message
	if err := m.Unmarshal(c.handle(signVoteRequest(t, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")), c.chainID), slog.New(rec))); err != nil {
		t.Fatal(err)
	}
	if r := m.GetSignedVoteResponse(); r == nil || r.Error != nil {
		t.Fatalf("slow key's vote not signed: %v", m.String())
	}
	if got := rec.find("slow signature"); len(got) != 1 {
		t.Fatalf("want one slow-signature warning, got %d: %+v", len(got), rec.entries())
	}
}

// gatedState holds every Save until release is closed, and says when a
// Save has begun.
type gatedState struct {
	stateStore
	begun   chan struct{}
	release chan struct{}
}

func (g *gatedState) Save(r statefile.Record) error {
	close(g.begun)
	<-g.release
	return g.stateStore.Save(r)
}

// signedKey says when it has produced a signature.
type signedKey struct {
	ed25519.PrivateKey
	signed chan struct{}
}

func (k *signedKey) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	sig, err := k.PrivateKey.Sign(r, msg, o)
	close(k.signed)
	return sig, err
}

// No response leaves before the state write has returned, even when the key
// signed long before: the signature is held until its record is durable.
// (A process kill cannot show this ordering: the page cache survives it.)
func TestNoResponseBeforeStateIsDurable(t *testing.T) {
	t.Parallel()
	key := &signedKey{PrivateKey: testKey("consensus"), signed: make(chan struct{})}
	c := newTestChain(t, func(o *testChainOpts) { o.key = key })
	gate := &gatedState{stateStore: c.state, begun: make(chan struct{}), release: make(chan struct{})}
	c.state = gate

	answered := make(chan []byte, 1)
	go func() {
		answered <- c.handle(signVoteRequest(t, newVote(cmtproto.PrevoteType, 1, 0, blockID("A")), c.chainID), testLogger())
	}()
	for _, ev := range []struct {
		ch   chan struct{}
		what string
	}{{gate.begun, "the state write to begin"}, {key.signed, "the key to sign"}} {
		select {
		case <-ev.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %s", ev.what)
		}
	}
	// The signature exists and the write is held: nothing may be answered.
	select {
	case <-answered:
		t.Fatal("the signature was answered before its state write returned")
	case <-time.After(200 * time.Millisecond):
	}
	close(gate.release)
	var m privvalproto.Message
	select {
	case b := <-answered:
		if err := m.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer after the state write returned")
	}
	r := m.GetSignedVoteResponse()
	if r == nil || r.Error != nil || len(r.Vote.Signature) == 0 {
		t.Fatalf("want a signed vote, got %v", m.String())
	}
	if got := c.state.Last().HRS; got.Height != 1 {
		t.Fatalf("state at %s after the answer", got)
	}
}
