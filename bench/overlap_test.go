package bench

import "testing"

func TestMeasureOverlap(t *testing.T) {
	for _, kind := range []KeyKind{KeyFile, KeySoftHSM} {
		dir := t.TempDir()
		keyPath, _, _, err := newFilePVKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		ref := "file:" + keyPath
		if kind == KeySoftHSM {
			if ref, err = hsmInProcess(t).importToToken(keyPath); err != nil {
				t.Fatal(err)
			}
		}
		o, err := MeasureOverlap(ref, dir, 10)
		if err != nil {
			t.Fatal(err)
		}
		if o.Sign.N != 10 || o.Save.N != 10 || o.Both.N != 10 || o.Both.P50 <= 0 {
			t.Fatalf("%s: unexpected overlap result %+v", kind, o)
		}
	}
	if _, err := MeasureOverlap("file:/nonexistent/key.json", t.TempDir(), 1); err == nil {
		t.Fatal("a missing key was accepted")
	}
}
