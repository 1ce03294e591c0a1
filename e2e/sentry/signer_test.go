package sentry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/libs/protoio"
	p2pconn "github.com/cometbft/cometbft/p2p/conn"
	"github.com/cometbft/cometbft/privval"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
)

// The remote signer of the end-to-end test.
//
// The validator signs through a separate signer process that runs in the
// signer host's namespace and dials priv_validator_laddr over the private
// link, exactly the path signerd takes. Until `signerd start` builds, that
// process is this test binary re-executed as a small stand-in: CometBFT's
// FilePV behind its own dial loop (the stock SignerServer never redials, see
// the team's privval notes §7). Switching to signerd means replacing
// startSigner's command line with `signerd start --config <signerd.toml>`
// (see the comment there); nothing else in the test changes.

// Environment of the stand-in signer process.
const (
	helperEnv     = "SENTRYLINK_E2E_HELPER" // "signer" runs the stand-in instead of the tests
	signerKeyEnv  = "SENTRYLINK_E2E_SIGNER_KEY"
	signerStEnv   = "SENTRYLINK_E2E_SIGNER_STATE"
	signerAddrEnv = "SENTRYLINK_E2E_SIGNER_ADDR"
	signerChainID = "SENTRYLINK_E2E_CHAIN_ID"
)

// maxPrivvalMsg is CometBFT's own limit for a privval message (10 KiB).
const maxPrivvalMsg = 10 * 1024

// runStandInSigner dials addr, serves privval requests with the FilePV until
// the connection fails, and redials every 100 ms, until SIGTERM.
func runStandInSigner() int {
	key, state, addr, chainID := os.Getenv(signerKeyEnv), os.Getenv(signerStEnv), os.Getenv(signerAddrEnv), os.Getenv(signerChainID)
	if key == "" || state == "" || addr == "" || chainID == "" {
		fmt.Fprintln(os.Stderr, "stand-in signer: missing environment")
		return 2
	}
	for _, p := range []string{key, state} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintln(os.Stderr, "stand-in signer:", err)
			return 2
		}
	}
	pv := privval.LoadFilePV(key, state)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	connKey := ed25519.GenPrivKey()
	fmt.Fprintf(os.Stderr, "stand-in signer: validator address %s, dialing %s\n", pv.GetAddress(), addr)
	for ctx.Err() == nil {
		err := serveOnce(ctx, pv, connKey, addr, chainID)
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "stand-in signer: %v; redialing\n", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintln(os.Stderr, "stand-in signer: stopped")
	return 0
}

func serveOnce(ctx context.Context, pv *privval.FilePV, connKey ed25519.PrivKey, addr, chainID string) error {
	d := net.Dialer{Timeout: time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	sc, err := p2pconn.MakeSecretConnection(raw, connKey)
	if err != nil {
		return fmt.Errorf("secret connection: %w", err)
	}
	fmt.Fprintf(os.Stderr, "stand-in signer: connected to %s\n", addr)
	r := protoio.NewDelimitedReader(sc, maxPrivvalMsg)
	w := protoio.NewDelimitedWriter(sc)
	n := 0
	for {
		// The validator pings every ~3.3 s; 10 s without a request means the
		// link is dead.
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		var req privvalproto.Message
		if _, err := r.ReadMsg(&req); err != nil {
			return fmt.Errorf("read after %d requests: %w", n, err)
		}
		resp, err := privval.DefaultValidationRequestHandler(pv, req, chainID)
		if err != nil && resp.Sum == nil {
			return fmt.Errorf("handler: %w", err)
		}
		if _, err := w.WriteMsg(&resp); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		n++
	}
}

var errNotHelper = errors.New("not a helper process")

// helperMain runs the helper selected by the environment, if any.
func helperMain() (int, error) {
	switch os.Getenv(helperEnv) {
	case "":
		return 0, errNotHelper
	case "signer":
		return runStandInSigner(), nil
	}
	return 2, fmt.Errorf("unknown %s=%q", helperEnv, os.Getenv(helperEnv))
}
