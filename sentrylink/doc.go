// Package sentrylink owns the validator's network isolation: the sentry
// topology file, the config.toml settings it implies for the validator and
// each sentry, the nftables rules that enforce it, the audit of a deployed
// config.toml and the live check of the running network.
//
// One topology file ([LoadTopology]) describes the validator, the signer
// hosts and at least two sentries, plus an optional [Policy]. From it:
//
//   - [Topology.Plan] gives each node's required settings with the reason
//     for each ([NodePlan]);
//   - [NodePlan.ApplyTo] and [NodePlan.ApplyFile] write those settings into
//     an existing config.toml;
//   - [Topology.Firewall] renders the node's nftables ruleset;
//   - [NodePlan.Audit] reports every problem in a deployed config.toml;
//   - [Topology.Verify] checks the live network through each node's RPC.
//
// sentrylink signs nothing and never reads a private key beyond deriving a
// node ID from node_key.json.
//
// # Invariants
//
//   - A validated [Topology] has exactly one validator, at least two
//     sentries and at least one signer IP; node IDs are 40 lower-case hex
//     characters and unique; private addresses are IP literals and unique.
//   - ID lists (private_peer_ids, unconditional_peer_ids) only ever receive
//     bare lower-case IDs; peer lists are comma-separated strings, never TOML
//     arrays.
//   - The validator's plan always has pex = false, no seeds, no seed mode,
//     RPC on loopback and unsafe RPC off; policy cannot change these.
//   - apply changes only the keys in the plan (and deletes kebab-case
//     spellings of those keys): every other byte of config.toml, comments
//     and layout included, is kept. A key that already holds the planned
//     value is not rewritten, so a second apply changes nothing. The result
//     is re-read with go-toml and must read back as planned before anything
//     is written; the old file is backed up first and replaced atomically.
//   - Generated nftables rules live in one table, inet signerd_sentrylink,
//     which a ruleset replaces atomically; output is deterministic (set
//     elements and ports sorted) and SSH is always accepted from
//     policy.firewall.admin_sources, or from anywhere when that list is
//     empty.
//   - audit never stops at the first problem and never panics on any input;
//     a finding names the key, its line, why it matters and the fix.
//   - verify bounds every HTTP request (5 s by default) and treats an
//     unreachable RPC as a failure, never as a pass or a skip.
//
// # Why not tomledit's formatter
//
// tomledit's Formatter re-emits the whole document, which on CometBFT's stock
// config.toml changes about 30 unrelated lines (blank lines, trailing
// spaces in comments, trailing commas in arrays). The internal tomlpatch
// package instead uses tomledit's parser to validate and its scanner to find
// each key's exact byte span, and splices only the owned values.
//
// # What config cannot do
//
// CometBFT has no inbound allow-list and no per-IP connection limit; pex =
// false does not refuse inbound connections. send_rate and recv_rate are
// bandwidth caps in bytes per second per connection, not connection-rate
// limits. The firewall is what keeps the public away from the validator and
// rate-limits new connections on the sentries; config is defence in depth.
package sentrylink
