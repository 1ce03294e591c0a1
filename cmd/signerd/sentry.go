package main

// "signerd sentry ...": flag parsing and output for package sentrylink.
// This file is self-contained (it uses no helper from the rest of the
// command) so it can be reviewed and tested on its own.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signerd/signerd/sentrylink"
)

const sentryUsage = `Usage: signerd sentry <command> [flags]

Generate, apply, audit and verify the validator's sentry-only network from one
topology file.

Commands:
  plan      each node's required config.toml settings and firewall, explained
  apply     write a node's settings into its existing config.toml (backup, atomic, idempotent)
  firewall  print a node's nftables ruleset (load it with: nft -f FILE)
  audit     check a deployed config.toml; exits 1 when a finding is an error
  verify    check the running network through each node's RPC; exits 1 on any failure

Operator flow: write topology.toml, then
  signerd sentry plan     --topology topology.toml
  signerd sentry apply    --topology topology.toml --node sentry-1 --config-toml ~/.cometbft/config/config.toml
  signerd sentry firewall --topology topology.toml --node sentry-1 > sentrylink.nft && nft -f sentrylink.nft
  signerd sentry audit    --topology topology.toml --node sentry-1 --config-toml ~/.cometbft/config/config.toml
  signerd sentry verify   --topology topology.toml        (on the validator host)

Run 'signerd sentry <command> -h' for a command's flags and examples.
Exit status: 0 success; 1 audit errors, verify failures or an operational error; 2 a usage error.
`

// sentryUsageError is a bad command line (exit status 2).
type sentryUsageError struct{ msg string }

func (e *sentryUsageError) Error() string { return e.msg }

// sentryHinted carries lines that tell the operator what to do next.
type sentryHinted struct {
	err   error
	hints []string
}

func (h *sentryHinted) Error() string { return h.err.Error() }
func (h *sentryHinted) Unwrap() error { return h.err }

func sentryHint(err error, hints ...string) error { return &sentryHinted{err: err, hints: hints} }

// errSentryFailed means the command printed its own failure report
// (audit errors, verify failures): exit 1 with a one-line summary.
type sentryFailed struct{ msg string }

func (e *sentryFailed) Error() string { return e.msg }

// runSentry runs "signerd sentry <sub> ...". args excludes "sentry". Returns the process exit code.
func runSentry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, sentryUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "plan":
		err = sentryPlan(args[1:], stdout, stderr)
	case "apply":
		err = sentryApply(args[1:], stdout, stderr)
	case "firewall":
		err = sentryFirewall(args[1:], stdout, stderr)
	case "audit":
		err = sentryAudit(args[1:], stdout, stderr)
	case "verify":
		err = sentryVerify(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, sentryUsage)
		return 0
	default:
		err = &sentryUsageError{fmt.Sprintf("unknown sentry command %q (want plan, apply, firewall, audit or verify)", args[0])}
	}
	return sentryExit(stderr, err)
}

func sentryExit(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "signerd: error: %s\n", line)
	}
	var h *sentryHinted
	if errors.As(err, &h) {
		for _, line := range h.hints {
			fmt.Fprintf(stderr, "signerd: hint: %s\n", line)
		}
	}
	var u *sentryUsageError
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "signerd: hint: run 'signerd sentry -h' for the commands, 'signerd sentry <command> -h' for flags")
		return 2
	}
	return 1
}

// sentryFlags makes a FlagSet whose usage shows the synopsis, the flags and
// examples, and which never exits the process.
func sentryFlags(name, synopsis, about, examples string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("signerd sentry "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: signerd sentry %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nExamples:\n%s", examples)
	}
	return fs
}

func sentryParse(fs *flag.FlagSet, args []string, requiredFlags ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &sentryUsageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &sentryUsageError{fmt.Sprintf("%s: unexpected argument %q (flags take the form --name value)", fs.Name(), fs.Arg(0))}
	}
	for _, n := range requiredFlags {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return &sentryUsageError{fmt.Sprintf("%s: --%s is required", fs.Name(), n)}
		}
	}
	return nil
}

func loadTopology(path string) (*sentrylink.Topology, error) {
	t, err := sentrylink.LoadTopology(path)
	if err != nil {
		return nil, sentryHint(err, "see 'signerd sentry plan -h' for the topology file format")
	}
	return t, nil
}

// topologyNode loads the topology file and finds the named node in it.
func topologyNode(path, name string) (*sentrylink.Topology, *sentrylink.Node, error) {
	t, err := loadTopology(path)
	if err != nil {
		return nil, nil, err
	}
	n, err := lookupNode(t, name)
	if err != nil {
		return nil, nil, err
	}
	return t, n, nil
}

func lookupNode(t *sentrylink.Topology, name string) (*sentrylink.Node, error) {
	n, err := t.Node(name)
	if err != nil {
		return nil, &sentryUsageError{err.Error()}
	}
	return n, nil
}

const topologyHelp = `The topology file (TOML):

  chain_id = "cosmoshub-4"
  [validator]
  name = "validator"
  node_id = "<40 hex>"              # or node_key = "path/to/node_key.json"
  private_addr = "10.0.1.5:26656"
  privval_addr = "10.0.1.5:26659"   # where signerd dials in
  rpc = "http://127.0.0.1:26657"    # used by verify (loopback: run verify on the validator host)
  [signer]
  private_ip = "10.0.1.20"          # or private_ips = [...]
  [[sentry]]                        # at least two
  name = "sentry-1"
  node_id = "<40 hex>"
  private_addr = "10.0.1.10:26656"
  public_addr = "203.0.113.50:26656"
  rpc = "http://10.0.1.10:26657"
  # optional: rpc_laddr, addrbook = "path/to/addrbook.json", extra_persistent_peers = [...]
  # optional [policy.validator], [policy.sentry], [policy.firewall]: see the README.`

func sentryPlan(args []string, stdout, stderr io.Writer) error {
	fs := sentryFlags("plan", "--topology FILE [--node NAME] [--json]",
		"Print the config.toml settings and firewall each node needs, with the reason for each.\n\n"+topologyHelp,
		"  signerd sentry plan --topology topology.toml\n  signerd sentry plan --topology topology.toml --node sentry-1 --json\n", stderr)
	topo := fs.String("topology", "", "topology file (required)")
	node := fs.String("node", "", "only this node (default: every node)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := sentryParse(fs, args, "topology"); err != nil {
		return err
	}
	t, err := loadTopology(*topo)
	if err != nil {
		return err
	}
	plans := t.Plans()
	if *node != "" {
		n, err := lookupNode(t, *node)
		if err != nil {
			return err
		}
		plans = []*sentrylink.NodePlan{t.Plan(n)}
	}
	if *asJSON {
		return sentrylink.WritePlansJSON(stdout, t, plans)
	}
	return sentrylink.WritePlansText(stdout, t, plans)
}

func sentryApply(args []string, stdout, stderr io.Writer) error {
	fs := sentryFlags("apply", "--topology FILE --node NAME --config-toml PATH [--dry-run]",
		"Write the node's planned settings into its existing config.toml. Only the keys the plan owns change\n"+
			"(and kebab-case spellings of them are removed); comments, order and every other byte stay. The old\n"+
			"file is kept as PATH.signerd-backup-<UTC time>; the new one replaces it atomically with the same\n"+
			"mode. Running apply again changes nothing. Restart the node afterwards.",
		"  signerd sentry apply --topology topology.toml --node validator --config-toml ~/.cometbft/config/config.toml --dry-run\n"+
			"  signerd sentry apply --topology topology.toml --node validator --config-toml ~/.cometbft/config/config.toml\n", stderr)
	topo := fs.String("topology", "", "topology file (required)")
	node := fs.String("node", "", "the node whose config.toml this is (required)")
	cfg := fs.String("config-toml", "", "the node's config.toml, edited in place (required)")
	dry := fs.Bool("dry-run", false, "print the diff only; write nothing")
	if err := sentryParse(fs, args, "topology", "node", "config-toml"); err != nil {
		return err
	}
	t, n, err := topologyNode(*topo, *node)
	if err != nil {
		return err
	}
	p := t.Plan(n)
	res, err := p.ApplyFile(*cfg, *dry, time.Now())
	if err != nil {
		return sentryHint(err, "point --config-toml at the node's config.toml (usually $HOME/.cometbft/config/config.toml, or under the app's home such as ~/.gaia/config)")
	}
	who := fmt.Sprintf("%s %q", n.Role, n.Name)
	if !res.Changed() {
		fmt.Fprintf(stdout, "apply: %s (%s) already matches the plan; nothing changed\n", res.Path, who)
		return nil
	}
	if *dry {
		fmt.Fprint(stdout, sentrylink.UnifiedDiff(res.Path, res.Old, res.New))
		fmt.Fprintf(stdout, "dry run: %d change(s) to %s (%s); nothing written\n", len(res.Changes), res.Path, who)
		return nil
	}
	fmt.Fprintf(stdout, "apply: %s (%s): %d change(s)\n", res.Path, who, len(res.Changes))
	for _, c := range res.Changes {
		fmt.Fprintf(stdout, "  %s\n", c)
	}
	fmt.Fprintf(stdout, "backup: %s\n", res.Backup)
	fmt.Fprintln(stdout, "restart the node for the changes to take effect")
	return nil
}

func sentryFirewall(args []string, stdout, stderr io.Writer) error {
	fs := sentryFlags("firewall", "--topology FILE --node NAME",
		"Print the node's nftables ruleset: one table, inet "+sentrylink.FirewallTable+", replaced atomically on\n"+
			"every load and leaving other tables alone. SSH stays open from policy.firewall.admin_sources (from\n"+
			"anywhere when that list is empty). Check it with nft -c -f FILE, load it with nft -f FILE, and make it\n"+
			"persistent with your distribution's nftables service (for example include it from /etc/nftables.conf).",
		"  signerd sentry firewall --topology topology.toml --node validator > /etc/nftables.d/sentrylink.nft\n"+
			"  nft -c -f /etc/nftables.d/sentrylink.nft && nft -f /etc/nftables.d/sentrylink.nft\n", stderr)
	topo := fs.String("topology", "", "topology file (required)")
	node := fs.String("node", "", "the node to generate rules for (required)")
	if err := sentryParse(fs, args, "topology", "node"); err != nil {
		return err
	}
	t, n, err := topologyNode(*topo, *node)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, t.Firewall(n))
	return err
}

func sentryAudit(args []string, stdout, stderr io.Writer) error {
	fs := sentryFlags("audit", "--topology FILE --node NAME --config-toml PATH [--json]",
		"Check a deployed config.toml against the topology. Every finding has a severity, the key and its\n"+
			"line, why it matters and the fix. Exit status 1 when any finding is an error. Environment variables\n"+
			"and --p2p.* flags can override the file: run verify too.",
		"  signerd sentry audit --topology topology.toml --node sentry-1 --config-toml ~/.cometbft/config/config.toml\n", stderr)
	topo := fs.String("topology", "", "topology file (required)")
	node := fs.String("node", "", "the node whose config.toml this is (required)")
	cfg := fs.String("config-toml", "", "the node's config.toml (required)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := sentryParse(fs, args, "topology", "node", "config-toml"); err != nil {
		return err
	}
	t, n, err := topologyNode(*topo, *node)
	if err != nil {
		return err
	}
	r, err := t.Plan(n).AuditFile(*cfg)
	if err != nil {
		return sentryHint(err, "point --config-toml at the node's config.toml")
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if r.Failed() {
		return sentryHint(&sentryFailed{fmt.Sprintf("audit: %d error finding(s) in %s", r.Count(sentrylink.SeverityError), *cfg)},
			fmt.Sprintf("fix them (signerd sentry apply --topology %s --node %s --config-toml %s fixes the keys it owns), then audit again", *topo, *node, *cfg))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func sentryVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := sentryFlags("verify", "--topology FILE [--public URL ...] [--timeout D] [--json]",
		"Check the running network through each node's RPC (/status, /net_info): the validator's peers are\n"+
			"exactly its sentries, from their private IPs; every sentry is connected to the validator; no --public\n"+
			"node and no sentry address book (topology key addrbook) knows the validator. Run it where every rpc\n"+
			"URL of the topology is reachable: the validator's RPC is loopback, so on the validator host (its\n"+
			"firewall lets the validator reach the sentries' RPC ports). Exit status 1 on any failure.",
		"  signerd sentry verify --topology topology.toml\n"+
			"  signerd sentry verify --topology topology.toml --public http://198.51.100.7:26657\n", stderr)
	topo := fs.String("topology", "", "topology file (required)")
	var public stringList
	fs.Var(&public, "public", "RPC URL of a public node you control that must not see the validator (repeatable)")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each RPC request")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := sentryParse(fs, args, "topology"); err != nil {
		return err
	}
	if *timeout <= 0 || *timeout > 5*time.Minute {
		return &sentryUsageError{"verify: --timeout must be between 1ns and 5m"}
	}
	t, err := loadTopology(*topo)
	if err != nil {
		return err
	}
	r := t.Verify(ctx, sentrylink.VerifyOptions{Public: public, Timeout: *timeout})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if r.Failed() {
		return sentryHint(&sentryFailed{fmt.Sprintf("verify: %d check(s) failed", r.Count(sentrylink.CheckFail))},
			"each FAIL line says what is wrong; run audit on the nodes involved and compare their firewalls with 'signerd sentry firewall'")
	}
	return nil
}
