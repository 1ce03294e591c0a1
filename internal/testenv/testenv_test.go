package testenv

import "testing"

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want bool
	}{{"true", true}, {"", false}, {"1", false}, {"false", false}} {
		t.Setenv("CI", tc.val)
		if got := InCI(); got != tc.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", tc.val, got, tc.want)
		}
	}
}

func TestCometBFTPath(t *testing.T) {
	t.Setenv("SIGNERD_COMETBFT", "/opt/cometbft")
	if got := CometBFTPath(); got != "/opt/cometbft" {
		t.Errorf("with SIGNERD_COMETBFT set: %q", got)
	}
	t.Setenv("SIGNERD_COMETBFT", "")
	t.Setenv("HOME", "/home/op")
	if got, want := CometBFTPath(), "/home/op/.cache/signerd/cometbft-v"+CometBFTVersion+"/cometbft"; got != want {
		t.Errorf("default path %q, want %q (where make cometbft builds it)", got, want)
	}
}
