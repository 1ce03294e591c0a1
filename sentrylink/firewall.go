package sentrylink

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FirewallTable is the one nftables table sentrylink owns. Loading a
// generated ruleset replaces this table and touches no other.
const FirewallTable = "signerd_sentrylink"

// nftSet is a named set of addresses.
type nftSet struct {
	name     string // ends in _v4 or _v6
	prefixes []netip.Prefix
	interval bool
	dynamic  bool // a meter: filled by the rules, entries expire after 2 minutes
}

type nftRule struct {
	text    string // rule without comment
	comment string
}

type firewall struct {
	node     *Node
	sets     []nftSet
	rules    []nftRule
	summary  []string
	notes    []string
	dropMode bool
}

func hostPrefixes(addrs []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if !a.IsValid() || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Addr().Is4() != out[j].Addr().Is4() {
			return out[i].Addr().Is4()
		}
		return out[i].Addr().Less(out[j].Addr())
	})
	return out
}

func split46(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

func prefixText(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = prefixText(p)
	}
	return strings.Join(s, ", ")
}

// addSet registers a set and returns the match expressions for the address
// families it has elements in ("ip saddr @x_v4", "ip6 saddr @x_v6").
func (f *firewall) addSet(name string, ps []netip.Prefix, interval bool) []string {
	v4, v6 := split46(ps)
	var matches []string
	if len(v4) > 0 {
		f.sets = append(f.sets, nftSet{name: name + "_v4", prefixes: v4, interval: interval})
		matches = append(matches, "ip saddr @"+name+"_v4")
	}
	if len(v6) > 0 {
		f.sets = append(f.sets, nftSet{name: name + "_v6", prefixes: v6, interval: interval})
		matches = append(matches, "ip6 saddr @"+name+"_v6")
	}
	return matches
}

func (f *firewall) rule(text, comment string) { f.rules = append(f.rules, nftRule{text, comment}) }

func portsExpr(ports []int) string {
	if len(ports) == 1 {
		return strconv.Itoa(ports[0])
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

func uniqueSortedPorts(ps []int, exclude map[int]bool) []int {
	seen := map[int]bool{}
	var out []int
	for _, p := range ps {
		if !seen[p] && !exclude[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

// buildFirewall computes the rules for n. It is shared by Firewall (the
// nftables text) and Plan (the summary).
func (t *Topology) buildFirewall(n *Node) *firewall {
	pol := t.Policy.Firewall
	f := &firewall{node: n, dropMode: pol.InputPolicy == "drop"}

	f.rule(`iifname "lo" accept`, "loopback: local RPC and tools")
	f.rule("ct state invalid drop", "")
	f.rule("ct state established,related accept", "replies to this host's own connections")
	f.rule("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, packet-too-big } accept", "IPv6 needs neighbour discovery")

	// SSH first, so no later rule can lock the operator out.
	admin := sortedPrefixes(pol.AdminSources)
	ssh := strconv.Itoa(pol.SSHPort)
	if len(admin) == 0 {
		f.rule("tcp dport "+ssh+" accept", "ssh from anywhere: restrict with policy.firewall.admin_sources")
		f.summary = append(f.summary, fmt.Sprintf("ssh tcp/%s: from anywhere", ssh))
		f.notes = append(f.notes, fmt.Sprintf("SSH (tcp/%s) is accepted from anywhere because [policy.firewall] admin_sources is empty. List your admin IPs there to restrict it; the rules never block SSH from them.", ssh))
	} else {
		for _, m := range f.addSet("admin", admin, true) {
			f.rule("tcp dport "+ssh+" "+m+" accept", "ssh from policy.firewall.admin_sources")
		}
		f.rule("tcp dport "+ssh+" counter drop", "ssh from anyone else")
		f.summary = append(f.summary, fmt.Sprintf("ssh tcp/%s: only from admin_sources %s", ssh, joinPrefixes(admin)))
	}

	guarded := map[int]bool{pol.SSHPort: true}
	p2p := int(n.PrivateAddr.Port())
	guarded[p2p] = true
	rpc := int(n.rpcPort())

	if n.Role == RoleValidator {
		var sentryIPs []netip.Addr
		for _, s := range t.Sentries {
			sentryIPs = append(sentryIPs, s.PrivateAddr.Addr())
		}
		sentries := hostPrefixes(sentryIPs)
		signers := hostPrefixes(t.Signers)
		sm := f.addSet("sentries", sentries, false)
		gm := f.addSet("signers", signers, false)
		for _, m := range sm {
			icmp := "icmp"
			if strings.HasPrefix(m, "ip6 ") {
				icmp = "icmpv6"
			}
			f.rule(m+" "+icmp+" type echo-request accept", "ping from the sentries")
		}
		for _, m := range sm {
			f.rule(fmt.Sprintf("tcp dport %d %s accept", p2p, m), "p2p from the sentries' private IPs")
		}
		f.rule(fmt.Sprintf("tcp dport %d counter drop", p2p), "p2p from anyone else")
		f.summary = append(f.summary, fmt.Sprintf("p2p tcp/%d: only from the sentries %s", p2p, joinPrefixes(sentries)))

		pv := int(t.Validator.PrivvalAddr.Port())
		guarded[pv] = true
		for _, m := range gm {
			f.rule(fmt.Sprintf("tcp dport %d %s accept", pv, m), "privval from the signer")
		}
		f.rule(fmt.Sprintf("tcp dport %d counter drop", pv), "privval from anyone else")
		f.summary = append(f.summary, fmt.Sprintf("privval tcp/%d: only from the signer %s", pv, joinPrefixes(signers)))
		if rpc != 0 && !guarded[rpc] {
			guarded[rpc] = true
			f.rule(fmt.Sprintf("tcp dport %d counter drop", rpc), "RPC is loopback only")
			f.summary = append(f.summary, fmt.Sprintf("rpc tcp/%d: loopback only", rpc))
		}
	} else {
		privIPs := []netip.Addr{t.Validator.PrivateAddr.Addr()}
		if t.Policy.Sentry.Mesh {
			for _, o := range t.otherSentries(n) {
				privIPs = append(privIPs, o.PrivateAddr.Addr())
			}
		}
		priv := hostPrefixes(privIPs)
		f.rule("icmp type echo-request accept", "sentries are public")
		f.rule("icmpv6 type echo-request accept", "")
		for _, m := range f.addSet("private_peers", priv, false) {
			f.rule(fmt.Sprintf("tcp dport %d %s accept", p2p, m), "p2p from the validator and sentries, no rate limit")
		}
		f.sets = append(f.sets, nftSet{name: "p2p_meter_v4", dynamic: true}, nftSet{name: "p2p_meter_v6", dynamic: true})
		rate := fmt.Sprintf("limit rate over %d/minute burst %d packets", pol.NewConnsPerMinute, pol.NewConnsBurst)
		f.rule(fmt.Sprintf("tcp dport %d ct state new add @p2p_meter_v4 { ip saddr %s } counter drop", p2p, rate),
			fmt.Sprintf("over %d new p2p connections/min from one IPv4", pol.NewConnsPerMinute))
		f.rule(fmt.Sprintf("tcp dport %d ct state new add @p2p_meter_v6 { ip6 saddr %s } counter drop", p2p, rate),
			fmt.Sprintf("over %d new p2p connections/min from one IPv6", pol.NewConnsPerMinute))
		f.rule(fmt.Sprintf("tcp dport %d accept", p2p), "public p2p")
		f.summary = append(f.summary,
			fmt.Sprintf("p2p tcp/%d: public, at most %d new connections per minute per source IP (burst %d); the validator and sentries %s unlimited",
				p2p, pol.NewConnsPerMinute, pol.NewConnsBurst, joinPrefixes(priv)))
		if rpc != 0 && !guarded[rpc] {
			guarded[rpc] = true
			srcs := append([]string{t.Validator.PrivateAddr.Addr().String()}, pol.RPCSources...)
			rp := sortedPrefixes(srcs)
			for _, m := range f.addSet("rpc_sources", rp, true) {
				f.rule(fmt.Sprintf("tcp dport %d %s accept", rpc, m), "RPC from the validator (verify) and rpc_sources")
			}
			f.rule(fmt.Sprintf("tcp dport %d counter drop", rpc), "RPC closed to everyone else")
			f.summary = append(f.summary, fmt.Sprintf("rpc tcp/%d: only from %s (the validator runs verify; add hosts with policy.firewall.rpc_sources)", rpc, joinPrefixes(rp)))
		}
	}

	open := uniqueSortedPorts(pol.OpenTCPPorts, guarded)
	excl := map[int]bool{}
	for p := range guarded {
		excl[p] = true
	}
	for _, p := range open {
		excl[p] = true
	}
	api := uniqueSortedPorts(pol.APIPorts, excl)
	if len(api) > 0 {
		f.rule("tcp dport "+portsExpr(api)+" counter drop", "API ports closed (policy.firewall.api_ports)")
		f.summary = append(f.summary, fmt.Sprintf("api tcp/%s: closed", strings.Trim(portsExpr(api), "{ }")))
	}
	if len(open) > 0 {
		f.rule("tcp dport "+portsExpr(open)+" accept", "policy.firewall.open_tcp_ports")
		f.summary = append(f.summary, fmt.Sprintf("tcp/%s: open to everyone (policy.firewall.open_tcp_ports)", strings.Trim(portsExpr(open), "{ }")))
	}
	if f.dropMode {
		f.rule("counter", "everything else: dropped by the input policy")
		f.summary = append(f.summary, "everything else inbound: dropped (input policy drop); outbound is not filtered")
	} else {
		f.summary = append(f.summary, "everything else inbound: left to the host's other rules (input policy accept)")
	}
	for _, p := range uniqueSortedPorts(pol.OpenTCPPorts, nil) {
		if guarded[p] {
			f.notes = append(f.notes, fmt.Sprintf("policy.firewall.open_tcp_ports lists tcp/%d, which sentrylink guards on this node (SSH, p2p, privval or RPC); the guard's rules apply and the entry is ignored.", p))
		}
	}
	return f
}

func (t *Topology) firewallSummary(n *Node) (summary, notes []string) {
	f := t.buildFirewall(n)
	return f.summary, f.notes
}

// Firewall returns the nftables ruleset for node n: one table,
// inet signerd_sentrylink, whose input chain admits exactly what the
// topology needs. Loading it (nft -f) replaces that table atomically and
// leaves every other table alone; loading it twice gives the same state.
func (t *Topology) Firewall(n *Node) string {
	f := t.buildFirewall(n)
	var b strings.Builder
	fmt.Fprintf(&b, "#!/usr/sbin/nft -f\n")
	fmt.Fprintf(&b, "# signerd sentry firewall: %s %q of chain %q (topology %s)\n", n.Role, n.Name, t.ChainID, filepath.Base(t.Path))
	b.WriteString("# Generated; do not edit: change the topology and regenerate.\n")
	fmt.Fprintf(&b, "# Load with: nft -f <this file>. It replaces only table inet %s (declare, delete,\n", FirewallTable)
	b.WriteString("# define: atomic and repeatable) and leaves other tables alone.\n")
	if f.dropMode {
		b.WriteString("# Input policy drop: this chain drops whatever it does not accept, whatever other\n")
		b.WriteString("# tables accept, so open extra services with policy.firewall.open_tcp_ports.\n")
	}
	for _, n := range f.notes {
		for i, line := range wrap(n, 96) {
			if i == 0 {
				fmt.Fprintf(&b, "# NOTE: %s\n", line)
			} else {
				fmt.Fprintf(&b, "#       %s\n", line)
			}
		}
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "table inet %s\n", FirewallTable)
	fmt.Fprintf(&b, "delete table inet %s\n", FirewallTable)
	fmt.Fprintf(&b, "table inet %s {\n", FirewallTable)

	sets := append([]nftSet(nil), f.sets...)
	sort.Slice(sets, func(i, j int) bool { return sets[i].name < sets[j].name })
	for _, s := range sets {
		typ := "ipv4_addr"
		if strings.HasSuffix(s.name, "_v6") {
			typ = "ipv6_addr"
		}
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.name, typ)
		switch {
		case s.dynamic:
			b.WriteString("\t\tflags dynamic\n\t\ttimeout 2m\n")
		case s.interval:
			b.WriteString("\t\tflags interval\n")
		}
		if len(s.prefixes) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", joinPrefixes(s.prefixes))
		}
		b.WriteString("\t}\n\n")
	}
	policy := "drop"
	if !f.dropMode {
		policy = "accept"
	}
	b.WriteString("\tchain input {\n")
	fmt.Fprintf(&b, "\t\ttype filter hook input priority filter; policy %s;\n", policy)
	for _, r := range f.rules {
		b.WriteString("\t\t" + r.text)
		if r.comment != "" {
			b.WriteString(" comment " + strconv.Quote(r.comment))
		}
		b.WriteString("\n")
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
