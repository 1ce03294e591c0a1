package sentrylink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// CheckStatus is the outcome of one verify check.
type CheckStatus int

// Check outcomes. Only Fail makes verify fail.
const (
	CheckPass CheckStatus = iota + 1
	CheckFail
	CheckSkip
)

func (s CheckStatus) String() string {
	switch s {
	case CheckPass:
		return "PASS"
	case CheckFail:
		return "FAIL"
	case CheckSkip:
		return "SKIP"
	}
	return "?"
}

// MarshalText makes statuses readable in JSON.
func (s CheckStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads "PASS", "FAIL" or "SKIP".
func (s *CheckStatus) UnmarshalText(b []byte) error {
	for _, v := range []CheckStatus{CheckPass, CheckFail, CheckSkip} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown check status %q (want PASS, FAIL or SKIP)", b)
}

// Check is one verify check and its result.
type Check struct {
	Status CheckStatus `json:"status"`
	Name   string      `json:"name"`
	Detail string      `json:"detail"`
}

// VerifyReport lists the checks verify ran.
type VerifyReport struct {
	Checks []Check `json:"checks"`
}

// Count returns the number of checks with status s.
func (r *VerifyReport) Count(s CheckStatus) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Failed reports whether any check failed.
func (r *VerifyReport) Failed() bool { return r.Count(CheckFail) > 0 }

// WriteText writes one line per check and a summary.
func (r *VerifyReport) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%s  %s\n", c.Status, c.Name)
		for _, line := range wrap(c.Detail, 92) {
			fmt.Fprintf(&b, "      %s\n", line)
		}
	}
	result := "pass"
	if r.Failed() {
		result = "FAIL"
	}
	fmt.Fprintf(&b, "\nverify: %s: %d passed, %d failed, %d skipped\n", result, r.Count(CheckPass), r.Count(CheckFail), r.Count(CheckSkip))
	_, err := io.WriteString(w, b.String())
	return err
}

// VerifyOptions configures [Topology.Verify].
type VerifyOptions struct {
	// Public lists RPC base URLs of public nodes you control that must never
	// see the validator.
	Public []string
	// Timeout bounds each HTTP request (default 5s).
	Timeout time.Duration
	// Client sends the requests; nil uses a plain client with Timeout.
	Client *http.Client
}

// maxRPCResponse bounds an RPC response body: /net_info with a hundred
// peers is a few hundred KiB.
const maxRPCResponse = 8 << 20

// maxAddrBookSize bounds addrbook.json (thousands of entries fit in a few MiB).
const maxAddrBookSize = 64 << 20

type statusResult struct {
	NodeInfo struct {
		ID      string `json:"id"`
		Network string `json:"network"`
		Moniker string `json:"moniker"`
	} `json:"node_info"`
	SyncInfo struct {
		LatestBlockHeight json.Number `json:"latest_block_height"`
	} `json:"sync_info"`
}

// NetInfo is the part of CometBFT's /net_info result verify reads. Integers
// arrive as JSON strings (CometBFT's libs/json); connection_status is ignored.
type NetInfo struct {
	Listening bool        `json:"listening"`
	NPeers    json.Number `json:"n_peers"`
	Peers     []NetPeer   `json:"peers"`
}

// NetPeer is one connected peer in /net_info.
type NetPeer struct {
	NodeInfo struct {
		ID         string `json:"id"`
		ListenAddr string `json:"listen_addr"`
		Network    string `json:"network"`
		Moniker    string `json:"moniker"`
		Other      struct {
			RPCAddress string `json:"rpc_address"`
		} `json:"other"`
	} `json:"node_info"`
	IsOutbound bool   `json:"is_outbound"`
	RemoteIP   string `json:"remote_ip"`
}

type rpcClient struct {
	c *http.Client
}

// get fetches base+path and decodes the JSON-RPC result into out.
func (rc rpcClient) get(ctx context.Context, base *url.URL, path string, out any) error {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := rc.c.Do(req)
	if err != nil {
		return fmt.Errorf("RPC %s unreachable: %v", u.String(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRPCResponse+1))
	if err != nil {
		return fmt.Errorf("RPC %s: reading the response: %v", u.String(), err)
	}
	if len(body) > maxRPCResponse {
		return fmt.Errorf("RPC %s: response larger than %d bytes", u.String(), maxRPCResponse)
	}
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("RPC %s: HTTP %d, not a CometBFT JSON-RPC response: %v", u.String(), resp.StatusCode, err)
	}
	if env.Error != nil {
		return fmt.Errorf("RPC %s: error %d: %s %s", u.String(), env.Error.Code, env.Error.Message, env.Error.Data)
	}
	if len(env.Result) == 0 {
		return fmt.Errorf("RPC %s: HTTP %d without a result", u.String(), resp.StatusCode)
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return fmt.Errorf("RPC %s: unexpected result: %v", u.String(), err)
	}
	return nil
}

type verifier struct {
	t      *Topology
	rc     rpcClient
	report *VerifyReport
}

func (v *verifier) add(s CheckStatus, name, detail string) {
	v.report.Checks = append(v.report.Checks, Check{Status: s, Name: name, Detail: detail})
}

func (v *verifier) label(n *Node) string { return fmt.Sprintf("%s %q", n.Role, n.Name) }

// Verify checks the live network against the topology through each node's
// RPC (/status and /net_info): the validator's peers are exactly its
// sentries, connected from their private IPs; every sentry is connected to
// the validator from the validator's private IP; no public node and no
// sentry address book (when the topology names one) knows the validator.
// An unreachable RPC is a failed check, never a skipped one.
func (t *Topology) Verify(ctx context.Context, opts VerifyOptions) *VerifyReport {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	v := &verifier{t: t, rc: rpcClient{client}, report: &VerifyReport{}}
	val := t.Validator

	// The validator.
	if v.status(ctx, val) {
		var ni NetInfo
		if err := v.rc.get(ctx, val.RPC, "/net_info", &ni); err != nil {
			v.add(CheckFail, v.label(val)+" /net_info", err.Error())
		} else {
			v.validatorPeers(&ni)
		}
	}
	// The sentries.
	for _, s := range t.Sentries {
		if v.status(ctx, s) {
			var ni NetInfo
			if err := v.rc.get(ctx, s.RPC, "/net_info", &ni); err != nil {
				v.add(CheckFail, v.label(s)+" /net_info", err.Error())
			} else {
				v.sentryPeers(s, &ni)
			}
		}
		v.addrBook(s)
	}
	// Public nodes.
	for _, raw := range opts.Public {
		name := "public node " + raw + " does not see the validator"
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(CheckFail, name, fmt.Sprintf("%q is not an http(s)://host:port URL", raw))
			continue
		}
		var ni NetInfo
		if err := v.rc.get(ctx, u, "/net_info", &ni); err != nil {
			v.add(CheckFail, name, err.Error())
			continue
		}
		var leaks []string
		for _, p := range ni.Peers {
			ip, _ := netip.ParseAddr(p.RemoteIP)
			if strings.EqualFold(p.NodeInfo.ID, string(val.ID)) || (ip.IsValid() && ip.Unmap() == val.PrivateAddr.Addr()) {
				leaks = append(leaks, fmt.Sprintf("%s from %s", p.NodeInfo.ID, p.RemoteIP))
			}
		}
		if len(leaks) > 0 {
			v.add(CheckFail, name, "the validator is connected to a public node: "+strings.Join(leaks, ", ")+". Check the validator's firewall and persistent_peers.")
		} else {
			v.add(CheckPass, name, fmt.Sprintf("the validator is not among its %d peers", len(ni.Peers)))
		}
	}
	return v.report
}

// status checks /status: the node answers, has the topology's ID and is on
// the topology's chain. It reports whether the node answered.
func (v *verifier) status(ctx context.Context, n *Node) bool {
	name := v.label(n) + " is up and is the node in the topology"
	var st statusResult
	if err := v.rc.get(ctx, n.RPC, "/status", &st); err != nil {
		v.add(CheckFail, name, err.Error()+". verify needs every node's RPC: run it where all rpc URLs in the topology are reachable (the validator's is loopback).")
		return false
	}
	var problems []string
	if !strings.EqualFold(st.NodeInfo.ID, string(n.ID)) {
		problems = append(problems, fmt.Sprintf("node ID is %s, the topology says %s", st.NodeInfo.ID, n.ID))
	}
	if st.NodeInfo.Network != v.t.ChainID {
		problems = append(problems, fmt.Sprintf("chain is %q, the topology says %q", st.NodeInfo.Network, v.t.ChainID))
	}
	if len(problems) > 0 {
		v.add(CheckFail, name, strings.Join(problems, "; ")+". Is the rpc URL right, and the topology up to date?")
		return true
	}
	v.add(CheckPass, name, fmt.Sprintf("%s, id %s, chain %q, height %s", n.RPC, st.NodeInfo.ID, st.NodeInfo.Network, st.SyncInfo.LatestBlockHeight))
	return true
}

func (v *verifier) validatorPeers(ni *NetInfo) {
	val := v.t.Validator
	byID := map[string]NetPeer{}
	var others []string
	sentryIDs := map[string]bool{}
	for _, s := range v.t.Sentries {
		sentryIDs[string(s.ID)] = true
	}
	for _, p := range ni.Peers {
		id := strings.ToLower(p.NodeInfo.ID)
		byID[id] = p
		if !sentryIDs[id] {
			others = append(others, fmt.Sprintf("%s (moniker %q, from %s)", id, p.NodeInfo.Moniker, p.RemoteIP))
		}
	}
	for _, s := range v.t.Sentries {
		name := fmt.Sprintf("%s is connected to sentry %q over the private link", v.label(val), s.Name)
		p, ok := byID[string(s.ID)]
		if !ok {
			v.add(CheckFail, name, fmt.Sprintf("sentry %s is not among the validator's %d peers", s.ID.Short(), len(ni.Peers)))
			continue
		}
		ip, err := netip.ParseAddr(p.RemoteIP)
		if err != nil || ip.Unmap() != s.PrivateAddr.Addr() {
			v.add(CheckFail, name, fmt.Sprintf("connected from %s, not from the sentry's private IP %s", p.RemoteIP, s.PrivateAddr.Addr()))
			continue
		}
		dir := "inbound"
		if p.IsOutbound {
			dir = "outbound"
		}
		v.add(CheckPass, name, fmt.Sprintf("from %s (%s)", p.RemoteIP, dir))
	}
	name := v.label(val) + " has no peers other than its sentries"
	if len(others) > 0 {
		sort.Strings(others)
		v.add(CheckFail, name, "unexpected peers: "+strings.Join(others, "; ")+". The validator must peer only with its sentries: check its firewall and persistent_peers.")
	} else {
		v.add(CheckPass, name, fmt.Sprintf("%d peers, all sentries", len(ni.Peers)))
	}
}

func (v *verifier) sentryPeers(s *Node, ni *NetInfo) {
	val := v.t.Validator
	name := fmt.Sprintf("%s is connected to the validator over the private link", v.label(s))
	for _, p := range ni.Peers {
		if !strings.EqualFold(p.NodeInfo.ID, string(val.ID)) {
			continue
		}
		ip, err := netip.ParseAddr(p.RemoteIP)
		if err != nil || ip.Unmap() != val.PrivateAddr.Addr() {
			v.add(CheckFail, name, fmt.Sprintf("the validator is connected from %s, not from its private IP %s", p.RemoteIP, val.PrivateAddr.Addr()))
			return
		}
		v.add(CheckPass, name, fmt.Sprintf("validator %s from %s", val.ID.Short(), p.RemoteIP))
		return
	}
	v.add(CheckFail, name, fmt.Sprintf("the validator %s is not among the sentry's %d peers; check both firewalls, the validator's persistent_peers and the sentry's unconditional_peer_ids", val.ID.Short(), len(ni.Peers)))
}

// addrBook checks the sentry's addrbook.json, when the topology names it.
func (v *verifier) addrBook(s *Node) {
	name := fmt.Sprintf("%s address book does not hold the validator", v.label(s))
	if s.AddrBook == "" {
		v.add(CheckSkip, name, "no addrbook path for this sentry in the topology. CometBFT has no RPC for the address book; set addrbook = \"path/to/addrbook.json\" (a copy or a mount readable where verify runs) to check it.")
		return
	}
	leaks, n, err := AddrBookLeaks(s.AddrBook, v.t.Validator.ID, v.t.Validator.PrivateAddr.Addr())
	switch {
	case errors.Is(err, os.ErrNotExist):
		v.add(CheckSkip, name, fmt.Sprintf("%s does not exist yet: CometBFT writes the address book every 2 minutes and at shutdown", s.AddrBook))
	case err != nil:
		v.add(CheckFail, name, err.Error())
	case len(leaks) > 0:
		v.add(CheckFail, name, fmt.Sprintf("%s holds %s: PEX can gossip it. Check private_peer_ids (bare lower-case ID), then stop the sentry, delete the entries and restart.", s.AddrBook, strings.Join(leaks, ", ")))
	default:
		v.add(CheckPass, name, fmt.Sprintf("%s: %d addresses, none the validator's", s.AddrBook, n))
	}
}

// AddrBookLeaks reads a CometBFT addrbook.json and returns the entries that
// name the validator's ID or IP, and how many addresses the book holds.
func AddrBookLeaks(path string, id NodeID, ip netip.Addr) (leaks []string, total int, err error) {
	data, err := readFileLimit(path, maxAddrBookSize)
	if err != nil {
		return nil, 0, err
	}
	return addrBookLeaks(data, path, id, ip)
}

func addrBookLeaks(data []byte, path string, id NodeID, ip netip.Addr) (leaks []string, total int, err error) {
	type netAddr struct {
		ID   string `json:"id"`
		IP   string `json:"ip"`
		Port int    `json:"port"`
	}
	var book struct {
		Addrs []struct {
			Addr netAddr `json:"addr"`
			Src  netAddr `json:"src"`
		} `json:"addrs"`
	}
	if err := json.Unmarshal(data, &book); err != nil {
		return nil, 0, fmt.Errorf("%s is not a CometBFT addrbook.json: %v", path, err)
	}
	for _, a := range book.Addrs {
		aip, _ := netip.ParseAddr(a.Addr.IP)
		if strings.EqualFold(a.Addr.ID, string(id)) || (aip.IsValid() && aip.Unmap() == ip) {
			leaks = append(leaks, fmt.Sprintf("%s@%s:%d", a.Addr.ID, a.Addr.IP, a.Addr.Port))
		}
	}
	return leaks, len(book.Addrs), nil
}
