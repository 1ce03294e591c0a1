package signer

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	p2pconn "github.com/cometbft/cometbft/p2p/conn"
)

// Defaults for the zero values of [ValidatorConfig]. The node's side of the
// protocol is hard-coded in CometBFT (privval/signer_endpoint.go,
// signer_listener_endpoint.go, socket_listeners.go: 5 s read/write timeout,
// 3 s accept/connection wait, a ping every 2/3 × 5 s ≈ 3.33 s after the last
// request); these values are chosen against it.
const (
	// DefaultDialTimeout bounds one TCP or unix dial. A refused dial returns
	// at once; the timeout only matters when SYNs are dropped (firewall,
	// host down). 2 s covers the first SYN and Linux's first retransmit (at
	// 1 s) and stays below the node's 3 s wait for a connection.
	DefaultDialTimeout = 2 * time.Second
	// DefaultHandshakeTimeout bounds the SecretConnection handshake (two
	// round trips and an Ed25519 signature each way: milliseconds normally).
	DefaultHandshakeTimeout = 2 * time.Second
	// DefaultReadTimeout is how long signerd waits for the next request.
	// A healthy node sends at least a ping every ≈3.33 s, so a silence of
	// 10 s (three ping intervals) means the link or the node is gone; the
	// value must exceed the ping interval or idle links would be dropped.
	DefaultReadTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds writing one response. The node stops
	// reading after its own 5 s read timeout, so waiting longer is useless.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultBackoffMin is the first redial delay after a failed dial or a
	// disconnect: a restarted node is picked up within about 100 ms.
	DefaultBackoffMin = 100 * time.Millisecond
	// DefaultBackoffMax caps the redial delay. A starting node gives the
	// signer about 3 s to connect before it exits ("can't get pubkey"), so
	// the cap must stay well below 3 s; 2 s keeps a down validator at one
	// dial every 2 s (about zero CPU).
	DefaultBackoffMax = 2 * time.Second
)

// ValidatorConfig describes one validator connection. Zero durations take the
// Default* values above.
type ValidatorConfig struct {
	// Addr is the node's priv_validator_laddr: "tcp://host:port" or
	// "unix:///absolute/path".
	Addr string
	// Identity is signerd's persistent SecretConnection identity (tcp only).
	// It is not the consensus key.
	Identity ed25519.PrivateKey

	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	BackoffMin       time.Duration
	BackoffMax       time.Duration

	Logger *slog.Logger

	// testOnlyOnDial, if set, is called before every dial attempt.
	testOnlyOnDial func()
}

// validatorConn is a validated ValidatorConfig.
type validatorConn struct {
	cfg      ValidatorConfig
	network  string // "tcp" or "unix"
	address  string
	identity cmted25519.PrivKey
	log      *slog.Logger
}

func newValidatorConn(cfg ValidatorConfig) (*validatorConn, error) {
	v := &validatorConn{cfg: cfg}
	switch {
	case strings.HasPrefix(cfg.Addr, "tcp://"):
		v.network, v.address = "tcp", strings.TrimPrefix(cfg.Addr, "tcp://")
		host, port, err := net.SplitHostPort(v.address)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("validator address %q: want tcp://host:port", cfg.Addr)
		}
		if len(cfg.Identity) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("validator address %q: a tcp connection needs the %d-byte Ed25519 SecretConnection identity key, got %d bytes",
				cfg.Addr, ed25519.PrivateKeySize, len(cfg.Identity))
		}
		v.identity = cmted25519.PrivKey(append([]byte(nil), cfg.Identity...))
	case strings.HasPrefix(cfg.Addr, "unix://"):
		v.network, v.address = "unix", strings.TrimPrefix(cfg.Addr, "unix://")
		if !strings.HasPrefix(v.address, "/") {
			return nil, fmt.Errorf("validator address %q: want unix:///absolute/path", cfg.Addr)
		}
	default:
		return nil, fmt.Errorf("validator address %q: want tcp://host:port or unix:///path", cfg.Addr)
	}
	d := &v.cfg
	for _, f := range []struct {
		name string
		val  *time.Duration
		def  time.Duration
	}{
		{"dial timeout", &d.DialTimeout, DefaultDialTimeout},
		{"handshake timeout", &d.HandshakeTimeout, DefaultHandshakeTimeout},
		{"read timeout", &d.ReadTimeout, DefaultReadTimeout},
		{"write timeout", &d.WriteTimeout, DefaultWriteTimeout},
		{"minimum backoff", &d.BackoffMin, DefaultBackoffMin},
		{"maximum backoff", &d.BackoffMax, DefaultBackoffMax},
	} {
		if *f.val < 0 {
			return nil, fmt.Errorf("validator %q: %s %v is negative: use 0 for the default %v", cfg.Addr, f.name, *f.val, f.def)
		}
		if *f.val == 0 {
			*f.val = f.def
		}
	}
	if d.BackoffMin > d.BackoffMax {
		return nil, fmt.Errorf("validator %q: minimum backoff %v exceeds maximum backoff %v", cfg.Addr, d.BackoffMin, d.BackoffMax)
	}
	v.log = cfg.Logger
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.log = v.log.With("validator", cfg.Addr)
	return v, nil
}

// handler answers one request message with one response message. *Chain is
// the only production implementation.
type handler interface {
	handle(msg []byte, log *slog.Logger) []byte
	ChainID() string
}

// RunValidator keeps one connection to the validator at cfg.Addr and answers
// its requests for chain, until ctx is done. It owns its dial loop (not
// CometBFT's SignerServer, which busy-loops on EOF and gives up redialling):
// every error closes the connection, and it redials with capped exponential
// backoff forever. It returns ctx.Err() when ctx is done, or at once an error
// naming the problem if cfg or chain is invalid.
//
// Requests are answered strictly one at a time: read one frame, answer it,
// read the next. Several RunValidator calls may share one chain.
func RunValidator(ctx context.Context, cfg ValidatorConfig, chain *Chain) error {
	if chain == nil {
		return fmt.Errorf("validator %q: no chain to sign for", cfg.Addr)
	}
	v, err := newValidatorConn(cfg)
	if err != nil {
		return err
	}
	return v.run(ctx, chain)
}

func (v *validatorConn) run(ctx context.Context, h handler) error {
	log := v.log.With("chain_id", h.ChainID())
	backoff := v.cfg.BackoffMin
	failures := 0
	var lastErr string
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if v.cfg.testOnlyOnDial != nil {
			v.cfg.testOnlyOnDial()
		}
		conn, err := v.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			// The first failure of a streak (or a new kind of failure) is a
			// warning; repeats are debug so a down validator does not flood
			// the log while signerd waits for it.
			if failures == 1 || err.Error() != lastErr {
				log.Warn("cannot connect to validator; redialling with backoff (repeats logged at debug)",
					"err", err, "next_attempt_in", backoff)
			} else {
				log.Debug("cannot connect to validator", "err", err, "failures", failures, "next_attempt_in", backoff)
			}
			lastErr = err.Error()
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(2*backoff, v.cfg.BackoffMax)
			continue
		}
		log.Info("connected to validator", "remote", conn.RemoteAddr().String(), "failed_dials_before", failures)
		failures, lastErr = 0, ""

		served, err := v.serve(ctx, conn, h, log)
		_ = conn.Close()
		log.Info("disconnected from validator", "reason", disconnectReason(ctx, err, v.cfg.ReadTimeout), "requests_served", served)
		if served > 0 {
			// A working session resets the backoff; a peer that accepts
			// and closes at once keeps growing it (no busy loop on EOF).
			backoff = v.cfg.BackoffMin
		}
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		if served == 0 {
			backoff = min(2*backoff, v.cfg.BackoffMax)
		}
	}
}

// dial opens one connection: net.Dialer with a timeout, then for tcp the
// SecretConnection handshake under a deadline. The raw connection is closed
// if the handshake fails or ctx ends during it.
func (v *validatorConn) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: v.cfg.DialTimeout}
	raw, err := d.DialContext(ctx, v.network, v.address)
	if err != nil {
		return nil, err
	}
	if v.network != "tcp" {
		return raw, nil
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	if err := raw.SetDeadline(time.Now().Add(v.cfg.HandshakeTimeout)); err != nil {
		_ = raw.Close()
		return nil, err
	}
	sc, err := p2pconn.MakeSecretConnection(raw, v.identity)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("secret connection handshake with %s: %w", v.address, err)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return sc, nil
}

// serve answers requests on conn until any error; it returns the number of
// requests answered. Every read and write runs under its own deadline, and
// ctx ending closes conn, which ends a blocked read at once.
func (v *validatorConn) serve(ctx context.Context, conn net.Conn, h handler, log *slog.Logger) (int, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	br := bufio.NewReaderSize(conn, 4096)
	var out []byte
	served := 0
	for {
		if err := conn.SetReadDeadline(time.Now().Add(v.cfg.ReadTimeout)); err != nil {
			return served, err
		}
		msg, err := readFrame(br, MaxFrameSize)
		if err != nil {
			return served, err
		}
		resp := h.handle(msg, log)
		out = appendFrame(out[:0], resp)
		if err := conn.SetWriteDeadline(time.Now().Add(v.cfg.WriteTimeout)); err != nil {
			return served, err
		}
		if _, err := conn.Write(out); err != nil {
			return served, fmt.Errorf("writing response: %w", err)
		}
		served++
		if cap(out) > 64<<10 { // do not pin a large buffer between requests
			out = nil
		}
	}
}

// disconnectReason turns the error that ended a session into a log reason.
func disconnectReason(ctx context.Context, err error, readTimeout time.Duration) string {
	switch {
	case ctx.Err() != nil:
		return "shutting down"
	case errors.Is(err, io.EOF):
		return "validator closed the connection"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("no request for %v (read timeout) or a write timed out: %v", readTimeout, err)
	case errors.Is(err, errFrameTooLarge):
		return "validator sent an oversized frame (closed to resynchronise): " + err.Error()
	case err == nil:
		return "unknown"
	}
	return err.Error()
}

// sleep waits d or until ctx is done; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
