//go:build cgo

package softhsmtest

import (
	"os/exec"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestOtherProcessTokenInvisible pins down the SoftHSM 2.6.1 behaviour this
// package is designed around: once SoftHSM is initialised in a process, a
// token that another process initialises (softhsm2-util, same
// SOFTHSM2_CONF) does not appear in this process, not even on a fresh
// C_GetSlotList, while a token made in-process with C_InitToken appears at
// once. If this test fails, SoftHSM changed: update the package doc.
func TestOtherProcessTokenInvisible(t *testing.T) {
	Util(t)
	New(t, "visibility-probe") // makes sure this process initialised SoftHSM
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "from-child", "--pin", "1234", "--so-pin", "5678")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	seen := func(label string) bool {
		slots, err := process.ctx.GetSlotList(true)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range slots {
			ti, err := process.ctx.GetTokenInfo(s)
			if err == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 && trim(ti.Label) == label {
				return true
			}
		}
		return false
	}
	if seen("from-child") {
		t.Error("a token initialised by another process is visible here; SoftHSM now rescans tokens, update the package doc")
	}
	if !seen("visibility-probe") {
		t.Error("the token made in this process is not visible")
	}
}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == 0) {
		s = s[:len(s)-1]
	}
	return s
}
