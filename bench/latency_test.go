package bench

import (
	"context"
	"testing"
	"time"
)

func TestMeasureLatencyFilePV(t *testing.T) {
	r, err := MeasureLatency(context.Background(), FilePVInProcess{}, t.TempDir(), LatencyConfig{Warmup: 2, Heights: 10, PingEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Vote.N != 20 || r.Proposal.N != 10 || r.Prevote.N != 10 || r.Precommit.N != 10 || r.Ping.N != 5 || r.PubKey.N != 10 {
		t.Fatalf("unexpected sample counts: %+v", r)
	}
	if r.Vote.P50 <= 0 || r.Vote.P99 < r.Vote.P50 || r.Vote.Max < r.Vote.P99 {
		t.Fatalf("implausible vote distribution %+v", r.Vote)
	}
}

func TestMeasureMultiChainFilePV(t *testing.T) {
	m, err := MeasureMultiChain(context.Background(), FilePVInProcess{}, t.TempDir(), 2, 1, 200*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Chains != 2 || len(m.PerChainP99) != 2 || m.Signatures == 0 || m.Signatures%4 != 0 || m.SigsPerSec() <= 0 {
		t.Fatalf("implausible multi-chain result %+v", m)
	}
	for i, p := range m.PerChainP99 {
		if p <= 0 {
			t.Fatalf("chain %d has no p99", i)
		}
	}
}
