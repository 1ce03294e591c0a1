package hsm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pin")
	writeFile(t, good, "1234\n", 0o600)
	crlf := filepath.Join(dir, "crlf.pin")
	writeFile(t, crlf, "12 34\r\n", 0o400)
	t.Setenv("SIGNERD_TEST_PIN", "5678\n")

	for _, tc := range []struct {
		src, base, want string
	}{
		{"file:" + good, "", "1234"},
		{good, "", "1234"},
		{"file://" + good, "", "1234"},
		{"file:good.pin", dir, "1234"},
		{"good.pin", dir, "1234"},
		{"file:" + crlf, "", "12 34"},
		{"env:SIGNERD_TEST_PIN", "", "5678"},
	} {
		u := &URI{ModulePath: "/m.so", PinSource: tc.src}
		u.ResolvePaths(tc.base)
		pin, err := u.readPIN()
		if err != nil {
			t.Errorf("pin-source %q: %v", tc.src, err)
			continue
		}
		if string(pin) != tc.want {
			t.Errorf("pin-source %q = %q, want %q", tc.src, pin, tc.want)
		}
	}
	u := &URI{ModulePath: "/m.so"}
	u.SetPINValue("9999")
	if pin, err := u.readPIN(); err != nil || string(pin) != "9999" {
		t.Errorf("pin-value: %q, %v", pin, err)
	}
}

func TestReadPINErrors(t *testing.T) {
	dir := t.TempDir()
	const secret = "pin-73914-secret"
	open644 := filepath.Join(dir, "open.pin")
	writeFile(t, open644, secret, 0o644)
	group := filepath.Join(dir, "group.pin")
	writeFile(t, group, secret, 0o640)
	empty := filepath.Join(dir, "empty.pin")
	writeFile(t, empty, "\n", 0o600)
	big := filepath.Join(dir, "big.pin")
	writeFile(t, big, strings.Repeat("1", maxPINFileSize+1), 0o600)
	fifo := filepath.Join(dir, "fifo.pin")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIGNERD_TEST_EMPTY", "")
	os.Unsetenv("SIGNERD_TEST_UNSET")

	for _, tc := range []struct{ src, want string }{
		{"", "has no pin-source"},
		{"file:" + filepath.Join(dir, "missing.pin"), "does not exist"},
		{"file:" + open644, "run: chmod 600 " + open644},
		{"file:" + group, "accessible by group or others (mode 0640)"},
		{"file:" + empty, "is empty"},
		{"file:" + big, "larger than 4096 bytes"},
		{"file:" + dir, "is not a regular file"},
		{"file:" + fifo, "is not a regular file"},
		{"env:SIGNERD_TEST_UNSET", "SIGNERD_TEST_UNSET is not set"},
		{"env:SIGNERD_TEST_EMPTY", "SIGNERD_TEST_EMPTY is empty"},
	} {
		u := &URI{ModulePath: "/m.so", PinSource: tc.src}
		pin, err := u.readPIN()
		if err == nil {
			t.Errorf("pin-source %q: got PIN %q, want error", tc.src, pin)
			continue
		}
		if !errors.Is(err, ErrPINSource) {
			t.Errorf("pin-source %q: %v does not match ErrPINSource", tc.src, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pin-source %q: error %q does not contain %q", tc.src, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("pin-source %q: error contains the PIN: %v", tc.src, err)
		}
	}
}
