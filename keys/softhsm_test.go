package keys

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signerd/signerd/hsm"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }

var benchTokens atomic.Int32

// A priv_validator_key.json imported into SoftHSM signs exactly like the file
// (Ed25519 is deterministic), through keys.Open for both references.
func TestImportedKeySignsLikeTheFile(t *testing.T) {
	tk := softhsmtest.New(t, "keys-import")
	data := readVector(t, "priv_validator_key.json")
	priv, err := ParsePrivValidatorKey(data)
	if err != nil {
		t.Fatal(err)
	}
	u, err := hsm.ParseURI(tk.URI("consensus"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := hsm.Import(u, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := loadCometOutputs(t)
	if Address(pub) != want.Address || PubKeyJSON(pub)+"\n" != want.ShowValidator {
		t.Fatalf("imported key shows as %s %s", Address(pub), PubKeyJSON(pub))
	}

	// The pkcs11 reference, with a pin-source relative to the config folder.
	cfgDir := filepath.Dir(tk.PINFile)
	ref := strings.Replace(tk.URI("consensus"), "pin-source=file:"+tk.PINFile, "pin-source=file:"+filepath.Base(tk.PINFile), 1)
	hk, err := Open(ref, cfgDir, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", ref, err)
	}
	defer hk.Close()
	fk, err := Open("file:"+copyVector(t, t.TempDir()), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fk.Close()
	if !hk.Public().(ed25519.PublicKey).Equal(fk.Public()) {
		t.Fatal("the token and the file hold different keys")
	}
	for _, msg := range [][]byte{[]byte("a vote"), nil, bytes.Repeat([]byte{7}, 300)} {
		hsig, err := hk.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		fsig, err := fk.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		if !ed25519.Verify(pub, msg, hsig) || !bytes.Equal(hsig, fsig) || !bytes.Equal(hsig, ed25519.Sign(priv, msg)) {
			t.Fatalf("signatures differ: token %x, file %x", hsig, fsig)
		}
	}
}

// BenchmarkSign compares a SoftHSM key (with its verification step) and a
// software key, both through keys.Open; it reports p50/p99 latency.
func BenchmarkSign(b *testing.B) {
	tk := softhsmtest.New(b, fmt.Sprintf("keys-bench-%d", benchTokens.Add(1)))
	u, err := hsm.ParseURI(tk.URI("consensus"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := hsm.Generate(u, nil); err != nil {
		b.Fatal(err)
	}
	hk, err := Open(tk.URI("consensus"), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer hk.Close()
	fk, err := Open("file:"+copyVector(b, b.TempDir()), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fk.Close()
	msg := bytes.Repeat([]byte{0x42}, 150) // about a vote's sign bytes
	for _, bc := range []struct {
		name string
		k    Signer
	}{{"softhsm", hk}, {"file", fk}} {
		b.Run(bc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := bc.k.Sign(nil, msg, crypto.Hash(0)); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
