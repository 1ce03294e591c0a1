package bench

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/internal/testenv"
	"github.com/signerd/signerd/keys"
	"github.com/signerd/signerd/statefile"
)

// hsmInProcess is signerd's core in this process with keys in fresh
// softhsmtest tokens.
func hsmInProcess(t testing.TB) *SignerdInProcess {
	return &SignerdInProcess{Kind: KeySoftHSM, NewTokenURI: func() (string, error) {
		return newToken(t).URI("consensus"), nil
	}}
}

// TestHarnessSmoke runs every section of the report with few iterations,
// in-process, against real SoftHSM, and checks the report it renders.
func TestHarnessSmoke(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tk := newToken(t)
	bare, err := OpenBareHSM(tk.Module, tk.Label, tk.PIN, true)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	run := LatencyRun{Results: map[string]*LatencyResult{}}
	if run.Floor.Fsync, err = MeasureFsync(dir, 20); err != nil {
		t.Fatal(err)
	}
	if run.Floor.HSM, err = MeasureHSMSign(bare, []byte("sign bytes"), 20); err != nil {
		t.Fatal(err)
	}
	if run.Floor.Parallel, err = MeasureParallelFloor(bare, []byte("sign bytes"), dir, 20); err != nil {
		t.Fatal(err)
	}
	if run.Floor.P50() != max(run.Floor.HSM.P50, run.Floor.Fsync.P50) {
		t.Fatal("floor is not max(HSM p50, fsync p50)")
	}
	cfg := LatencyConfig{Warmup: 2, Heights: 10, PingEvery: 1}
	for i, tg := range []Target{FilePVInProcess{}, &SignerdInProcess{Kind: KeyFile}, hsmInProcess(t)} {
		res, err := MeasureLatency(ctx, tg, filepath.Join(dir, "lat", tg.Name()), cfg)
		if err != nil {
			t.Fatalf("target %d: %v", i, err)
		}
		if res.Prevote.N != 10 || res.Precommit.N != 10 || res.Proposal.N != 10 || res.Ping.N != 10 {
			t.Fatalf("%s: unexpected sample counts %+v", tg.Name(), res)
		}
		run.Results[tg.Name()] = res
	}
	rep := &Report{Date: time.Now(), Command: "go test", Heights: 10, Latency: []LatencyRun{run},
		MultiChains: []int{1, 4}, Multi: []MultiSet{{Target: NameSoftHSM, Runs: make([][]*MultiResult, 2)}}}
	if rep.Machine, err = DescribeMachine(dir, true); err != nil {
		t.Fatal(err)
	}
	for i, n := range rep.MultiChains {
		m, err := MeasureMultiChain(ctx, hsmInProcess(t), filepath.Join(dir, "multi", string(rune('0'+n))), n, 1, 300*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m.Chains != n || len(m.PerChainP99) != n || m.Signatures == 0 {
			t.Fatalf("multi %d: %+v", n, m)
		}
		rep.Multi[0].Runs[i] = append(rep.Multi[0].Runs[i], m)
	}
	if rep.Heap, err = MeasureMemory(ctx, &SignerdInProcess{Kind: KeyFile}, filepath.Join(dir, "heap"), 200, 40, HeapAfterGC); err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	for _, want := range []string{"## Machine", "## Floor and sign round trips", "bare SoftHSM Ed25519 sign", "bare fsync", "bare HSM sign ‖ bare fsync",
		"signerd+softhsm: SignVote prevote", "signerd+file: SignVote precommit", "FilePV: SignProposal",
		"## Multi-chain", "## Memory", "## Targets"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	checks := rep.Checks()
	// 2 file-ratio, 2 floor, 2 p99, 1 multi-chain, 1 heap.
	if len(checks) != 8 {
		t.Fatalf("got %d checks, want 8: %+v", len(checks), checks)
	}
	for _, c := range checks {
		if c.Name == "" || c.Measured == "" || c.Limit == "" || c.Margin == "" {
			t.Errorf("incomplete check %+v", c)
		}
	}
}

// signerdBinary returns $SIGNERD_BIN or ./cmd/signerd built once.
func signerdBinary(t testing.TB) string { return testenv.Signerd(t, false) }

// TestProcessTargetsSmoke drives the targets `make bench` uses: the real
// signerd binary (file key, and a SoftHSM key imported with `signerd keys
// import`) and the FilePV baseline process, and reads signerd's RSS.
func TestProcessTargetsSmoke(t *testing.T) {
	bin := signerdBinary(t)
	hsm, err := NewSoftHSM(t.TempDir(), SoftHSMLib())
	if err != nil {
		newToken(t) // skips locally / fails under CI with the fixture's reason
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range []Target{&FilePVProcess{Self: self}, &SignerdProcess{Bin: bin, Kind: KeyFile}, &SignerdProcess{Bin: bin, Kind: KeySoftHSM, HSM: hsm}} {
		res, err := MeasureLatency(context.Background(), tg, t.TempDir(), LatencyConfig{Warmup: 1, Heights: 5})
		if err != nil {
			t.Fatal(err)
		}
		if res.Vote.N != 10 || res.Proposal.N != 5 {
			t.Fatalf("%s: unexpected sample counts %+v", tg.Name(), res)
		}
	}
	m, err := MeasureMemory(context.Background(), &SignerdProcess{Bin: bin, Kind: KeySoftHSM, HSM: hsm}, t.TempDir(), 80, 40, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.What != "VmRSS" || len(m.Samples) != 2 || m.Final < 1<<20 || m.Peak < m.Final {
		t.Fatalf("implausible RSS reading %+v", m)
	}
}

// TestRunChainSignerd runs the chain benchmark through signerd with a
// SoftHSM key for one second.
func TestRunChainSignerd(t *testing.T) {
	comet, bin := cometbftBin(t), signerdBinary(t)
	hsm, err := NewSoftHSM(t.TempDir(), SoftHSMLib())
	if err != nil {
		newToken(t)
		t.Fatal(err)
	}
	res, err := RunChain(context.Background(), ChainConfig{CometBFT: comet, Signerd: bin, HSM: hsm, Dir: t.TempDir(), Duration: time.Second, Warmup: 2}, ChainSignerdSoftHSM)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks < 2 {
		t.Fatalf("only %d blocks in %s through signerd", res.Blocks, res.Elapsed)
	}
}

// Go benchmarks of the core measurements (in-process; `make bench` is the
// deliverable). One iteration is one height: GetPubKey, SignProposal,
// prevote, precommit (+extension).
func BenchmarkHeight(b *testing.B) {
	for _, tg := range []Target{FilePVInProcess{}, &SignerdInProcess{Kind: KeyFile}, hsmInProcess(b)} {
		b.Run(tg.Name(), func(b *testing.B) {
			v, err := NewValidator("bench-go")
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			r, err := startTarget(tg, b.TempDir(), []*Validator{v}, 30*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Stop()
			if _, err := v.Drive(context.Background(), DriveConfig{StartHeight: 1, Heights: 20, PubKey: r.Pubs[0]}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			l, err := v.Drive(context.Background(), DriveConfig{StartHeight: 21, Heights: b.N, PubKey: r.Pubs[0]})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(Summarize(l.Prevote).P50.Microseconds()), "prevote-p50-µs")
			b.ReportMetric(float64(Summarize(l.Precommit).P50.Microseconds()), "precommit-p50-µs")
			b.ReportMetric(float64(Summarize(l.Proposal).P50.Microseconds()), "proposal-p50-µs")
		})
	}
}

func BenchmarkBareHSMSign(b *testing.B) {
	tk := newToken(b)
	bare, err := OpenBareHSM(tk.Module, tk.Label, tk.PIN, true)
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	msg := types.VoteSignBytes("bench", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 1, BlockID: randomBlockID(), Timestamp: time.Now()})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bare.Sign(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareFsync(b *testing.B) {
	d, err := MeasureFsync(b.TempDir(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.P50.Microseconds()), "p50-µs")
}

// BenchmarkKeySign compares one signature through the raw PKCS#11 calls with
// one through signerd's keys.Open signer (hsm.Key: mutex, C_SignInit+C_Sign,
// Ed25519 verification) and the file: software key.
func BenchmarkKeySign(b *testing.B) {
	msg := types.VoteSignBytes("bench", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 1, BlockID: randomBlockID(), Timestamp: time.Now()})
	b.Run("bare-pkcs11", func(b *testing.B) {
		tk := newToken(b)
		bare, err := OpenBareHSM(tk.Module, tk.Label, tk.PIN, true)
		if err != nil {
			b.Fatal(err)
		}
		defer bare.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := bare.Sign(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, kind := range []KeyKind{KeySoftHSM, KeyFile} {
		b.Run("keys.Open-"+string(kind), func(b *testing.B) {
			dir := b.TempDir()
			keyPath, _, _, err := newFilePVKey(dir)
			if err != nil {
				b.Fatal(err)
			}
			ref := "file:" + keyPath
			if kind == KeySoftHSM {
				if ref, err = hsmInProcess(b).importToToken(keyPath); err != nil {
					b.Fatal(err)
				}
			}
			k, err := keys.Open(ref, dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer k.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStateSave is statefile.Save of a fresh prevote record: the one
// durable write per signature.
func BenchmarkStateSave(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.json")
	if err := statefile.Create(path, "bench", statefile.Record{}, false); err != nil {
		b.Fatal(err)
	}
	st, err := statefile.Open(path, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	recs := make([]statefile.Record, b.N)
	for i := range recs {
		v := &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: int64(i + 1), BlockID: randomBlockID(), Timestamp: time.Now()}
		recs[i] = statefile.Record{HRS: statefile.HRS{Height: v.Height, Step: statefile.StepPrevote}, SignBytes: types.VoteSignBytes("bench", v)}
	}
	b.ResetTimer()
	for i := range recs {
		if err := st.Save(recs[i]); err != nil {
			b.Fatal(err)
		}
	}
}
