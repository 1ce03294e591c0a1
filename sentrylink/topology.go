package sentrylink

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Role is what a node does in the topology.
type Role int

// The roles a topology node can have.
const (
	RoleValidator Role = iota + 1
	RoleSentry
)

func (r Role) String() string {
	switch r {
	case RoleValidator:
		return "validator"
	case RoleSentry:
		return "sentry"
	}
	return "unknown"
}

// MarshalText makes roles readable in JSON.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads "validator" or "sentry".
func (r *Role) UnmarshalText(b []byte) error {
	for _, v := range []Role{RoleValidator, RoleSentry} {
		if v.String() == string(b) {
			*r = v
			return nil
		}
	}
	return fmt.Errorf("unknown role %q (want validator or sentry)", b)
}

// Topology is a validated topology file: one validator, its signer hosts, at
// least two sentries and the policy that turns them into settings.
type Topology struct {
	// Path is the file the topology was read from (for messages).
	Path      string
	ChainID   string
	Validator *Node
	// Signers are the IP addresses the remote signer connects from.
	Signers  []netip.Addr
	Sentries []*Node
	Policy   Policy
}

// Node is one CometBFT node of the topology.
type Node struct {
	Name string
	Role Role
	ID   NodeID
	// PrivateAddr is where the other nodes of the topology reach its p2p port.
	PrivateAddr netip.AddrPort
	// RPC is the base URL verify uses for this node's RPC.
	RPC *url.URL
	// RPCLaddr is the [rpc] laddr apply writes ("tcp://host:port" or "unix://...").
	RPCLaddr string

	// PrivvalAddr (validator only) is where the validator listens for the
	// remote signer (priv_validator_laddr).
	PrivvalAddr netip.AddrPort

	// PublicAddr (sentry only) is the host:port the sentry advertises to the
	// public network (external_address). The host may be a DNS name.
	PublicAddr string
	// AddrBook (sentry only, optional) is a path to the sentry's addrbook.json
	// readable where verify runs.
	AddrBook string
	// ExtraPeers (sentry only) are further persistent peers, as id@host:port.
	ExtraPeers []string
}

// PeerAddr is the node's id@host:port on the private network.
func (n *Node) PeerAddr() string { return string(n.ID) + "@" + n.PrivateAddr.String() }

// rpcPort is the TCP port of RPCLaddr, or 0 for a unix socket.
func (n *Node) rpcPort() uint16 {
	ap, err := laddrAddrPort(n.RPCLaddr)
	if err != nil {
		return 0
	}
	return ap.Port()
}

// Nodes returns the validator followed by the sentries in file order.
func (t *Topology) Nodes() []*Node {
	return append([]*Node{t.Validator}, t.Sentries...)
}

// Node returns the node called name.
func (t *Topology) Node(name string) (*Node, error) {
	var names []string
	for _, n := range t.Nodes() {
		if n.Name == name {
			return n, nil
		}
		names = append(names, strconv.Quote(n.Name))
	}
	return nil, fmt.Errorf("%s: no node named %q; the topology has %s", t.Path, name, strings.Join(names, ", "))
}

// otherSentries returns the sentries other than n.
func (t *Topology) otherSentries(n *Node) []*Node {
	var out []*Node
	for _, s := range t.Sentries {
		if s != n {
			out = append(out, s)
		}
	}
	return out
}

// Policy holds the tunable parts of the plan. Defaults follow CometBFT's
// sentry node guide; see [DefaultPolicy].
type Policy struct {
	Validator ValidatorPolicy `toml:"validator" json:"validator"`
	Sentry    SentryPolicy    `toml:"sentry" json:"sentry"`
	Firewall  FirewallPolicy  `toml:"firewall" json:"firewall"`
}

// ValidatorPolicy tunes the validator's [p2p] settings. PEX off, no seeds and
// RPC on loopback are invariants, not policy.
type ValidatorPolicy struct {
	AddrBookStrict      bool `toml:"addr_book_strict" json:"addr_book_strict"`
	MaxNumInboundPeers  int  `toml:"max_num_inbound_peers" json:"max_num_inbound_peers"`
	MaxNumOutboundPeers int  `toml:"max_num_outbound_peers" json:"max_num_outbound_peers"`
	// BindP2PPrivate makes [p2p] laddr the validator's private address
	// instead of 0.0.0.0.
	BindP2PPrivate bool `toml:"bind_p2p_private" json:"bind_p2p_private"`
}

// SentryPolicy tunes the sentries' [p2p] and [rpc] settings.
type SentryPolicy struct {
	Pex bool `toml:"pex" json:"pex"`
	// Mesh makes every sentry a persistent, unconditional peer of the others.
	Mesh                bool   `toml:"mesh" json:"mesh"`
	AddrBookStrict      bool   `toml:"addr_book_strict" json:"addr_book_strict"`
	MaxNumInboundPeers  int    `toml:"max_num_inbound_peers" json:"max_num_inbound_peers"`
	MaxNumOutboundPeers int    `toml:"max_num_outbound_peers" json:"max_num_outbound_peers"`
	SendRate            int64  `toml:"send_rate" json:"send_rate"`
	RecvRate            int64  `toml:"recv_rate" json:"recv_rate"`
	DialTimeout         string `toml:"dial_timeout" json:"dial_timeout"`
	HandshakeTimeout    string `toml:"handshake_timeout" json:"handshake_timeout"`
	RPCUnsafe           bool   `toml:"rpc_unsafe" json:"rpc_unsafe"`
}

// FirewallPolicy tunes the generated nftables rules.
type FirewallPolicy struct {
	// InputPolicy is the input chain's policy: "drop" (default: only what the
	// rules accept reaches the host) or "accept" (only the ports sentrylink
	// guards are filtered; everything else is left to the host's other rules).
	InputPolicy string `toml:"input_policy" json:"input_policy"`
	// AdminSources are IPs or CIDR prefixes allowed to SSH in. Empty: SSH is
	// accepted from anywhere so nobody is locked out.
	AdminSources []string `toml:"admin_sources" json:"admin_sources"`
	SSHPort      int      `toml:"ssh_port" json:"ssh_port"`
	// NewConnsPerMinute and NewConnsBurst limit new connections per source
	// IP to a sentry's public p2p port.
	NewConnsPerMinute int `toml:"new_conns_per_minute" json:"new_conns_per_minute"`
	NewConnsBurst     int `toml:"new_conns_burst" json:"new_conns_burst"`
	// RPCSources may reach a sentry's RPC port, besides the validator's
	// private IP (always allowed, so verify can run on the validator host).
	RPCSources []string `toml:"rpc_sources" json:"rpc_sources"`
	// OpenTCPPorts are opened to everyone on every node of the role
	// (for example 1317 to serve the REST API from sentries).
	OpenTCPPorts []int `toml:"open_tcp_ports" json:"open_tcp_ports"`
	// APIPorts are closed explicitly (Cosmos SDK REST 1317, gRPC 9090,
	// gRPC-web 9091), which matters when InputPolicy is "accept".
	APIPorts []int `toml:"api_ports" json:"api_ports"`
}

// DefaultPolicy returns the policy used for every key a topology's [policy]
// table leaves out.
func DefaultPolicy() Policy {
	return Policy{
		Validator: ValidatorPolicy{
			AddrBookStrict:      false,
			MaxNumInboundPeers:  0,
			MaxNumOutboundPeers: 0,
			BindP2PPrivate:      true,
		},
		Sentry: SentryPolicy{
			Pex:                 true,
			Mesh:                true,
			AddrBookStrict:      false,
			MaxNumInboundPeers:  60,
			MaxNumOutboundPeers: 40,
			SendRate:            5120000,
			RecvRate:            5120000,
			DialTimeout:         "3s",
			HandshakeTimeout:    "20s",
			RPCUnsafe:           false,
		},
		Firewall: FirewallPolicy{
			InputPolicy:       "drop",
			AdminSources:      []string{},
			SSHPort:           22,
			NewConnsPerMinute: 20,
			NewConnsBurst:     20,
			RPCSources:        []string{},
			OpenTCPPorts:      []int{},
			APIPorts:          []int{1317, 9090, 9091},
		},
	}
}

// The file format, decoded strictly.
type topologyFile struct {
	ChainID   string         `toml:"chain_id"`
	Validator *validatorTOML `toml:"validator"`
	Signer    *signerTOML    `toml:"signer"`
	Sentry    []sentryTOML   `toml:"sentry"`
	Policy    Policy         `toml:"policy"`
}

type validatorTOML struct {
	Name        string `toml:"name"`
	NodeID      string `toml:"node_id"`
	NodeKey     string `toml:"node_key"`
	PrivateAddr string `toml:"private_addr"`
	PrivvalAddr string `toml:"privval_addr"`
	RPC         string `toml:"rpc"`
	RPCLaddr    string `toml:"rpc_laddr"`
}

type signerTOML struct {
	PrivateIP  string   `toml:"private_ip"`
	PrivateIPs []string `toml:"private_ips"`
}

type sentryTOML struct {
	Name                 string   `toml:"name"`
	NodeID               string   `toml:"node_id"`
	NodeKey              string   `toml:"node_key"`
	PrivateAddr          string   `toml:"private_addr"`
	PublicAddr           string   `toml:"public_addr"`
	RPC                  string   `toml:"rpc"`
	RPCLaddr             string   `toml:"rpc_laddr"`
	AddrBook             string   `toml:"addrbook"`
	ExtraPersistentPeers []string `toml:"extra_persistent_peers"`
}

// maxTopologySize bounds the topology file: real ones are a few KiB.
const maxTopologySize = 1 << 20

// FieldError is one problem in a topology file, naming the key and the fix.
type FieldError struct {
	File    string
	Key     string // e.g. `sentry[2] "sentry-2" node_id`
	Problem string
	Fix     string
}

func (e *FieldError) Error() string {
	s := e.File + ": " + e.Key + ": " + e.Problem
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s
}

// LoadTopology reads and validates the topology file at path. node_key paths
// are relative to the file's folder.
func LoadTopology(path string) (*Topology, error) {
	data, err := readFileLimit(path, maxTopologySize)
	if err != nil {
		return nil, fmt.Errorf("cannot read topology: %w", err)
	}
	return ParseTopology(data, path)
}

// ParseTopology validates a topology file's contents. path names the file in
// messages and anchors relative node_key and addrbook paths. Every problem is
// reported (joined), not only the first.
func ParseTopology(data []byte, path string) (*Topology, error) {
	if len(data) > maxTopologySize {
		return nil, fmt.Errorf("%s: larger than %d bytes; this is not a topology file", path, maxTopologySize)
	}
	var f topologyFile
	f.Policy = DefaultPolicy()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, topologyDecodeError(path, err)
	}
	v := &validator{file: path, dir: filepath.Dir(path)}
	t := v.topology(&f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return t, nil
}

func topologyDecodeError(path string, err error) error {
	var sme *toml.StrictMissingError
	if errors.As(err, &sme) {
		var errs []error
		for _, e := range sme.Errors {
			row, _ := e.Position()
			errs = append(errs, &FieldError{File: fmt.Sprintf("%s:%d", path, row), Key: strings.Join(e.Key(), "."),
				Problem: "unknown key", Fix: "check the spelling against the topology reference, or remove the key"})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		if key == "" {
			key = "(document)"
		}
		return &FieldError{File: fmt.Sprintf("%s:%d", path, row), Key: key, Problem: de.Error(),
			Fix: "correct the TOML syntax or the value's type"}
	}
	return fmt.Errorf("%s: %v", path, err)
}

type validator struct {
	file string
	dir  string
	errs []error
}

func (v *validator) fail(key, problem, fix string) {
	v.errs = append(v.errs, &FieldError{File: v.file, Key: key, Problem: problem, Fix: fix})
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (v *validator) topology(f *topologyFile) *Topology {
	t := &Topology{Path: v.file, Policy: f.Policy}
	t.ChainID = f.ChainID
	if strings.TrimSpace(f.ChainID) == "" {
		v.fail("chain_id", "missing", `set chain_id = "<the chain's id>" (genesis.json "chain_id")`)
	}

	if f.Validator == nil {
		v.fail("[validator]", "missing", "add a [validator] table with name, node_id, private_addr, privval_addr and rpc")
		f.Validator = &validatorTOML{}
	}
	fv := f.Validator
	val := &Node{Role: RoleValidator}
	t.Validator = val
	val.Name = v.name("validator.name", fv.Name)
	val.ID = v.nodeID("validator", fv.NodeID, fv.NodeKey)
	val.PrivateAddr = v.ipPort("validator.private_addr", fv.PrivateAddr, "the validator's private IP and p2p port, e.g. \"10.0.1.5:26656\"")
	val.PrivvalAddr = v.ipPort("validator.privval_addr", fv.PrivvalAddr, "the validator's private IP and the port signerd dials, e.g. \"10.0.1.5:26659\"")
	if val.PrivateAddr.IsValid() && val.PrivvalAddr.IsValid() {
		if val.PrivvalAddr.Addr() != val.PrivateAddr.Addr() && !val.PrivvalAddr.Addr().IsUnspecified() {
			v.fail("validator.privval_addr", fmt.Sprintf("IP %s differs from private_addr's %s", val.PrivvalAddr.Addr(), val.PrivateAddr.Addr()),
				"use the validator's private IP in both")
		}
		if val.PrivvalAddr.Port() == val.PrivateAddr.Port() {
			v.fail("validator.privval_addr", "uses the p2p port", "pick another port (26659 is usual)")
		}
	}
	val.RPC = v.rpcURL("validator.rpc", fv.RPC)
	val.RPCLaddr = v.validatorRPCLaddr(fv.RPCLaddr, val.RPC)

	if f.Signer == nil {
		v.fail("[signer]", "missing", `add [signer] private_ip = "<the signer host's IP on the private link>"`)
	} else {
		ips := append([]string(nil), f.Signer.PrivateIPs...)
		if f.Signer.PrivateIP != "" {
			ips = append([]string{f.Signer.PrivateIP}, ips...)
		}
		if len(ips) == 0 {
			v.fail("signer.private_ip", "missing", `set private_ip = "<the signer host's IP>" (or private_ips = [...] for several signer hosts)`)
		}
		seen := map[netip.Addr]bool{}
		for _, s := range ips {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				v.fail("signer.private_ip", fmt.Sprintf("%q is not an IP address", s), "use the signer host's IP address, without port or prefix length")
				continue
			}
			a = a.Unmap()
			if !seen[a] {
				seen[a] = true
				t.Signers = append(t.Signers, a)
			}
		}
	}

	if len(f.Sentry) < 2 {
		v.fail("[[sentry]]", fmt.Sprintf("%d sentries; at least 2 are required (one sentry is a single point of failure)", len(f.Sentry)),
			"add another [[sentry]] table")
	}
	for i := range f.Sentry {
		fs := &f.Sentry[i]
		key := fmt.Sprintf("sentry[%d]", i+1)
		if fs.Name != "" {
			key = fmt.Sprintf("sentry[%d] %q", i+1, fs.Name)
		}
		s := &Node{Role: RoleSentry}
		s.Name = v.name(key+" name", fs.Name)
		s.ID = v.nodeID(key, fs.NodeID, fs.NodeKey)
		s.PrivateAddr = v.ipPort(key+" private_addr", fs.PrivateAddr, "the sentry's private IP and p2p port, e.g. \"10.0.1.10:26656\"")
		s.PublicAddr = v.hostPort(key+" public_addr", fs.PublicAddr)
		s.RPC = v.rpcURL(key+" rpc", fs.RPC)
		s.RPCLaddr = v.sentryRPCLaddr(key, fs.RPCLaddr, s)
		if fs.AddrBook != "" {
			s.AddrBook = fs.AddrBook
			if !filepath.IsAbs(s.AddrBook) {
				s.AddrBook = filepath.Join(v.dir, s.AddrBook)
			}
		}
		for _, p := range fs.ExtraPersistentPeers {
			norm, err := normalizePeerAddr(p)
			if err != nil {
				v.fail(key+" extra_persistent_peers", err.Error(), `write each peer as "<40 hex id>@host:port"`)
				continue
			}
			s.ExtraPeers = append(s.ExtraPeers, norm)
		}
		t.Sentries = append(t.Sentries, s)
	}
	v.crossChecks(t)
	v.policy(&t.Policy)
	return t
}

func (v *validator) crossChecks(t *Topology) {
	names := map[string]bool{}
	ids := map[NodeID]string{}
	ips := map[netip.Addr]string{}
	for _, n := range t.Nodes() {
		if n.Name != "" {
			if names[n.Name] {
				v.fail(n.Role.String()+" "+strconv.Quote(n.Name), "name used twice", "give every node a unique name")
			}
			names[n.Name] = true
		}
		if n.ID != "" {
			if other, ok := ids[n.ID]; ok {
				v.fail(strconv.Quote(n.Name)+" node_id", fmt.Sprintf("same node ID as %q", other), "every node has its own node_key.json; copy the right ID")
			}
			ids[n.ID] = n.Name
		}
		if rp := n.rpcPort(); rp != 0 && n.PrivateAddr.IsValid() && (rp == n.PrivateAddr.Port() || (n.Role == RoleValidator && rp == n.PrivvalAddr.Port())) {
			v.fail(strconv.Quote(n.Name)+" rpc", fmt.Sprintf("RPC port %d is also the node's p2p or privval port", rp), "give RPC its own port (26657 is usual)")
		}
		if n.PrivateAddr.IsValid() {
			if other, ok := ips[n.PrivateAddr.Addr()]; ok {
				v.fail(strconv.Quote(n.Name)+" private_addr", fmt.Sprintf("same IP as %q", other),
					"each node needs its own private IP: CometBFT refuses two peers from one IP, and the firewall admits peers by IP")
			}
			ips[n.PrivateAddr.Addr()] = n.Name
		}
	}
	for _, s := range t.Signers {
		if name, ok := ips[s]; ok {
			v.fail("signer.private_ip", fmt.Sprintf("%s is also %q's private IP", s, name), "run signerd on its own host")
		}
	}
}

func (v *validator) name(key, s string) string {
	if s == "" {
		v.fail(key, "missing", `set name = "<a short name>"; --node selects nodes by it`)
		return ""
	}
	if !nameRE.MatchString(s) {
		v.fail(key, fmt.Sprintf("%q is not a usable name", s), "use letters, digits, '.', '_' and '-' (at most 63 characters)")
	}
	return s
}

func (v *validator) nodeID(key, id, keyFile string) NodeID {
	var fromID, fromKey NodeID
	if id != "" {
		n, err := ParseNodeID(id)
		if err != nil {
			v.fail(key+" node_id", err.Error(), `copy the output of "cometbft show-node-id" on that node, or use node_key = "path/to/node_key.json"`)
		}
		fromID = n
	}
	if keyFile != "" {
		p := keyFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(v.dir, p)
		}
		n, err := NodeIDFromKeyFile(p)
		if err != nil {
			v.fail(key+" node_key", err.Error(), "point node_key at the node's config/node_key.json (relative paths start at the topology file's folder)")
		}
		fromKey = n
	}
	switch {
	case id == "" && keyFile == "":
		v.fail(key+" node_id", "missing", `set node_id = "<40 hex>" or node_key = "path/to/node_key.json"`)
	case fromID != "" && fromKey != "" && fromID != fromKey:
		v.fail(key+" node_id", fmt.Sprintf("%s does not match node_key's %s", fromID, fromKey), "keep one of the two, or fix the one that is wrong")
	case fromID != "":
		return fromID
	}
	return fromKey
}

func (v *validator) ipPort(key, s, want string) netip.AddrPort {
	if s == "" {
		v.fail(key, "missing", "set it to "+want)
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		v.fail(key, fmt.Sprintf("%q is not an IP:port", s), "set it to "+want+" (IP literal: the firewall admits peers by IP)")
		return netip.AddrPort{}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if ap.Addr().IsUnspecified() {
		v.fail(key, fmt.Sprintf("%q is not a reachable address", s), "set it to "+want)
		return netip.AddrPort{}
	}
	return ap
}

func (v *validator) hostPort(key, s string) string {
	if s == "" {
		v.fail(key, "missing", `set public_addr = "<public IP or DNS name>:<port>" (the sentry's external_address)`)
		return ""
	}
	if strings.Contains(s, "@") || strings.Contains(s, "://") {
		v.fail(key, fmt.Sprintf("%q is not host:port", s), "write only host:port: CometBFT rejects an ID or scheme in external_address")
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		v.fail(key, fmt.Sprintf("%q is not host:port", s), "write it as host:port, e.g. \"203.0.113.50:26656\"")
		return ""
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		v.fail(key, fmt.Sprintf("port %q is not 1-65535", port), "use the port the public reaches the sentry on")
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && (a.IsUnspecified() || a.IsLoopback()) {
		v.fail(key, fmt.Sprintf("%q cannot be dialed by the public", s), "use the sentry's public address")
		return ""
	}
	return s
}

func (v *validator) rpcURL(key, s string) *url.URL {
	if s == "" {
		v.fail(key, "missing", `set rpc = "http://host:port" (verify queries /status and /net_info there)`)
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		v.fail(key, fmt.Sprintf("%q is not an http(s)://host:port URL", s), `write it as "http://10.0.1.10:26657"`)
		return nil
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "26657")
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		v.fail(key, fmt.Sprintf("port %q is not 1-65535", u.Port()), "use the node's RPC port")
		return nil
	}
	u.Path = ""
	return u
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func (v *validator) validatorRPCLaddr(override string, u *url.URL) string {
	if override != "" {
		if !laddrIsLocal(override) {
			v.fail("validator.rpc_laddr", fmt.Sprintf("%q is not loopback or a unix socket", override),
				"the validator's RPC stays on loopback (tcp://127.0.0.1:26657) or a unix:// socket; reach it over SSH")
			return ""
		}
		return override
	}
	if u == nil {
		return ""
	}
	if !isLoopbackHost(u.Hostname()) {
		v.fail("validator.rpc", fmt.Sprintf("%q is not a loopback URL", u.String()),
			`the validator's RPC listens on loopback only: run verify on the validator host (rpc = "http://127.0.0.1:26657") or through an SSH tunnel and set rpc_laddr to the validator's real loopback address`)
		return ""
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	return "tcp://" + net.JoinHostPort(host, u.Port())
}

func (v *validator) sentryRPCLaddr(key, override string, s *Node) string {
	if override != "" {
		if strings.HasPrefix(override, "unix://") {
			return override
		}
		ap, err := laddrAddrPort(override)
		if err != nil {
			v.fail(key+" rpc_laddr", fmt.Sprintf("%q is not tcp://IP:port or unix://path", override), `write it as "tcp://10.0.1.10:26657"`)
			return ""
		}
		if ap.Addr().IsUnspecified() || (s.PrivateAddr.IsValid() && !ap.Addr().IsLoopback() && ap.Addr() != s.PrivateAddr.Addr()) {
			v.fail(key+" rpc_laddr", fmt.Sprintf("%q would expose RPC beyond the private network; its /net_info lists the validator's ID and IP", override),
				"bind RPC to loopback or to the sentry's private IP")
			return ""
		}
		return override
	}
	if s.RPC == nil {
		return ""
	}
	host := s.RPC.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		v.fail(key+" rpc", fmt.Sprintf("host %q is a name; apply needs an IP to bind [rpc] laddr", host),
			`use the sentry's private IP in rpc, or set rpc_laddr = "tcp://<private IP>:26657"`)
		return ""
	}
	a = a.Unmap()
	if s.PrivateAddr.IsValid() && !a.IsLoopback() && a != s.PrivateAddr.Addr() {
		v.fail(key+" rpc", fmt.Sprintf("%s is neither loopback nor the sentry's private IP %s; RPC there would expose /net_info, which lists the validator", a, s.PrivateAddr.Addr()),
			"use the private IP (or 127.0.0.1 with an SSH tunnel and rpc_laddr)")
		return ""
	}
	return "tcp://" + net.JoinHostPort(a.String(), s.RPC.Port())
}

// laddrAddrPort parses "tcp://IP:port" (the scheme is optional).
func laddrAddrPort(s string) (netip.AddrPort, error) {
	s = strings.TrimPrefix(s, "tcp://")
	if strings.Contains(s, "://") {
		return netip.AddrPort{}, fmt.Errorf("not a tcp address")
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// laddrIsLocal reports whether an RPC listen address is loopback or a unix
// socket.
func laddrIsLocal(s string) bool {
	if strings.HasPrefix(s, "unix://") {
		return true
	}
	ap, err := laddrAddrPort(s)
	if err == nil {
		return ap.Addr().IsLoopback()
	}
	// "tcp://localhost:26657"
	host, _, err := net.SplitHostPort(strings.TrimPrefix(s, "tcp://"))
	return err == nil && host == "localhost"
}

func (v *validator) policy(p *Policy) {
	nonNeg := func(key string, n int) {
		if n < 0 {
			v.fail(key, fmt.Sprintf("%d is negative", n), "use 0 or more")
		}
	}
	nonNeg("policy.validator.max_num_inbound_peers", p.Validator.MaxNumInboundPeers)
	nonNeg("policy.validator.max_num_outbound_peers", p.Validator.MaxNumOutboundPeers)
	nonNeg("policy.sentry.max_num_inbound_peers", p.Sentry.MaxNumInboundPeers)
	nonNeg("policy.sentry.max_num_outbound_peers", p.Sentry.MaxNumOutboundPeers)
	if p.Sentry.SendRate <= 0 {
		v.fail("policy.sentry.send_rate", fmt.Sprintf("%d is not positive", p.Sentry.SendRate), "bytes per second per connection; the default is 5120000")
	}
	if p.Sentry.RecvRate <= 0 {
		v.fail("policy.sentry.recv_rate", fmt.Sprintf("%d is not positive", p.Sentry.RecvRate), "bytes per second per connection; the default is 5120000")
	}
	p.Sentry.DialTimeout = v.duration("policy.sentry.dial_timeout", p.Sentry.DialTimeout, "3s")
	p.Sentry.HandshakeTimeout = v.duration("policy.sentry.handshake_timeout", p.Sentry.HandshakeTimeout, "20s")

	fw := &p.Firewall
	if fw.InputPolicy != "drop" && fw.InputPolicy != "accept" {
		v.fail("policy.firewall.input_policy", fmt.Sprintf("%q is neither \"drop\" nor \"accept\"", fw.InputPolicy), `use "drop" (default) or "accept"`)
	}
	v.port("policy.firewall.ssh_port", fw.SSHPort)
	if fw.NewConnsPerMinute < 1 || fw.NewConnsPerMinute > 100000 {
		v.fail("policy.firewall.new_conns_per_minute", fmt.Sprintf("%d is out of range", fw.NewConnsPerMinute), "use 1 to 100000; the default is 20")
	}
	if fw.NewConnsBurst < 1 || fw.NewConnsBurst > 100000 {
		v.fail("policy.firewall.new_conns_burst", fmt.Sprintf("%d is out of range", fw.NewConnsBurst), "use 1 to 100000; the default is 20")
	}
	for _, s := range fw.AdminSources {
		if _, err := parseSource(s); err != nil {
			v.fail("policy.firewall.admin_sources", err.Error(), `list IPs or CIDR prefixes, e.g. ["192.0.2.10", "10.0.9.0/24"]`)
		}
	}
	for _, s := range fw.RPCSources {
		if _, err := parseSource(s); err != nil {
			v.fail("policy.firewall.rpc_sources", err.Error(), `list IPs or CIDR prefixes, e.g. ["10.0.1.30"]`)
		}
	}
	for _, port := range fw.OpenTCPPorts {
		v.port("policy.firewall.open_tcp_ports", port)
	}
	for _, port := range fw.APIPorts {
		v.port("policy.firewall.api_ports", port)
	}
}

func (v *validator) port(key string, p int) {
	if p < 1 || p > 65535 {
		v.fail(key, fmt.Sprintf("%d is not a port", p), "use 1 to 65535")
	}
}

func (v *validator) duration(key, s, def string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		v.fail(key, fmt.Sprintf("%q is not a duration", s), fmt.Sprintf("write a Go duration such as %q", def))
		return s
	}
	if d <= 0 {
		v.fail(key, fmt.Sprintf("%q is not positive", s), fmt.Sprintf("0 disables or breaks the timeout; the default is %q", def))
		return s
	}
	return d.String()
}

// parseSource parses an IP or CIDR prefix into a prefix.
func parseSource(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// normalizePeerAddr validates "id@host:port" (optionally tcp://) and returns
// it with a lower-case ID and without the scheme.
func normalizePeerAddr(s string) (string, error) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "tcp://"))
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", fmt.Errorf("%q has no node ID (want id@host:port)", s)
	}
	id, err := ParseNodeID(s[:at])
	if err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(s[at+1:])
	if err != nil || host == "" {
		return "", fmt.Errorf("%q: %q is not host:port", s, s[at+1:])
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	return string(id) + "@" + net.JoinHostPort(host, port), nil
}

// sortedPrefixes parses sources, drops prefixes contained in others and
// returns them sorted (IPv4 first), so generated sets never overlap.
func sortedPrefixes(srcs []string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range srcs {
		if p, err := parseSource(s); err == nil {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Addr().Is4() != ps[j].Addr().Is4() {
			return ps[i].Addr().Is4()
		}
		if ps[i].Bits() != ps[j].Bits() {
			return ps[i].Bits() < ps[j].Bits()
		}
		return ps[i].Addr().Less(ps[j].Addr())
	})
	var out []netip.Prefix
	for _, p := range ps {
		covered := false
		for _, q := range out {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Addr().Is4() != out[j].Addr().Is4() {
			return out[i].Addr().Is4()
		}
		if out[i].Addr() != out[j].Addr() {
			return out[i].Addr().Less(out[j].Addr())
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}
