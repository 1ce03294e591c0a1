package signer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/signerd/signerd/statefile"
)

// TestTwoConnectionsShareOneState: two nodes (two connections) on one chain
// share its state: the second gets the first's signature for the same
// height/round/step and a regression refusal for an older one.
func TestTwoConnectionsShareOneState(t *testing.T) {
	t.Parallel()
	chain := newTestChain(t)
	n1 := startTCPNode(t, "127.0.0.1:0", testChainID)
	n2 := startTCPNode(t, "127.0.0.1:0", testChainID)
	runSigner(t, n1.addr, chain)
	runSigner(t, n2.addr, chain)
	n1.waitConnected(t)
	n2.waitConnected(t)

	v1 := newVote(cmtproto.PrevoteType, 5, 0, blockID("A"))
	if err := n1.client.SignVote(testChainID, v1); err != nil {
		t.Fatalf("node 1: %v", err)
	}
	v2 := newVote(cmtproto.PrevoteType, 5, 0, blockID("A"))
	v2.Timestamp = stamp.Add(time.Millisecond) // the second node's clock differs
	if err := n2.client.SignVote(testChainID, v2); err != nil {
		t.Fatalf("node 2: %v", err)
	}
	if !bytes.Equal(v1.Signature, v2.Signature) || !v2.Timestamp.Equal(v1.Timestamp) {
		t.Fatalf("node 2 got signature %X at %v, want node 1's %X at %v", v2.Signature, v2.Timestamp, v1.Signature, v1.Timestamp)
	}
	wantRefusal(t, n2.client.SignVote(testChainID, newVote(cmtproto.PrevoteType, 4, 0, blockID("A"))), RefusalHeightRegression, "4/0/prevote", "5/0/prevote")
	wantRefusal(t, n2.client.SignVote(testChainID, newVote(cmtproto.PrevoteType, 5, 0, blockID("B"))), RefusalConflict, "5/0/prevote")
}

// TestConcurrentConflictingRequests: two nodes race for every height with
// different blocks. For each height at most one block may be signed.
func TestConcurrentConflictingRequests(t *testing.T) {
	t.Parallel()
	chain := newTestChain(t)
	nodes := []*node{startTCPNode(t, "127.0.0.1:0", testChainID), startUnixNode(t, t.TempDir()+"/pv.sock", testChainID)}
	for _, n := range nodes {
		runSigner(t, n.addr, chain)
		n.waitConnected(t)
	}
	const heights = 30
	signed := make([][]*cmtproto.Vote, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		signed[i] = make([]*cmtproto.Vote, heights+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := int64(1); h <= heights; h++ {
				v := newVote(cmtproto.PrecommitType, h, 0, blockID(fmt.Sprintf("node%d-%d", i, h)))
				err := n.client.SignVote(testChainID, v)
				var rse *privval.RemoteSignerError
				switch {
				case err == nil:
					signed[i][h] = v
				case errors.As(err, &rse) && (RefusalCode(rse.Code) == RefusalConflict || RefusalCode(rse.Code) == RefusalHeightRegression):
				default:
					t.Errorf("node %d height %d: %v", i, h, err)
				}
			}
		}()
	}
	wg.Wait()
	won := 0
	for h := 1; h <= heights; h++ {
		a, b := signed[0][h], signed[1][h]
		if a != nil && b != nil {
			t.Fatalf("height %d: both blocks signed (%X and %X): double sign", h, a.BlockID.Hash, b.BlockID.Hash)
		}
		if a != nil || b != nil {
			won++
			v := a
			if v == nil {
				v = b
			}
			verifyVote(t, chain.PubKey(), testChainID, v, true)
		}
	}
	if won == 0 {
		t.Fatal("no height was signed at all")
	}
	t.Logf("%d of %d heights signed, the rest refused", won, heights)
}

// blockingKey blocks in Sign until released.
type blockingKey struct {
	ed25519.PrivateKey
	entered chan struct{} // receives one value per Sign call entered
	release chan struct{} // closed to let every Sign finish
}

func (k *blockingKey) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	k.entered <- struct{}{}
	<-k.release
	return k.PrivateKey.Sign(r, msg, o)
}

// TestChainsDoNotWaitOnEachOther: while chain A's key is stuck in a
// signature (a slow HSM), chain B signs; a second connection to chain A
// waits for A's mutex.
func TestChainsDoNotWaitOnEachOther(t *testing.T) {
	t.Parallel()
	slow := &blockingKey{PrivateKey: testKey("consensus"), entered: make(chan struct{}, 4), release: make(chan struct{})}
	chainA := newTestChain(t, func(o *testChainOpts) { o.chainID, o.key = "chain-a", slow })
	chainB := newTestChain(t, func(o *testChainOpts) { o.chainID = "chain-b" })
	nA := startTCPNode(t, "127.0.0.1:0", "chain-a")
	nA2 := startTCPNode(t, "127.0.0.1:0", "chain-a")
	nB := startTCPNode(t, "127.0.0.1:0", "chain-b")
	runSigner(t, nA.addr, chainA)
	runSigner(t, nA2.addr, chainA)
	runSigner(t, nB.addr, chainB)
	for _, n := range []*node{nA, nA2, nB} {
		n.waitConnected(t)
	}

	doneA := make(chan error, 1)
	go func() { doneA <- nA.client.SignVote("chain-a", newVote(cmtproto.PrevoteType, 1, 0, blockID("A"))) }()
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("chain A never reached its key")
	}
	doneA2 := make(chan error, 1)
	go func() { doneA2 <- nA2.client.SignVote("chain-a", newVote(cmtproto.PrevoteType, 2, 0, blockID("A"))) }()

	// Chain A is stuck inside Sign, holding its mutex; chain B must sign.
	for h := int64(1); h <= 3; h++ {
		v := newVote(cmtproto.PrevoteType, h, 0, blockID("B"))
		if err := nB.client.SignVote("chain-b", v); err != nil {
			t.Fatalf("chain B while chain A is busy: %v", err)
		}
		verifyVote(t, chainB.PubKey(), "chain-b", v, false)
	}
	select {
	case err := <-doneA2:
		t.Fatalf("second chain-A request finished (%v) while the first held the chain's mutex", err)
	default:
	}
	close(slow.release)
	for i, ch := range []chan error{doneA, doneA2} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("chain A request %d: %v", i+1, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("chain A request %d did not finish after release", i+1)
		}
	}
	if got := chainA.state.Last().HRS; got != (statefile.HRS{Height: 2, Round: 0, Step: statefile.StepPrevote}) {
		t.Fatalf("chain A state at %s, want 2/0/prevote", got)
	}
}
