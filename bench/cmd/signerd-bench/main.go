// Command signerd-bench is the `make bench` harness (issue 4): it measures
// signerd with a SoftHSM key, signerd with a file: key and CometBFT's FilePV
// behind the same privval transport, the machine's floor (bare SoftHSM
// signature, bare fsync), a real CometBFT chain's blocks/s, multi-chain
// throughput and memory, all in one run, and prints a markdown report with
// PASS/MISS per target.
//
//	signerd-bench [-runs 3] [-heights 2000] [-chain-duration 20s] [-sections latency,multi,chain,memory] [-out FILE]
//	signerd-bench filepv-serve --addr A --chain-id ID --key K --state S   (internal: the FilePV baseline process)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.FilePVServeCommand {
		os.Exit(bench.FilePVServeMain(os.Args[2:], os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "signerd-bench: error: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	dir, out, signerd, cometbft, sections string
	runs, heights, warmup, floorN         int
	chainRuns                             int
	chainDur, multiDur                    time.Duration
	memSigs                               int
	allowTmpfs, keep                      bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("signerd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.dir, "dir", "", "folder for state files, tokens and logs, on the real disk (default: bench-results/run-TIME in the repository)")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&o.signerd, "signerd", "", "signerd binary (default: built from this repository)")
	fs.StringVar(&o.cometbft, "cometbft", os.Getenv("SIGNERD_COMETBFT"), "cometbft v0.38.26 binary (default $SIGNERD_COMETBFT)")
	fs.StringVar(&o.sections, "sections", "latency,multi,chain,memory", "sections to run")
	fs.IntVar(&o.runs, "runs", 3, "repetitions of the latency and multi-chain sections (medians are reported)")
	fs.IntVar(&o.chainRuns, "chain-runs", 3, "repetitions of the chain section")
	fs.IntVar(&o.heights, "heights", 2000, "measured heights per latency target (each: proposal, prevote, precommit)")
	fs.IntVar(&o.warmup, "warmup", 100, "heights driven before measuring")
	fs.IntVar(&o.floorN, "floor-n", 2000, "bare HSM signatures and bare fsyncs per run")
	fs.DurationVar(&o.chainDur, "chain-duration", 20*time.Second, "measured window per chain setup")
	fs.DurationVar(&o.multiDur, "multi-duration", 5*time.Second, "window per multi-chain measurement")
	fs.IntVar(&o.memSigs, "mem-sigs", 100000, "signatures for the memory section")
	fs.BoolVar(&o.allowTmpfs, "allow-tmpfs", false, "allow a RAM-backed state folder (figures are then meaningless)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run folder (state files, tokens, logs) afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.runs < 1 || o.heights < 1 || o.chainRuns < 1 || o.floorN < 1 {
		return errors.New("-runs, -chain-runs, -heights and -floor-n must be at least 1")
	}
	sections := map[string]bool{}
	for _, s := range strings.Split(o.sections, ",") {
		switch s = strings.TrimSpace(s); s {
		case "latency", "multi", "chain", "memory":
			sections[s] = true
		case "":
		default:
			return fmt.Errorf("-sections: unknown section %q (latency, multi, chain, memory)", s)
		}
	}
	root, err := bench.ModuleRoot(".")
	if err != nil {
		return err
	}
	if o.dir == "" {
		o.dir = filepath.Join(root, "bench-results", "run-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(o.dir)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }

	m, err := bench.DescribeMachine(o.dir, o.allowTmpfs)
	if err != nil {
		return err
	}
	rep := &bench.Report{Date: time.Now(), Machine: m, Heights: o.heights, ChainWindow: o.chainDur,
		Command: "make bench" + commandSuffix(args)}
	rep.Notes = append(rep.Notes, "signerd and the FilePV baseline run as separate processes; the validator side (CometBFT's SignerListenerEndpoint + SignerClient over loopback SecretConnection) runs in the harness process")

	hsm, err := bench.NewSoftHSM(filepath.Join(o.dir, "softhsm"), bench.SoftHSMLib())
	if err != nil {
		return err
	}
	// The bare-HSM floor runs in this process with its own token.
	if err := os.Setenv("SOFTHSM2_CONF", hsm.Conf); err != nil {
		return err
	}
	if o.signerd == "" {
		logf("building signerd from %s", root)
		if o.signerd, err = bench.BuildSignerd(root, filepath.Join(o.dir, "bin")); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Tokens this process signs with itself (the HSM throughput ceiling)
	// must exist before it first initialises SoftHSM.
	var tpTokens []bench.Token
	if sections["multi"] {
		for i := 1; i <= 4; i++ {
			tok, err := hsm.InitToken(fmt.Sprintf("ceiling%d", i))
			if err != nil {
				return err
			}
			tpTokens = append(tpTokens, tok)
		}
	}
	fileT := &bench.SignerdProcess{Bin: o.signerd, Kind: bench.KeyFile}
	hsmT := &bench.SignerdProcess{Bin: o.signerd, Kind: bench.KeySoftHSM, HSM: hsm}
	pvT := &bench.FilePVProcess{Self: self}

	if sections["latency"] {
		if err := latencySection(ctx, o, rep, hsm, []bench.Target{pvT, fileT, hsmT}, logf); err != nil {
			return err
		}
	}
	if sections["multi"] {
		rep.MultiChains = []int{1, 2, 4}
		multiTargets := []bench.Target{hsmT, fileT}
		for _, t := range multiTargets {
			rep.Multi = append(rep.Multi, bench.MultiSet{Target: t.Name(), Runs: make([][]*bench.MultiResult, len(rep.MultiChains))})
		}
		rep.HSMCeiling = make([][]float64, len(rep.MultiChains))
		var bares []*bench.BareHSM
		for _, tok := range tpTokens {
			b, err := bench.OpenBareHSM(hsm.Lib, tok.Label, tok.PIN, true)
			if err != nil {
				return err
			}
			defer b.Close()
			bares = append(bares, b)
		}
		for r := 0; r < o.runs; r++ {
			for i, n := range rep.MultiChains {
				x, err := bench.MeasureHSMThroughput(bares[:n], signBytesSample(), 2*time.Second)
				if err != nil {
					return err
				}
				logf("multi run %d: bare SoftHSM, %d thread(s) in one process: %.0f signatures/s", r+1, n, x)
				rep.HSMCeiling[i] = append(rep.HSMCeiling[i], x)
			}
			for k, t := range multiTargets {
				for i, n := range rep.MultiChains {
					res, err := bench.MeasureMultiChain(ctx, t, filepath.Join(o.dir, fmt.Sprintf("multi-%d-%s-%d", r, sanitize(t.Name()), n)), n, 20, o.multiDur, 0)
					if err != nil {
						return err
					}
					logf("multi run %d: %s, %d chain(s): %.0f signatures/s, worst p99 %s ms", r+1, t.Name(), n, res.SigsPerSec(), bench.Ms(res.MaxP99()))
					rep.Multi[k].Runs[i] = append(rep.Multi[k].Runs[i], res)
				}
			}
		}
	}
	if sections["chain"] {
		if o.cometbft == "" {
			return errors.New("no cometbft binary: run `make cometbft` and pass -cometbft or set SIGNERD_COMETBFT")
		}
		rep.Chain = map[bench.ChainSetup][]*bench.ChainResult{}
		setups := []bench.ChainSetup{bench.ChainFilePV, bench.ChainSignerdFile, bench.ChainSignerdSoftHSM}
		for r := 0; r < o.chainRuns; r++ {
			for k := range setups {
				s := setups[(k+r)%len(setups)] // rotate the order between runs
				cfg := bench.ChainConfig{CometBFT: o.cometbft, Signerd: o.signerd, HSM: hsm, Duration: o.chainDur,
					Dir: filepath.Join(o.dir, fmt.Sprintf("chain-%d-%s", r, sanitize(string(s))))}
				res, err := bench.RunChain(ctx, cfg, s)
				if err != nil {
					return err
				}
				logf("chain run %d: %s: %.1f blocks/s", r+1, s, res.BlocksPerSec())
				rep.Chain[s] = append(rep.Chain[s], res)
			}
		}
	}
	if sections["memory"] {
		every := max(o.memSigs/25, 4)
		res, err := bench.MeasureMemory(ctx, hsmT, filepath.Join(o.dir, "memory-rss"), o.memSigs, every, nil)
		if err != nil {
			return err
		}
		logf("memory: RSS %.1f MiB after %d signatures", float64(res.Final)/(1<<20), o.memSigs)
		rep.RSS = res
		// The live heap can only be read in-process: signerd's own core
		// (keys, statefile, signer) served from this process, file key.
		heap, err := bench.MeasureMemory(ctx, &bench.SignerdInProcess{Kind: bench.KeyFile}, filepath.Join(o.dir, "memory-heap"), o.memSigs, every, bench.HeapAfterGC)
		if err != nil {
			return err
		}
		logf("memory: heap fitted growth %+.0f KiB over %d signatures", heap.Growth()/1024, o.memSigs)
		rep.Heap = heap
	}
	md := rep.Markdown()
	fmt.Fprint(stdout, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("report written to %s", o.out)
	}
	return nil
}

func latencySection(ctx context.Context, o options, rep *bench.Report, hsm *bench.SoftHSM, targets []bench.Target, logf func(string, ...any)) error {
	tok, err := hsm.InitToken("bare")
	if err != nil {
		return err
	}
	// The persist ‖ sign check uses signerd's own key code in this process:
	// its token must exist before this process initialises SoftHSM.
	otok, err := hsm.InitToken("overlap")
	if err != nil {
		return err
	}
	odir := filepath.Join(o.dir, "overlap")
	keyJSON, err := bench.NewKeyFile(odir)
	if err != nil {
		return err
	}
	ouri := hsm.KeyURI(otok, "consensus")
	if err := bench.ImportKey(o.signerd, []string{hsm.Env()}, ouri, keyJSON); err != nil {
		return err
	}
	bare, err := bench.OpenBareHSM(hsm.Lib, tok.Label, tok.PIN, true)
	if err != nil {
		return err
	}
	defer bare.Close()
	msg := signBytesSample()
	cfg := bench.LatencyConfig{Warmup: o.warmup, Heights: o.heights, PingEvery: 1}
	for r := 0; r < o.runs; r++ {
		run := bench.LatencyRun{Results: map[string]*bench.LatencyResult{}}
		if run.Floor.Fsync, err = bench.MeasureFsync(o.dir, o.floorN); err != nil {
			return err
		}
		if run.Floor.HSM, err = bench.MeasureHSMSign(bare, msg, o.floorN); err != nil {
			return err
		}
		if run.Floor.Parallel, err = bench.MeasureParallelFloor(bare, msg, o.dir, o.floorN); err != nil {
			return err
		}
		logf("run %d: floor: HSM sign p50 %s ms, fsync p50 %s ms, both in parallel %s ms", r+1,
			bench.Ms(run.Floor.HSM.P50), bench.Ms(run.Floor.Fsync.P50), bench.Ms(run.Floor.Parallel.P50))
		if run.Overlap, err = bench.MeasureOverlap(ouri, odir, o.floorN/2); err != nil {
			return err
		}
		logf("run %d: persist ‖ sign (SoftHSM, in-process): sign %s, save %s, both %s ms", r+1,
			bench.Ms(run.Overlap.Sign.P50), bench.Ms(run.Overlap.Save.P50), bench.Ms(run.Overlap.Both.P50))
		for k := range targets {
			t := targets[(k+r)%len(targets)] // rotate the order between runs
			res, err := bench.MeasureLatency(ctx, t, filepath.Join(o.dir, fmt.Sprintf("latency-%d-%s", r, sanitize(t.Name()))), cfg)
			if err != nil {
				return err
			}
			logf("run %d: %s: prevote p50 %s ms, precommit p50 %s ms, proposal p50 %s ms", r+1, t.Name(),
				bench.Ms(res.Prevote.P50), bench.Ms(res.Precommit.P50), bench.Ms(res.Proposal.P50))
			run.Results[t.Name()] = res
		}
		rep.Latency = append(rep.Latency, run)
	}
	return nil
}

// signBytesSample is a prevote's sign bytes: the message the HSM signs on
// the hot path.
func signBytesSample() []byte {
	return types.VoteSignBytes("bench-chain", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 123456, BlockID: cmtproto.BlockID{
		Hash: make([]byte, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: make([]byte, 32)}}, Timestamp: time.Now()})
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// commandSuffix renders the flags a user gave (without the plumbing flags
// the Makefile adds) as the BENCH_FLAGS of a reproducing `make bench`.
func commandSuffix(args []string) string {
	plumbing := map[string]bool{"-signerd": true, "-cometbft": true, "-out": true, "-dir": true, "--signerd": true, "--cometbft": true, "--out": true, "--dir": true}
	var keep []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(args[i], "=")
		if plumbing[name] {
			if !hasValue {
				i++ // skip the value
			}
			continue
		}
		keep = append(keep, args[i])
	}
	if len(keep) == 0 {
		return ""
	}
	return " BENCH_FLAGS='" + strings.Join(keep, " ") + "'"
}
