package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// LatencyConfig is one single-chain round-trip measurement.
type LatencyConfig struct {
	Warmup    int // heights driven first and discarded (connection, caches, HSM session)
	Heights   int // measured heights: one proposal, prevote and precommit each
	PingEvery int
	// ConnectTimeout bounds how long the signer may take to connect.
	ConnectTimeout time.Duration
}

// LatencyResult is the validator-side view of one target.
type LatencyResult struct {
	Target    string
	Proposal  Dist
	Prevote   Dist
	Precommit Dist
	Vote      Dist // prevote and precommit together
	PubKey    Dist
	Ping      Dist
}

// startTarget starts t for specs and waits until every validator has a
// connection.
func startTarget(t Target, dir string, vals []*Validator, connect time.Duration) (*Running, error) {
	specs := make([]ChainSpec, len(vals))
	for i, v := range vals {
		specs[i] = ChainSpec{ChainID: v.ChainID, Addr: v.Addr}
	}
	r, err := t.Start(dir, specs)
	if err != nil {
		return nil, fmt.Errorf("%s: start: %w", t.Name(), err)
	}
	for _, v := range vals {
		if err := v.WaitConnected(connect); err != nil {
			_ = r.Stop()
			return nil, fmt.Errorf("%s: %w (see the logs under %s)", t.Name(), err, dir)
		}
	}
	return r, nil
}

// MeasureLatency starts t against one fresh validator, drives cfg.Warmup
// heights, then measures cfg.Heights heights.
func MeasureLatency(ctx context.Context, t Target, dir string, cfg LatencyConfig) (*LatencyResult, error) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	v, err := NewValidator("bench-" + sanitize(t.Name()))
	if err != nil {
		return nil, err
	}
	defer v.Close()
	r, err := startTarget(t, dir, []*Validator{v}, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	defer r.Stop()
	h := int64(1)
	if cfg.Warmup > 0 {
		if _, err := v.Drive(ctx, DriveConfig{StartHeight: h, Heights: cfg.Warmup, PubKey: r.Pubs[0]}); err != nil {
			return nil, fmt.Errorf("%s: warmup: %w", t.Name(), err)
		}
		h += int64(cfg.Warmup)
	}
	l, err := v.Drive(ctx, DriveConfig{StartHeight: h, Heights: cfg.Heights, PingEvery: cfg.PingEvery, PubKey: r.Pubs[0]})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	if err := r.Stop(); err != nil {
		return nil, fmt.Errorf("%s: stop: %w", t.Name(), err)
	}
	return &LatencyResult{
		Target:    t.Name(),
		Proposal:  Summarize(l.Proposal),
		Prevote:   Summarize(l.Prevote),
		Precommit: Summarize(l.Precommit),
		Vote:      Summarize(l.Votes()),
		PubKey:    Summarize(l.PubKey),
		Ping:      Summarize(l.Ping),
	}, nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// MultiResult is n chains signing concurrently through one target.
type MultiResult struct {
	Target      string
	Chains      int
	Signatures  int           // Ed25519 signatures released, all chains
	Requests    int           // sign requests answered, all chains
	Elapsed     time.Duration // the common measurement window
	PerChainP99 []time.Duration
	// SignerCPU and HarnessCPU are the CPU time (user + system) the signer
	// process and this (validator-side) process used during the window; 0
	// when unknown (an in-process signer).
	SignerCPU, HarnessCPU time.Duration
}

// Cores is the average number of cores d of CPU time kept busy over the
// window.
func (m *MultiResult) Cores(d time.Duration) float64 { return d.Seconds() / m.Elapsed.Seconds() }

// SigsPerSec is the aggregate signature rate.
func (m *MultiResult) SigsPerSec() float64 { return float64(m.Signatures) / m.Elapsed.Seconds() }

// MaxP99 is the worst chain's p99 sign round trip.
func (m *MultiResult) MaxP99() time.Duration {
	var w time.Duration
	for _, d := range m.PerChainP99 {
		w = max(w, d)
	}
	return w
}

// MeasureMultiChain runs n chains, each with its own validator connection,
// key and state, signing concurrently through t for dur (after warmup heights
// each).
func MeasureMultiChain(ctx context.Context, t Target, dir string, n, warmup int, dur, connect time.Duration) (*MultiResult, error) {
	if connect == 0 {
		connect = 30 * time.Second
	}
	vals := make([]*Validator, n)
	for i := range vals {
		v, err := NewValidator(fmt.Sprintf("bench-multi-%d", i))
		if err != nil {
			return nil, err
		}
		defer v.Close()
		vals[i] = v
	}
	r, err := startTarget(t, dir, vals, connect)
	if err != nil {
		return nil, err
	}
	defer r.Stop()
	for i, v := range vals {
		if warmup > 0 {
			if _, err := v.Drive(ctx, DriveConfig{StartHeight: 1, Heights: warmup, PubKey: r.Pubs[i]}); err != nil {
				return nil, fmt.Errorf("%s chain %d: warmup: %w", t.Name(), i, err)
			}
		}
	}
	res := &MultiResult{Target: t.Name(), Chains: n, PerChainP99: make([]time.Duration, n)}
	lats := make([]*Latency, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sigCPU0, _ := ProcessCPU(r.PID)
	selfCPU0, _ := ProcessCPU(0)
	start := time.Now()
	until := start.Add(dur)
	for i, v := range vals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[i], errs[i] = v.Drive(ctx, DriveConfig{StartHeight: int64(warmup) + 1, Until: until, PubKey: r.Pubs[i], VerifyEvery: 16})
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if r.PID != 0 {
		if c, err := ProcessCPU(r.PID); err == nil {
			res.SignerCPU = c - sigCPU0
		}
		if c, err := ProcessCPU(0); err == nil {
			res.HarnessCPU = c - selfCPU0
		}
	}
	for i, l := range lats {
		if errs[i] != nil {
			return nil, fmt.Errorf("%s chain %d: %w", t.Name(), i, errs[i])
		}
		all := append(l.Votes(), l.Proposal...)
		res.PerChainP99[i] = Summarize(all).P99
		res.Signatures += l.Signatures
		res.Requests += len(all)
	}
	if err := r.Stop(); err != nil {
		return nil, fmt.Errorf("%s: stop: %w", t.Name(), err)
	}
	return res, nil
}
