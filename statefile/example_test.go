package statefile_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/signerd/signerd/statefile"
)

// The signing path: open the chain's state file, decide on a request,
// persist a fresh position before releasing its signature.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "statefile-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "test-chain.state")

	// `signerd state init --height 0`: the only way a state comes to be.
	if err := statefile.Create(path, "test-chain", statefile.Record{}, false); err != nil {
		fmt.Println(err)
		return
	}
	st, err := statefile.Open(path, "test-chain")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	vote := &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 5, Round: 0, Timestamp: ts}
	hrs := statefile.HRS{Height: 5, Round: 0, Step: statefile.StepPrevote}
	sb := types.VoteSignBytes("test-chain", vote)

	d, err := st.Last().Decide(hrs, sb)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Action)
	// Sign d.SignBytes with the key while Save runs; release after both.
	if err := st.Save(statefile.Record{HRS: hrs, SignBytes: sb}); err != nil {
		fmt.Println(err)
		return
	}

	// The same vote again (say, after a validator restart) is answered
	// with the same signature; an older one is refused.
	d, _ = st.Last().Decide(hrs, sb)
	fmt.Println(d.Action)
	old := &cmtproto.Vote{Type: cmtproto.PrecommitType, Height: 4, Round: 0, Timestamp: ts}
	_, err = st.Last().Decide(statefile.HRS{Height: 4, Step: statefile.StepPrecommit}, types.VoteSignBytes("test-chain", old))
	fmt.Println(err)
	// Output:
	// sign-fresh
	// resign-same
	// height regression: last signed 5/0/prevote, got 4/0/precommit
}
