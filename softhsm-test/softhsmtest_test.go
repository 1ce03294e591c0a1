package softhsmtest_test

import (
	"crypto"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/hsm"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(scriptTokenHelper())
	}
	os.Exit(softhsmtest.Run(m))
}

// signWith generates a key through uri, opens it and checks a signature.
func signWith(uri string) error {
	u, err := hsm.ParseURI(uri)
	if err != nil {
		return err
	}
	pub, err := hsm.Generate(u, nil)
	if err != nil {
		return err
	}
	k, err := hsm.Open(u, nil)
	if err != nil {
		return err
	}
	defer k.Close()
	msg := []byte("softhsmtest")
	sig, err := k.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return os.ErrInvalid
	}
	return nil
}

func TestNew(t *testing.T) {
	t.Parallel()
	tk := softhsmtest.New(t, "fixture-new")
	st, err := os.Stat(tk.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("PIN file mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(tk.PINFile)
	if string(data) != tk.PIN+"\n" || len(tk.PIN) < 8 {
		t.Errorf("PIN file holds %q, PIN is %q", data, tk.PIN)
	}
	if os.Getenv("SOFTHSM2_CONF") != tk.Conf || tk.Env()[0] != "SOFTHSM2_CONF="+tk.Conf {
		t.Errorf("SOFTHSM2_CONF = %q, Env() = %q, Conf = %q", os.Getenv("SOFTHSM2_CONF"), tk.Env(), tk.Conf)
	}
	want := "pkcs11:token=fixture-new;object=k?module-path=" + tk.Module + "&pin-source=file:" + tk.PINFile
	if got := tk.URI("k"); got != want {
		t.Errorf("URI = %s, want %s", got, want)
	}
	if err := signWith(tk.URI("consensus")); err != nil {
		t.Fatalf("the fixture's URI does not work: %v", err)
	}
	dir, err := tk.TokenDir()
	if err != nil || filepath.Dir(dir) != tk.Dir {
		t.Errorf("TokenDir = %q, %v", dir, err)
	}
}

// Many tokens in one process, made in parallel, each usable.
func TestManyTokensParallel(t *testing.T) {
	t.Parallel()
	for _, label := range []string{"many-1", "many-2", "many-3", "many-4", "many-5", "many-6"} {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			tk := softhsmtest.New(t, label)
			if err := signWith(tk.URI("consensus")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCreateRefuses(t *testing.T) {
	t.Parallel()
	softhsmtest.Module(t)
	if _, err := softhsmtest.Create("dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := softhsmtest.Create("dup"); err == nil || !strings.Contains(err.Error(), "label already used") {
		t.Errorf("second Create(dup) = %v", err)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 33), "a/b"} {
		if _, err := softhsmtest.Create(bad); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
}

const helperEnv = "SOFTHSMTEST_SCRIPT_HELPER_URI"

// scriptTokenHelper runs in a child process whose SOFTHSM2_CONF is the
// script's: it proves the printed URI works in a fresh process.
func scriptTokenHelper() int {
	if err := signWith(os.Getenv(helperEnv)); err != nil {
		os.Stderr.WriteString("helper: " + err.Error() + "\n")
		return 1
	}
	return 0
}

func runScript(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"softhsm-token.sh"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func TestScript(t *testing.T) {
	t.Parallel()
	softhsmtest.Module(t)
	softhsmtest.Util(t)
	dir := filepath.Join(t.TempDir(), "demo hsm") // a space on purpose
	out, errOut, err := runScript(t, dir, "validator", "1234", "consensus")
	if err != nil {
		t.Fatalf("script: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("script printed %q, want two lines", out)
	}
	conf, uri := lines[0], lines[1]
	if conf != filepath.Join(dir, "softhsm2.conf") {
		t.Errorf("conf = %q", conf)
	}
	pinFile := filepath.Join(dir, "validator.pin")
	for _, f := range []string{pinFile, filepath.Join(dir, "validator.so-pin"), conf} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
	if data, _ := os.ReadFile(pinFile); string(data) != "1234\n" {
		t.Errorf("pin file holds %q", data)
	}
	u, err := hsm.ParseURI(uri)
	if err != nil {
		t.Fatalf("printed uri %q: %v", uri, err)
	}
	if u.Token != "validator" || u.Object != "consensus" || u.PinSource != "file:"+pinFile || u.ModulePath != softhsmtest.Module(t) {
		t.Errorf("printed uri parses to %+v", u)
	}
	// A second token shares the folder's config; a repeated label is refused.
	if _, errOut, err := runScript(t, dir, "second", "5678"); err != nil {
		t.Fatalf("second token: %v\n%s", err, errOut)
	}
	if _, errOut, err := runScript(t, dir, "validator", "1234"); err == nil || !strings.Contains(errOut, `a token labelled "validator" already exists`) {
		t.Errorf("repeated label: %v, %q", err, errOut)
	}
	for _, args := range [][]string{{dir, "bad label", "1234"}, {dir, "ok", "12"}, {dir}} {
		if _, errOut, err := runScript(t, args...); err == nil || !strings.HasPrefix(errOut, "softhsm-token.sh: error: ") {
			t.Errorf("script %q: %v, %q", args, err, errOut)
		}
	}
	// The token works in a fresh process that reads the script's config.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf, helperEnv+"="+uri)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process could not use the script's token: %v\n%s", err, out)
	}
}
