package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/signerd/signerd/config"
	"github.com/signerd/signerd/statefile"
)

const stateUsage = `Usage:
  signerd state import --config C --chain ID --from priv_validator_state.json [--force]
  signerd state init   --config C --chain ID --height N [--force]
  signerd state show   --config C [--chain ID] [--json]
  signerd state export --config C --chain ID
`

func cmdState(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, stateUsage)
		return usageErrorf("state: missing subcommand (import, init, show, export)")
	}
	switch args[0] {
	case "import":
		return cmdStateImport(args[1:], stdout, stderr)
	case "init":
		return cmdStateInit(args[1:], stdout, stderr)
	case "show":
		return cmdStateShow(args[1:], stdout, stderr)
	case "export":
		return cmdStateExport(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, stateUsage)
		return nil
	}
	return usageErrorf("state: unknown subcommand %q (import, init, show, export)", args[0])
}

// loadChain loads the config and finds one [[chain]].
func loadChain(cfgPath, chainID string) (*config.Config, *config.Chain, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	ch, ok := cfg.Chain(chainID)
	if !ok {
		var ids []string
		for _, c := range cfg.Chains {
			ids = append(ids, c.ID)
		}
		return nil, nil, fmt.Errorf("chain %q is not in %s (configured: %q)", chainID, cfgPath, ids)
	}
	return cfg, ch, nil
}

func cmdStateImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("state import", "--config C --chain ID --from priv_validator_state.json [--force]", stderr)
	cfgPath := fs.String("config", "", "signerd.toml")
	chainID := fs.String("chain", "", "chain id of the [[chain]] whose state_file to write")
	from := fs.String("from", "", "CometBFT priv_validator_state.json (stop the validator first)")
	force := fs.Bool("force", false, "replace an existing state file (never with an older height/round/step)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "config", "chain", "from"); err != nil {
		return err
	}
	_, ch, err := loadChain(*cfgPath, *chainID)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(*from)
	if err != nil {
		return fmt.Errorf("read %q: %v", *from, err)
	}
	rec, err := statefile.ParseFilePV(data)
	if err != nil {
		return fmt.Errorf("state file %q: %w", *from, err)
	}
	if err := writeState(ch, rec, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s into %s for chain %s: last signed %s\n", *from, ch.StateFile, ch.ID, rec.HRS)
	return nil
}

func cmdStateInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("state init", "--config C --chain ID --height N [--force]", stderr)
	cfgPath := fs.String("config", "", "signerd.toml")
	chainID := fs.String("chain", "", "chain id of the [[chain]] whose state_file to create")
	height := fs.Int64("height", -1, "refuse to sign below this height (0 for a key that has never signed on this chain)")
	force := fs.Bool("force", false, "replace an existing state file (never with an older height)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "config", "chain"); err != nil {
		return err
	}
	if *height < 0 {
		return usageErrorf("state init: --height is required (0 for a key that has never signed on this chain)")
	}
	_, ch, err := loadChain(*cfgPath, *chainID)
	if err != nil {
		return err
	}
	rec := statefile.Record{HRS: statefile.HRS{Height: *height}}
	if err := writeState(ch, rec, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s for chain %s: signing starts at height %d\n", ch.StateFile, ch.ID, *height)
	return nil
}

// writeState creates the chain's state file. An existing file is replaced
// only with --force, and never by an older position: that would let the key
// sign again where it already signed.
func writeState(ch *config.Chain, rec statefile.Record, force bool) error {
	info, err := statefile.Read(ch.StateFile)
	switch {
	case err == nil:
		if !force {
			return withHint(fmt.Errorf("state file %q already exists (last signed %s)", ch.StateFile, info.Record.HRS),
				"add --force to replace it; it is never replaced by an older height/round/step")
		}
		if info.ChainID != ch.ID {
			break
		}
		if rec.HRS.Compare(info.Record.HRS) < 0 {
			return fmt.Errorf("refusing to replace state %q at %s with the older %s: the key could sign twice at the heights between",
				ch.StateFile, info.Record.HRS, rec.HRS)
		}
	case errors.Is(err, statefile.ErrMissing):
	default:
		if !force {
			return withHint(fmt.Errorf("state file %q exists but cannot be read: %w", ch.StateFile, err),
				"add --force to replace it with the imported state")
		}
	}
	return statefile.Create(ch.StateFile, ch.ID, rec, force)
}

func cmdStateShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("state show", "--config C [--chain ID] [--json]", stderr)
	cfgPath := fs.String("config", "", "signerd.toml")
	chainID := fs.String("chain", "", "only this chain (default: every [[chain]])")
	asJSON := fs.Bool("json", false, "print JSON")
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
	var chains []config.Chain
	if *chainID != "" {
		_, ch, err := loadChain(*cfgPath, *chainID)
		if err != nil {
			return err
		}
		chains = append(chains, *ch)
	} else {
		chains = cfg.Chains
	}
	var out []map[string]any
	var firstErr error
	for _, ch := range chains {
		info, err := statefile.Read(ch.StateFile)
		if err != nil {
			err = stateHint(cfg.Path, ch.ID, err)
			if firstErr == nil {
				firstErr = err
			}
			if !*asJSON {
				fmt.Fprintf(stdout, "chain %s: %s: %v\n", ch.ID, ch.StateFile, err)
			}
			out = append(out, map[string]any{"chain_id": ch.ID, "state_file": ch.StateFile, "error": err.Error()})
			continue
		}
		r := info.Record
		if *asJSON {
			out = append(out, map[string]any{
				"chain_id": ch.ID, "state_file": ch.StateFile,
				"height": fmt.Sprint(r.Height), "round": r.Round, "step": int8(r.Step), "step_name": r.Step.String(),
				"signbytes": hex.EncodeToString(r.SignBytes), "has_signature": len(r.Signature) > 0,
			})
			continue
		}
		fmt.Fprintf(stdout, "chain %s: %s\n  last signed: height %d, round %d, step %s\n  sign bytes:  %d bytes\n",
			ch.ID, ch.StateFile, r.Height, r.Round, r.Step, len(r.SignBytes))
	}
	if *asJSON {
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	}
	return firstErr
}

func cmdStateExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("state export", "--config C --chain ID", stderr)
	cfgPath := fs.String("config", "", "signerd.toml")
	chainID := fs.String("chain", "", "chain id")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "config", "chain"); err != nil {
		return err
	}
	cfg, ch, err := loadChain(*cfgPath, *chainID)
	if err != nil {
		return err
	}
	info, err := statefile.Read(ch.StateFile)
	if err != nil {
		return stateHint(cfg.Path, ch.ID, err)
	}
	_, err = stdout.Write(statefile.FormatFilePV(info.Record))
	return err
}

// stateHint adds the command that fixes a state file problem.
func stateHint(cfgPath, chainID string, err error) error {
	imp := fmt.Sprintf("signerd state import --config %s --chain %s --from <node home>/data/priv_validator_state.json", cfgPath, chainID)
	switch {
	case errors.Is(err, statefile.ErrMissing), errors.Is(err, statefile.ErrEmpty):
		return withHint(err,
			"migrating a validator: stop it, then run "+imp,
			fmt.Sprintf("a key that has never signed on this chain: signerd state init --config %s --chain %s --height 0", cfgPath, chainID),
			"signerd never starts from height 0 by itself: that could sign twice")
	case errors.Is(err, statefile.ErrCorrupt):
		return withHint(err,
			"both copies in the file are damaged; keep the file for inspection, stop the validator,",
			"then restore the latest known state with "+imp+" --force")
	case errors.Is(err, statefile.ErrChainMismatch):
		return withHint(err, "each chain needs its own state_file: check state_file in "+cfgPath)
	case errors.Is(err, statefile.ErrVersion):
		return withHint(err,
			"if state_file points at CometBFT's priv_validator_state.json, import it instead: "+imp,
			"signerd keeps its own format next to it and never writes the node's file")
	case errors.Is(err, statefile.ErrLocked):
		return withHint(err, "another signerd (the pid above) uses this state file: stop it first; two signers on one state could each sign once")
	}
	return err
}
