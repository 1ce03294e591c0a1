package signer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/statefile"
)

// Benchmarks for the perf engineer. The state file lives in
// $SIGNER_BENCH_DIR if set, else in the test's temp dir; the filesystem type
// is logged because on tmpfs fdatasync costs nothing. Run with e.g.
//
//	go test ./signer -run '^$' -bench . -benchtime 2000x

// benchState creates a fresh state file for the benchmark.
func benchState(b *testing.B) *statefile.File {
	b.Helper()
	dir := os.Getenv("SIGNER_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "signer-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err == nil {
		b.Logf("state file in %s (filesystem magic %#x; tmpfs is %#x)", dir, fs.Type, unix.TMPFS_MAGIC)
	}
	path := filepath.Join(dir, testChainID+".state")
	if err := statefile.Create(path, testChainID, statefile.Record{}, false); err != nil {
		b.Fatal(err)
	}
	st, err := statefile.Open(path, testChainID)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}

func benchChain(b *testing.B) *Chain {
	b.Helper()
	c, err := NewChain(ChainConfig{ChainID: testChainID, Key: testKey("consensus"), State: benchState(b)})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// reportLatency adds p50/p99 (µs) of the per-operation durations.
func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkSignVoteRoundTrip: CometBFT's SignerClient (the node side) asks
// the signer for one fresh prevote per iteration over loopback TCP with
// SecretConnection (or a unix socket); software Ed25519 key; state file on
// disk, so every iteration includes one fdatasync.
func BenchmarkSignVoteRoundTrip(b *testing.B) {
	for _, tr := range []string{"tcp", "unix"} {
		for _, kind := range []string{"prevote", "precommit+extension"} {
			b.Run(tr+"/"+kind, func(b *testing.B) {
				var n *node
				if tr == "tcp" {
					n = startTCPNode(b, "127.0.0.1:0", testChainID)
				} else {
					n = startUnixNode(b, filepath.Join(b.TempDir(), "pv.sock"), testChainID)
				}
				chain := benchChain(b)
				runSigner(b, n.addr, chain)
				n.waitConnected(b)
				bid := blockID("bench")
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					v := newVote(cmtproto.PrevoteType, int64(i+1), 0, bid)
					if kind != "prevote" {
						v.Type, v.Extension = cmtproto.PrecommitType, []byte("extension")
					}
					start := time.Now()
					if err := n.client.SignVote(testChainID, v); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				reportLatency(b, lat)
			})
		}
	}
}

// BenchmarkPubKeyRoundTrip is the transport floor: the same path answered
// from memory, without signing or disk.
func BenchmarkPubKeyRoundTrip(b *testing.B) {
	n := startTCPNode(b, "127.0.0.1:0", testChainID)
	runSigner(b, n.addr, benchChain(b))
	n.waitConnected(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := n.client.GetPubKey(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkHandleSignVote is the signer's own share: decode, validate,
// decide, (fdatasync ‖ Ed25519 sign), encode, with no network.
func BenchmarkHandleSignVote(b *testing.B) {
	chain := benchChain(b)
	log := testLogger()
	bid := blockID("bench")
	reqs := make([][]byte, b.N)
	for i := range reqs {
		reqs[i] = signVoteRequest(b, newVote(cmtproto.PrevoteType, int64(i+1), 0, bid), testChainID)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		resp := chain.handle(reqs[i], log)
		lat = append(lat, time.Since(start))
		if len(resp) < 64 {
			b.Fatalf("response %X", resp)
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkHandleRepeat is a repeated request (no disk write): decode,
// decide, re-sign, encode.
func BenchmarkHandleRepeat(b *testing.B) {
	chain := benchChain(b)
	log := testLogger()
	req := signVoteRequest(b, newVote(cmtproto.PrevoteType, 1, 0, blockID("bench")), testChainID)
	var m privvalproto.Message
	if err := m.Unmarshal(chain.handle(req, log)); err != nil || m.GetSignedVoteResponse().GetError() != nil {
		b.Fatalf("first request failed: %v %v", err, m.GetSignedVoteResponse().GetError())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		chain.handle(req, log)
	}
}
