package sentrylink

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/creachadair/tomledit/scanner"
)

// ConfigKey names a config.toml key: a section ("" for top-level keys, "p2p",
// "rpc") and the key's snake_case name.
type ConfigKey struct {
	Section string
	Name    string
}

func (k ConfigKey) String() string {
	if k.Section == "" {
		return k.Name
	}
	return k.Section + "." + k.Name
}

// Display is the key as an operator finds it in the file: "[p2p] pex".
func (k ConfigKey) Display() string {
	if k.Section == "" {
		return k.Name + " (top level)"
	}
	return "[" + k.Section + "] " + k.Name
}

// MarshalText renders the key as "p2p.pex".
func (k ConfigKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ValueKind is how a setting's value is written and compared.
type ValueKind int

// Value kinds. PeerList and IDList are comma-separated strings in TOML, never
// arrays.
const (
	KindString   ValueKind = iota + 1
	KindBool               // TOML boolean
	KindInt                // TOML integer
	KindDuration           // TOML string holding a Go duration ("3s")
	KindPeerList           // "id@host:port,id@host:port"
	KindIDList             // "id,id"
)

// Setting is one key apply writes, with the reason it has that value.
type Setting struct {
	Key   ConfigKey `json:"key"`
	Kind  ValueKind `json:"-"`
	Value any       `json:"value"` // string, bool or int64
	Why   string    `json:"why"`
}

// TOML is the setting's value as TOML text.
func (s Setting) TOML() string {
	switch v := s.Value.(type) {
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return `"` + string(scanner.Escape(v)) + `"`
	}
	return fmt.Sprint(s.Value)
}

// NodePlan is everything sentrylink requires of one node.
type NodePlan struct {
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	NodeID   NodeID    `json:"node_id"`
	Settings []Setting `json:"settings"`
	// Firewall summarises the rules `signerd sentry firewall` generates.
	Firewall []string `json:"firewall"`
	// Notes are things the operator must do or know beyond config.toml.
	Notes []string `json:"notes"`

	node *Node
	topo *Topology
}

// Setting returns the plan's setting for key, if any.
func (p *NodePlan) Setting(key ConfigKey) (Setting, bool) {
	for _, s := range p.Settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

func str(section, name, v, why string) Setting {
	return Setting{Key: ConfigKey{section, name}, Kind: KindString, Value: v, Why: why}
}

func boolean(section, name string, v bool, why string) Setting {
	return Setting{Key: ConfigKey{section, name}, Kind: KindBool, Value: v, Why: why}
}

func integer(section, name string, v int64, why string) Setting {
	return Setting{Key: ConfigKey{section, name}, Kind: KindInt, Value: v, Why: why}
}

func duration(section, name, v, why string) Setting {
	return Setting{Key: ConfigKey{section, name}, Kind: KindDuration, Value: v, Why: why}
}

func peers(section, name string, v []string, why string) Setting {
	return Setting{Key: ConfigKey{section, name}, Kind: KindPeerList, Value: strings.Join(v, ","), Why: why}
}

func ids(section, name string, v []NodeID, why string) Setting {
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = string(id)
	}
	return Setting{Key: ConfigKey{section, name}, Kind: KindIDList, Value: strings.Join(s, ","), Why: why}
}

// Plans returns the plan of every node: the validator, then the sentries.
func (t *Topology) Plans() []*NodePlan {
	var out []*NodePlan
	for _, n := range t.Nodes() {
		out = append(out, t.Plan(n))
	}
	return out
}

// Plan returns the settings and firewall summary for node n of t.
func (t *Topology) Plan(n *Node) *NodePlan {
	p := &NodePlan{Name: n.Name, Role: n.Role, NodeID: n.ID, node: n, topo: t}
	if n.Role == RoleValidator {
		t.planValidator(p)
	} else {
		t.planSentry(p)
	}
	p.Firewall, p.Notes = t.firewallSummary(n)
	return p
}

func (t *Topology) planValidator(p *NodePlan) {
	v := t.Validator
	pol := t.Policy.Validator
	var sentryAddrs, sentryNames []string
	var sentryIDs []NodeID
	for _, s := range t.Sentries {
		sentryAddrs = append(sentryAddrs, s.PeerAddr())
		sentryIDs = append(sentryIDs, s.ID)
		sentryNames = append(sentryNames, s.Name)
	}
	var signers []string
	for _, a := range t.Signers {
		signers = append(signers, a.String())
	}
	laddr := "tcp://" + v.PrivateAddr.String()
	laddrWhy := "p2p listens on the private address only, so no public interface accepts p2p connections (defence in depth; the firewall enforces it)."
	if !pol.BindP2PPrivate {
		laddr = "tcp://" + net.JoinHostPort(anyAddr(v.PrivateAddr.Addr().Is4()), strconv.Itoa(int(v.PrivateAddr.Port())))
		laddrWhy = "p2p listens on every interface (policy.validator.bind_p2p_private = false); only the firewall keeps the public out."
	}
	p.Settings = []Setting{
		str("", "priv_validator_laddr", "tcp://"+v.PrivvalAddr.String(),
			fmt.Sprintf("The validator listens here for its remote signer, which dials in from %s. A top-level key, not part of [rpc]. CometBFT never authenticates the signer, so the firewall admits only the signer's IP to port %d.",
				strings.Join(signers, ", "), v.PrivvalAddr.Port())),
		str("p2p", "laddr", laddr, laddrWhy),
		str("p2p", "external_address", "",
			"The validator advertises no address of its own; sentries reach it at the private address they are configured with."),
		boolean("p2p", "pex", false,
			"No peer exchange: the validator neither learns nor gossips addresses and dials only its persistent peers. pex = false does not refuse inbound connections: the firewall does."),
		str("p2p", "seeds", "", "Seeds are dialed only by PEX; a validator has none."),
		boolean("p2p", "seed_mode", false, "Seed mode crawls the network and hangs up on peers; never on a validator."),
		peers("p2p", "persistent_peers", sentryAddrs,
			fmt.Sprintf("The validator dials exactly its sentries (%s) over the private link and redials them when a link drops. A comma-separated string of id@host:port, not a TOML array.", strings.Join(sentryNames, ", "))),
		ids("p2p", "unconditional_peer_ids", sentryIDs,
			"Sentries bypass the peer limits below, so they always get a slot. Bare node IDs, comma-separated."),
		boolean("p2p", "addr_book_strict", pol.AddrBookStrict,
			"false allows private (RFC 1918) addresses, which the validator-sentry link uses."),
		integer("p2p", "max_num_inbound_peers", int64(pol.MaxNumInboundPeers),
			fmt.Sprintf("Inbound peers other than the unconditional sentries. %d: any other node is dropped right after its handshake. CometBFT's listener holds at most this plus %d (the unconditional IDs) connections at once.", pol.MaxNumInboundPeers, len(sentryIDs))),
		integer("p2p", "max_num_outbound_peers", int64(pol.MaxNumOutboundPeers),
			"Outbound peers taken from the address book; used only by PEX, and persistent peers do not count."),
		str("rpc", "laddr", v.RPCLaddr,
			"RPC on loopback only: /status and /net_info would reveal the validator and its links. Run verify on this host or through an SSH tunnel."),
		boolean("rpc", "unsafe", false,
			"No /dial_peers, /dial_seeds or /unsafe_flush_mempool on a validator."),
	}
}

func anyAddr(v4 bool) string {
	if v4 {
		return "0.0.0.0"
	}
	return "::"
}

func (t *Topology) planSentry(p *NodePlan) {
	s := p.node
	pol := t.Policy.Sentry
	val := t.Validator
	peerList := []string{val.PeerAddr()}
	uncond := []NodeID{val.ID}
	var meshNames []string
	if pol.Mesh {
		for _, o := range t.otherSentries(s) {
			peerList = append(peerList, o.PeerAddr())
			uncond = append(uncond, o.ID)
			meshNames = append(meshNames, o.Name)
		}
	}
	peerList = append(peerList, s.ExtraPeers...)
	peersWhy := fmt.Sprintf("The sentry keeps a connection to the validator %q over the private link", val.Name)
	if len(meshNames) > 0 {
		peersWhy += fmt.Sprintf(" and to the other sentries (%s), so a block reaches every sentry even when one link drops", strings.Join(meshNames, ", "))
	}
	if len(s.ExtraPeers) > 0 {
		peersWhy += ", plus the topology's extra_persistent_peers"
	}
	peersWhy += ". A comma-separated string of id@host:port, not a TOML array."
	uncondWhy := "The validator bypasses the inbound and outbound limits, so a full sentry never refuses it. Bare node IDs, comma-separated."
	if len(meshNames) > 0 {
		uncondWhy = "The validator and the other sentries bypass the inbound and outbound limits, so a full sentry never refuses them. Bare node IDs, comma-separated."
	}
	port := strconv.Itoa(int(s.PrivateAddr.Port()))
	p.Settings = []Setting{
		str("p2p", "laddr", "tcp://"+net.JoinHostPort(anyAddr(s.PrivateAddr.Addr().Is4()), port),
			"p2p listens on every interface: public peers arrive on the public address, the validator on the private one."),
		str("p2p", "external_address", s.PublicAddr,
			"The address advertised to the network, host:port without an ID. Left empty, the sentry would advertise its laddr (0.0.0.0), which nobody can dial."),
		boolean("p2p", "pex", pol.Pex,
			"Peer exchange finds and serves public peers; private_peer_ids keeps the validator out of it."),
		boolean("p2p", "seed_mode", false,
			"A seed-mode node hangs up on peers after exchanging addresses; a sentry must stay connected."),
		peers("p2p", "persistent_peers", peerList, peersWhy),
		ids("p2p", "private_peer_ids", []NodeID{val.ID},
			"PEX never gossips the validator's address. CometBFT never validates this key: a typo, an upper-case ID or id@host silently leaks the validator, so it holds the bare lower-case ID."),
		ids("p2p", "unconditional_peer_ids", uncond, uncondWhy),
		boolean("p2p", "addr_book_strict", pol.AddrBookStrict,
			"false allows the private (RFC 1918) addresses of the validator and the other sentries."),
		integer("p2p", "max_num_inbound_peers", int64(pol.MaxNumInboundPeers),
			"Public peers that may connect in; unconditional peers do not count."),
		integer("p2p", "max_num_outbound_peers", int64(pol.MaxNumOutboundPeers),
			"Public peers PEX dials out to; persistent and unconditional peers do not count."),
		integer("p2p", "send_rate", pol.SendRate,
			fmt.Sprintf("Bandwidth cap per connection for sending, in bytes per second (%s). A bandwidth limit, not a connection-rate limit.", humanRate(pol.SendRate))),
		integer("p2p", "recv_rate", pol.RecvRate,
			fmt.Sprintf("Bandwidth cap per connection for receiving, in bytes per second (%s).", humanRate(pol.RecvRate))),
		duration("p2p", "dial_timeout", pol.DialTimeout,
			"Time allowed to open an outgoing TCP connection."),
		duration("p2p", "handshake_timeout", pol.HandshakeTimeout,
			"Time allowed for the secret-connection handshake of a new connection; a stalled handshake holds a listener slot this long."),
		str("rpc", "laddr", s.RPCLaddr,
			"RPC on loopback or the private IP only: a public /net_info lists the validator's ID, IP and moniker."),
		boolean("rpc", "unsafe", pol.RPCUnsafe,
			"unsafe enables /dial_peers, /dial_seeds and /unsafe_flush_mempool; keep it off unless you add sentries at runtime."),
	}
}

func humanRate(b int64) string {
	switch {
	case b >= 1000000 && b%1000 == 0:
		return fmt.Sprintf("%s MB/s", strconv.FormatFloat(float64(b)/1e6, 'f', -1, 64))
	case b >= 1000:
		return fmt.Sprintf("%s kB/s", strconv.FormatFloat(float64(b)/1e3, 'f', -1, 64))
	}
	return fmt.Sprintf("%d B/s", b)
}

// WriteText writes the plans in the form `signerd sentry plan` prints.
func WritePlansText(w io.Writer, t *Topology, plans []*NodePlan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# sentry plan for chain %q from %s\n", t.ChainID, t.Path)
	for _, p := range plans {
		fmt.Fprintf(&b, "\n%s %q (node %s)\n", p.Role, p.Name, p.NodeID)
		b.WriteString("\n  config.toml (written by: signerd sentry apply)\n")
		section := "-"
		for _, s := range p.Settings {
			if s.Key.Section != section {
				section = s.Key.Section
				if section == "" {
					b.WriteString("\n    # top level\n")
				} else {
					fmt.Fprintf(&b, "\n    [%s]\n", section)
				}
			}
			fmt.Fprintf(&b, "    %s = %s\n", s.Key.Name, s.TOML())
			for _, line := range wrap(s.Why, 76) {
				fmt.Fprintf(&b, "        # %s\n", line)
			}
		}
		b.WriteString("\n  firewall (written by: signerd sentry firewall)\n")
		for _, line := range p.Firewall {
			fmt.Fprintf(&b, "    - %s\n", line)
		}
		if len(p.Notes) > 0 {
			b.WriteString("\n  notes\n")
			for _, n := range p.Notes {
				first := true
				for _, line := range wrap(n, 80) {
					if first {
						fmt.Fprintf(&b, "    ! %s\n", line)
						first = false
					} else {
						fmt.Fprintf(&b, "      %s\n", line)
					}
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WritePlansJSON writes the plans as one indented JSON document.
func WritePlansJSON(w io.Writer, t *Topology, plans []*NodePlan) error {
	doc := struct {
		ChainID string      `json:"chain_id"`
		Nodes   []*NodePlan `json:"nodes"`
		Policy  Policy      `json:"policy"`
	}{t.ChainID, plans, t.Policy}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// wrap splits s into lines of at most width characters at spaces.
func wrap(s string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(s) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
