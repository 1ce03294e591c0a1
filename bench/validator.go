package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cometbft/cometbft/crypto"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
)

// Validator plays a CometBFT validator node towards a remote signer: a
// privval.SignerListenerEndpoint on a fresh 127.0.0.1 port wrapped in
// SecretConnection (privval.NewTCPListener, exactly what the node uses) and a
// privval.SignerClient on top. The signer dials Addr.
type Validator struct {
	ChainID  string
	Addr     string // tcp://127.0.0.1:PORT
	endpoint *privval.SignerListenerEndpoint
	client   *privval.SignerClient
}

// NewValidator listens on a fresh loopback port for chainID.
func NewValidator(chainID string) (*Validator, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("validator listener: %v", err)
	}
	tl := privval.NewTCPListener(ln, cmted25519.GenPrivKey())
	ep := privval.NewSignerListenerEndpoint(cmtlog.NewNopLogger(), tl)
	client, err := privval.NewSignerClient(ep, chainID) // starts the endpoint
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("validator signer client: %v", err)
	}
	return &Validator{ChainID: chainID, Addr: "tcp://" + ln.Addr().String(), endpoint: ep, client: client}, nil
}

// WaitConnected waits until a signer has connected, at most maxWait.
func (v *Validator) WaitConnected(maxWait time.Duration) error {
	deadline := time.Now().Add(maxWait)
	for {
		// The endpoint's own wait is bounded by its 3 s accept timeout; loop
		// so a signer that needs longer to start (SoftHSM login) still counts.
		err := v.client.WaitForConnection(time.Until(deadline))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no signer connected to %s within %s: %v", v.Addr, maxWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the listener and drops the connection.
func (v *Validator) Close() {
	if v.endpoint.IsRunning() {
		_ = v.endpoint.Stop()
	}
}

// Client is the validator's privval client (for callers that drive it
// themselves).
func (v *Validator) Client() *privval.SignerClient { return v.client }

// DriveConfig is one validator workload: at each height, like a
// single-validator node, GetPubKey, SignProposal, SignVote(prevote),
// SignVote(precommit, non-nil block: the signer also signs the extension).
type DriveConfig struct {
	StartHeight int64     // first height (> 0)
	Heights     int       // stop after this many heights (0: no count limit)
	Until       time.Time // stop at this time (zero: no time limit)
	PingEvery   int       // also time a Ping every N heights (0: never)
	// VerifyEvery checks the signatures of every Nth height only (0 or 1:
	// every height). Throughput runs sample to leave the CPU to the signer.
	VerifyEvery int
	// PubKey, when set, is the key every signature must verify against; nil
	// fetches it with GetPubKey first.
	PubKey crypto.PubKey
}

// Latency is what one Drive saw, per request type, from the validator's side.
type Latency struct {
	Proposal  []time.Duration
	Prevote   []time.Duration
	Precommit []time.Duration
	PubKey    []time.Duration
	Ping      []time.Duration
	Heights   int
	Elapsed   time.Duration
	// Signatures counts Ed25519 signatures released (proposal, prevote,
	// precommit and its extension).
	Signatures int
}

// Votes returns prevote and precommit samples together.
func (l *Latency) Votes() []time.Duration {
	return append(append([]time.Duration(nil), l.Prevote...), l.Precommit...)
}

// Drive runs cfg against the connected signer and verifies every signature.
// Any refusal, transport error or bad signature stops it with an error.
func (v *Validator) Drive(ctx context.Context, cfg DriveConfig) (*Latency, error) {
	if cfg.StartHeight < 1 {
		return nil, errors.New("drive: StartHeight must be at least 1")
	}
	if cfg.Heights <= 0 && cfg.Until.IsZero() {
		return nil, errors.New("drive: set Heights or Until: an unbounded run is not allowed")
	}
	pub := cfg.PubKey
	if pub == nil {
		var err error
		if pub, err = v.client.GetPubKey(); err != nil {
			return nil, fmt.Errorf("drive: GetPubKey: %w", err)
		}
	}
	addr := pub.Address()
	n := cfg.Heights
	if n <= 0 {
		n = 1 << 30
	}
	l := &Latency{}
	if cfg.Heights > 0 {
		l.Proposal = make([]time.Duration, 0, cfg.Heights)
		l.Prevote = make([]time.Duration, 0, cfg.Heights)
		l.Precommit = make([]time.Duration, 0, cfg.Heights)
		l.PubKey = make([]time.Duration, 0, cfg.Heights)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return l, err
		}
		if !cfg.Until.IsZero() && time.Now().After(cfg.Until) {
			break
		}
		h := cfg.StartHeight + int64(i)
		bid := randomBlockID()
		verify := cfg.VerifyEvery <= 1 || i%cfg.VerifyEvery == 0

		t0 := time.Now()
		got, err := v.client.GetPubKey()
		l.PubKey = append(l.PubKey, time.Since(t0))
		if err != nil {
			return l, fmt.Errorf("height %d: GetPubKey: %w", h, err)
		}
		if !got.Equals(pub) {
			return l, fmt.Errorf("height %d: GetPubKey returned another key", h)
		}

		p := &cmtproto.Proposal{Type: cmtproto.ProposalType, Height: h, Round: 0, PolRound: -1, BlockID: bid, Timestamp: time.Now().UTC()}
		t0 = time.Now()
		err = v.client.SignProposal(v.ChainID, p)
		l.Proposal = append(l.Proposal, time.Since(t0))
		if err != nil {
			return l, fmt.Errorf("height %d: SignProposal: %w", h, err)
		}
		if verify && !pub.VerifySignature(types.ProposalSignBytes(v.ChainID, p), p.Signature) {
			return l, fmt.Errorf("height %d: proposal signature does not verify", h)
		}

		for _, typ := range []cmtproto.SignedMsgType{cmtproto.PrevoteType, cmtproto.PrecommitType} {
			vote := &cmtproto.Vote{Type: typ, Height: h, Round: 0, BlockID: bid, Timestamp: time.Now().UTC(), ValidatorAddress: addr, ValidatorIndex: 0}
			t0 = time.Now()
			err = v.client.SignVote(v.ChainID, vote)
			d := time.Since(t0)
			if err != nil {
				return l, fmt.Errorf("height %d: SignVote(%s): %w", h, typ, err)
			}
			if verify && !pub.VerifySignature(types.VoteSignBytes(v.ChainID, vote), vote.Signature) {
				return l, fmt.Errorf("height %d: %s signature does not verify", h, typ)
			}
			if typ == cmtproto.PrevoteType {
				l.Prevote = append(l.Prevote, d)
				l.Signatures++
				continue
			}
			if verify && !pub.VerifySignature(types.VoteExtensionSignBytes(v.ChainID, vote), vote.ExtensionSignature) {
				return l, fmt.Errorf("height %d: precommit extension signature does not verify", h)
			}
			l.Precommit = append(l.Precommit, d)
			l.Signatures += 2
		}
		l.Signatures++ // the proposal
		if cfg.PingEvery > 0 && i%cfg.PingEvery == 0 {
			t0 = time.Now()
			err := v.client.Ping() // SignerClient.Ping swallows transport errors
			l.Ping = append(l.Ping, time.Since(t0))
			if err != nil {
				return l, fmt.Errorf("height %d: Ping: %w", h, err)
			}
		}
		l.Heights++
	}
	l.Elapsed = time.Since(start)
	return l, nil
}

func randomBlockID() cmtproto.BlockID {
	h := make([]byte, 64)
	_, _ = rand.Read(h)
	return cmtproto.BlockID{Hash: h[:32], PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: h[32:]}}
}
