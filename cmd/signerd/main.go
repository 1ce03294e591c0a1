// Command signerd is a remote signer for CometBFT validators: it dials the
// validator's priv_validator_laddr and signs with an Ed25519 key held in a
// PKCS#11 token, keeping a per-chain double-sign state file.
//
// This package only parses flags and wires the other packages together.
// Output rules: results go to stdout; logs, errors ("signerd: error: ...")
// and hints ("signerd: hint: ...") go to stderr. Exit status 0 is success,
// 1 a failure, 2 a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `signerd: a PKCS#11 remote signer for CometBFT validators

Usage:
  signerd init --home DIR                      write a commented signerd.toml and an identity key
  signerd keys generate --key URI              create a new Ed25519 key inside the token
  signerd keys import --key URI --from FILE    import a priv_validator_key.json into the token
  signerd keys show --key URI|file:PATH        address and public key (priv_validator_key.json form)
  signerd keys list --key TOKEN-URI            every Ed25519 key in a token
  signerd state import --config C --chain ID --from FILE   take over priv_validator_state.json
  signerd state init --config C --chain ID --height N      start a fresh state at height N
  signerd state show --config C [--chain ID] [--json]      last signed height/round/step
  signerd state export --config C --chain ID               state as priv_validator_state.json
  signerd start --config C                     dial the validators and sign
  signerd sentry plan|apply|firewall|audit|verify ...      sentry topology (see signerd sentry -h)
  signerd version

Keys are RFC 7512 URIs, for example
  'pkcs11:token=validator;object=consensus?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signerd/hsm.pin'
or file:PATH to a CometBFT priv_validator_key.json (software key, for development).
The PIN comes from pin-source (a 0600 file, or env:VARIABLE), never from the command line.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one signerd command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(args[1:], stdout, stderr)
	case "keys":
		err = cmdKeys(args[1:], stdout, stderr)
	case "state":
		err = cmdState(args[1:], stdout, stderr)
	case "start":
		err = cmdStart(ctx, args[1:], stdout, stderr)
	case "sentry":
		return runSentry(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		err = cmdVersion(stdout)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageErrorf("unknown command %q", args[0])
	}
	return report(stderr, err)
}

// report prints err (and its hint) and maps it to an exit status.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "signerd: error: %v\n", err)
	var h *hinted
	if errors.As(err, &h) {
		for _, line := range h.hints {
			fmt.Fprintf(stderr, "signerd: hint: %s\n", line)
		}
	}
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "signerd: hint: run 'signerd help' for the list of commands and flags")
		return 2
	}
	return 1
}

// hinted is an error with lines that tell the operator what to do.
type hinted struct {
	err   error
	hints []string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHint(err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hints: hints}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlags makes a FlagSet that reports to stderr and never exits.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("signerd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: signerd %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and rejects leftover positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// required returns a usage error naming the first empty required flag.
func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return usageErrorf("%s: --%s is required", fs.Name(), n)
		}
	}
	return nil
}
