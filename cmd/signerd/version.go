package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is the module version, or "devel" with the VCS revision when built
// from a checkout.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

func cmdVersion(stdout io.Writer) error {
	cmt := "unknown"
	goVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, d := range bi.Deps {
			if d.Path == "github.com/cometbft/cometbft" {
				cmt = d.Version
			}
		}
	}
	fmt.Fprintf(stdout, "signerd %s\n", version())
	fmt.Fprintf(stdout, "  privval: CometBFT v0.34-v0.40 and v1.0 nodes (dual-encoded PubKeyResponse, skip_extension_signing honoured)\n")
	fmt.Fprintf(stdout, "  built with cometbft %s, %s\n", cmt, goVersion)
	return nil
}
