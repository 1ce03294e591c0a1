package signer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

func TestReconnectTCP(t *testing.T) {
	t.Parallel()
	n1 := startTCPNode(t, "127.0.0.1:0", testChainID)
	testReconnect(t, n1, func() *node {
		return startTCPNode(t, strings.TrimPrefix(n1.addr, "tcp://"), testChainID)
	})
}

func TestReconnectUnix(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pv.sock")
	testReconnect(t, startUnixNode(t, path, testChainID), func() *node { return startUnixNode(t, path, testChainID) })
}

// testReconnect stops the node's listener endpoint, starts a new one on the
// same address, and checks that the signer (default backoff) comes back by
// itself and signs.
func testReconnect(t *testing.T, n1 *node, restart func() *node) {
	rec := newLogRecorder()
	chain := newTestChain(t)
	runSigner(t, n1.addr, chain, func(c *ValidatorConfig) { c.Logger = testLoggerTee(rec) })
	n1.waitConnected(t)
	if err := n1.client.SignVote(testChainID, newVote(cmtproto.PrevoteType, 1, 0, blockID("A"))); err != nil {
		t.Fatalf("SignVote before restart: %v", err)
	}
	n1.stop()
	eventually(t, 10*time.Second, "the disconnect to be logged", func() bool {
		return len(rec.find("disconnected from validator")) > 0
	})
	// Let the signer meet the closed port at least once (bounded poll).
	eventually(t, 10*time.Second, "a failed redial", func() bool { return len(rec.find("cannot connect")) > 0 })
	down := time.Now()
	n2 := restart()
	n2.waitConnected(t)
	t.Logf("signer reconnected %v after the new listener opened", time.Since(down).Round(time.Millisecond))
	v := newVote(cmtproto.PrevoteType, 2, 0, blockID("B"))
	if err := n2.client.SignVote(testChainID, v); err != nil {
		t.Fatalf("SignVote after restart: %v", err)
	}
	verifyVote(t, chain.PubKey(), testChainID, v, false)

	disc := rec.find("disconnected from validator")[0]
	if disc.Level != slog.LevelInfo || disc.Attrs["reason"] == "" {
		t.Errorf("disconnect logged as %+v, want info with a reason", disc)
	}
	if got := len(rec.find("connected to validator")) - len(rec.find("disconnected from validator")); got < 1 {
		t.Errorf("connect log entries missing")
	}
}

// TestIdleWhileValidatorDown runs the default loop against a closed port for
// a few seconds: the dials must be spaced by the backoff (no busy loop), the
// process must stay near zero CPU, and only the first failure is a warning.
// Not parallel: it measures the process's CPU time.
func TestIdleWhileValidatorDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: every dial is refused at once

	var dials atomic.Int64
	rec := newLogRecorder()
	chain := newTestChain(t)
	cpu0 := cpuTime(t)
	start := time.Now()
	stop := runSigner(t, "tcp://"+addr, chain, func(c *ValidatorConfig) {
		c.testOnlyOnDial = func() { dials.Add(1) }
		c.Logger = testLoggerTee(rec)
	})
	const window = 3 * time.Second
	time.Sleep(window) // a measurement window, not synchronisation
	n := dials.Load()
	cpu := cpuTime(t) - cpu0
	elapsed := time.Since(start)
	stop()

	// Default backoff 100 ms doubling to 2 s: dials at 0, 0.1, 0.3, 0.7,
	// 1.5, 3.1 s → 5 in 3 s. A busy loop would make thousands.
	t.Logf("%d dials and %v CPU in %v", n, cpu, elapsed.Round(time.Millisecond))
	if n < 3 || n > 8 {
		t.Errorf("%d dial attempts in %v, want 3..8 with the default backoff", n, window)
	}
	if limit := elapsed / 10; cpu > limit {
		t.Errorf("process used %v CPU in %v while the validator was down, want < %v", cpu, elapsed, limit)
	}
	var warns, debugs int
	for _, e := range rec.find("cannot connect") {
		switch e.Level {
		case slog.LevelWarn:
			warns++
		case slog.LevelDebug:
			debugs++
		}
	}
	if warns != 1 || debugs < 1 {
		t.Errorf("dial failures logged %d× at warn and %d× at debug, want exactly 1 warn then debug", warns, debugs)
	}
}

func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestNoBusyLoopOnEOF: a peer that accepts and closes at once must not make
// the signer spin; the backoff keeps growing while no request is served.
func TestNoBusyLoopOnEOF(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "eof.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			_ = c.Close()
		}
	}()
	chain := newTestChain(t)
	stop := runSigner(t, "unix://"+path, chain, func(c *ValidatorConfig) {
		c.BackoffMin, c.BackoffMax = 10*time.Millisecond, 100*time.Millisecond
	})
	const window = time.Second
	time.Sleep(window) // a measurement window, not synchronisation
	stop()
	// 10, 20, 40, 80, then every 100 ms: about 12 in a second.
	if n := accepts.Load(); n < 3 || n > 20 {
		t.Errorf("%d connections in %v from a peer that closes at once, want 3..20", n, window)
	}
}

// TestHandshakeFailureClosesRawConn: a tcp peer that never completes the
// SecretConnection handshake gets its connection closed after the handshake
// timeout, and the signer dials again.
func TestHandshakeFailureClosesRawConn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rec := newLogRecorder()
	chain := newTestChain(t)
	runSigner(t, "tcp://"+ln.Addr().String(), chain, func(c *ValidatorConfig) {
		c.HandshakeTimeout = 200 * time.Millisecond
		c.BackoffMin, c.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
		c.Logger = testLoggerTee(rec)
	})
	for i := 0; i < 2; i++ {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		// Read (and ignore) the signer's handshake bytes until it closes.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		for {
			if _, err := c.Read(buf); err != nil {
				if errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
					t.Fatalf("signer did not close the raw connection after a failed handshake")
				}
				break
			}
		}
		_ = c.Close()
	}
	if len(rec.find("cannot connect")) == 0 || !strings.Contains(rec.find("cannot connect")[0].Attrs["err"], "handshake") {
		t.Errorf("handshake failure not logged as a failed dial: %+v", rec.find("cannot connect"))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestReadTimeoutDropsSilentValidator: a validator that stops sending
// (not even pings) is dropped after the read timeout and redialled.
func TestReadTimeoutDropsSilentValidator(t *testing.T) {
	t.Parallel()
	n := startRawTCP(t)
	rec := newLogRecorder()
	chain := newTestChain(t)
	runSigner(t, n.addr, chain, func(c *ValidatorConfig) {
		c.ReadTimeout = 300 * time.Millisecond
		c.BackoffMin, c.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
		c.Logger = testLoggerTee(rec)
	})
	c := n.accept(t, t)
	c.expectClosed(t)
	c = n.accept(t, t) // redialled
	if got := c.roundTrip(t, wrap(fieldPingRequest, nil)); string(got) != string(pingResponse) {
		t.Fatalf("ping after redial answered %X", got)
	}
	d := rec.find("disconnected from validator")
	if len(d) == 0 || !strings.Contains(d[0].Attrs["reason"], "read timeout") {
		t.Errorf("disconnect reason %+v, want the read timeout named", d)
	}
}

func TestPubKeyWrongChainOverSignerClient(t *testing.T) {
	t.Parallel()
	n := startTCPNode(t, "127.0.0.1:0", "other-chain") // the node runs another chain
	runSigner(t, n.addr, newTestChain(t))
	n.waitConnected(t)
	_, err := n.client.GetPubKey()
	wantRefusal(t, err, RefusalWrongChainID, `"other-chain"`, testChainID)
	if err := n.client.Ping(); err != nil {
		t.Fatalf("ping after refusal: %v", err)
	}
}

func TestRunValidatorConfigErrors(t *testing.T) {
	t.Parallel()
	chain := newTestChain(t)
	id := testKey("identity")
	for _, tc := range []struct {
		name string
		cfg  ValidatorConfig
		want string
	}{
		{"no scheme", ValidatorConfig{Addr: "127.0.0.1:1", Identity: id}, "want tcp://host:port or unix:///path"},
		{"http scheme", ValidatorConfig{Addr: "http://127.0.0.1:1", Identity: id}, "want tcp://host:port or unix:///path"},
		{"tcp without port", ValidatorConfig{Addr: "tcp://127.0.0.1", Identity: id}, "want tcp://host:port"},
		{"tcp without identity", ValidatorConfig{Addr: "tcp://127.0.0.1:1"}, "identity key"},
		{"relative unix path", ValidatorConfig{Addr: "unix://pv.sock"}, "absolute"},
		{"negative read timeout", ValidatorConfig{Addr: "unix:///pv.sock", ReadTimeout: -1}, "read timeout"},
		{"min backoff above max", ValidatorConfig{Addr: "unix:///pv.sock", BackoffMin: 3 * time.Second, BackoffMax: time.Second}, "exceeds maximum backoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := RunValidator(ctx, tc.cfg, chain)
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RunValidator = %v, want an immediate error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.cfg.Addr) {
				t.Errorf("error %q does not name the address %q", err, tc.cfg.Addr)
			}
		})
	}
	t.Run("nil chain", func(t *testing.T) {
		if err := RunValidator(context.Background(), ValidatorConfig{Addr: "unix:///x"}, nil); err == nil {
			t.Fatal("no error for a nil chain")
		}
	})
}

func TestNewChainErrors(t *testing.T) {
	t.Parallel()
	st := newState(t, testChainID)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  ChainConfig
		want string
	}{
		{"empty chain id", ChainConfig{Key: testKey("k"), State: st}, "chain id must not be empty"},
		{"no key", ChainConfig{ChainID: testChainID, State: st}, "no consensus key"},
		{"no state", ChainConfig{ChainID: testChainID, Key: testKey("k")}, "no state file"},
		{"ecdsa key", ChainConfig{ChainID: testChainID, Key: ec, State: st}, "want an Ed25519 key"},
		{"negative max height", ChainConfig{ChainID: testChainID, Key: testKey("k"), State: st, MaxHeight: -1}, "max height -1"},
		{"state of another chain", ChainConfig{ChainID: "another-chain", Key: testKey("k"), State: st}, "belongs to chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewChain(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewChain = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
