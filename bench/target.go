package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cometbft/cometbft/crypto"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/privval"
)

// ChainSpec is one chain a target serves: its chain id and the validator
// address to dial.
type ChainSpec struct {
	ChainID string
	Addr    string
}

// Running is a started target.
type Running struct {
	Pubs []crypto.PubKey // the consensus key of each ChainSpec, in order
	PID  int             // the signer's process id (0 when in-process)
	Stop func() error
}

// Target is a signer under test. Start serves every spec with its own key,
// state file and connection, from files it creates under dir.
type Target interface {
	Name() string
	Start(dir string, specs []ChainSpec) (*Running, error)
}

// KeyKind is where a signerd target keeps its consensus key.
type KeyKind string

// The key kinds signerd is measured with.
const (
	KeySoftHSM KeyKind = "softhsm" // pkcs11: URI into a SoftHSM token
	KeyFile    KeyKind = "file"    // file: CometBFT priv_validator_key.json
)

// newFilePVKey writes a fresh priv_validator_key.json (and a FilePV state
// file) in dir.
func newFilePVKey(dir string) (keyPath, statePath string, pub crypto.PubKey, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", nil, err
	}
	keyPath, statePath = filepath.Join(dir, "priv_validator_key.json"), filepath.Join(dir, "priv_validator_state.json")
	pv := privval.GenFilePV(keyPath, statePath)
	pv.Save()
	return keyPath, statePath, pv.Key.PubKey, nil
}

// NewKeyFile writes a fresh CometBFT priv_validator_key.json in dir and
// returns its path.
func NewKeyFile(dir string) (string, error) {
	p, _, _, err := newFilePVKey(dir)
	return p, err
}

var tokenSeq atomic.Int64

// SignerdProcess is the real signerd binary with one key kind.
type SignerdProcess struct {
	Bin  string
	Kind KeyKind
	HSM  *SoftHSM // required for KeySoftHSM
}

// Name implements Target.
func (t *SignerdProcess) Name() string { return "signerd+" + string(t.Kind) }

// Start implements Target: one process serving every spec.
func (t *SignerdProcess) Start(dir string, specs []ChainSpec) (*Running, error) {
	var env []string
	if t.HSM != nil {
		env = append(env, t.HSM.Env())
	}
	var chains []SignerdChain
	var pubs []crypto.PubKey
	for i, s := range specs {
		cdir := filepath.Join(dir, fmt.Sprintf("chain%d", i))
		keyPath, _, pub, err := newFilePVKey(cdir)
		if err != nil {
			return nil, err
		}
		ref := "file:" + keyPath
		if t.Kind == KeySoftHSM {
			if t.HSM == nil {
				return nil, fmt.Errorf("%s: no SoftHSM configured", t.Name())
			}
			tok, err := t.HSM.InitToken(fmt.Sprintf("bench%d", tokenSeq.Add(1)))
			if err != nil {
				return nil, err
			}
			ref = t.HSM.KeyURI(tok, "consensus")
			if err := ImportKey(t.Bin, env, ref, keyPath); err != nil {
				return nil, err
			}
		}
		chains = append(chains, SignerdChain{ChainID: s.ChainID, KeyRef: ref, KeyJSON: keyPath,
			StateFile: filepath.Join(cdir, "state.json"), Addrs: []string{s.Addr}})
		pubs = append(pubs, pub)
	}
	sd, err := NewSignerd(t.Bin, dir, env, chains)
	if err != nil {
		return nil, err
	}
	p, err := sd.Start()
	if err != nil {
		return nil, err
	}
	return &Running{Pubs: pubs, PID: p.PID(), Stop: p.Stop}, nil
}

// FilePVProcess is CometBFT's FilePV served by ServeFilePV in its own
// process: Self re-executed with FilePVServeArgs (see FilePVServeMain).
type FilePVProcess struct {
	Self string // the harness binary
}

// Name implements Target.
func (t *FilePVProcess) Name() string { return "FilePV" }

// Start implements Target: one process per spec.
func (t *FilePVProcess) Start(dir string, specs []ChainSpec) (*Running, error) {
	r := &Running{}
	var procs []*Process
	r.Stop = func() error {
		var first error
		for _, p := range procs {
			if err := p.Stop(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for i, s := range specs {
		cdir := filepath.Join(dir, fmt.Sprintf("chain%d", i))
		keyPath, statePath, pub, err := newFilePVKey(cdir)
		if err != nil {
			_ = r.Stop()
			return nil, err
		}
		args := []string{FilePVServeCommand, "--addr", s.Addr, "--chain-id", s.ChainID, "--key", keyPath, "--state", statePath}
		p, err := StartProcess("filepv", t.Self, args, nil, filepath.Join(cdir, "filepv.log"))
		if err != nil {
			_ = r.Stop()
			return nil, err
		}
		procs = append(procs, p)
		r.Pubs = append(r.Pubs, pub)
		r.PID = p.PID()
	}
	return r, nil
}

// FilePVInProcess serves FilePV from goroutines of this process (Go
// benchmarks and tests).
type FilePVInProcess struct{}

// Name implements Target.
func (FilePVInProcess) Name() string { return "FilePV" }

// Start implements Target.
func (FilePVInProcess) Start(dir string, specs []ChainSpec) (*Running, error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(specs))
	r := &Running{}
	for i, s := range specs {
		cdir := filepath.Join(dir, fmt.Sprintf("chain%d", i))
		keyPath, statePath, _, err := newFilePVKey(cdir)
		if err != nil {
			cancel()
			return nil, err
		}
		pv := privval.LoadFilePV(keyPath, statePath)
		r.Pubs = append(r.Pubs, pv.Key.PubKey)
		go func(s ChainSpec) {
			_ = ServeFilePV(ctx, s.Addr, cmted25519.GenPrivKey(), pv, s.ChainID, nil)
			done <- struct{}{}
		}(s)
	}
	var once sync.Once
	r.Stop = func() error {
		once.Do(func() {
			cancel()
			for range specs {
				<-done
			}
		})
		return nil
	}
	return r, nil
}

// FilePVServeCommand is the harness subcommand that serves one FilePV.
const FilePVServeCommand = "filepv-serve"

// FilePVServeMain is the body of `<harness> filepv-serve --addr A --chain-id
// ID --key KEY.json --state STATE.json`: it serves the FilePV until SIGTERM
// or SIGINT and returns the exit status.
func FilePVServeMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(FilePVServeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "validator address tcp://host:port")
	chainID := fs.String("chain-id", "", "chain id")
	keyPath := fs.String("key", "", "priv_validator_key.json")
	statePath := fs.String("state", "", "priv_validator_state.json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, f := range []struct{ name, val string }{{"addr", *addr}, {"chain-id", *chainID}, {"key", *keyPath}, {"state", *statePath}} {
		if f.val == "" {
			fmt.Fprintf(stderr, "%s: --%s is required\n", FilePVServeCommand, f.name)
			return 2
		}
	}
	for _, p := range []string{*keyPath, *statePath} {
		if _, err := os.Stat(p); err != nil { // LoadFilePV would os.Exit without a word
			fmt.Fprintf(stderr, "%s: %v\n", FilePVServeCommand, err)
			return 1
		}
	}
	pv := privval.LoadFilePV(*keyPath, *statePath)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := ServeFilePV(ctx, *addr, cmted25519.GenPrivKey(), pv, *chainID, nil); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", FilePVServeCommand, err)
		return 1
	}
	return 0
}
