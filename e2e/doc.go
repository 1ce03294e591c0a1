// Package e2e runs real CometBFT v0.38.26 nodes against the real signerd
// binary, with the consensus key held in a throwaway SoftHSM token.
//
// The package has no code of its own outside its tests. The tests build
// ./cmd/signerd (or use $SIGNERD_BIN), take the node binary from
// $SIGNERD_COMETBFT (built by `make cometbft`), and drive both as separate
// processes, the way an operator would:
//
//	cometbft init → signerd keys import (into SoftHSM) → delete the node's key
//	file → signerd state import → signerd start → cometbft start
//
// # Invariants
//
//   - A node's blocks come only from signerd: the node's key file is deleted
//     before it starts, and the genesis validator's public key is checked
//     against `signerd keys show`.
//   - Every process a test starts is stopped by PID in t.Cleanup; every wait
//     polls a condition with a bounded deadline; every port is a free
//     loopback port picked for the run.
//   - A missing prerequisite (cometbft binary, SoftHSM) skips locally and
//     fails under CI=true (internal/testenv).
//   - On failure the tail of every node and signer log is copied into the
//     test log.
package e2e
