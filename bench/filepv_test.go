package bench

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

// startFilePV serves a fresh FilePV in dir to v until the test ends.
func startFilePV(t testing.TB, v *Validator, dir string) *privval.FilePV {
	t.Helper()
	pv := privval.GenFilePV(filepath.Join(dir, "key.json"), filepath.Join(dir, "state.json"))
	pv.Save()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ServeFilePV(ctx, v.Addr, cmted25519.GenPrivKey(), pv, v.ChainID, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	if err := v.WaitConnected(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return pv
}

func TestFilePVDrive(t *testing.T) {
	v, err := NewValidator("bench-chain")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	pv := startFilePV(t, v, t.TempDir())
	l, err := v.Drive(context.Background(), DriveConfig{StartHeight: 1, Heights: 20, PingEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	if l.Heights != 20 || len(l.Proposal) != 20 || len(l.Prevote) != 20 || len(l.Precommit) != 20 || len(l.Ping) != 4 || l.Signatures != 80 {
		t.Fatalf("unexpected counts: heights %d proposals %d prevotes %d precommits %d pings %d sigs %d",
			l.Heights, len(l.Proposal), len(l.Prevote), len(l.Precommit), len(l.Ping), l.Signatures)
	}
	if pv.LastSignState.Height != 20 || pv.LastSignState.Step != 3 {
		t.Fatalf("FilePV state after drive = %d/%d, want 20/3", pv.LastSignState.Height, pv.LastSignState.Step)
	}
	// A regression is refused with a RemoteSignerError and the connection
	// stays up: the next drive continues on it.
	vote := &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 3, BlockID: randomBlockID(), Timestamp: time.Now()}
	var rse *privval.RemoteSignerError
	if err := v.Client().SignVote(v.ChainID, vote); !errors.As(err, &rse) {
		t.Fatalf("regression: got %v, want a RemoteSignerError", err)
	}
	if _, err := v.Drive(context.Background(), DriveConfig{StartHeight: 21, Heights: 2}); err != nil {
		t.Fatalf("drive after refusal: %v", err)
	}
	// A drive that the signer refuses reports the refusal.
	if _, err := v.Drive(context.Background(), DriveConfig{StartHeight: 5, Heights: 1}); err == nil {
		t.Fatal("drive at a regressed height succeeded")
	}
}

func TestDriveNeedsABound(t *testing.T) {
	v := &Validator{}
	if _, err := v.Drive(context.Background(), DriveConfig{StartHeight: 1}); err == nil {
		t.Fatal("unbounded drive accepted")
	}
	if _, err := v.Drive(context.Background(), DriveConfig{Heights: 1}); err == nil {
		t.Fatal("height 0 accepted")
	}
}
