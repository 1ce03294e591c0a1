package statefile

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cometbft/cometbft/libs/protoio"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// rawSlot builds a slot around an arbitrary JSON line with a correct
// checksum, for records this package would never write.
func rawSlot(line string) []byte {
	b := []byte(line + "\n" + fmt.Sprintf("crc32c:%08x\n", crc32.Checksum([]byte(line), castagnoli)))
	for len(b) < SlotSize-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestCreateOpenSaveRoundTrip(t *testing.T) {
	path := createTemp(t, Record{})
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("parent folder: %v, mode %v; want created 0700", err, st.Mode())
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 || st.Size() != FileSize {
		t.Fatalf("state file mode %v size %d, want 0600 and %d", st.Mode(), st.Size(), FileSize)
	}
	ino := inode(t, path)

	f := mustOpen(t, path)
	defer f.Close()
	if got := f.Last(); !got.Equal(Record{}) {
		t.Fatalf("fresh Last = %v", got)
	}
	if info := f.Info(); !info.Healthy() || info.Seq != 1 || info.Slot != 0 || info.ChainID != testChain {
		t.Fatalf("fresh Info = %+v", info)
	}

	recs := []Record{
		voteRecord(HRS{1, 0, StepPropose}, msg{Block: "A", Time: t0, POLRound: -1}),
		voteRecord(HRS{1, 0, StepPrevote}, msg{Block: "A", Time: t0}),
		voteRecord(HRS{1, 0, StepPrecommit}, msg{Block: "A", Time: t0}),
		{HRS: HRS{2, 3, StepPrecommit}}, // a position without sign bytes
		voteRecord(HRS{9_000_000_000, 7, StepPrevote}, msg{Time: t0}),
	}
	for i, r := range recs {
		before := readFile(t, path)
		wantSlot := (i + 1) % 2
		if err := f.Save(r); err != nil {
			t.Fatalf("Save(%v): %v", r, err)
		}
		after := readFile(t, path)
		if len(after) != FileSize || inode(t, path) != ino {
			t.Fatalf("Save changed the file's size or inode")
		}
		// Only the slot that did not hold the current record was written.
		keep := 1 - wantSlot
		if !bytes.Equal(before[keep*SlotSize:(keep+1)*SlotSize], after[keep*SlotSize:(keep+1)*SlotSize]) {
			t.Fatalf("Save %d touched slot %d, which held the current record", i, keep)
		}
		if got := f.Last(); !got.Equal(r) {
			t.Fatalf("Last = %v, want %v", got, r)
		}
		info := f.Info()
		if info.Slot != wantSlot || info.Seq != uint64(i+2) || !info.Healthy() {
			t.Fatalf("Info after Save %d = %+v", i, info)
		}
		ri, err := Read(path)
		if err != nil || !ri.Record.Equal(r) || ri.Seq != info.Seq || ri.Slot != wantSlot || ri.ChainID != testChain {
			t.Fatalf("Read = %+v, %v; want %v seq %d", ri, err, r, info.Seq)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.Save(recs[len(recs)-1]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close = %v, want ErrClosed", err)
	}
	g := mustOpen(t, path)
	defer g.Close()
	if got := g.Last(); !got.Equal(recs[len(recs)-1]) {
		t.Fatalf("reopened Last = %v", got)
	}
}

func TestSaveRefuses(t *testing.T) {
	r10 := voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0})
	path := createTemp(t, r10)
	f := mustOpen(t, path)
	defer f.Close()
	big := Record{HRS: HRS{11, 0, StepPrevote}, SignBytes: make([]byte, MaxSignBytes+1)}
	cases := []struct {
		name string
		r    Record
		want func(error) bool
		msg  string
	}{
		{"lower height", voteRecord(HRS{9, 5, StepPrecommit}, msg{Block: "A", Time: t0}),
			func(err error) bool { var e *RegressionError; return errors.As(err, &e) }, "height regression"},
		{"lower step", voteRecord(HRS{10, 0, StepPropose}, msg{Block: "A", Time: t0}),
			func(err error) bool { var e *RegressionError; return errors.As(err, &e) }, "step regression"},
		{"other bytes at same HRS", voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "B", Time: t0}),
			func(err error) bool { var e *ConflictError; return errors.As(err, &e) }, "conflicting data at 10/0/prevote"},
		{"timestamp-only at same HRS", voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0.Add(1)}),
			func(err error) bool { var e *ConflictError; return errors.As(err, &e) }, "conflicting data"},
		{"no bytes at same HRS", Record{HRS: HRS{10, 0, StepPrevote}},
			func(err error) bool { var e *ConflictError; return errors.As(err, &e) }, "conflicting data"},
		{"other chain", voteRecord(HRS{11, 0, StepPrevote}, msg{Block: "A", Time: t0, Chain: "other-chain"}),
			func(err error) bool { return errors.Is(err, ErrInvalidSignBytes) }, `want "test-chain"`},
		{"bytes of another HRS", Record{HRS: HRS{11, 0, StepPrevote}, SignBytes: r10.SignBytes},
			func(err error) bool { return errors.Is(err, ErrInvalidSignBytes) }, "filed under 11/0/prevote"},
		{"too large", big, func(err error) bool { return errors.Is(err, ErrTooLarge) }, "at most 1536"},
		{"step none with height", Record{HRS: HRS{12, 0, 7}},
			func(err error) bool { return errors.Is(err, ErrInvalidRecord) }, "unknown step 7"},
	}
	for _, c := range cases {
		before := readFile(t, path)
		err := f.Save(c.r)
		if err == nil || !c.want(err) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
			t.Errorf("%s: Save = %v; want an error containing %q and the path", c.name, err, c.msg)
		}
		if !f.Last().Equal(r10) || !bytes.Equal(before, readFile(t, path)) {
			t.Errorf("%s: a refused Save changed the state", c.name)
		}
	}
	// The same record again, and the same bytes with a known signature, are fine.
	if err := f.Save(r10); err != nil {
		t.Errorf("re-saving the current record: %v", err)
	}
	withSig := Record{r10.HRS, r10.SignBytes, ed25519.Sign(testKey, r10.SignBytes)}
	if err := f.Save(withSig); err != nil || !f.Last().Equal(withSig) {
		t.Errorf("adding the signature: %v", err)
	}
}

// TestSaveCopiesInput: Last must not alias the caller's slices.
func TestSaveCopiesInput(t *testing.T) {
	path := createTemp(t, Record{})
	f := mustOpen(t, path)
	defer f.Close()
	r := voteRecord(HRS{1, 0, StepPrevote}, msg{Block: "A", Time: t0})
	want := append([]byte(nil), r.SignBytes...)
	if err := f.Save(r); err != nil {
		t.Fatal(err)
	}
	r.SignBytes[len(r.SignBytes)-1] ^= 0xff
	if !bytes.Equal(f.Last().SignBytes, want) {
		t.Fatal("Last aliases the slice passed to Save")
	}
}

// TestSaveWriteFailure: a failed write leaves Last unchanged and stops all
// later saves until the file is reopened.
func TestSaveWriteFailure(t *testing.T) {
	r1 := voteRecord(HRS{1, 0, StepPrevote}, msg{Block: "A", Time: t0})
	path := createTemp(t, r1)
	f := mustOpen(t, path)
	// Break the descriptor under the File: the next pwrite fails with EBADF.
	f.f.Close()
	r2 := voteRecord(HRS{2, 0, StepPrevote}, msg{Block: "A", Time: t0})
	if err := f.Save(r2); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Save on a broken file = %v, want ErrWriteFailed", err)
	}
	if !f.Last().Equal(r1) {
		t.Fatal("a failed Save changed Last")
	}
	r3 := voteRecord(HRS{3, 0, StepPrevote}, msg{Block: "A", Time: t0})
	if err := f.Save(r3); !errors.Is(err, ErrWriteFailed) || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Save after a failure = %v, want ErrWriteFailed naming the fix", err)
	}
	if info := f.Info(); info.Slots[1].Valid || !strings.Contains(info.Slots[1].Problem, "write failed") {
		t.Fatalf("Info after failure = %+v", info.Slots)
	}
	unlockFile(f.lock)
	g := mustOpen(t, path)
	defer g.Close()
	if !g.Last().Equal(r1) {
		t.Fatalf("reopened Last = %v, want %v", g.Last(), r1)
	}
	if err := g.Save(r2); err != nil {
		t.Fatalf("Save after reopening: %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.state")
	r := voteRecord(HRS{5, 0, StepPrecommit}, msg{Block: "A", Time: t0})
	if err := Create(path, testChain, r, false); err != nil {
		t.Fatal(err)
	}
	good := readFile(t, path)
	newer := voteRecord(HRS{6, 0, StepPrecommit}, msg{Block: "A", Time: t0})
	if err := Create(path, testChain, newer, false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
		t.Fatalf("Create over an existing file = %v, want ErrExists naming it", err)
	}
	if !bytes.Equal(good, readFile(t, path)) {
		t.Fatal("refused Create changed the file")
	}
	if err := Create(path, testChain, newer, true); err != nil {
		t.Fatalf("Create with overwrite: %v", err)
	}
	if info, err := Read(path); err != nil || !info.Record.Equal(newer) || !info.Healthy() {
		t.Fatalf("after overwrite: %+v %v", info, err)
	}
	if err := Create(dir, testChain, newer, true); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Create over a folder = %v, want ErrNotRegular", err)
	}
	for name, c := range map[string]struct {
		chain string
		r     Record
		want  string
	}{
		"empty chain":    {"", Record{}, "chain id must not be empty"},
		"long chain":     {strings.Repeat("c", 51), Record{}, "at most 50"},
		"control chain":  {"a\nb", Record{}, "control character"},
		"other chain":    {"other-chain", r, `want "other-chain"`},
		"invalid record": {testChain, Record{HRS: HRS{-1, 0, 0}}, "negative height"},
	} {
		p := filepath.Join(dir, "x-"+strings.ReplaceAll(name, " ", "-"))
		if err := Create(p, c.chain, c.r, false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Create = %v, want an error containing %q", name, err, c.want)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: refused Create left a file", name)
		}
	}
}

// TestChainIDEscaping: a chain id with JSON-special characters round-trips.
func TestChainIDEscaping(t *testing.T) {
	for _, chain := range []string{`a"b\c`, "ünï-cödé", "<&>"} {
		path := filepath.Join(t.TempDir(), "s.state")
		if err := Create(path, chain, Record{HRS: HRS{3, 0, StepNone}}, false); err != nil {
			t.Fatalf("%q: %v", chain, err)
		}
		f, err := Open(path, chain)
		if err != nil {
			t.Fatalf("%q: %v", chain, err)
		}
		f.Close()
		if info, err := Read(path); err != nil || info.ChainID != chain {
			t.Fatalf("%q: Read = %q, %v", chain, info.ChainID, err)
		}
	}
}

func TestOpenRefusals(t *testing.T) {
	good := voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0})
	var goodSlot [SlotSize]byte
	if err := encodeSlot(&goodSlot, testChain, 4, good); err != nil {
		t.Fatal(err)
	}
	tornSlot := bytes.Repeat([]byte{0xAB}, SlotSize)
	slots := func(a, b []byte) []byte { return append(append([]byte(nil), a...), b...) }
	line := func(extra string) string {
		return `{"format":"signerd-state/1","chain_id":"test-chain","seq":"5","height":"11","round":0,"step":0` + extra + `}`
	}
	filePV := []byte("{\n  \"height\": \"0\",\n  \"round\": 0,\n  \"step\": 0\n}")
	older := voteRecord(HRS{9, 0, StepPrevote}, msg{Block: "A", Time: t0})
	var olderSlot [SlotSize]byte
	if err := encodeSlot(&olderSlot, testChain, 5, older); err != nil {
		t.Fatal(err)
	}
	var sameSeq [SlotSize]byte
	if err := encodeSlot(&sameSeq, testChain, 4, older); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		data []byte // nil: no file; see dir
		dir  bool
		kind error
		msg  string
	}{
		{"missing", nil, false, ErrMissing, "does not exist"},
		{"folder", nil, true, ErrNotRegular, "not a regular file"},
		{"empty", []byte{}, false, ErrEmpty, "empty"},
		{"short garbage", []byte("hello"), false, ErrCorrupt, "5 bytes"},
		{"one byte too long", append(slots(goodSlot[:], goodSlot[:]), '\n'), false, ErrCorrupt, "8193 bytes"},
		{"zeros", make([]byte, FileSize), false, ErrCorrupt, "no valid slot"},
		{"both slots torn", slots(tornSlot, tornSlot), false, ErrCorrupt, "no valid slot"},
		{"FilePV state", filePV, false, ErrVersion, "priv_validator_state.json"},
		{"future version", slots(goodSlot[:], rawSlot(`{"format":"signerd-state/2","chain_id":"test-chain"}`)), false, ErrVersion, `"signerd-state/2"`},
		{"negative height", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"11"`, `"-11"`, 1))), false, ErrCorrupt, "negative height"},
		{"height not a string", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"11"`, `11`, 1))), false, ErrCorrupt, "slot 1"},
		{"unknown step", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"step":0`, `"step":9`, 1))), false, ErrCorrupt, "unknown step 9"},
		{"unknown key", slots(goodSlot[:], rawSlot(line(`,"extra":1`))), false, ErrCorrupt, "unknown field"},
		{"duplicate key", slots(goodSlot[:], rawSlot(line(`,"step":0`))), false, ErrCorrupt, "canonical"},
		{"re-cased key", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"round"`, `"ROUND"`, 1))), false, ErrCorrupt, "canonical"},
		{"leading zero", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"11"`, `"011"`, 1))), false, ErrCorrupt, "canonical"},
		{"lower-case hex", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"step":0`, `"step":2,"signbytes":"`+strings.ToLower(fmt.Sprintf("%X", voteRecord(HRS{11, 0, StepPrevote}, msg{Block: "A", Time: t0}).SignBytes))+`"`, 1))), false, ErrCorrupt, "canonical"},
		{"NaN height", slots(goodSlot[:], rawSlot(strings.Replace(line(""), `"11"`, `"NaN"`, 1))), false, ErrCorrupt, "not an int64"},
		{"newer slot regresses", slots(goodSlot[:], olderSlot[:]), false, ErrCorrupt, "does not follow"},
		{"same seq, other record", slots(goodSlot[:], sameSeq[:]), false, ErrCorrupt, "both slots have seq 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.state")
			switch {
			case c.dir:
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			case c.data != nil:
				writeFile(t, path, c.data)
			}
			before, _ := os.ReadFile(path)
			for _, op := range []string{"Open", "Read"} {
				var err error
				if op == "Open" {
					var f *File
					if f, err = Open(path, testChain); f != nil {
						f.Close()
						t.Fatalf("Open returned a File (Last %v) and %v", f.Last(), err)
					}
				} else {
					_, err = Read(path)
				}
				var fe *FileError
				if !errors.Is(err, c.kind) || !errors.As(err, &fe) || fe.Path != path {
					t.Fatalf("%s = %v, want a *FileError of kind %v for %q", op, err, c.kind, path)
				}
				if !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
					t.Errorf("%s error %q does not contain %q and the path", op, err, c.msg)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("a refused Open changed the file")
			}
		})
	}
}

func TestOpenChainMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.state")
	if err := Create(path, "other-chain", Record{}, false); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, testChain)
	if !errors.Is(err, ErrChainMismatch) || !strings.Contains(err.Error(), `"other-chain"`) || !strings.Contains(err.Error(), `"test-chain"`) {
		t.Fatalf("Open for another chain = %v, want ErrChainMismatch naming both chains", err)
	}
	if _, err := Open(path, ""); err == nil || !strings.Contains(err.Error(), "chain id must not be empty") {
		t.Fatalf("Open with an empty chain id = %v", err)
	}
	if info, err := Read(path); err != nil || info.ChainID != "other-chain" {
		t.Fatalf("Read = %+v, %v", info, err)
	}
}

// TestGoldenFile pins the on-disk format: Create's bytes for fixed records
// must not change without a new format version. Run with -update to rewrite.
func TestGoldenFile(t *testing.T) {
	vote := voteRecord(HRS{120, 0, StepPrevote}, msg{Block: "A", Time: t0})
	prop := voteRecord(HRS{7, 1, StepPropose}, msg{Block: "B", Time: t0, POLRound: -1})
	prop.Signature = ed25519.Sign(testKey, prop.SignBytes)
	for name, r := range map[string]Record{
		"fresh.state":              {},
		"prevote.state":            vote,
		"proposal-with-sig.state":  prop,
		"init-height-1000.state":   {HRS: HRS{1000, 0, StepNone}},
		"precommit-no-bytes.state": {HRS: HRS{55, 2, StepPrecommit}},
	} {
		path := filepath.Join(t.TempDir(), name)
		if err := Create(path, testChain, r, false); err != nil {
			t.Fatal(err)
		}
		got := readFile(t, path)
		golden := filepath.Join("testdata", "state", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, golden, got)
		}
		if want := readFile(t, golden); !bytes.Equal(got, want) {
			t.Errorf("%s: Create wrote\n%.300s\nwant\n%.300s", name, got, want)
		}
		info, err := Read(golden)
		if err != nil || !info.Record.Equal(r) {
			t.Errorf("%s: Read = %v, %v; want %v", name, info.Record, err, r)
		}
	}
}

// TestLargestRecordFits: the largest record Validate accepts (MaxSignBytes
// of sign bytes, a signature, extreme numbers, a 50-byte chain id that
// doubles under JSON escaping) fits a slot, so Save never fails on size for
// a valid record.
func TestLargestRecordFits(t *testing.T) {
	chain := strings.Repeat(`"`, MaxChainIDLen)
	h := HRS{Height: math.MaxInt64, Round: math.MaxInt32, Step: StepPrecommit}
	var sb []byte
	for n := MaxSignBytes - 200; n < MaxSignBytes; n++ {
		// types.VoteSignBytes refuses odd hash sizes; marshal the
		// canonical vote directly.
		v := cmtproto.CanonicalVote{Type: cmtproto.PrecommitType, Height: h.Height, Round: int64(h.Round), Timestamp: t0, ChainID: chain,
			BlockID: &cmtproto.CanonicalBlockID{Hash: make([]byte, n), PartSetHeader: cmtproto.CanonicalPartSetHeader{Total: math.MaxUint32, Hash: make([]byte, 32)}}}
		b, err := protoio.MarshalDelimited(&v)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) <= MaxSignBytes {
			sb = b
		}
	}
	if len(sb) < MaxSignBytes-2 {
		t.Fatalf("could only build %d sign bytes", len(sb))
	}
	r := Record{HRS: h, SignBytes: sb, Signature: bytes.Repeat([]byte{0xff}, 64)}
	if err := r.Validate(chain); err != nil {
		t.Fatal(err)
	}
	var slot [SlotSize]byte
	if err := encodeSlot(&slot, chain, math.MaxUint64, r); err != nil {
		t.Fatalf("largest valid record (%d sign bytes) does not fit: %v", len(sb), err)
	}
	if s := parseSlot(slot[:], chain); !s.ok || !s.rec.Equal(r) {
		t.Fatalf("largest record does not load back: %+v", s.problem)
	}
	t.Logf("largest record line: %d of %d bytes", bytes.IndexByte(slot[:], '\n'), SlotSize)
}
