package signer

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	p2pconn "github.com/cometbft/cometbft/p2p/conn"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protowire"
)

// These tests play a hand-written validator that sends frames CometBFT's
// SignerClient never would, and check the bytes that come back.

// rawNode is a listener the signer dials; each accepted connection is a
// rawConn that exchanges hand-built frames.
type rawNode struct {
	ln   net.Listener
	addr string // for ValidatorConfig.Addr
	tcp  bool
}

func startRawTCP(t testing.TB) *rawNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &rawNode{ln: ln, addr: "tcp://" + ln.Addr().String(), tcp: true}
}

func startRawUnix(t testing.TB) *rawNode {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raw.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &rawNode{ln: ln, addr: "unix://" + path}
}

type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// accept waits (bounded) for the signer to connect and, for tcp, runs the
// SecretConnection handshake with a throwaway node key, as a node does.
// The connection is closed when owner ends (owner may be a parent of t).
func (n *rawNode) accept(t, owner testing.TB) *rawConn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := n.ln.Accept()
		ch <- res{c, err}
	}()
	var r res
	select {
	case r = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("signer did not connect within 10 s")
	}
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	conn := r.c
	owner.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if n.tcp {
		sc, err := p2pconn.MakeSecretConnection(conn, cmted25519.GenPrivKey())
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		// The signer authenticated with its persistent identity key.
		want := cmted25519.PubKey(testKey("identity").Public().(ed25519.PublicKey))
		if !sc.RemotePubKey().Equals(want) {
			t.Errorf("signer identity %X, want %X", sc.RemotePubKey().Bytes(), want.Bytes())
		}
		conn = sc
	}
	return &rawConn{conn: conn, br: bufio.NewReader(conn)}
}

func (c *rawConn) send(t testing.TB, frame []byte) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(frame); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// recv reads one response frame, independently of the package's reader.
func (c *rawConn) recv(t testing.TB) []byte {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := binary.ReadUvarint(c.br)
	if err != nil {
		t.Fatalf("reading response length: %v", err)
	}
	if l > 4<<20 {
		t.Fatalf("response length %d", l)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(c.br, b); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return b
}

func (c *rawConn) roundTrip(t testing.TB, msg []byte) []byte {
	t.Helper()
	c.send(t, appendFrame(nil, msg))
	return c.recv(t)
}

// expectClosed checks that the signer closes the connection.
func (c *rawConn) expectClosed(t testing.TB) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.br.ReadByte()
	if err == nil {
		t.Fatalf("signer sent %#x instead of closing the connection", b)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("signer did not close the connection within 10 s")
	}
}

func mustMarshal(t testing.TB, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signVoteRequest(t testing.TB, v *cmtproto.Vote, chainID string) []byte {
	return mustMarshal(t, &privvalproto.Message{Sum: &privvalproto.Message_SignVoteRequest{
		SignVoteRequest: &privvalproto.SignVoteRequest{Vote: v, ChainId: chainID}}})
}

// fields decodes the top level of a protobuf message into number → last
// value (bytes for length-delimited, uvarint for varint), failing on
// anything else.
func fields(t testing.TB, b []byte) map[protowire.Number]any {
	t.Helper()
	out := map[protowire.Number]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag in %X", b)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("bad bytes field %d", num)
			}
			out[num], b = v, b[n:]
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("bad varint field %d", num)
			}
			out[num], b = v, b[n:]
		default:
			t.Fatalf("unexpected wire type %d for field %d", typ, num)
		}
	}
	return out
}

// remoteErr decodes a RemoteSignerError.
func remoteErr(t testing.TB, b []byte) (RefusalCode, string) {
	t.Helper()
	var e privvalproto.RemoteSignerError
	if err := e.Unmarshal(b); err != nil {
		t.Fatalf("RemoteSignerError: %v", err)
	}
	return RefusalCode(e.Code), e.Description
}

func TestRawFramesTCP(t *testing.T) {
	t.Parallel()
	testRawFrames(t, startRawTCP(t))
}

func TestRawFramesUnix(t *testing.T) {
	t.Parallel()
	testRawFrames(t, startRawUnix(t))
}

func testRawFrames(t *testing.T, n *rawNode) {
	chain := newTestChain(t)
	runSigner(t, n.addr, chain, func(c *ValidatorConfig) {
		c.BackoffMin, c.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	})
	outer := t // connections accepted in subtests live as long as this test
	c := n.accept(t, t)
	pub := testKey("consensus").Public().(ed25519.PublicKey)
	ping := wrap(fieldPingRequest, nil)
	wantPing := func(t *testing.T) {
		t.Helper()
		if got := c.roundTrip(t, ping); !bytes.Equal(got, pingResponse) {
			t.Fatalf("ping answered %X", got)
		}
	}

	t.Run("v1 SignBytesRequest is refused in field 10", func(t *testing.T) {
		req := wrap(fieldSignBytesRequest, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("sign me")))
		resp := c.roundTrip(t, req)
		top := fields(t, resp)
		inner, ok := top[fieldSignBytesResponse].([]byte)
		if !ok || len(top) != 1 {
			t.Fatalf("response %X is not Message{10: ...}", resp)
		}
		f := fields(t, inner)
		if _, hasSig := f[1]; hasSig {
			t.Fatalf("SignBytesResponse carries a signature: %X", inner)
		}
		code, desc := remoteErr(t, f[2].([]byte))
		if code != RefusalRawBytes || !strings.Contains(desc, "raw-bytes signing") {
			t.Fatalf("refusal %d %q, want code %d", code, desc, RefusalRawBytes)
		}
	})
	t.Run("Celestia SignRawBytesRequest is refused the same way", func(t *testing.T) {
		var p []byte
		p = protowire.AppendString(protowire.AppendTag(p, 1, protowire.BytesType), testChainID)
		p = protowire.AppendBytes(protowire.AppendTag(p, 2, protowire.BytesType), []byte("raw"))
		p = protowire.AppendString(protowire.AppendTag(p, 3, protowire.BytesType), "unique")
		f := fields(t, fields(t, c.roundTrip(t, wrap(fieldSignBytesRequest, p)))[fieldSignBytesResponse].([]byte))
		if code, _ := remoteErr(t, f[2].([]byte)); code != RefusalRawBytes {
			t.Fatalf("code %d, want %d", code, RefusalRawBytes)
		}
	})
	for _, typ := range []cmtproto.SignedMsgType{cmtproto.ProposalType, 5, 0} {
		t.Run("vote of type "+typ.String(), func(t *testing.T) {
			v := newVote(typ, 5, 0, blockID("A"))
			var m privvalproto.Message
			if err := m.Unmarshal(c.roundTrip(t, signVoteRequest(t, v, testChainID))); err != nil {
				t.Fatal(err)
			}
			r := m.GetSignedVoteResponse()
			if r == nil || r.Error == nil || RefusalCode(r.Error.Code) != RefusalInvalidType || len(r.Vote.Signature) != 0 {
				t.Fatalf("response %v, want a SignedVoteResponse with code %d and no signature", m.String(), RefusalInvalidType)
			}
		})
	}
	t.Run("known request, undecodable payload: refusal in its response type", func(t *testing.T) {
		for field, want := range map[protowire.Number]protowire.Number{
			fieldSignVoteRequest:     fieldSignedVoteResponse,
			fieldSignProposalRequest: fieldSignedProposalResp,
			fieldPubKeyRequest:       fieldPubKeyResponse,
		} {
			resp := c.roundTrip(t, wrap(field, []byte{0xff, 0xff, 0xff}))
			top := fields(t, resp)
			inner, ok := top[want].([]byte)
			if !ok {
				t.Fatalf("request field %d answered %X, want field %d", field, resp, want)
			}
			code, desc := remoteErr(t, fields(t, inner)[2].([]byte))
			if code != RefusalInvalidRequest || !strings.Contains(desc, "undecodable") {
				t.Fatalf("request field %d: refusal %d %q", field, code, desc)
			}
		}
	})
	t.Run("frames that are no request get an empty message", func(t *testing.T) {
		for name, msg := range map[string][]byte{
			"garbage":             {0xff, 0xff, 0xff, 0xff},
			"empty":               {},
			"truncated field":     {0x1a, 0x10, 0x01},
			"pub key response":    wrap(fieldPubKeyResponse, nil),
			"ping response":       wrap(fieldPingResponse, nil),
			"sign bytes response": wrap(fieldSignBytesResponse, nil),
			"unknown field 11":    wrap(11, []byte{1, 2}),
			"sum field as varint": {0x18, 0x01},
			"only unknown scalar": {0xa0, 0x06, 0x01},
		} {
			if got := c.roundTrip(t, msg); len(got) != 0 {
				t.Errorf("%s: answered %X, want an empty message", name, got)
			}
		}
		wantPing(t)
	})
	t.Run("public key request for another chain", func(t *testing.T) {
		req := mustMarshal(t, &privvalproto.Message{Sum: &privvalproto.Message_PubKeyRequest{
			PubKeyRequest: &privvalproto.PubKeyRequest{ChainId: "other-chain"}}})
		var m privvalproto.Message
		if err := m.Unmarshal(c.roundTrip(t, req)); err != nil {
			t.Fatal(err)
		}
		r := m.GetPubKeyResponse()
		if r == nil || r.Error == nil || RefusalCode(r.Error.Code) != RefusalWrongChainID || r.PubKey.GetEd25519() != nil {
			t.Fatalf("response %v, want a PubKeyResponse with code %d and no key", m.String(), RefusalWrongChainID)
		}
	})
	t.Run("skip_extension_signing=true: extension not signed", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 7, 0, blockID("A"))
		v.Extension = []byte("ext")
		req := appendSkip(t, signVoteRequest(t, v, testChainID), 1)
		var m privvalproto.Message
		if err := m.Unmarshal(c.roundTrip(t, req)); err != nil {
			t.Fatal(err)
		}
		r := m.GetSignedVoteResponse()
		if r == nil || r.Error != nil {
			t.Fatalf("response %v", m.String())
		}
		verifyVote(t, pub, testChainID, &r.Vote, false)
	})
	t.Run("skip_extension_signing=false: extension signed", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 8, 0, blockID("A"))
		v.Extension = []byte("ext")
		req := appendSkip(t, signVoteRequest(t, v, testChainID), 0)
		var m privvalproto.Message
		if err := m.Unmarshal(c.roundTrip(t, req)); err != nil {
			t.Fatal(err)
		}
		r := m.GetSignedVoteResponse()
		if r == nil || r.Error != nil {
			t.Fatalf("response %v", m.String())
		}
		verifyVote(t, pub, testChainID, &r.Vote, true)
	})
	t.Run("skip_extension_signing with the wrong wire type is invalid", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 9, 0, blockID("A"))
		payload := payloadOf(t, signVoteRequest(t, v, testChainID))
		payload = protowire.AppendBytes(protowire.AppendTag(payload, 3, protowire.BytesType), []byte{1})
		var m privvalproto.Message
		if err := m.Unmarshal(c.roundTrip(t, wrap(fieldSignVoteRequest, payload))); err != nil {
			t.Fatal(err)
		}
		if r := m.GetSignedVoteResponse(); r == nil || r.Error == nil || RefusalCode(r.Error.Code) != RefusalInvalidRequest {
			t.Fatalf("response %v, want code %d", m.String(), RefusalInvalidRequest)
		}
	})
	t.Run("a maximal v0.40 vote extension fits a frame", func(t *testing.T) {
		v := newVote(cmtproto.PrecommitType, 10, 0, blockID("A"))
		v.Extension = bytes.Repeat([]byte{0xab}, types.MaxVoteExtensionSize)
		v.ExtensionSignature = bytes.Repeat([]byte{1}, types.MaxSignatureSize) // v0.40 may send garbage here; it is replaced
		req := signVoteRequest(t, v, testChainID)
		if len(req) > MaxFrameSize {
			t.Fatalf("request of %d bytes exceeds MaxFrameSize %d", len(req), MaxFrameSize)
		}
		var m privvalproto.Message
		if err := m.Unmarshal(c.roundTrip(t, req)); err != nil {
			t.Fatal(err)
		}
		r := m.GetSignedVoteResponse()
		if r == nil || r.Error != nil {
			t.Fatalf("response error %v", r.GetError())
		}
		verifyVote(t, pub, testChainID, &r.Vote, true)
	})
	t.Run("oversized length prefix closes the connection; the signer redials", func(t *testing.T) {
		c.send(t, binary.AppendUvarint(nil, uint64(MaxFrameSize)+1))
		c.expectClosed(t)
		c = n.accept(t, outer)
		wantPing(t)
	})
	t.Run("overflowing length prefix closes the connection; the signer redials", func(t *testing.T) {
		c.send(t, bytes.Repeat([]byte{0xff}, 11))
		c.expectClosed(t)
		c = n.accept(t, outer)
		wantPing(t)
	})
	t.Run("frame cut short by the peer closing", func(t *testing.T) {
		c.send(t, []byte{0x10, 0x3a})
		_ = c.conn.Close()
		c = n.accept(t, outer)
		wantPing(t)
	})
	t.Run("two frames in one write are answered one by one", func(t *testing.T) {
		c.send(t, append(appendFrame(nil, ping), appendFrame(nil, ping)...))
		for i := 0; i < 2; i++ {
			if got := c.recv(t); !bytes.Equal(got, pingResponse) {
				t.Fatalf("answer %d: %X", i, got)
			}
		}
	})
}

// appendSkip appends SignVoteRequest.skip_extension_signing = v to the
// request inside a Message{sign_vote_request}.
func appendSkip(t testing.TB, msg []byte, v uint64) []byte {
	t.Helper()
	payload := payloadOf(t, msg)
	payload = protowire.AppendVarint(protowire.AppendTag(payload, fieldSkipExtensionSigning, protowire.VarintType), v)
	return wrap(fieldSignVoteRequest, payload)
}

// payloadOf returns a copy of the request payload inside msg.
func payloadOf(t testing.TB, msg []byte) []byte {
	t.Helper()
	_, p, err := splitMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), p...)
}
