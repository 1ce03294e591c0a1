package bench

import (
	"testing"

	"github.com/signerd/signerd/internal/testenv"
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

// newSoftHSM makes a throwaway SoftHSM config or stops the test (skip
// locally, fail under CI=true).
func newSoftHSM(t testing.TB) *SoftHSM {
	t.Helper()
	s, err := NewSoftHSM(t.TempDir(), SoftHSMLib())
	if err != nil {
		testenv.Unavailable(t, err.Error())
	}
	return s
}

func TestBareHSMSign(t *testing.T) {
	s := newSoftHSM(t)
	tok, err := s.InitToken("bare")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", s.Conf)
	b, err := OpenBareHSM(s.Lib, tok.Label, tok.PIN)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d, err := MeasureHSMSign(b, []byte("vote sign bytes"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 10 || d.P50 <= 0 {
		t.Fatalf("implausible HSM distribution %+v", d)
	}
	if _, err := OpenBareHSM(s.Lib, "no-such-token", tok.PIN); err == nil {
		t.Fatal("OpenBareHSM found a token that does not exist")
	}
}
