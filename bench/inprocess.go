package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/signerd/signerd/hsm"
	"github.com/signerd/signerd/keys"
	"github.com/signerd/signerd/signer"
	"github.com/signerd/signerd/statefile"
)

// SignerdInProcess is signerd's own signing core (keys.Open, statefile,
// signer.NewChain, signer.RunValidator) served from goroutines of this
// process: for Go benchmarks, CPU profiles and the heap-growth reading.
type SignerdInProcess struct {
	Kind KeyKind
	// NewTokenURI returns the URI of a not yet existing object in a fresh
	// token this process can see (KeySoftHSM only).
	NewTokenURI func() (string, error)
}

// Name implements Target.
func (t *SignerdInProcess) Name() string { return "signerd+" + string(t.Kind) }

// Start implements Target: one chain, key, state file and connection per spec.
func (t *SignerdInProcess) Start(dir string, specs []ChainSpec) (*Running, error) {
	ctx, cancel := context.WithCancel(context.Background())
	var closers []func() error
	var wg sync.WaitGroup
	var once sync.Once
	r := &Running{}
	r.Stop = func() error {
		var err error
		once.Do(func() {
			cancel()
			wg.Wait()
			for i := len(closers) - 1; i >= 0; i-- {
				err = errors.Join(err, closers[i]())
			}
		})
		return err
	}
	fail := func(err error) (*Running, error) { _ = r.Stop(); return nil, err }
	_, idPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fail(err)
	}
	for i, s := range specs {
		cdir := filepath.Join(dir, fmt.Sprintf("chain%d", i))
		keyPath, _, pub, err := newFilePVKey(cdir)
		if err != nil {
			return fail(err)
		}
		ref := "file:" + keyPath
		if t.Kind == KeySoftHSM {
			if ref, err = t.importToToken(keyPath); err != nil {
				return fail(err)
			}
		}
		key, err := keys.Open(ref, cdir, nil)
		if err != nil {
			return fail(fmt.Errorf("%s: keys.Open: %w", t.Name(), err))
		}
		closers = append(closers, key.Close)
		statePath := filepath.Join(cdir, "state.json")
		if err := statefile.Create(statePath, s.ChainID, statefile.Record{}, false); err != nil {
			return fail(err)
		}
		st, err := statefile.Open(statePath, s.ChainID)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, st.Close)
		chain, err := signer.NewChain(signer.ChainConfig{ChainID: s.ChainID, Key: key, State: st})
		if err != nil {
			return fail(err)
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			_ = signer.RunValidator(ctx, signer.ValidatorConfig{Addr: addr, Identity: idPriv}, chain)
		}(s.Addr)
		r.Pubs = append(r.Pubs, pub)
	}
	return r, nil
}

// importToToken imports the priv_validator_key.json at keyPath into a fresh
// token and returns the key's URI.
func (t *SignerdInProcess) importToToken(keyPath string) (string, error) {
	if t.NewTokenURI == nil {
		return "", fmt.Errorf("%s: no SoftHSM token source", t.Name())
	}
	uri, err := t.NewTokenURI()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return "", err
	}
	priv, err := keys.ParsePrivValidatorKey(data)
	if err != nil {
		return "", err
	}
	u, err := hsm.ParseURI(uri)
	if err != nil {
		return "", err
	}
	_, err = hsm.Import(u, priv, nil)
	clear(priv)
	if err != nil {
		return "", fmt.Errorf("%s: import into %s: %w", t.Name(), uri, err)
	}
	return uri, nil
}
