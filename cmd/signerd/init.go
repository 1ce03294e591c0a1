package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/signerd/signerd/keys"
)

// exampleConfig is what `signerd init` writes. Every key is documented; the
// values are placeholders to edit. It must stay a valid config (tested).
const exampleConfig = `# signerd configuration. Relative paths resolve against this file's folder.
# Reference: README.md, section "Configuration".

# SecretConnection identity key of this signer (Ed25519, JSON like a node_key.json).
# Created on first start if missing, mode 0600. It is NOT the consensus key: it only
# encrypts the link to the validator. CometBFT nodes do not check it yet, so the
# privval port must be firewalled to this host's IP.
identity_key = "identity.json"

# log_level = "info"   # debug (one line per signature), info, warn, error
# log_format = "text"  # text or json

# One [[chain]] per chain id this signer signs for.
[[chain]]
id = "cosmoshub-4"
# The consensus key: an RFC 7512 PKCS#11 URI, or file:PATH to a priv_validator_key.json
# (software key, for development only). The PIN comes from pin-source: a file readable only
# by signerd (chmod 600), or env:VARIABLE. Never put the PIN itself here.
key = "pkcs11:token=validator;object=consensus?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:hsm.pin"
# Double-sign state of this chain. Must exist before start: create it with
#   signerd state import --config signerd.toml --chain cosmoshub-4 --from ~/.gaia/data/priv_validator_state.json
# or, for a validator that has never signed, signerd state init --config signerd.toml --chain cosmoshub-4 --height 0
state_file = "state/cosmoshub-4.json"
# max_height = 0       # optional: refuse to sign above this height (planned upgrades); 0 = no limit

# One [[validator]] per node to dial (its priv_validator_laddr); several may name the same chain
# and then share one state file, so no two of them can make this key double-sign.
[[validator]]
chain_id = "cosmoshub-4"
addr = "tcp://127.0.0.1:26659"   # or unix:///run/gaia/privval.sock
`

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", "--home DIR", stderr)
	home := fs.String("home", "", "folder for signerd.toml, identity.json and state/ (created 0700)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "home"); err != nil {
		return err
	}
	if err := os.MkdirAll(*home, 0o700); err != nil {
		return fmt.Errorf("create home %q: %v", *home, err)
	}
	cfgPath := filepath.Join(*home, "signerd.toml")
	f, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return withHint(fmt.Errorf("config %q already exists; init leaves it alone", cfgPath),
				"edit it, or pick another --home")
		}
		return fmt.Errorf("create config %q: %v", cfgPath, err)
	}
	if _, err := io.WriteString(f, exampleConfig); err != nil {
		f.Close()
		os.Remove(cfgPath)
		return fmt.Errorf("write config %q: %v", cfgPath, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(cfgPath)
		return fmt.Errorf("write config %q: %v", cfgPath, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(cfgPath)
		return fmt.Errorf("write config %q: %v", cfgPath, err)
	}
	if err := os.MkdirAll(filepath.Join(*home, "state"), 0o700); err != nil {
		return fmt.Errorf("create state folder: %v", err)
	}
	idPath := filepath.Join(*home, "identity.json")
	priv, created, err := keys.LoadOrCreateIdentity(idPath)
	if err != nil {
		return fmt.Errorf("identity key: %w", err)
	}
	verb := "kept existing"
	if created {
		verb = "created"
	}
	pub, _ := priv.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "wrote %s\n%s identity key %s (peer id %s)\n", cfgPath, verb, idPath, keys.NodeID(pub))
	fmt.Fprintf(stdout, `
Next steps:
  1. edit %[1]s: chain id, key URI, validator address
  2. put the key in the token:   signerd keys import --key URI --from priv_validator_key.json   (or keys generate)
  3. take over the state:        signerd state import --config %[1]s --chain ID --from priv_validator_state.json
  4. run:                        signerd start --config %[1]s
`, cfgPath)
	return nil
}
