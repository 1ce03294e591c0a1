package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/signerd/signerd/config"
	"github.com/signerd/signerd/keys"
	"github.com/signerd/signerd/signer"
	"github.com/signerd/signerd/statefile"
)

func cmdStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("start", "--config signerd.toml [--log-level LEVEL]", stderr)
	cfgPath := fs.String("config", "", "signerd.toml")
	level := fs.String("log-level", "", "override log_level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "config"); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *level != "" {
		cfg.LogLevel = *level
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}

	identity, created, err := keys.LoadOrCreateIdentity(cfg.IdentityKey)
	if err != nil {
		return fmt.Errorf("identity key: %w", err)
	}
	idPub, _ := identity.Public().(ed25519.PublicKey)
	log.Info("identity key", "path", cfg.IdentityKey, "peer_id", keys.NodeID(idPub), "created", created)

	chains := make(map[string]*signer.Chain, len(cfg.Chains))
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				log.Warn("close", "err", err)
			}
		}
	}()
	for i := range cfg.Chains {
		ch := &cfg.Chains[i]
		clog := log.With("chain_id", ch.ID)
		// The state file first: its lock stops a second signerd on the same
		// config before it touches the token.
		st, err := statefile.Open(ch.StateFile, ch.ID)
		if err != nil {
			return stateHint(cfg.Path, ch.ID, fmt.Errorf("chain %q: %w", ch.ID, err))
		}
		closers = append(closers, st.Close)
		if info := st.Info(); !info.Healthy() || len(info.StaleTemps) > 0 {
			// A crash during a write leaves one torn slot; the other slot holds
			// the last acknowledged record, which is what was loaded.
			clog.Warn("state file was interrupted by a crash; loaded the last complete record",
				"state_file", ch.StateFile, "slot0", slotNote(info.Slots[0]), "slot1", slotNote(info.Slots[1]),
				"removed_temp_files", len(info.StaleTemps))
		}
		key, err := keys.Open(ch.Key, cfg.Dir, clog)
		if err != nil {
			return fmt.Errorf("chain %q: key: %w", ch.ID, err)
		}
		closers = append(closers, key.Close)
		pub, _ := key.Public().(ed25519.PublicKey)
		c, err := signer.NewChain(signer.ChainConfig{
			ChainID: ch.ID, Key: key, State: st, MaxHeight: ch.MaxHeight, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("chain %q: %w", ch.ID, err)
		}
		chains[ch.ID] = c
		clog.Info("chain ready", "address", keys.Address(pub), "last_signed", st.Last().HRS.String(), "max_height", ch.MaxHeight)
	}

	var wg sync.WaitGroup
	for _, v := range cfg.Validators {
		vc := signer.ValidatorConfig{
			Addr:     v.Addr,
			Identity: identity,
			Logger:   log,
		}
		c := chains[v.ChainID]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = signer.RunValidator(ctx, vc, c)
		}()
	}
	log.Info("signerd started", "chains", len(cfg.Chains), "validators", len(cfg.Validators), "version", version())
	<-ctx.Done()
	log.Info("signerd stopping")
	wg.Wait()
	for _, ch := range cfg.Chains {
		s := chains[ch.ID].Stats()
		log.Info("summary", "chain_id", ch.ID, "stats", s)
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usageErrorf("log format %q: use text or json", format)
}

func slotNote(s statefile.SlotStatus) string {
	if s.Valid {
		return fmt.Sprintf("ok seq %d at %s", s.Seq, s.HRS)
	}
	return "torn: " + s.Problem
}
