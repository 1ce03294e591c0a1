package bench

import (
	"fmt"
	"sync/atomic"
	"testing"

	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

func TestMeasureFsync(t *testing.T) {
	d, err := MeasureFsync(t.TempDir(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 20 || d.P50 <= 0 || d.Max < d.P99 || d.P99 < d.P50 {
		t.Fatalf("implausible fsync distribution %+v", d)
	}
}

var labelSeq atomic.Int64

// newToken makes a fresh SoftHSM token visible to this process (skips
// locally, fails under CI=true when SoftHSM is missing).
func newToken(t testing.TB) *softhsmtest.Token {
	t.Helper()
	return softhsmtest.New(t, fmt.Sprintf("bench-%d", labelSeq.Add(1)))
}

func TestBareHSMSign(t *testing.T) {
	tk := newToken(t)
	for _, tokenObject := range []bool{false, true} {
		b, err := OpenBareHSM(tk.Module, tk.Label, tk.PIN, tokenObject)
		if err != nil {
			t.Fatal(err)
		}
		d, err := MeasureHSMSign(b, []byte("vote sign bytes"), 10)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d.N != 10 || d.P50 <= 0 {
			t.Fatalf("implausible HSM distribution %+v", d)
		}
	}
	if _, err := OpenBareHSM(tk.Module, "no-such-token", tk.PIN, true); err == nil {
		t.Fatal("OpenBareHSM found a token that does not exist")
	}
	if _, err := OpenBareHSM(tk.Module, tk.Label, "wrong-pin", true); err == nil {
		t.Fatal("OpenBareHSM logged in with a wrong PIN")
	}
}
