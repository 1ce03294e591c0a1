package statefile

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometbft/cometbft/libs/protoio"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cosmos/gogoproto/proto"
)

// testdataFiles returns the contents of testdata files matching pattern.
func testdataFiles(f *testing.F, pattern string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seeds for %q: %v", pattern, err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzLoad: arbitrary file bytes never panic; Read and Open agree; a loaded
// record is valid, re-saves, and re-loads equal.
func FuzzLoad(f *testing.F) {
	for _, b := range testdataFiles(f, "state/*.state") {
		f.Add(b)
		torn := append([]byte(nil), b...)
		copy(torn[SlotSize:], bytes.Repeat([]byte{'x'}, 100))
		f.Add(torn)
		f.Add(b[:SlotSize])
	}
	for _, b := range testdataFiles(f, "filepv/*.json") {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, FileSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "s.state")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		info, rerr := Read(path)
		chain := testChain
		if rerr == nil {
			chain = info.ChainID
		}
		fh, oerr := Open(path, chain)
		if (rerr == nil) != (oerr == nil) {
			t.Fatalf("Read: %v, but Open: %v", rerr, oerr)
		}
		if oerr != nil {
			var fe *FileError
			if !errors.As(oerr, &fe) || fe.Path != path {
				t.Fatalf("Open error is not a *FileError for the path: %v", oerr)
			}
			known := false
			for _, k := range []error{ErrEmpty, ErrCorrupt, ErrVersion, ErrChainMismatch} {
				known = known || errors.Is(oerr, k)
			}
			if !known {
				t.Fatalf("Open error of no known kind: %v", oerr)
			}
			return
		}
		r := fh.Last()
		if !r.Equal(info.Record) {
			fh.Close()
			t.Fatalf("Open loaded %v, Read %v", r, info.Record)
		}
		if err := r.Validate(chain); err != nil {
			fh.Close()
			t.Fatalf("loaded an invalid record: %v", err)
		}
		if info.Seq == math.MaxUint64 {
			fh.Close()
			return
		}
		if err := fh.Save(r); err != nil {
			fh.Close()
			t.Fatalf("re-saving the loaded record: %v", err)
		}
		fh.Close()
		fh, err := Open(path, chain)
		if err != nil {
			t.Fatalf("reopen after re-save: %v", err)
		}
		defer fh.Close()
		if !fh.Last().Equal(r) || !fh.Info().Healthy() {
			t.Fatalf("after re-save: %v %+v, want %v and both slots valid", fh.Last(), fh.Info().Slots, r)
		}
	})
}

// FuzzParseFilePV: no panic; errors are prefixed; an accepted state is
// valid, formats, and re-parses to the same record (sign bytes are exported
// only with a signature), and formatting is stable.
func FuzzParseFilePV(f *testing.F) {
	for _, b := range testdataFiles(f, "filepv/*.json") {
		f.Add(b)
		f.Add(bytes.ToLower(b))
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"height":"5","round":0,"step":2,"signature":null}`))
	f.Add([]byte(`{"height":"1","height":"2","round":0,"step":0}`))
	f.Add([]byte(`{"height":"1","round":"0","step":2,"block_id":{"hash":"","parts":{"total":0,"hash":""}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseFilePV(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "priv_validator_state: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if err := r.Validate(""); err != nil {
			t.Fatalf("accepted an invalid record: %v", err)
		}
		out := FormatFilePV(r)
		r2, err := ParseFilePV(out)
		if err != nil {
			t.Fatalf("FormatFilePV output does not parse: %v\n%s", err, out)
		}
		want := r
		if len(r.Signature) == 0 {
			want.SignBytes = nil
		}
		if !r2.Equal(want) {
			t.Fatalf("round trip %v → %v", want, r2)
		}
		if again := FormatFilePV(r2); !bytes.Equal(again, out) {
			t.Fatalf("FormatFilePV not stable:\n%s\n%s", out, again)
		}
	})
}

// FuzzDecide: no panic, and every decision or error is consistent with the
// rules, checked independently of Decide's own code paths.
func FuzzDecide(f *testing.F) {
	for _, v := range loadVectors(f) {
		lh, lb, _ := v.Last.build(f)
		rh, rb, _ := v.Req.build(f)
		f.Add(lh.Height, lh.Round, int8(lh.Step), lb, v.Last.Signature, rh.Height, rh.Round, int8(rh.Step), rb)
	}
	f.Fuzz(func(t *testing.T, lh int64, lr int32, ls int8, lb []byte, lsig bool, rh int64, rr int32, rs int8, rb []byte) {
		last := Record{HRS: HRS{lh, lr, Step(ls)}, SignBytes: lb}
		if lsig && len(lb) > 0 {
			last.Signature = ed25519.Sign(testKey, lb)
		}
		req := HRS{rh, rr, Step(rs)}
		d, err := last.Decide(req, rb)
		cmp := req.Compare(last.HRS)
		if err != nil {
			var re *RegressionError
			var ce *ConflictError
			switch {
			case errors.As(err, &re):
				if cmp >= 0 || re.Component() == "" {
					t.Fatalf("regression error for %v after %v", req, last.HRS)
				}
			case errors.As(err, &ce):
				if cmp != 0 || bytes.Equal(lb, rb) {
					t.Fatalf("conflict for %v after %v", req, last.HRS)
				}
			case errors.Is(err, ErrNoSignBytes):
				if cmp != 0 || len(lb) != 0 {
					t.Fatalf("no-sign-bytes for %v after %v with %d bytes", req, last.HRS, len(lb))
				}
			case errors.Is(err, ErrInvalidRequest):
				if req.Height >= 1 && req.Round >= 0 && req.Step >= StepPropose && req.Step <= StepPrecommit {
					t.Fatalf("valid request %v refused as invalid", req)
				}
			case errors.Is(err, ErrInvalidSignBytes):
			default:
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if e := checkSignBytes(req, rb, ""); e != nil {
			t.Fatalf("decided on invalid request bytes: %v", e)
		}
		switch d.Action {
		case SignFresh:
			if cmp <= 0 || !bytes.Equal(d.SignBytes, rb) {
				t.Fatalf("sign-fresh for %v after %v", req, last.HRS)
			}
		case ResignSame:
			if cmp != 0 || !bytes.Equal(rb, lb) || !bytes.Equal(d.SignBytes, rb) || !bytes.Equal(d.Signature, last.Signature) {
				t.Fatalf("resign-same for %v after %v with other bytes", req, last.HRS)
			}
		case ResignWithStoredTimestamp:
			if cmp != 0 || !bytes.Equal(d.SignBytes, lb) || bytes.Equal(lb, rb) || !bytes.Equal(d.Signature, last.Signature) {
				t.Fatalf("resign-with-stored-timestamp for %v after %v", req, last.HRS)
			}
			var a, b proto.Message = &cmtproto.CanonicalVote{}, &cmtproto.CanonicalVote{}
			if req.Step == StepPropose {
				a, b = &cmtproto.CanonicalProposal{}, &cmtproto.CanonicalProposal{}
			}
			if protoio.UnmarshalDelimited(lb, a) != nil || protoio.UnmarshalDelimited(rb, b) != nil {
				t.Fatal("timestamp-only decision on undecodable bytes")
			}
			switch a := a.(type) {
			case *cmtproto.CanonicalVote:
				if !d.Timestamp.Equal(a.Timestamp) {
					t.Fatalf("timestamp %v, stored %v", d.Timestamp, a.Timestamp)
				}
				a.Timestamp = b.(*cmtproto.CanonicalVote).Timestamp
			case *cmtproto.CanonicalProposal:
				if !d.Timestamp.Equal(a.Timestamp) {
					t.Fatalf("timestamp %v, stored %v", d.Timestamp, a.Timestamp)
				}
				a.Timestamp = b.(*cmtproto.CanonicalProposal).Timestamp
			}
			if !proto.Equal(a, b) {
				t.Fatal("timestamp-only decision for messages that differ in more")
			}
		default:
			t.Fatalf("unknown action %v", d.Action)
		}
	})
}
