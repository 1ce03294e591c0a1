package sentrylink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/creachadair/tomledit/scanner"
	"github.com/pelletier/go-toml/v2"

	"github.com/signerd/signerd/sentrylink/internal/tomlpatch"
)

// Severity ranks audit findings. Only errors make audit fail.
type Severity int

// Severities, lowest first.
const (
	SeverityInfo Severity = iota + 1
	SeverityWarning
	SeverityError
)

func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	}
	return "unknown"
}

// MarshalText makes severities readable in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads "info", "warning" or "error".
func (s *Severity) UnmarshalText(b []byte) error {
	for _, v := range []Severity{SeverityInfo, SeverityWarning, SeverityError} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q (want info, warning or error)", b)
}

// Finding is one problem audit found in a config.toml.
type Finding struct {
	Severity Severity `json:"severity"`
	// Key is the config key ("p2p.pex"); "config.toml" for whole-file problems.
	Key string `json:"key"`
	// Line is the key's 1-based line in the file, 0 when the key is absent.
	Line    int    `json:"line,omitempty"`
	Problem string `json:"problem"`
	Why     string `json:"why"`
	Fix     string `json:"fix"`
}

// AuditReport lists the findings for one node's config.toml.
type AuditReport struct {
	File     string    `json:"file"`
	Node     string    `json:"node"`
	Role     Role      `json:"role"`
	Findings []Finding `json:"findings"`
}

// Count returns the number of findings with severity sev.
func (r *AuditReport) Count(sev Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == sev {
			n++
		}
	}
	return n
}

// Failed reports whether any finding is an error.
func (r *AuditReport) Failed() bool { return r.Count(SeverityError) > 0 }

// WriteText writes the report in the form `signerd sentry audit` prints.
func (r *AuditReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "audit of %s as %s %q\n", r.File, r.Role, r.Node)
	for _, f := range r.Findings {
		loc := r.File
		if f.Line > 0 {
			loc = fmt.Sprintf("%s:%d", r.File, f.Line)
		}
		if f.Key == fileKey {
			fmt.Fprintf(&b, "\n%-7s %s: %s\n", f.Severity, loc, f.Problem)
		} else {
			fmt.Fprintf(&b, "\n%-7s %s: %s: %s\n", f.Severity, loc, displayKey(f.Key), f.Problem)
		}
		for i, line := range wrap(f.Why, 88) {
			if i == 0 {
				fmt.Fprintf(&b, "        why: %s\n", line)
			} else {
				fmt.Fprintf(&b, "             %s\n", line)
			}
		}
		for i, line := range wrap(f.Fix, 88) {
			if i == 0 {
				fmt.Fprintf(&b, "        fix: %s\n", line)
			} else {
				fmt.Fprintf(&b, "             %s\n", line)
			}
		}
	}
	e, wn, in := r.Count(SeverityError), r.Count(SeverityWarning), r.Count(SeverityInfo)
	if len(r.Findings) == 0 {
		b.WriteString("\nresult: pass, no findings\n")
	} else if e > 0 {
		fmt.Fprintf(&b, "\nresult: FAIL, %d error(s), %d warning(s), %d info\n", e, wn, in)
	} else {
		fmt.Fprintf(&b, "\nresult: pass, %d warning(s), %d info\n", wn, in)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fileKey is the Finding.Key of problems with the whole file.
const fileKey = "config.toml"

// displayKey turns "p2p.pex" into "[p2p] pex".
func displayKey(k string) string {
	if i := strings.IndexByte(k, '.'); i > 0 && (k[:i] == "p2p" || k[:i] == "rpc" || k[:i] == "consensus") {
		return "[" + k[:i] + "] " + k[i+1:]
	}
	return k
}

// AuditFile reads the config.toml at path and audits it against the plan.
func (p *NodePlan) AuditFile(path string) (*AuditReport, error) {
	src, err := readFileLimit(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	return p.Audit(src, path), nil
}

// Audit checks src, the node's deployed config.toml, against the topology
// and the plan, and reports every finding. It never fails: a file it cannot
// read as TOML is itself an error finding.
func (p *NodePlan) Audit(src []byte, file string) *AuditReport {
	a := &auditor{
		p: p, t: p.topo, n: p.node, file: file,
		broken: map[string]bool{}, flagged: map[string]bool{}, present: map[string]*tomlpatch.Entry{},
		perKey: map[string]int{}, suppressed: map[string]*Finding{},
	}
	a.run(src)
	a.flushSuppressed()
	sort.SliceStable(a.findings, func(i, j int) bool {
		if a.findings[i].Severity != a.findings[j].Severity {
			return a.findings[i].Severity > a.findings[j].Severity
		}
		li, lj := a.findings[i].Line, a.findings[j].Line
		if li == 0 {
			li = 1 << 30
		}
		if lj == 0 {
			lj = 1 << 30
		}
		return li < lj
	})
	if a.findings == nil {
		a.findings = []Finding{}
	}
	return &AuditReport{File: file, Node: p.Name, Role: p.Role, Findings: a.findings}
}

type auditor struct {
	p          *NodePlan
	t          *Topology
	n          *Node
	file       string
	doc        *tomlpatch.Doc
	cfg        nodeConfig
	findings   []Finding
	perKey     map[string]int
	suppressed map[string]*Finding
	broken     map[string]bool // keys too damaged for semantic checks
	flagged    map[string]bool // keys with a finding (the plan comparison skips them)
	present    map[string]*tomlpatch.Entry
}

// maxFindingsPerKey bounds the findings reported for one key (a list with
// thousands of bad entries); the rest are counted in one summary finding.
const maxFindingsPerKey = 10

func (a *auditor) add(sev Severity, key, problem, why, fix string) {
	line := 0
	if e := a.present[key]; e != nil {
		line = e.Line
	}
	a.flagged[key] = true
	a.perKey[key]++
	if a.perKey[key] > maxFindingsPerKey {
		if s := a.suppressed[key]; s == nil || sev > s.Severity {
			a.suppressed[key] = &Finding{Severity: sev, Key: key, Line: line}
		}
		a.suppressed[key].Problem = fmt.Sprintf("%d more findings for this key are not shown", a.perKey[key]-maxFindingsPerKey)
		return
	}
	a.findings = append(a.findings, Finding{Severity: sev, Key: key, Line: line, Problem: problem, Why: why, Fix: fix})
}

func (a *auditor) flushSuppressed() {
	keys := make([]string, 0, len(a.suppressed))
	for k := range a.suppressed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := *a.suppressed[k]
		f.Why = "The first findings for this key show the kind of problem."
		f.Fix = "fix the entries reported above, then audit again"
		a.findings = append(a.findings, f)
	}
}

func (a *auditor) applyFix() string {
	return fmt.Sprintf("run: signerd sentry apply --topology %s --node %s --config-toml %s", a.t.Path, a.n.Name, a.file)
}

func (a *auditor) run(src []byte) {
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		a.add(SeverityError, fileKey, "not valid TOML: "+err.Error(),
			"CometBFT refuses to start with a config.toml it cannot parse.", "fix the syntax at the position shown")
		return
	}
	a.doc = doc
	a.structure()

	// Decode the file without the damaged entries, over CometBFT's defaults,
	// so absent keys read as CometBFT would read them.
	ed := doc.NewEditor()
	for _, e := range doc.All() {
		if a.broken[strings.Join(e.FullKey(), ".")] {
			ed.Remove(e)
		}
	}
	clean, err := ed.Bytes()
	if err != nil {
		clean = src
	}
	a.cfg = cometDefaults()
	dec := toml.NewDecoder(bytes.NewReader(clean))
	dec.DisallowUnknownFields() // unknown keys were reported by structure()
	if err := dec.Decode(&a.cfg); err != nil {
		var sme *toml.StrictMissingError
		if !errors.As(err, &sme) {
			a.add(SeverityError, fileKey, "does not decode: "+decodeErrText(err),
				"CometBFT cannot read this file either.", "fix the value at the position shown")
			return
		}
	}
	a.common()
	if a.n.Role == RoleValidator {
		a.validator()
	} else {
		a.sentry()
	}
	a.compareWithPlan()
}

// cometDefaults returns CometBFT v0.38's defaults for the keys audit reads.
func cometDefaults() nodeConfig {
	var c nodeConfig
	c.RPC.Laddr = "tcp://127.0.0.1:26657"
	c.P2P.Laddr = "tcp://0.0.0.0:26656"
	c.P2P.AddrBookStrict = true
	c.P2P.MaxNumInboundPeers = 40
	c.P2P.MaxNumOutboundPeers = 10
	c.P2P.SendRate = 5120000
	c.P2P.RecvRate = 5120000
	c.P2P.Pex = true
	c.P2P.FlushThrottleTimeout = tomlDuration(100 * time.Millisecond)
	c.P2P.MaxPacketMsgPayloadSize = 1024
	c.P2P.HandshakeTimeout = tomlDuration(20 * time.Second)
	c.P2P.DialTimeout = tomlDuration(3 * time.Second)
	return c
}

// structure checks every key of the owned sections for duplicates, kebab-case
// spellings, unknown names and wrong TOML types.
func (a *auditor) structure() {
	entries := a.doc.All()
	for _, e := range entries {
		full := e.FullKey()
		key := strings.Join(full, ".")
		if prev := a.present[key]; prev != nil {
			a.present[key] = e
			a.add(SeverityError, key, fmt.Sprintf("defined twice (lines %d and %d)", prev.Line, e.Line),
				"CometBFT refuses a file that defines a key twice.", "keep one definition")
			a.broken[key] = true
			continue
		}
		a.present[key] = e
	}
	for _, e := range entries {
		full := e.FullKey()
		key := strings.Join(full, ".")
		if a.broken[key] {
			continue
		}
		section, rest, owned := sectionOf(full)
		if !owned {
			continue
		}
		if section == "p2p" && len(rest) > 1 && (rest[0] == "libp2p" || rest[0] == "test_fuzz_config") {
			continue
		}
		kind, known := configSchema[key]
		if !known {
			a.unknownKey(section, rest, key)
			continue
		}
		a.typeCheck(e, key, kind)
	}
}

func (a *auditor) unknownKey(section string, rest []string, key string) {
	name := strings.Join(rest, ".")
	where := "at the top level"
	if section != "" {
		where = "in [" + section + "]"
	}
	a.broken[key] = true
	if strings.Contains(name, "-") {
		snake := strings.ReplaceAll(name, "-", "_")
		skey := snake
		if section != "" {
			skey = section + "." + snake
		}
		if _, ok := configSchema[skey]; ok {
			if other := a.present[skey]; other != nil {
				a.add(SeverityError, key, fmt.Sprintf("kebab-case duplicate of %s (line %d)", snake, other.Line),
					"CometBFT v0.38 and later read only snake_case keys: this line is ignored, and whoever reads the file may believe it is in force.",
					fmt.Sprintf("delete this line and keep %s (signerd sentry apply removes kebab-case spellings of the keys it owns)", snake))
			} else {
				a.add(SeverityError, key, "kebab-case spelling of "+snake,
					"CometBFT v0.38 and later read only snake_case keys (kebab-case belongs to Tendermint v0.35): this setting is silently not applied.",
					fmt.Sprintf("rename it to %s", snake))
			}
			return
		}
	}
	fix := "remove it, or correct its name"
	if c := closest(name, knownKeysOf(section)); c != "" {
		fix = fmt.Sprintf("did you mean %s? Rename it, or remove it", c)
	}
	a.add(SeverityWarning, key, "unknown key "+where,
		"CometBFT ignores keys it does not know, so a misspelt setting silently does nothing.", fix)
}

func (a *auditor) typeCheck(e *tomlpatch.Entry, key string, kind keyKind) {
	got := e.Kind
	ok := false
	switch kind {
	case kBool:
		ok = got == scanner.Word
	case kInt:
		ok = got == scanner.Integer
	case kString, kDuration:
		ok = isStringToken(got)
	case kStringArray:
		ok = got == scanner.LBracket
	case kTable:
		ok = got == scanner.LInline
	}
	if !ok {
		a.broken[key] = true
		if kind == kString && got == scanner.LBracket {
			a.add(SeverityError, key, "is a TOML array; CometBFT wants a comma-separated string",
				"CometBFT reads this key as one string such as \"id@host:port,id@host:port\"; an array makes the node fail to start or drops the setting.",
				`write it as one string: "a,b,c"`)
			return
		}
		a.add(SeverityError, key, fmt.Sprintf("has the wrong type: %s, expected %s", oneLine(e.ValueText()), kind),
			"CometBFT refuses to start when a value has the wrong type.", "write the value as "+kind.String())
		return
	}
	if kind == kDuration {
		v, err := decodeValue(e.ValueText())
		s, _ := v.(string)
		if _, perr := time.ParseDuration(s); err != nil || perr != nil {
			a.broken[key] = true
			a.add(SeverityError, key, fmt.Sprintf("%s is not a duration", e.ValueText()),
				"CometBFT refuses to start when a duration does not parse.", `write a duration such as "3s" or "100ms"`)
		}
	}
}

// parsedPeer is one item of a comma-separated peer or ID list.
type parsedPeer struct {
	raw  string
	id   NodeID // normalised; empty when the ID part is malformed
	addr string // host:port, empty for bare IDs
}

func parseList(s string) []parsedPeer {
	var out []parsedPeer
	for _, item := range splitList(s) {
		p := parsedPeer{raw: item}
		rest := strings.TrimPrefix(item, "tcp://")
		idPart := rest
		if at := strings.IndexByte(rest, '@'); at >= 0 {
			idPart, p.addr = rest[:at], rest[at+1:]
		}
		if id, err := ParseNodeID(idPart); err == nil {
			p.id = id
		}
		out = append(out, p)
	}
	return out
}

func (a *auditor) common() {
	a.peerList("p2p.persistent_peers", a.cfg.P2P.PersistentPeers)
	a.peerList("p2p.seeds", a.cfg.P2P.Seeds)
	a.idList("p2p.private_peer_ids", a.cfg.P2P.PrivatePeerIDs,
		"CometBFT never validates private_peer_ids: an entry that is not exactly the peer's lower-case ID matches nothing, and the peer's address is gossiped to the network.")
	a.idList("p2p.unconditional_peer_ids", a.cfg.P2P.UnconditionalPeerIDs,
		"CometBFT checks each entry at startup and refuses to start on a bad one (\"wrong ID\"), and an upper-case ID never matches the connected peer.")

	if k := "rpc.pprof_laddr"; !a.broken[k] && a.cfg.RPC.PprofLaddr != "" && !laddrIsLocal(withScheme(a.cfg.RPC.PprofLaddr)) {
		a.add(SeverityError, k, fmt.Sprintf("%q listens beyond loopback", a.cfg.RPC.PprofLaddr),
			"pprof exposes goroutine dumps and heap profiles to anyone who reaches the port.",
			`set pprof_laddr = "localhost:6060" or ""`)
	}
	if k := "p2p.external_address"; !a.broken[k] && a.cfg.P2P.ExternalAddress != "" {
		ea := a.cfg.P2P.ExternalAddress
		if strings.Contains(ea, "@") {
			a.add(SeverityError, k, fmt.Sprintf("%q contains a node ID", ea),
				"external_address is host:port only; CometBFT refuses to start (\"p2p.external_address is incorrect\").", "remove the ID and the @")
		} else if _, _, err := net.SplitHostPort(strings.TrimPrefix(ea, "tcp://")); err != nil {
			a.add(SeverityError, k, fmt.Sprintf("%q is not host:port", ea),
				"CometBFT refuses to start (\"p2p.external_address is incorrect\").", "write it as host:port")
		}
	}
	for _, d := range []struct {
		key string
		v   tomlDuration
		why string
	}{
		{"p2p.handshake_timeout", a.cfg.P2P.HandshakeTimeout, "A zero handshake timeout is undefined behaviour in CometBFT: stalled handshakes may hold listener slots forever."},
		{"p2p.dial_timeout", a.cfg.P2P.DialTimeout, "A zero dial timeout disables the timeout: a dial to a dead peer hangs for the kernel's TCP timeout."},
	} {
		if !a.broken[d.key] && d.v <= 0 {
			a.add(SeverityError, d.key, "is zero or negative", d.why, "use the default (handshake_timeout \"20s\", dial_timeout \"3s\")")
		}
	}
}

func withScheme(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "tcp://" + s
}

func (a *auditor) peerList(key, value string) {
	if a.broken[key] {
		return
	}
	seen, dupReported := map[NodeID]bool{}, map[NodeID]bool{}
	for _, p := range parseList(value) {
		rest := strings.TrimPrefix(p.raw, "tcp://")
		at := strings.IndexByte(rest, '@')
		switch {
		case at < 0:
			a.add(SeverityError, key, fmt.Sprintf("entry %q has no node ID", p.raw),
				"CometBFT needs id@host:port to authenticate the peer and refuses to start otherwise.", "write the entry as <40 hex id>@host:port")
			continue
		case p.id == "":
			a.add(SeverityError, key, fmt.Sprintf("entry %q has a malformed node ID", p.raw),
				"A node ID is exactly 40 hex characters; CometBFT refuses to start on a malformed one.", "copy the ID from `cometbft show-node-id` on that node")
			continue
		case !isCanonicalNodeID(rest[:at]):
			a.add(SeverityError, key, fmt.Sprintf("entry %q has an upper-case node ID", p.raw),
				"CometBFT accepts it at startup but the handshake then fails with \"conn.ID and dialed ID mismatch\" (cometbft/cometbft#835): the peer is never connected.",
				"write the ID in lower case: "+string(p.id)+"@"+p.addr)
		}
		if _, _, err := net.SplitHostPort(p.addr); err != nil {
			a.add(SeverityError, key, fmt.Sprintf("entry %q has no valid host:port", p.raw),
				"CometBFT refuses to start when a peer address does not parse.", "write the entry as id@host:port")
		}
		if seen[p.id] && !dupReported[p.id] {
			dupReported[p.id] = true
			a.add(SeverityWarning, key, fmt.Sprintf("lists %s more than once", p.id.Short()), "A duplicate entry is redundant and hides which address is meant.", "keep one entry per node ID")
		}
		seen[p.id] = true
	}
}

func (a *auditor) idList(key, value, why string) {
	if a.broken[key] {
		return
	}
	for _, p := range parseList(value) {
		switch {
		case strings.Contains(p.raw, "@"):
			a.add(SeverityError, key, fmt.Sprintf("entry %q is an address, not a bare node ID", p.raw), why,
				fmt.Sprintf("keep only the ID: %q", string(p.id)))
		case p.id == "":
			a.add(SeverityError, key, fmt.Sprintf("entry %q is not a node ID", p.raw), why, "write 40 lower-case hex characters")
		case !isCanonicalNodeID(p.raw):
			a.add(SeverityError, key, fmt.Sprintf("entry %q is upper-case", p.raw), why, fmt.Sprintf("write it in lower case: %q", string(p.id)))
		}
	}
}

func idsOf(value string) map[NodeID]parsedPeer {
	m := map[NodeID]parsedPeer{}
	for _, p := range parseList(value) {
		if p.id != "" {
			m[p.id] = p
		}
	}
	return m
}

func (a *auditor) validator() {
	c := &a.cfg
	sentryByID := map[NodeID]*Node{}
	for _, s := range a.t.Sentries {
		sentryByID[s.ID] = s
	}
	if k := "p2p.pex"; !a.broken[k] && c.P2P.Pex {
		why := "With PEX a validator learns public peers from gossip, dials them and announces itself: its IP becomes public and it can be attacked directly."
		if a.present[k] == nil {
			why = "The key is absent, so CometBFT's default (true) applies. " + why
		}
		a.add(SeverityError, k, "PEX is on", why, "set pex = false ("+a.applyFix()+")")
	}
	if k := "p2p.seeds"; !a.broken[k] && len(splitList(c.P2P.Seeds)) > 0 {
		a.add(SeverityError, k, "the validator has seeds",
			"Seeds are public nodes; a validator must reach the network only through its sentries (and with PEX off seeds are dead config).",
			`set seeds = ""`)
	}
	if k := "p2p.seed_mode"; !a.broken[k] && c.P2P.SeedMode {
		a.add(SeverityError, k, "seed mode is on",
			"A seed crawls the public network and hangs up on its peers: the opposite of a hidden validator.", "set seed_mode = false")
	}
	if k := "rpc.laddr"; !a.broken[k] && !laddrIsLocal(c.RPC.Laddr) {
		a.add(SeverityError, k, fmt.Sprintf("RPC listens on %q, beyond loopback", c.RPC.Laddr),
			"The validator's RPC reveals its ID, peers and state (/status, /net_info) and accepts transactions; it must not be reachable from the network.",
			fmt.Sprintf("set laddr = %q and run verify on the validator host or through an SSH tunnel", a.t.Validator.RPCLaddr))
	}
	if k := "rpc.grpc_laddr"; !a.broken[k] && c.RPC.GRPCLaddr != "" && !laddrIsLocal(withScheme(c.RPC.GRPCLaddr)) {
		a.add(SeverityError, k, fmt.Sprintf("the gRPC broadcast API listens on %q, beyond loopback", c.RPC.GRPCLaddr),
			"It is an unauthenticated RPC endpoint on the validator.", `set grpc_laddr = "" (or a loopback address)`)
	}
	if k := "rpc.unsafe"; !a.broken[k] && c.RPC.Unsafe {
		a.add(SeverityError, k, "unsafe RPC is on",
			"/dial_peers and /dial_seeds let anyone with RPC access connect the validator to arbitrary peers.", "set unsafe = false")
	}
	if k := "p2p.persistent_peers"; !a.broken[k] {
		have := idsOf(c.P2P.PersistentPeers)
		var missing []string
		done := map[NodeID]bool{}
		for _, p := range parseList(c.P2P.PersistentPeers) {
			if p.id == "" || done[p.id] {
				continue
			}
			done[p.id] = true
			s, ok := sentryByID[p.id]
			if !ok {
				a.add(SeverityError, k, fmt.Sprintf("peer %s is not one of the validator's sentries", p.raw),
					"The validator must connect only to its own sentries; any other peer learns its IP and can reach it directly.",
					"remove it, or add that node to the topology as a [[sentry]]")
				continue
			}
			if p.addr != "" && p.addr != s.PrivateAddr.String() {
				a.add(SeverityWarning, k, fmt.Sprintf("sentry %q is dialed at %s, the topology says %s", s.Name, p.addr, s.PrivateAddr),
					"The validator should reach its sentries over the private link; the firewall admits sentries by their private IPs.", a.applyFix())
			}
		}
		for _, s := range a.t.Sentries {
			if _, ok := have[s.ID]; !ok {
				missing = append(missing, strconv.Quote(s.Name))
			}
		}
		if len(missing) > 0 {
			a.add(SeverityWarning, k, "does not dial sentries "+strings.Join(missing, ", "),
				"Without them in persistent_peers the validator depends on those sentries dialing it and does not redial them.", a.applyFix())
		}
	}
	if k := "p2p.unconditional_peer_ids"; !a.broken[k] {
		have := idsOf(c.P2P.UnconditionalPeerIDs)
		var missing []string
		done := map[NodeID]bool{}
		for _, p := range parseList(c.P2P.UnconditionalPeerIDs) {
			if p.id != "" && sentryByID[p.id] == nil && !done[p.id] {
				done[p.id] = true
				a.add(SeverityError, k, fmt.Sprintf("%s is not one of the validator's sentries", p.raw),
					"An unconditional peer bypasses the validator's peer limits; only its sentries may.", "remove it")
			}
		}
		for _, s := range a.t.Sentries {
			if _, ok := have[s.ID]; !ok {
				missing = append(missing, strconv.Quote(s.Name))
			}
		}
		if len(missing) > 0 {
			a.add(SeverityWarning, k, "lacks sentries "+strings.Join(missing, ", "),
				fmt.Sprintf("With max_num_inbound_peers = %d, a sentry that is not unconditional is refused when it dials in.", c.P2P.MaxNumInboundPeers), a.applyFix())
		}
	}
	if k := "priv_validator_laddr"; !a.broken[k] {
		want := "tcp://" + a.t.Validator.PrivvalAddr.String()
		switch {
		case c.PrivValidatorLaddr == "":
			a.add(SeverityError, k, "is empty: the validator signs with a key file on this host",
				"signerd dials priv_validator_laddr; without it the consensus key must live on the validator, which sentrylink exists to avoid.",
				fmt.Sprintf("set priv_validator_laddr = %q", want))
		case c.PrivValidatorLaddr != want:
			a.add(SeverityError, k, fmt.Sprintf("is %q, the topology says %q", c.PrivValidatorLaddr, want),
				"signerd dials the topology's privval_addr and the firewall opens only that port to the signer.", fmt.Sprintf("set priv_validator_laddr = %q", want))
		}
	}
	if k := "p2p.external_address"; !a.broken[k] && !a.flagged[k] && c.P2P.ExternalAddress != "" {
		a.add(SeverityWarning, k, fmt.Sprintf("the validator advertises %q", c.P2P.ExternalAddress),
			"A validator has no public presence; its sentries know its private address from their own config.", `set external_address = ""`)
	}
	if v, ok := a.cfg.Consensus["double_sign_check_height"]; !ok || v == int64(0) {
		a.add(SeverityInfo, "consensus.double_sign_check_height", "is 0 or absent",
			"CometBFT's sentry guide recommends 10 on a validator: at startup the node looks for its own signatures in the last blocks and refuses to start if it finds one, a guard against a second instance signing.",
			"set [consensus] double_sign_check_height = 10")
	}
}

func (a *auditor) sentry() {
	c := &a.cfg
	val := a.t.Validator
	if k := "p2p.seed_mode"; !a.broken[k] && c.P2P.SeedMode {
		a.add(SeverityError, k, "seed mode is on",
			"A seed-mode node hangs up on its peers after exchanging addresses; the sentry would drop the validator's blocks and votes.", "set seed_mode = false")
	}
	if k := "p2p.private_peer_ids"; !a.broken[k] {
		if _, ok := idsOf(c.P2P.PrivatePeerIDs)[val.ID]; !ok {
			a.add(SeverityError, k, fmt.Sprintf("does not contain the validator's ID %s", val.ID),
				"Without it the sentry gossips the validator's address to the whole network through PEX: the validator loses its protection.",
				fmt.Sprintf("add %q (bare ID) to private_peer_ids", string(val.ID)))
		}
	}
	if k := "p2p.unconditional_peer_ids"; !a.broken[k] {
		if _, ok := idsOf(c.P2P.UnconditionalPeerIDs)[val.ID]; !ok {
			a.add(SeverityError, k, fmt.Sprintf("does not contain the validator's ID %s", val.ID),
				"When the sentry's inbound slots are full (easy for an attacker), it refuses the validator: blocks and votes stop flowing.",
				fmt.Sprintf("add %q to unconditional_peer_ids", string(val.ID)))
		}
	}
	if k := "p2p.persistent_peers"; !a.broken[k] {
		have := idsOf(c.P2P.PersistentPeers)
		if p, ok := have[val.ID]; !ok {
			a.add(SeverityWarning, k, "does not include the validator",
				"The sentry then depends on the validator dialing it, and does not redial the validator after a restart.", a.applyFix())
		} else if p.addr != "" && p.addr != val.PrivateAddr.String() {
			a.add(SeverityWarning, k, fmt.Sprintf("dials the validator at %s, the topology says %s", p.addr, val.PrivateAddr),
				"The validator's firewall admits the sentry only on the private link.", a.applyFix())
		}
		if a.t.Policy.Sentry.Mesh {
			var missing []string
			for _, o := range a.t.otherSentries(a.n) {
				if _, ok := have[o.ID]; !ok {
					missing = append(missing, strconv.Quote(o.Name))
				}
			}
			if len(missing) > 0 {
				a.add(SeverityWarning, k, "does not include sentries "+strings.Join(missing, ", "),
					"Meshed sentries relay blocks and votes to each other when a validator link drops.", a.applyFix())
			}
		}
	}
	if k := "p2p.external_address"; !a.broken[k] && !a.flagged[k] {
		switch {
		case c.P2P.ExternalAddress == "":
			a.add(SeverityError, k, "is empty",
				"Without it the sentry advertises its listen address (often 0.0.0.0 or a private IP), so public peers cannot dial it back and the validator's only public presence degrades.",
				fmt.Sprintf("set external_address = %q", a.n.PublicAddr))
		case c.P2P.ExternalAddress != a.n.PublicAddr:
			a.add(SeverityWarning, k, fmt.Sprintf("is %q, the topology says %q", c.P2P.ExternalAddress, a.n.PublicAddr),
				"Peers dial the advertised address.", a.applyFix())
		}
	}
	if k := "rpc.laddr"; !a.broken[k] && !a.rpcPrivate(c.RPC.Laddr) {
		a.add(SeverityError, k, fmt.Sprintf("RPC listens on %q, which may be public", c.RPC.Laddr),
			"A sentry's /net_info lists every peer, the validator included: its ID, IP, moniker and RPC address. Public RPC on a sentry reveals the validator.",
			fmt.Sprintf("set laddr = %q (loopback or the sentry's private IP)", a.n.RPCLaddr))
	}
	if k := "rpc.grpc_laddr"; !a.broken[k] && c.RPC.GRPCLaddr != "" && !a.rpcPrivate(withScheme(c.RPC.GRPCLaddr)) {
		a.add(SeverityWarning, k, fmt.Sprintf("the gRPC broadcast API listens on %q", c.RPC.GRPCLaddr),
			"It is unauthenticated; keep it off public interfaces.", `set grpc_laddr = "" or a loopback address`)
	}
	if k := "rpc.unsafe"; !a.broken[k] && c.RPC.Unsafe && !a.t.Policy.Sentry.RPCUnsafe {
		a.add(SeverityWarning, k, "unsafe RPC is on",
			"/dial_peers and /dial_seeds let anyone with RPC access rewire the sentry; the policy keeps it off.",
			"set unsafe = false, or set policy.sentry.rpc_unsafe = true if you add sentries at runtime")
	}
}

// rpcPrivate reports whether an RPC listen address is loopback, a unix
// socket or this sentry's private IP.
func (a *auditor) rpcPrivate(laddr string) bool {
	if laddrIsLocal(laddr) {
		return true
	}
	ap, err := laddrAddrPort(laddr)
	return err == nil && a.n.PrivateAddr.IsValid() && ap.Addr() == a.n.PrivateAddr.Addr()
}

// compareWithPlan reports every planned key not already covered whose
// effective value (CometBFT's default when absent) differs from the plan.
func (a *auditor) compareWithPlan() {
	for _, s := range a.p.Settings {
		k := s.Key.String()
		if a.flagged[k] || a.broken[k] {
			continue
		}
		got, ok := configValue(&a.cfg, k)
		if !ok || settingEquals(s, got) {
			continue
		}
		problem := fmt.Sprintf("is %s, the plan says %s", renderValue(got), s.TOML())
		if a.present[k] == nil {
			problem = fmt.Sprintf("is absent (CometBFT's default %s applies), the plan says %s", renderValue(got), s.TOML())
		}
		a.add(SeverityWarning, k, problem, s.Why, a.applyFix())
	}
}

// configValue reads a "p2p.pex"-style key from the decoded config.
func configValue(c *nodeConfig, key string) (any, bool) {
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return nil, false
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("toml") == part {
				v = v.Field(i)
				found = true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	switch x := v.Interface().(type) {
	case tomlDuration:
		return time.Duration(x), true
	case int:
		return int64(x), true
	default:
		return x, true
	}
}

func settingEquals(s Setting, got any) bool {
	switch s.Kind {
	case KindDuration:
		d, ok := got.(time.Duration)
		want, err := time.ParseDuration(s.Value.(string))
		return ok && err == nil && d == want
	case KindPeerList, KindIDList:
		g, ok := got.(string)
		return ok && strings.Join(splitList(g), ",") == s.Value.(string)
	case KindString:
		g, ok := got.(string)
		if !ok {
			return false
		}
		if g == s.Value.(string) {
			return true
		}
		// "tcp://10.0.1.5:26656" equals "10.0.1.5:26656"
		ga, err1 := laddrAddrPort(g)
		wa, err2 := laddrAddrPort(s.Value.(string))
		return err1 == nil && err2 == nil && ga == wa
	}
	return reflect.DeepEqual(got, s.Value)
}

func renderValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case time.Duration:
		return strconv.Quote(x.String())
	}
	return fmt.Sprint(v)
}
