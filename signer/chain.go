package signer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"

	"github.com/signerd/signerd/statefile"
)

// ChainConfig describes one chain signerd signs for: one consensus key and
// one state file, for one chain id.
type ChainConfig struct {
	ChainID string
	// Key is the consensus key. Public() must return an ed25519.PublicKey;
	// Sign(rand, msg, crypto.Hash(0)) must return the 64-byte Ed25519
	// signature of msg. The signer does not verify it again (the HSM
	// implementation already does).
	Key crypto.Signer
	// State is the chain's double-sign record, opened for ChainID.
	State *statefile.File
	// MaxHeight, if positive, makes the chain refuse every vote and
	// proposal above it (planned halts). 0 means no limit.
	MaxHeight int64
	Logger    *slog.Logger
}

// stateStore is what a Chain needs of its state file: [*statefile.File] in
// production; tests wrap it to observe or delay the write.
type stateStore interface {
	Last() statefile.Record
	Save(statefile.Record) error
}

// Chain is the signing policy for one chain. It is safe for concurrent use by
// any number of validator connections; they all share its state and its one
// signing mutex.
type Chain struct {
	chainID   string
	key       crypto.Signer
	pub       ed25519.PublicKey
	address   []byte // the validator address: first 20 bytes of SHA-256(pub)
	state     stateStore
	maxHeight int64
	log       *slog.Logger

	pubKeyResp []byte // Message{pub_key_response}, dual-encoded, computed once

	// mu is held across decide → (persist ‖ sign) → extension → release, so
	// no two requests for this chain interleave on the state.
	mu sync.Mutex

	statsMu sync.Mutex // guards stats only; never held while signing
	stats   Stats
}

// Stats are a chain's counters since NewChain, for status output and the
// shutdown summary.
type Stats struct {
	ChainID string
	// Signatures released, by kind. Re-sent signatures (same height/round/
	// step requested again) count too.
	VotesSigned      uint64 // PrevotesSigned + PrecommitsSigned
	PrevotesSigned   uint64
	PrecommitsSigned uint64
	ProposalsSigned  uint64
	ExtensionsSigned uint64
	// PubKeyRequests and Pings answered.
	PubKeyRequests uint64
	Pings          uint64
	// Refusals by code, including internal failures.
	Refusals map[RefusalCode]uint64
	// LastSigned is the position of the last released signature and
	// LastSignedAt when it was released; zero if none yet.
	LastSigned   statefile.HRS
	LastSignedAt time.Time
}

// TotalRefusals is the sum of s.Refusals.
func (s Stats) TotalRefusals() uint64 {
	var n uint64
	for _, v := range s.Refusals {
		n += v
	}
	return n
}

// LogValue renders s for slog (the shutdown summary): counters, refusals as
// "name=count" in code order, and the last signed position.
func (s Stats) LogValue() slog.Value {
	var refusals []string
	for _, code := range AllRefusalCodes() {
		if n := s.Refusals[code]; n > 0 {
			refusals = append(refusals, fmt.Sprintf("%s=%d", code, n))
		}
	}
	last := "none"
	if !s.LastSignedAt.IsZero() {
		last = s.LastSigned.String()
	}
	attrs := []slog.Attr{
		slog.String("chain_id", s.ChainID),
		slog.Uint64("votes_signed", s.VotesSigned),
		slog.Uint64("prevotes_signed", s.PrevotesSigned),
		slog.Uint64("precommits_signed", s.PrecommitsSigned),
		slog.Uint64("proposals_signed", s.ProposalsSigned),
		slog.Uint64("extensions_signed", s.ExtensionsSigned),
		slog.Uint64("pubkey_requests", s.PubKeyRequests),
		slog.Uint64("pings", s.Pings),
		slog.Uint64("refusals", s.TotalRefusals()),
		slog.String("refusals_by_code", strings.Join(refusals, " ")),
		slog.String("last_signed", last),
	}
	if !s.LastSignedAt.IsZero() {
		attrs = append(attrs, slog.Time("last_signed_at", s.LastSignedAt))
	}
	return slog.GroupValue(attrs...)
}

// NewChain checks cfg and returns the chain's signing policy.
func NewChain(cfg ChainConfig) (*Chain, error) {
	if cfg.ChainID == "" {
		return nil, errors.New("chain id must not be empty")
	}
	if cfg.Key == nil {
		return nil, fmt.Errorf("chain %q: no consensus key", cfg.ChainID)
	}
	if cfg.State == nil {
		return nil, fmt.Errorf("chain %q: no state file", cfg.ChainID)
	}
	if got := cfg.State.ChainID(); got != cfg.ChainID {
		return nil, fmt.Errorf("chain %q: state file %q belongs to chain %q", cfg.ChainID, cfg.State.Path(), got)
	}
	if cfg.MaxHeight < 0 {
		return nil, fmt.Errorf("chain %q: max height %d is negative: use 0 for no limit", cfg.ChainID, cfg.MaxHeight)
	}
	pub, ok := cfg.Key.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("chain %q: consensus key is %T, want an Ed25519 key", cfg.ChainID, cfg.Key.Public())
	}
	pub = append(ed25519.PublicKey(nil), pub...)
	resp, err := pubKeyResponse(pub)
	if err != nil {
		return nil, fmt.Errorf("chain %q: %w", cfg.ChainID, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Chain{
		chainID:    cfg.ChainID,
		key:        cfg.Key,
		pub:        pub,
		address:    cmted25519.PubKey(pub).Address(),
		state:      cfg.State,
		maxHeight:  cfg.MaxHeight,
		log:        log.With("chain_id", cfg.ChainID),
		pubKeyResp: resp,
		stats:      Stats{ChainID: cfg.ChainID, Refusals: map[RefusalCode]uint64{}},
	}, nil
}

// ChainID returns the chain id the chain signs for.
func (c *Chain) ChainID() string { return c.chainID }

// PubKey returns the consensus public key.
func (c *Chain) PubKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), c.pub...) }

// Stats returns a snapshot of the chain's counters.
func (c *Chain) Stats() Stats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	s := c.stats
	s.Refusals = maps.Clone(c.stats.Refusals)
	return s
}

func (c *Chain) countRefusal(code RefusalCode) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	c.stats.Refusals[code]++
}

func (c *Chain) countSigned(hrs statefile.HRS, ext bool) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	switch hrs.Step {
	case statefile.StepPropose:
		c.stats.ProposalsSigned++
	case statefile.StepPrevote:
		c.stats.VotesSigned++
		c.stats.PrevotesSigned++
	case statefile.StepPrecommit:
		c.stats.VotesSigned++
		c.stats.PrecommitsSigned++
	}
	if ext {
		c.stats.ExtensionsSigned++
	}
	c.stats.LastSigned = hrs
	c.stats.LastSignedAt = time.Now()
}

func (c *Chain) countPubKey() {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	c.stats.PubKeyRequests++
}

func (c *Chain) countPing() {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	c.stats.Pings++
}

// sign signs msg with the consensus key and checks the signature's size. A
// panicking key implementation becomes an error, so a concurrent state write
// is always waited for.
func (c *Chain) sign(msg []byte) (sig []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			sig, err = nil, fmt.Errorf("key panicked: %v", p)
		}
	}()
	sig, err = c.key.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("key returned a %d-byte signature, want %d", len(sig), ed25519.SignatureSize)
	}
	return sig, nil
}
