package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// MemSample is one memory reading after Sigs signatures.
type MemSample struct {
	Sigs  int
	Bytes int64
}

// MemoryResult is a memory run: samples of one figure (RSS of the signer
// process, or the live heap of this process) against signatures released.
type MemoryResult struct {
	Target  string
	What    string // "VmRSS" or "HeapAlloc after GC"
	Samples []MemSample
	Final   int64 // the reading after the last signature
	Peak    int64 // VmHWM for a process; max sample otherwise
	Elapsed time.Duration
}

// Slope is the least-squares growth in bytes per signature and its r.
func (m *MemoryResult) Slope() (bytesPerSig, r float64) {
	// Skip the first sample: it includes start-up allocation.
	s := m.Samples
	if len(s) > 2 {
		s = s[1:]
	}
	xs, ys := make([]float64, len(s)), make([]float64, len(s))
	for i, v := range s {
		xs[i], ys[i] = float64(v.Sigs), float64(v.Bytes)
	}
	return Slope(xs, ys)
}

// Growth is the fitted growth over the whole run (slope × signatures).
func (m *MemoryResult) Growth() float64 {
	if len(m.Samples) == 0 {
		return 0
	}
	s, _ := m.Slope()
	return s * float64(m.Samples[len(m.Samples)-1].Sigs)
}

// HeapAfterGC forces a collection and returns the live heap of this process.
func HeapAfterGC() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// MeasureMemory drives t (one chain) until at least sigs signatures were
// released, reading sample() every `every` signatures. For a process target
// sample is nil and VmRSS of its PID is read.
func MeasureMemory(ctx context.Context, t Target, dir string, sigs, every int, sample func() int64) (*MemoryResult, error) {
	v, err := NewValidator("bench-memory")
	if err != nil {
		return nil, err
	}
	defer v.Close()
	r, err := startTarget(t, dir, []*Validator{v}, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer r.Stop()
	res := &MemoryResult{Target: t.Name(), What: "HeapAlloc after GC"}
	if sample == nil {
		if r.PID == 0 {
			return nil, fmt.Errorf("%s: in-process target needs a sample function", t.Name())
		}
		res.What = "VmRSS"
		sample = func() int64 {
			rss, _, err := RSS(r.PID)
			if err != nil {
				return 0
			}
			return rss
		}
	}
	const sigsPerHeight = 4 // proposal, prevote, precommit + its extension
	chunk := max(1, every/sigsPerHeight)
	h := int64(1)
	done := 0
	start := time.Now()
	for done < sigs {
		l, err := v.Drive(ctx, DriveConfig{StartHeight: h, Heights: chunk, PubKey: r.Pubs[0], VerifyEvery: 16})
		if err != nil {
			return nil, fmt.Errorf("%s: after %d signatures: %w", t.Name(), done, err)
		}
		h += int64(l.Heights)
		done += l.Signatures
		b := sample()
		if b == 0 {
			return nil, fmt.Errorf("%s: memory reading failed after %d signatures", t.Name(), done)
		}
		res.Samples = append(res.Samples, MemSample{Sigs: done, Bytes: b})
		res.Peak = max(res.Peak, b)
	}
	res.Elapsed = time.Since(start)
	res.Final = res.Samples[len(res.Samples)-1].Bytes
	if r.PID != 0 {
		if _, hwm, err := RSS(r.PID); err == nil {
			res.Peak = hwm
		}
	}
	if err := r.Stop(); err != nil {
		return nil, fmt.Errorf("%s: stop: %w", t.Name(), err)
	}
	return res, nil
}
