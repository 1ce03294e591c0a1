package main

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/signerd/signerd/hsm"
	"github.com/signerd/signerd/keys"
)

const keysUsage = `Usage:
  signerd keys generate --key URI              create a new Ed25519 key inside the token
  signerd keys import --key URI --from FILE    import a CometBFT priv_validator_key.json into the token
  signerd keys show --key URI|file:PATH [--json]
  signerd keys list --key TOKEN-URI [--json]
`

func cmdKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return usageErrorf("keys: missing subcommand (generate, import, show, list)")
	}
	switch args[0] {
	case "generate":
		return cmdKeysGenerate(args[1:], stdout, stderr)
	case "import":
		return cmdKeysImport(args[1:], stdout, stderr)
	case "show":
		return cmdKeysShow(args[1:], stdout, stderr)
	case "list":
		return cmdKeysList(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	return usageErrorf("keys: unknown subcommand %q (generate, import, show, list)", args[0])
}

// cliLogger logs warnings and errors of one-shot commands to stderr.
func cliLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// pkcs11URI parses a --key that must be a PKCS#11 URI, resolving relative
// pin-source paths against the working directory.
func pkcs11URI(flagName, ref string) (*hsm.URI, error) {
	if len(ref) < 7 || !strings.EqualFold(ref[:7], "pkcs11:") {
		return nil, usageErrorf("--%s must be a pkcs11: URI here (file: keys are made with cometbft init)", flagName)
	}
	u, err := hsm.ParseURI(ref)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	u.ResolvePaths(wd)
	return u, nil
}

func cmdKeysGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys generate", "--key URI", stderr)
	ref := fs.String("key", "", "pkcs11: URI naming the token and the new key's object label (and optionally id)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "key"); err != nil {
		return err
	}
	u, err := pkcs11URI("key", *ref)
	if err != nil {
		return err
	}
	pub, err := hsm.Generate(u, cliLogger(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "generated a new Ed25519 key in the token (sensitive, not extractable)\n")
	printKey(stdout, u.String(), pub)
	return nil
}

func cmdKeysImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys import", "--key URI --from priv_validator_key.json", stderr)
	ref := fs.String("key", "", "pkcs11: URI naming the token and the object label to create")
	from := fs.String("from", "", "CometBFT priv_validator_key.json to import")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "key", "from"); err != nil {
		return err
	}
	u, err := pkcs11URI("key", *ref)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(*from)
	if err != nil {
		return fmt.Errorf("read key file %q: %v", *from, err)
	}
	priv, err := keys.ParsePrivValidatorKey(data)
	clear(data)
	if err != nil {
		return fmt.Errorf("key file %q: %w", *from, err)
	}
	defer clear(priv)
	log := cliLogger(stderr)
	pub, err := hsm.Import(u, priv, log)
	if err != nil {
		return err
	}
	// Prove the token now signs exactly like the key file (Ed25519 is
	// deterministic), before the operator retires the file.
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := checkSameSigner(*ref, wd, priv, log); err != nil {
		return fmt.Errorf("imported, but the check signature failed: %w", err)
	}
	fmt.Fprintf(stdout, "imported %s into the token (sensitive, not extractable); a test signature matches the key file\n", *from)
	printKey(stdout, u.String(), pub)
	fmt.Fprintf(stdout, "\nThe key file still holds the private key: once the validator signs through signerd,\nremove it from every host and backup that should not hold it (e.g. shred -u %s).\n", *from)
	return nil
}

// checkSameSigner opens the key at ref and checks it signs a test message
// exactly like priv.
func checkSameSigner(ref, baseDir string, priv ed25519.PrivateKey, log *slog.Logger) error {
	k, err := keys.Open(ref, baseDir, log)
	if err != nil {
		return err
	}
	defer k.Close()
	msg := []byte("signerd import check")
	sig, err := k.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return err
	}
	if !bytes.Equal(sig, ed25519.Sign(priv, msg)) {
		return errors.New("the token's signature differs from the key file's")
	}
	return nil
}

func cmdKeysShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys show", "--key URI|file:PATH [--json]", stderr)
	ref := fs.String("key", "", "pkcs11: URI or file:PATH of a priv_validator_key.json")
	asJSON := fs.Bool("json", false, "print {address, pub_key} as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "key"); err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	k, err := keys.Open(*ref, wd, cliLogger(stderr))
	if err != nil {
		return err
	}
	defer k.Close()
	pub, ok := k.Public().(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("key %q is not an Ed25519 key", *ref)
	}
	if *asJSON {
		return writeJSON(stdout, keyJSON(pub))
	}
	shown := *ref
	if u, err := hsm.ParseURI(*ref); err == nil {
		shown = u.String()
	}
	printKey(stdout, shown, pub)
	return nil
}

func cmdKeysList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys list", "--key TOKEN-URI [--json]", stderr)
	ref := fs.String("key", "", "pkcs11: URI naming the token (object and id are optional filters)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "key"); err != nil {
		return err
	}
	u, err := pkcs11URI("key", *ref)
	if err != nil {
		return err
	}
	list, err := hsm.List(u, cliLogger(stderr))
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]map[string]any, 0, len(list))
		for _, ki := range list {
			m := keyJSON(ki.Public)
			m["uri"] = ki.URI
			out = append(out, m)
		}
		return writeJSON(stdout, out)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "no Ed25519 keys in token %s\n", u.String())
		return nil
	}
	for i, ki := range list {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printKey(stdout, ki.URI, ki.Public)
	}
	return nil
}

func keyJSON(pub ed25519.PublicKey) map[string]any {
	var pk any
	_ = json.Unmarshal([]byte(keys.PubKeyJSON(pub)), &pk)
	return map[string]any{"address": keys.Address(pub), "pub_key": pk}
}

func printKey(w io.Writer, ref string, pub ed25519.PublicKey) {
	fmt.Fprintf(w, "key:      %s\naddress:  %s\npub_key:  %s\n", ref, keys.Address(pub), keys.PubKeyJSON(pub))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
