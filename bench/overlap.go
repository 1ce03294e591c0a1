package bench

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/keys"
	"github.com/signerd/signerd/statefile"
)

// Overlap is the in-process check of the persist ‖ sign budget: signerd's
// own key (keys.Open) and state file (statefile.Save) timed alone and in the
// pattern signer.Chain uses for a fresh position (the write in a new
// goroutine while the key signs, then wait for both). If the two overlapped
// perfectly, Both would be max(Sign, Save); if they serialise, Sign + Save.
type Overlap struct {
	Sign Dist // keys.Signer.Sign of a prevote's sign bytes
	Save Dist // statefile.File.Save of a fresh prevote record
	Both Dist // go Save ‖ Sign, wait for both
}

// MeasureOverlap opens ref (a pkcs11: URI or file:PATH) with keys.Open and a
// fresh state file in dir, and times n rounds of each of Sign, Save and
// Save ‖ Sign, interleaved so all three see the same machine.
func MeasureOverlap(ref, dir string, n int) (*Overlap, error) {
	const chainID = "bench-overlap"
	key, err := keys.Open(ref, dir, nil)
	if err != nil {
		return nil, fmt.Errorf("overlap: keys.Open: %w", err)
	}
	defer key.Close()
	path := filepath.Join(dir, "overlap-state.json")
	_ = os.Remove(path)
	if err := statefile.Create(path, chainID, statefile.Record{}, false); err != nil {
		return nil, err
	}
	st, err := statefile.Open(path, chainID)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	h := int64(0)
	next := func() statefile.Record {
		h++
		v := &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: h, BlockID: randomBlockID(), Timestamp: time.Now()}
		return statefile.Record{HRS: statefile.HRS{Height: h, Step: statefile.StepPrevote}, SignBytes: types.VoteSignBytes(chainID, v)}
	}
	sign, save, both := make([]time.Duration, 0, n), make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		r := next()
		t0 := time.Now()
		if _, err := key.Sign(nil, r.SignBytes, crypto.Hash(0)); err != nil {
			return nil, err
		}
		sign = append(sign, time.Since(t0))

		r = next()
		t0 = time.Now()
		if err := st.Save(r); err != nil {
			return nil, err
		}
		save = append(save, time.Since(t0))

		r = next()
		t0 = time.Now()
		saved := make(chan error, 1)
		go func() { saved <- st.Save(r) }()
		_, serr := key.Sign(nil, r.SignBytes, crypto.Hash(0))
		if err := errors.Join(<-saved, serr); err != nil {
			return nil, err
		}
		both = append(both, time.Since(t0))
	}
	return &Overlap{Sign: Summarize(sign), Save: Summarize(save), Both: Summarize(both)}, nil
}
