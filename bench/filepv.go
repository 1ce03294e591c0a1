package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/libs/protoio"
	p2pconn "github.com/cometbft/cometbft/p2p/conn"
	"github.com/cometbft/cometbft/privval"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"github.com/cometbft/cometbft/types"
)

// FilePV serving parameters: the baseline runs behind the same transport as
// signerd, with timeouts like signerd's (read above the node's 3.33 s ping).
const (
	filePVDialTimeout  = 2 * time.Second
	filePVReadTimeout  = 10 * time.Second
	filePVWriteTimeout = 5 * time.Second
	filePVRedial       = 100 * time.Millisecond
	filePVMaxMsg       = 1<<20 + 8<<10
)

// ServeFilePV serves pv (normally CometBFT's *privval.FilePV) for chainID to
// the validator at addr ("tcp://host:port" or "host:port") until ctx ends.
//
// It is the minimal correct dial loop privval.md §7 describes, not the stock
// SignerServer (which busy-loops on EOF and gives up after 10 dials): dial with
// a timeout → SecretConnection with identity → read one request →
// privval.DefaultValidationRequestHandler → write the response; a refusal is
// answered (the handler fills the response) and the connection stays; any
// transport error closes the connection and redials after 100 ms. One request
// at a time, so FilePV (which has no lock) is never used concurrently.
//
// served, when not nil, is called after every answered request.
func ServeFilePV(ctx context.Context, addr string, identity crypto.PrivKey, pv types.PrivValidator, chainID string, served func()) error {
	hostport := strings.TrimPrefix(addr, "tcp://")
	if strings.Contains(hostport, "://") {
		return fmt.Errorf("filepv server: address %q: only tcp://host:port is supported", addr)
	}
	for ctx.Err() == nil {
		err := serveFilePVConn(ctx, hostport, identity, pv, chainID, served)
		if ctx.Err() != nil {
			break
		}
		_ = err // dropped connection or validator not up yet: redial
		select {
		case <-ctx.Done():
		case <-time.After(filePVRedial):
		}
	}
	return nil
}

func serveFilePVConn(ctx context.Context, hostport string, identity crypto.PrivKey, pv types.PrivValidator, chainID string, served func()) error {
	d := net.Dialer{Timeout: filePVDialTimeout}
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return err
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	if err := raw.SetDeadline(time.Now().Add(filePVDialTimeout)); err != nil {
		return err
	}
	sc, err := p2pconn.MakeSecretConnection(raw, identity)
	if err != nil {
		return fmt.Errorf("secret connection: %w", err)
	}
	r := protoio.NewDelimitedReader(sc, filePVMaxMsg)
	w := protoio.NewDelimitedWriter(sc)
	for {
		if err := sc.SetReadDeadline(time.Now().Add(filePVReadTimeout)); err != nil {
			return err
		}
		var req privvalproto.Message
		if _, err := r.ReadMsg(&req); err != nil {
			return err
		}
		res, herr := privval.DefaultValidationRequestHandler(pv, req, chainID)
		if herr != nil && res.Sum == nil {
			// Nothing to answer with (unknown request type): drop, as the
			// node would see any other broken signer.
			return fmt.Errorf("filepv handler: %w", herr)
		}
		if err := sc.SetWriteDeadline(time.Now().Add(filePVWriteTimeout)); err != nil {
			return err
		}
		if _, err := w.WriteMsg(&res); err != nil {
			return err
		}
		if served != nil {
			served()
		}
	}
}
