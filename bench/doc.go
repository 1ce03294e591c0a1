// Package bench measures signerd against CometBFT's own FilePV and against the
// physical floor of this machine (issue 4), and renders the results.
//
// It owns nothing on the signing path: it plays the validator with CometBFT's
// own privval.SignerListenerEndpoint + privval.SignerClient over loopback
// SecretConnection, serves FilePV behind the same transport with a minimal
// dial loop (ServeFilePV: DefaultValidationRequestHandler over a
// SecretConnection dialer, never the stock SignerServer), runs the real
// signerd and cometbft binaries, and times what it sees from the validator's
// side.
//
// # Invariants
//
//   - Every figure compared in one table comes from one run of one process:
//     ratios, never absolute numbers from different runs, decide PASS or MISS.
//   - State files live on the real disk (a folder under the repository's
//     bench-results/ by default); DescribeMachine reports the filesystem and
//     refuses tmpfs unless explicitly allowed.
//   - Every loop is bounded in count and time; every process the harness
//     starts is stopped by its PID; every listener is on 127.0.0.1.
//   - Nothing here is imported by signerd itself.
package bench
