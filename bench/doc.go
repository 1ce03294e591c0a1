// Package bench measures signerd against CometBFT's own FilePV and against the
// physical floor of this machine (issue 4), and renders the results.
//
// `make bench` (bench/cmd/signerd-bench) runs, in one process and one run:
//
//   - the floor: a bare SoftHSM Ed25519 signature (raw C_SignInit + C_Sign,
//     CKM_EDDSA, token object) and a bare state write (4 KiB in-place pwrite +
//     fdatasync in the state folder), alone and on two threads at once
//     (MeasureParallelFloor: the overlap this machine really gives), plus
//     signerd's own key and state file timed alone and overlapped in-process
//     (MeasureOverlap);
//   - sign round trips seen by a validator (Validator: CometBFT's
//     SignerListenerEndpoint + SignerClient over loopback SecretConnection) for
//     the real signerd binary with a SoftHSM key and with a file: key, and for
//     FilePV behind the same transport (FilePVProcess: ServeFilePV, a minimal
//     dial loop around privval.DefaultValidationRequestHandler, never the
//     stock SignerServer, which busy-loops). Each height is one SignProposal,
//     one prevote, one precommit (whose extension is signed too) and one
//     GetPubKey, at rising heights; every signature is verified;
//   - multi-chain throughput: 1, 2 and 4 chains through one signerd process,
//     each with its own key (token or key file), state file and connection,
//     beside the bare SoftHSM ceiling on as many threads;
//   - a real single-validator CometBFT v0.38.26 chain (timeout_commit = 0s):
//     blocks/s through signerd+SoftHSM, signerd+file and the node's own
//     in-process FilePV (RunChain);
//   - memory: VmRSS of the signerd process after 100,000 signatures and the
//     fitted live-heap slope of signerd's core run in-process (MeasureMemory).
//
// The report (Report.Markdown) carries the machine, every figure, ratios taken
// within each run (medians over runs) and PASS/MISS per issue target with its
// margin (Report.Checks). Flags: signerd-bench -h; Makefile variables
// BENCH_FLAGS and BENCH_OUT.
//
// The core measurements are also Go benchmarks (go test -bench . ./bench/),
// in-process: BenchmarkHeight per target, BenchmarkKeySign, BenchmarkStateSave,
// BenchmarkBareHSMSign, BenchmarkBareFsync. Plain go test runs a smoke test of
// every section with a few iterations against real SoftHSM (it skips locally
// and fails under CI=true when SoftHSM or cometbft is missing).
//
// # Invariants
//
//   - Every figure compared in one table comes from one run of one process:
//     ratios within a run, never absolute numbers from different runs, decide
//     PASS or MISS.
//   - State files live on the real disk (a folder under the repository's
//     bench-results/ by default); DescribeMachine reports the filesystem and
//     refuses tmpfs unless explicitly allowed.
//   - Every loop is bounded in count or time; every process the harness
//     starts is stopped by its PID; every listener is on 127.0.0.1.
//   - Nothing here is imported by signerd itself.
package bench
