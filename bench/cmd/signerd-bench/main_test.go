package main

import "testing"

func TestCommandSuffix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"-signerd", "bin/signerd", "-cometbft", "/x/cometbft", "-out", "bench/RESULTS.md"}, ""},
		{[]string{"-signerd", "bin/signerd", "-runs", "5", "-out=x.md", "-sections", "latency"}, " BENCH_FLAGS='-runs 5 -sections latency'"},
	} {
		if got := commandSuffix(tc.args); got != tc.want {
			t.Errorf("commandSuffix(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize("in-process FilePV"); got != "in-process-filepv" {
		t.Fatalf("sanitize = %q", got)
	}
}
