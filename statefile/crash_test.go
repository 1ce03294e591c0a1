package statefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tornFixture is a state file whose current record is cur (seq 2, slot 1)
// and whose older slot 0 holds prev; next is the slot 0 image the next Save
// (seq 3) writes.
type tornFixture struct {
	path      string
	prev, cur Record
	next      Record
	image     []byte // the file before the next Save
	nextSlot  [SlotSize]byte
	writeSlot int
}

func newTornFixture(t *testing.T, saves int) tornFixture {
	t.Helper()
	prev := voteRecord(HRS{10, 0, StepPropose}, msg{Block: "A", Time: t0, POLRound: -1})
	path := createTemp(t, prev)
	f := mustOpen(t, path)
	recs := []Record{
		voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0}),
		voteRecord(HRS{10, 0, StepPrecommit}, msg{Block: "A", Time: t0}),
		voteRecord(HRS{11, 0, StepPropose}, msg{Block: "B", Time: t0, POLRound: -1}),
	}
	cur := prev
	for _, r := range recs[:saves] {
		if err := f.Save(r); err != nil {
			t.Fatal(err)
		}
		prev, cur = cur, r
	}
	info := f.Info()
	f.Close()
	// A different length from the slot's old record, so a torn write leaves
	// a mix of both.
	next := voteRecord(HRS{cur.Height + 1, 3, StepPrecommit}, msg{Time: t0.Add(time.Hour)})
	fx := tornFixture{path: path, prev: prev, cur: cur, next: next, image: readFile(t, path), writeSlot: 1 - info.Slot}
	if err := encodeSlot(&fx.nextSlot, testChain, info.Seq+1, next); err != nil {
		t.Fatal(err)
	}
	return fx
}

// torn returns the file as a crash after k bytes of the next slot write
// leaves it, with the rest of the slot given by tail ("old": the previous
// content, "zero", "random").
func (fx tornFixture) torn(k int, tail string, rng *rand.Rand) []byte {
	img := append([]byte(nil), fx.image...)
	slot := img[fx.writeSlot*SlotSize : (fx.writeSlot+1)*SlotSize]
	copy(slot[:k], fx.nextSlot[:k])
	for i := k; i < SlotSize; i++ {
		switch tail {
		case "zero":
			slot[i] = 0
		case "random":
			slot[i] = byte(rng.Uint32())
		}
	}
	return img
}

// TestTornSlotWrite: a crash part-way through writing a slot, at every byte
// offset, with the unwritten rest old, zeroed or random, never loses the
// current record: loading yields it, or the new record only when the slot
// on disk is complete, and never an error or anything else.
func TestTornSlotWrite(t *testing.T) {
	for _, saves := range []int{0, 1} { // the slot being written is 1, then 0
		fx := newTornFixture(t, saves)
		rng := rand.New(rand.NewPCG(1, uint64(saves)))
		for _, tail := range []string{"old", "zero", "random"} {
			for k := 0; k <= SlotSize; k++ {
				// Every offset for the realistic tail (the old bytes
				// stay); every 7th and the slot's edges for the others.
				if tail != "old" && k%7 != 0 && k > 2 && k < SlotSize-2 {
					continue
				}
				img := fx.torn(k, tail, rng)
				info, err := loadBytes(fx.path, img, testChain)
				if err != nil {
					t.Fatalf("slot %d, %s tail, %d bytes written: %v", fx.writeSlot, tail, k, err)
				}
				slot := img[fx.writeSlot*SlotSize : (fx.writeSlot+1)*SlotSize]
				complete := bytes.Equal(slot, fx.nextSlot[:])
				untouched := bytes.Equal(slot, fx.image[fx.writeSlot*SlotSize:(fx.writeSlot+1)*SlotSize])
				switch {
				case complete && !info.Record.Equal(fx.next):
					t.Fatalf("%s tail, %d bytes: complete slot but loaded %v", tail, k, info.Record)
				case !complete && !info.Record.Equal(fx.cur):
					t.Fatalf("%s tail, %d bytes: loaded %v, want the current %v", tail, k, info.Record, fx.cur)
				case !complete && !untouched && (info.Slots[fx.writeSlot].Valid || !strings.HasPrefix(info.Slots[fx.writeSlot].Problem, "torn")):
					t.Fatalf("%s tail, %d bytes: torn slot reported as %+v", tail, k, info.Slots[fx.writeSlot])
				}
			}
		}
		// The same through the real Open and Read paths, one offset per
		// class: nothing, inside the JSON line, its newline, the checksum
		// line, the start of the padding, inside it, all but the last
		// byte, all of it.
		nl := bytes.IndexByte(fx.nextSlot[:], '\n')
		for _, k := range []int{0, 1, nl / 2, nl, nl + 1, nl + 8, nl + crcLineLen, nl + crcLineLen + 1, 2048, SlotSize - 1, SlotSize} {
			for _, tail := range []string{"old", "zero"} {
				img := fx.torn(k, tail, rng)
				writeFile(t, fx.path, img)
				want, complete := fx.cur, bytes.Equal(img[fx.writeSlot*SlotSize:(fx.writeSlot+1)*SlotSize], fx.nextSlot[:])
				if complete {
					want = fx.next
				}
				f := mustOpen(t, fx.path)
				got, info := f.Last(), f.Info()
				// The damaged slot is the one the next Save writes.
				if !complete {
					r := voteRecord(nextHRS(fx.next.HRS), msg{Block: "Z", Time: t0})
					if err := f.Save(r); err != nil {
						t.Fatalf("Save after a torn slot: %v", err)
					}
					if f.Info().Slot != fx.writeSlot || !f.Info().Healthy() {
						t.Fatalf("Save after a torn slot did not repair it: %+v", f.Info())
					}
				}
				f.Close()
				if !got.Equal(want) {
					t.Fatalf("Open after %d bytes (%s tail) = %v, want %v (slots %+v)", k, tail, got, want, info.Slots)
				}
			}
		}
	}
}

// TestGarbledWriteSlot: random byte damage anywhere in the slot being
// written never yields anything but the current record.
func TestGarbledWriteSlot(t *testing.T) {
	fx := newTornFixture(t, 1)
	rng := rand.New(rand.NewPCG(2, 3))
	full := fx.torn(SlotSize, "old", rng)
	for i := 0; i < 5000; i++ {
		img := append([]byte(nil), full...)
		for n := 1 + rng.IntN(3); n > 0; n-- {
			img[fx.writeSlot*SlotSize+rng.IntN(SlotSize)] ^= byte(1 + rng.IntN(255))
		}
		info, err := loadBytes(fx.path, img, testChain)
		if err != nil {
			t.Fatalf("garbled slot: %v", err)
		}
		if !info.Record.Equal(fx.cur) && !info.Record.Equal(fx.next) {
			t.Fatalf("garbled slot loaded %v", info.Record)
		}
		if info.Record.Equal(fx.next) && !bytes.Equal(img, full) {
			t.Fatalf("a damaged slot was loaded as %v", info.Record)
		}
	}
}

// TestCreateInterrupted: a crash between writing Create's temp file and the
// rename leaves the old file intact; the temp is ignored by Read and
// removed by the next Open or Create.
func TestCreateInterrupted(t *testing.T) {
	good := voteRecord(HRS{50, 0, StepPrecommit}, msg{Block: "A", Time: t0})
	path := createTemp(t, good)
	before := readFile(t, path)

	// 1. An injected failure just before the rename: Create returns an
	// error, removes its temp and leaves the file alone.
	var seen string
	testOnlyBeforeRename = func(name string) error {
		seen = name
		if st, err := os.Stat(name); err != nil || st.Size() != FileSize {
			t.Errorf("temp file before rename: %v", err)
		}
		return errors.New("simulated crash")
	}
	err := Create(path, testChain, voteRecord(HRS{60, 0, StepPrecommit}, msg{Block: "B", Time: t0}), true)
	testOnlyBeforeRename = nil
	if err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("interrupted Create = %v", err)
	}
	if _, err := os.Stat(seen); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed Create left its temp %q", seen)
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("failed Create changed the file")
	}

	// 2. A process killed after writing (part of) its temp file leaves it
	// behind: a full-size temp for another record and a torn one.
	dir := filepath.Dir(path)
	var other [FileSize]byte
	copy(other[:], fx2(t, voteRecord(HRS{99, 0, StepPrecommit}, msg{Block: "C", Time: t0})))
	temps := map[string][]byte{
		filepath.Join(dir, tempPrefix(path)+"123456"): other[:],
		filepath.Join(dir, tempPrefix(path)+"999"):    other[:3000],
		filepath.Join(dir, tempPrefix(path)+"0"):      {},
	}
	for name, data := range temps {
		writeFile(t, name, data)
	}
	info, err := Read(path)
	if err != nil || !info.Record.Equal(good) || len(info.StaleTemps) != len(temps) {
		t.Fatalf("Read with stale temps = %v %v, temps %v", info.Record, err, info.StaleTemps)
	}
	for name := range temps {
		if _, err := os.Stat(name); err != nil {
			t.Fatalf("Read removed %q: it must not change anything", name)
		}
	}
	f := mustOpen(t, path)
	if !f.Last().Equal(good) || len(f.Info().StaleTemps) != len(temps) {
		t.Fatalf("Open with stale temps: %v, removed %v", f.Last(), f.Info().StaleTemps)
	}
	f.Close()
	for name := range temps {
		if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open left stale temp %q", name)
		}
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("stale temps changed the file")
	}
	// Create cleans them too.
	writeFile(t, filepath.Join(dir, tempPrefix(path)+"777"), []byte("junk"))
	if err := Create(path, testChain, good, true); err != nil {
		t.Fatal(err)
	}
	if left := staleTemps(path, false); len(left) != 0 {
		t.Fatalf("Create left %v", left)
	}
}

// fx2 returns a whole state file image holding r.
func fx2(t *testing.T, r Record) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := Create(p, testChain, r, false); err != nil {
		t.Fatal(err)
	}
	return readFile(t, p)
}

// TestKill9: a child process saves increasing positions in a loop and
// prints each one after Save returned; the parent SIGKILLs it at random
// points and checks, after reopening, that the file holds at least the last
// position the child reported durable (and exactly its bytes if equal).
func TestKill9(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	path := createTemp(t, Record{})
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill points from seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	var reported HRS
	torn := 0
	for round := 0; round < rounds; round++ {
		c := startChild(t, "saveloop", path)
		killAfter := 1 + rng.IntN(400)
		for i := 0; i < killAfter; i++ {
			reported = parseSaved(t, c.line(t, 30*time.Second))
		}
		// Not synchronisation: a random pause so the kill lands anywhere
		// in the following Saves.
		time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Lines the child finished before it died are still in the pipe.
		rest, _ := io.ReadAll(c.out)
		for _, l := range strings.Split(string(rest), "\n") {
			if strings.HasPrefix(l, "saved ") && strings.Count(l, " ") == 3 {
				if h, err := parseHRSLine(l); err == nil {
					reported = h
				}
			}
		}
		c.cmd.Wait()
		if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, want killed (stderr: %s)", round, c.cmd.ProcessState, c.stderr.String())
		}
		f, err := Open(path, testChain)
		if err != nil {
			t.Fatalf("round %d: reopening after kill -9: %v", round, err)
		}
		got, info := f.Last(), f.Info()
		f.Close()
		if got.Compare(reported) < 0 {
			t.Fatalf("round %d: loaded %v, but the child reported %v durable", round, got.HRS, reported)
		}
		if got.HRS == reported && !got.Equal(voteRecord(reported, msg{Block: "A", Time: t0, POLRound: -1})) {
			t.Fatalf("round %d: record at %v has other sign bytes", round, reported)
		}
		if !info.Healthy() {
			torn++
		}
		t.Logf("round %d: killed after %d+ saves; reported %v, loaded %v (seq %d)", round, killAfter, reported, got.HRS, info.Seq)
	}
	t.Logf("%d of %d rounds left a torn slot", torn, rounds)
}

func parseHRSLine(l string) (HRS, error) {
	var h, r, s int64
	_, err := fmt.Sscanf(l, "saved %d %d %d", &h, &r, &s)
	return HRS{Height: h, Round: int32(r), Step: Step(s)}, err
}
