// Package config owns signerd.toml: strict decoding, defaults, path
// resolution and validation.
//
// # Invariants
//
//   - Unknown keys are an error naming the key and its line: a typo never
//     silently falls back to a default.
//   - Relative paths (identity_key, state_file, and file paths inside key
//     references) resolve against the folder of the config file, never against
//     the working directory of the process.
//   - A Config returned without error has been validated as a whole: every
//     [[validator]] names a [[chain]], chain ids and state files are unique,
//     addresses parse. Nothing here opens keys, state files or sockets.
//   - The config never holds a PIN: key references point at a pin-source.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/signerd/signerd/keys"
	"github.com/signerd/signerd/statefile"
)

// MaxSize caps the config file. A real config is a few hundred bytes; the cap
// keeps a wrong path (a disk image, /dev/zero) from being read whole.
const MaxSize = 1 << 20

// DefaultIdentityKey is the identity key path used when identity_key is absent.
const DefaultIdentityKey = "identity.json"

// Config is a validated signerd.toml. Paths in it are absolute.
type Config struct {
	// Path is the config file this was read from (absolute); Dir its folder.
	Path string `toml:"-"`
	Dir  string `toml:"-"`

	// IdentityKey is the SecretConnection identity key file, created on
	// first start if missing.
	IdentityKey string `toml:"identity_key"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json (default text).
	LogFormat string `toml:"log_format"`

	Chains     []Chain     `toml:"chain"`
	Validators []Validator `toml:"validator"`
}

// Chain is one [[chain]]: a chain id with its key and its state file.
type Chain struct {
	ID string `toml:"id"`
	// Key is a key reference: a pkcs11: URI or file:PATH.
	Key string `toml:"key"`
	// StateFile is the double-sign state file of this chain.
	StateFile string `toml:"state_file"`
	// MaxHeight, when positive, refuses to sign above this height.
	MaxHeight int64 `toml:"max_height"`
}

// Validator is one [[validator]]: a node to dial for a chain.
type Validator struct {
	ChainID string `toml:"chain_id"`
	// Addr is tcp://host:port (SecretConnection) or unix:///path.
	Addr string `toml:"addr"`
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %q: %v", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config %q does not exist: create one with `signerd init --home DIR`", path)
		}
		return nil, fmt.Errorf("config %q: %v", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %q: %v", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("config %q is larger than %d bytes: is it the right file?", path, MaxSize)
	}
	cfg, err := Parse(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", path, err)
	}
	cfg.Path = abs
	return cfg, nil
}

// Parse decodes and validates a config document. dir is the folder relative
// paths resolve against (the config file's folder).
func Parse(data []byte, dir string) (*Config, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8 text")
	}
	var cfg Config
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, decodeError(err)
	}
	cfg.Dir = dir
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decodeError turns go-toml errors into one line naming the key and line.
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var parts []string
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			parts = append(parts, fmt.Sprintf("unknown key %q on line %d", strings.Join(e.Key(), "."), line))
		}
		return fmt.Errorf("%s: remove it or check its spelling (known keys: identity_key, log_level, log_format, [[chain]] id/key/state_file/max_height, [[validator]] chain_id/addr)", strings.Join(parts, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("line %d column %d (key %q): %s", line, col, key, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return fmt.Errorf("line %d column %d: %s", line, col, strings.TrimPrefix(de.Error(), "toml: "))
	}
	return fmt.Errorf("not valid TOML: %v", err)
}

func (c *Config) validate() error {
	if c.IdentityKey == "" {
		c.IdentityKey = DefaultIdentityKey
	}
	c.IdentityKey = c.resolve(c.IdentityKey)
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "text"
	case "text", "json":
	default:
		return fmt.Errorf("log_format %q: use text or json", c.LogFormat)
	}
	if len(c.Chains) == 0 {
		return errors.New("no [[chain]] table: add one with id, key and state_file")
	}
	ids := map[string]bool{}
	states := map[string]string{}
	for i := range c.Chains {
		ch := &c.Chains[i]
		where := fmt.Sprintf("[[chain]] #%d", i+1)
		if ch.ID != "" {
			where = fmt.Sprintf("[[chain]] %q", ch.ID)
		}
		if err := validChainID(ch.ID); err != nil {
			return fmt.Errorf("%s: id %v", where, err)
		}
		if ids[ch.ID] {
			return fmt.Errorf("%s: id is listed twice: each chain id gets one [[chain]] table", where)
		}
		ids[ch.ID] = true
		if ch.Key == "" {
			return fmt.Errorf("%s: key is missing: set a pkcs11: URI or file:PATH", where)
		}
		if _, err := keys.ParseRef(ch.Key); err != nil {
			return fmt.Errorf("%s: key: %v", where, err)
		}
		if ch.StateFile == "" {
			return fmt.Errorf("%s: state_file is missing: e.g. state_file = \"state/%s.json\"", where, ch.ID)
		}
		ch.StateFile = c.resolve(ch.StateFile)
		if other, dup := states[ch.StateFile]; dup {
			return fmt.Errorf("%s: state_file %q is also used by chain %q: each chain needs its own state file", where, ch.StateFile, other)
		}
		states[ch.StateFile] = ch.ID
		if ch.MaxHeight < 0 {
			return fmt.Errorf("%s: max_height %d is negative: use 0 for no limit", where, ch.MaxHeight)
		}
	}
	if len(c.Validators) == 0 {
		return errors.New("no [[validator]] table: add one with chain_id and addr (the node's priv_validator_laddr)")
	}
	seen := map[string]bool{}
	for i := range c.Validators {
		v := &c.Validators[i]
		where := fmt.Sprintf("[[validator]] #%d", i+1)
		if v.ChainID == "" {
			return fmt.Errorf("%s: chain_id is missing", where)
		}
		if !ids[v.ChainID] {
			return fmt.Errorf("%s: chain_id %q has no [[chain]] table: add one or fix the id", where, v.ChainID)
		}
		if err := ValidateAddr(v.Addr); err != nil {
			return fmt.Errorf("%s: addr %v", where, err)
		}
		k := v.ChainID + "\x00" + v.Addr
		if seen[k] {
			return fmt.Errorf("%s: addr %q for chain %q is listed twice", where, v.Addr, v.ChainID)
		}
		seen[k] = true
	}
	return nil
}

func (c *Config) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.Dir, p)
}

// Chain returns the [[chain]] with the given id.
func (c *Config) Chain(id string) (*Chain, bool) {
	for i := range c.Chains {
		if c.Chains[i].ID == id {
			return &c.Chains[i], true
		}
	}
	return nil, false
}

func validChainID(id string) error {
	switch {
	case id == "":
		return errors.New("is missing")
	case len(id) > statefile.MaxChainIDLen:
		return fmt.Errorf("%q is longer than %d characters (CometBFT's limit)", id, statefile.MaxChainIDLen)
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q contains a space or control character", id)
		}
	}
	return nil
}

// ValidateAddr checks a validator address: tcp://host:port or unix:///path.
func ValidateAddr(addr string) error {
	switch {
	case addr == "":
		return errors.New("is missing: use tcp://host:port or unix:///path (the node's priv_validator_laddr)")
	case strings.HasPrefix(addr, "tcp://"):
		hostport := strings.TrimPrefix(addr, "tcp://")
		host, port, err := net.SplitHostPort(hostport)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("%q: want tcp://host:port", addr)
		}
		if p, err := parsePort(port); err != nil || p == 0 {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
		}
		return nil
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%q: want an absolute socket path, unix:///run/node/privval.sock", addr)
		}
		return nil
	}
	return fmt.Errorf("%q: want tcp://host:port or unix:///path", addr)
}

func parsePort(s string) (int, error) {
	n := 0
	if s == "" || len(s) > 5 {
		return 0, errors.New("bad port")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errors.New("bad port")
		}
		n = n*10 + int(r-'0')
	}
	if n > 65535 {
		return 0, errors.New("bad port")
	}
	return n, nil
}
