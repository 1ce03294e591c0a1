package statefile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// reqGen makes random request sequences: a walk over height/round/step that
// often repeats the last position, sometimes regresses or jumps, with block
// ids, timestamps and POL rounds drawn from small sets so that repeats,
// timestamp-only differences and conflicts all happen often.
type reqGen struct {
	rng *rand.Rand
	cur HRS
}

func (g *reqGen) next() (HRS, msg) {
	h := g.cur
	switch x := g.rng.IntN(100); {
	case h.Height == 0:
		h = HRS{Height: 1, Step: StepPropose}
	case x < 30: // repeat
	case x < 65: // next step
		if h.Step == StepPrecommit {
			h = HRS{Height: h.Height, Round: h.Round + 1, Step: StepPropose}
		} else {
			h.Step++
		}
	case x < 75: // next round, any step
		h = HRS{Height: h.Height, Round: h.Round + 1, Step: Step(1 + g.rng.IntN(3))}
	case x < 85: // next height
		h = HRS{Height: h.Height + 1, Step: StepPropose}
	case x < 97: // regress one component, once: the walk goes on from cur
		defer func(cur HRS) { g.cur = cur }(g.cur)
		switch g.rng.IntN(3) {
		case 0:
			if h.Height > 1 {
				h.Height--
			}
		case 1:
			if h.Round > 0 {
				h.Round--
			}
		default:
			if h.Step > StepPropose {
				h.Step--
			}
		}
	default: // jump
		h = HRS{Height: h.Height + int64(g.rng.IntN(3)), Round: int32(g.rng.IntN(3)), Step: Step(1 + g.rng.IntN(3))}
	}
	g.cur = h
	blocks := []string{"", "A", "B"}
	if h.Step == StepPropose {
		blocks = blocks[1:]
	}
	return h, msg{
		Block:    blocks[g.rng.IntN(len(blocks))],
		Time:     t0.Add(time.Duration(g.rng.IntN(3)) * time.Second),
		POLRound: int32(g.rng.IntN(2)) - 1,
	}
}

// refSigner is a minimal signing loop over a state file, the shape the
// signer uses: Decide → (Save ‖ sign) → release only after both. It checks
// the double-sign invariant on every released signature.
type refSigner struct {
	t        testing.TB
	rng      *rand.Rand
	path     string
	f        *File
	key      ed25519.PrivateKey
	released map[HRS][]byte // sign bytes released at each position
	max      HRS            // highest position released
	any      bool
	crashes  int
	noCrash  bool // never crash between Save and the reply
	counts   map[string]int
}

func newRefSigner(t testing.TB, rng *rand.Rand) *refSigner {
	path := filepath.Join(t.TempDir(), "s.state")
	if err := Create(path, testChain, Record{}, false); err != nil {
		t.Fatal(err)
	}
	s := &refSigner{t: t, rng: rng, path: path, key: testKey, released: map[HRS][]byte{}, counts: map[string]int{}}
	s.open()
	return s
}

func (s *refSigner) open() {
	f, err := Open(s.path, testChain)
	if err != nil {
		s.t.Fatalf("reopen after crash %d: %v", s.crashes, err)
	}
	s.f = f
	last := f.Last()
	if s.any && last.Compare(s.max) < 0 {
		s.t.Fatalf("after crash %d the file holds %v, below the released %v", s.crashes, last.HRS, s.max)
	}
	if rel, ok := s.released[last.HRS]; ok && !bytes.Equal(rel, last.SignBytes) {
		s.t.Fatalf("after crash %d the record at %v holds other bytes than released", s.crashes, last.HRS)
	}
}

// crash drops the File without Close (closing its descriptors as process
// death would) and, if torn, first leaves a partial write of a record that
// was never acknowledged in the slot the next Save would write.
func (s *refSigner) crash(torn bool) {
	s.crashes++
	s.counts["crash"]++
	if torn {
		s.counts["torn-crash"]++
		info := s.f.Info()
		h := info.Record.HRS
		h = HRS{Height: h.Height + 1, Step: StepPrevote}
		var slot [SlotSize]byte
		if err := encodeSlot(&slot, testChain, info.Seq+1, voteRecord(h, msg{Block: "Z", Time: t0})); err != nil {
			s.t.Fatal(err)
		}
		k := s.rng.IntN(SlotSize)
		w, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		if err != nil {
			s.t.Fatal(err)
		}
		if _, err := w.WriteAt(slot[:k], int64(1-info.Slot)*SlotSize); err != nil {
			s.t.Fatal(err)
		}
		w.Close()
	}
	s.f.f.Close()
	unlockFile(s.f.lock)
	s.open()
}

func (s *refSigner) release(h HRS, sb, sig []byte) {
	if !ed25519.Verify(s.key.Public().(ed25519.PublicKey), sb, sig) {
		s.t.Fatalf("released a signature that does not verify over its sign bytes at %v", h)
	}
	if prev, ok := s.released[h]; ok && !bytes.Equal(prev, sb) {
		s.t.Fatalf("DOUBLE SIGN at %v: released signatures over\n%X\nand\n%X", h, prev, sb)
	}
	if s.any && h.Compare(s.max) < 0 {
		s.t.Fatalf("released at %v after releasing at %v", h, s.max)
	}
	s.released[h] = append([]byte(nil), sb...)
	s.max, s.any = h, true
}

// handle runs one request; it returns what the loop released (nil if it
// refused) and the timestamp the response carries.
func (s *refSigner) handle(h HRS, m msg) (sig []byte, ts time.Time) {
	sb := signBytes(h, m)
	d, err := s.f.Last().Decide(h, sb)
	if err != nil {
		s.counts["refused"]++
		return nil, time.Time{}
	}
	s.counts[d.Action.String()]++
	switch d.Action {
	case SignFresh:
		sig = ed25519.Sign(s.key, sb)
		if err := s.f.Save(Record{HRS: h, SignBytes: sb}); err != nil {
			s.t.Fatalf("Save(%v): %v", h, err)
		}
		if !s.noCrash && s.rng.IntN(40) == 0 { // crash after the write, before the reply
			s.crash(false)
			return nil, time.Time{}
		}
		s.release(h, sb, sig)
		return sig, m.Time
	case ResignSame, ResignWithStoredTimestamp:
		sig = d.Signature
		if sig == nil {
			sig = ed25519.Sign(s.key, d.SignBytes)
		}
		s.release(h, d.SignBytes, sig)
		if d.Action == ResignWithStoredTimestamp {
			return sig, d.Timestamp
		}
		return sig, m.Time
	}
	s.t.Fatalf("unknown action %v", d.Action)
	return nil, time.Time{}
}

func (s *refSigner) step(g *reqGen) {
	if s.rng.IntN(30) == 0 {
		s.crash(s.rng.IntN(2) == 0)
	}
	h, m := g.next()
	s.handle(h, m)
}

// TestNoConflictingSignatures: random request sequences through the
// reference loop, with random crashes (plain, torn slot write, after the
// write but before the reply), never release two signatures for different
// sign bytes at one position, nor one below a position already released.
func TestNoConflictingSignatures(t *testing.T) {
	seeds, steps := 16, 300
	if testing.Short() {
		seeds = 5
	}
	total := map[string]int{}
	for seed := 0; seed < seeds; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		s := newRefSigner(t, rng)
		g := &reqGen{rng: rng}
		for i := 0; i < steps; i++ {
			s.step(g)
		}
		s.f.Close()
		for k, v := range s.counts {
			total[k] += v
		}
	}
	t.Logf("outcomes: %v", total)
	// The generator must actually exercise every path.
	for _, k := range []string{"sign-fresh", "resign-same", "resign-with-stored-timestamp", "refused", "crash", "torn-crash"} {
		if total[k] == 0 {
			t.Errorf("no %s in %d random steps", k, seeds*steps)
		}
	}
}

// byteSource turns fuzz input into a deterministic random source: the
// input's bytes, then a fixed PCG stream once they run out (a constant
// stream would make rand.IntN loop forever).
type byteSource struct {
	data []byte
	rest rand.Source
}

func (b *byteSource) Uint64() uint64 {
	if len(b.data) == 0 {
		if b.rest == nil {
			b.rest = rand.NewPCG(0x5eed, 0xf22)
		}
		return b.rest.Uint64()
	}
	var buf [8]byte
	n := copy(buf[:], b.data)
	b.data = b.data[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

// FuzzSignLoop is TestNoConflictingSignatures driven by fuzz input.
func FuzzSignLoop(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x10, 0x80, 0x33, 0xfe, 0x01, 0x00, 0x99, 0x42}, 64))
	f.Add(bytes.Repeat([]byte{0xff}, 256))
	for seed := uint64(0); seed < 4; seed++ {
		b := make([]byte, 1024)
		r := rand.New(rand.NewPCG(seed, 7))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		steps := min(len(data)/4, 300)
		rng := rand.New(&byteSource{data: data})
		s := newRefSigner(t, rng)
		defer func() { s.f.Close() }()
		g := &reqGen{rng: rng}
		for i := 0; i < steps; i++ {
			s.step(g)
		}
	})
}

// TestDecideMatchesFilePV runs the same random request sequences through
// CometBFT's real FilePV (privval.FilePV.SignVote / SignProposal) and
// through Decide + Save + sign with the same key, and requires identical
// outcomes: both refuse, or both return the same signature and timestamp.
func TestDecideMatchesFilePV(t *testing.T) {
	seeds, steps := 6, 300
	if testing.Short() {
		seeds = 3
	}
	agree := map[string]int{}
	for seed := 0; seed < seeds; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 1234))
		pv, _ := realFilePV(t.TempDir())
		s := newRefSigner(t, rng)
		s.key, s.noCrash = ed25519.PrivateKey(filePVKey), true
		g := &reqGen{rng: rng}
		for i := 0; i < steps; i++ {
			h, m := g.next()
			var pvSig []byte
			var pvTS time.Time
			var pvErr error
			if h.Step == StepPropose {
				p := cmtProposal(h, m)
				pvErr = pv.SignProposal(testChain, p)
				pvSig, pvTS = p.Signature, p.Timestamp
			} else {
				v := cmtVote(h, m)
				pvErr = pv.SignVote(testChain, v)
				pvSig, pvTS = v.Signature, v.Timestamp
			}
			d, derr := s.f.Last().Decide(h, signBytes(h, m))
			sig, ts := s.handle(h, m)
			switch {
			case (pvErr == nil) != (sig != nil):
				t.Fatalf("seed %d step %d at %v: FilePV err=%v, ours released=%t (%v)", seed, i, h, pvErr, sig != nil, derr)
			case pvErr == nil && (!bytes.Equal(sig, pvSig) || !ts.Equal(pvTS)):
				t.Fatalf("seed %d step %d at %v (%v): FilePV signed %X at %v, we %X at %v", seed, i, h, d.Action, pvSig, pvTS, sig, ts)
			}
			if derr != nil {
				agree["refused"]++
			} else {
				agree[d.Action.String()]++
			}
		}
		s.f.Close()
	}
	t.Logf("agreed with FilePV on: %v", agree)
	for _, k := range []string{"sign-fresh", "resign-same", "resign-with-stored-timestamp", "refused"} {
		if agree[k] == 0 {
			t.Errorf("no %s case compared", k)
		}
	}
}
