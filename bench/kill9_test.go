package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/statefile"
)

// TestKill9DuringPersistSign is the crash test of the overlapped write path
// (issue 4): the real signerd binary is SIGKILLed at random points while a
// validator (CometBFT's SignerClient) streams rising prevotes, so kills land
// before, during and after the state write that runs while the key signs.
// After every kill:
//   - the state file on disk covers every signature the validator received:
//     its position is the last received one (with those sign bytes) or the
//     request in flight (persisted, signature never delivered), never less;
//   - after a restart the persisted position signs its own bytes again, with
//     the same signature when one was delivered (Ed25519 is deterministic),
//     and refuses other bytes there.
//
// With a SoftHSM key the HSM call really overlaps the fdatasync; with a file
// key the signature is ready long before the write finishes.
func TestKill9DuringPersistSign(t *testing.T) {
	bin := signerdBinary(t)
	for _, kind := range []KeyKind{KeySoftHSM, KeyFile} {
		t.Run(string(kind), func(t *testing.T) { kill9Rounds(t, bin, kind, 12) })
	}
}

type released struct {
	h    int64
	sb   []byte // sign bytes of the request
	sig  []byte // nil while in flight
	vote *cmtproto.Vote
}

func kill9Rounds(t *testing.T, bin string, kind KeyKind, rounds int) {
	dir := t.TempDir()
	keyPath, _, pub, err := newFilePVKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	ref, env := "file:"+keyPath, []string(nil)
	if kind == KeySoftHSM {
		hsm, err := NewSoftHSM(filepath.Join(dir, "softhsm"), SoftHSMLib())
		if err != nil {
			newToken(t) // skips locally / fails under CI with the fixture's reason
			t.Fatal(err)
		}
		tok, err := hsm.InitToken("kill9")
		if err != nil {
			t.Fatal(err)
		}
		env = []string{hsm.Env()}
		ref = hsm.KeyURI(tok, "consensus")
		if err := ImportKey(bin, env, ref, keyPath); err != nil {
			t.Fatal(err)
		}
	}
	const chainID = "kill9-chain"
	v, err := NewValidator(chainID)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	retry := privval.NewRetrySignerClient(v.Client(), 50, 100*time.Millisecond) // as the node does
	statePath := filepath.Join(dir, "state", "state.json")
	sd, err := NewSignerd(bin, dir, env, []SignerdChain{{ChainID: chainID, KeyRef: ref, StateFile: statePath, Addrs: []string{v.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var h int64
	var atState *released // what the state held after the previous kill
	persistedUnreleased := 0
	for round := range rounds {
		p, err := sd.Start()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.WaitConnected(20 * time.Second); err != nil {
			t.Fatalf("round %d: signerd did not connect: %v", round, err)
		}
		if atState != nil {
			checkResign(t, round, retry, chainID, pub, atState)
		}
		last, inflight := streamUntilKilled(t, v, chainID, pub, &h, p.PID(), time.Duration(5+rng.IntN(40))*time.Millisecond)
		_ = p.Stop() // reaps the killed process
		info, err := statefile.Read(statePath)
		if err != nil {
			t.Fatalf("round %d: state after kill -9: %v", round, err)
		}
		got := info.Record
		switch {
		case last != nil && got.Height < last.h:
			t.Fatalf("round %d: state at %s, but the validator holds a signature for height %d", round, got.HRS, last.h)
		case last != nil && got.Height == last.h:
			if !bytes.Equal(got.SignBytes, last.sb) {
				t.Fatalf("round %d: state at %d holds other sign bytes than the released signature", round, last.h)
			}
			atState = last
		case inflight != nil && got.Height == inflight.h:
			if !bytes.Equal(got.SignBytes, inflight.sb) {
				t.Fatalf("round %d: state at %d holds other sign bytes than the request in flight", round, inflight.h)
			}
			atState = inflight
			persistedUnreleased++
		default:
			t.Fatalf("round %d: state at %s matches neither the last signature received (%v) nor the request in flight (%v)",
				round, got.HRS, heightOf(last), heightOf(inflight))
		}
		h = got.Height // the next round continues above what was persisted
	}
	t.Logf("%d rounds; %d ended with a record persisted whose signature never reached the validator", rounds, persistedUnreleased)
}

// streamUntilKilled sends rising prevotes until signerd (pid) is SIGKILLed
// after killAfter, and returns the last vote signed and the one in flight.
func streamUntilKilled(t *testing.T, v *Validator, chainID string, pub crypto.PubKey, h *int64, pid int, killAfter time.Duration) (last, inflight *released) {
	var mu sync.Mutex
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			*h++
			vote := &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: *h, BlockID: randomBlockID(),
				Timestamp: time.Now().UTC(), ValidatorAddress: pub.Address()}
			sent := *vote
			sb := types.VoteSignBytes(chainID, vote)
			mu.Lock()
			inflight = &released{h: *h, sb: sb, vote: &sent}
			mu.Unlock()
			if err := v.Client().SignVote(chainID, vote); err != nil {
				return // signerd died mid-request
			}
			if !pub.VerifySignature(sb, vote.Signature) {
				t.Errorf("height %d: signature does not verify", *h)
				return
			}
			mu.Lock()
			last = &released{h: *h, sb: sb, sig: vote.Signature, vote: vote}
			mu.Unlock()
		}
	}()
	time.Sleep(killAfter) // not synchronisation: it picks where the kill lands
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 signerd: %v", err)
	}
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	return last, inflight
}

// checkResign asks the restarted signerd for the persisted position again:
// its own bytes sign (identically if a signature was delivered), others are
// refused.
func checkResign(t *testing.T, round int, c *privval.RetrySignerClient, chainID string, pub crypto.PubKey, at *released) {
	t.Helper()
	again := *at.vote
	again.Signature = nil
	if err := c.SignVote(chainID, &again); err != nil {
		t.Fatalf("round %d: re-asking for persisted height %d: %v", round, at.h, err)
	}
	if !pub.VerifySignature(at.sb, again.Signature) {
		t.Fatalf("round %d: re-signed height %d does not verify", round, at.h)
	}
	if at.sig != nil && !bytes.Equal(again.Signature, at.sig) {
		t.Fatalf("round %d: height %d re-signed with another signature", round, at.h)
	}
	other := *at.vote
	other.Signature, other.BlockID = nil, randomBlockID()
	var rse *privval.RemoteSignerError
	if err := c.SignVote(chainID, &other); !errors.As(err, &rse) {
		t.Fatalf("round %d: other bytes at persisted height %d: %v, want a refusal", round, at.h, err)
	}
}

func heightOf(r *released) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprint(r.h)
}
