package sentrylink

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeNode serves /status and /net_info like CometBFT v0.38 (libs/json
// encodes integers as strings).
type fakeNode struct {
	id, network, moniker string
	peers                []fakePeer
	rpcError             bool
}

type fakePeer struct {
	id, moniker, remoteIP string
	outbound              bool
}

func (f *fakeNode) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":-1,"result":{"node_info":{"protocol_version":{"p2p":"8","block":"11","app":"0"},"id":%q,"listen_addr":"tcp://0.0.0.0:26656","network":%q,"version":"0.38.26","channels":"40202122233038606100","moniker":%q,"other":{"tx_index":"on","rpc_address":"tcp://127.0.0.1:26657"}},"sync_info":{"latest_block_height":"42","catching_up":false},"validator_info":{"voting_power":"10"}}}`,
			f.id, f.network, f.moniker)
	})
	mux.HandleFunc("/net_info", func(w http.ResponseWriter, r *http.Request) {
		if f.rpcError {
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":-1,"error":{"code":-32603,"message":"Internal error","data":"boom"}}`)
			return
		}
		var peers []string
		for _, p := range f.peers {
			peers = append(peers, fmt.Sprintf(`{"node_info":{"protocol_version":{"p2p":"8","block":"11","app":"0"},"id":%q,"listen_addr":"tcp://0.0.0.0:26656","network":%q,"version":"0.38.26","channels":"40202122233038606100","moniker":%q,"other":{"tx_index":"on","rpc_address":"tcp://127.0.0.1:26657"}},"is_outbound":%v,"connection_status":{"Duration":"168901057956119","SendMonitor":{"Start":"2024-01-01T00:00:00Z","Bytes":"10"},"RecvMonitor":{},"Channels":[{"ID":32,"SendQueueCapacity":"1","SendQueueSize":"0","Priority":"5","RecentlySent":"0"}]},"remote_ip":%q}`,
				p.id, f.network, p.moniker, p.outbound, p.remoteIP))
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":-1,"result":{"listening":true,"listeners":["Listener(@10.0.1.5:26656)"],"n_peers":"%d","peers":[%s]}}`,
			len(f.peers), strings.Join(peers, ","))
	})
	return mux
}

type fakeNet struct {
	topo                *Topology
	val, s1, s2, public *fakeNode
	urls                map[*fakeNode]string
}

// newFakeNet serves a healthy network for the sample topology and returns a
// topology whose rpc URLs point at the fake servers.
func newFakeNet(t *testing.T) *fakeNet {
	t.Helper()
	base := loadSample(t)
	val, s1, s2 := base.Validator, base.Sentries[0], base.Sentries[1]
	fn := &fakeNet{
		val: &fakeNode{id: string(val.ID), network: "cosmoshub-4", moniker: "validator", peers: []fakePeer{
			{string(s1.ID), "sentry-1", "10.0.1.10", true}, {string(s2.ID), "sentry-2", "10.0.1.11", false}}},
		s1: &fakeNode{id: string(s1.ID), network: "cosmoshub-4", moniker: "sentry-1", peers: []fakePeer{
			{string(val.ID), "validator", "10.0.1.5", false}, {string(s2.ID), "sentry-2", "10.0.1.11", true}, {"0123456789abcdef0123456789abcdef01234567", "someone", "198.51.100.1", false}}},
		s2: &fakeNode{id: string(s2.ID), network: "cosmoshub-4", moniker: "sentry-2", peers: []fakePeer{
			{string(val.ID), "validator", "10.0.1.5", true}}},
		public: &fakeNode{id: "0123456789abcdef0123456789abcdef01234567", network: "cosmoshub-4", moniker: "someone", peers: []fakePeer{
			{string(s1.ID), "sentry-1", "203.0.113.50", true}}},
		urls: map[*fakeNode]string{},
	}
	for _, n := range []*fakeNode{fn.val, fn.s1, fn.s2, fn.public} {
		srv := httptest.NewServer(n.handler())
		t.Cleanup(srv.Close)
		fn.urls[n] = srv.URL
	}
	src := readSample(t)
	src = strings.Replace(src, `rpc = "http://127.0.0.1:26657"`, fmt.Sprintf("rpc = %q", fn.urls[fn.val]), 1)
	src = strings.Replace(src, `rpc = "http://10.0.1.10:26657"`, fmt.Sprintf("rpc = %q", fn.urls[fn.s1]), 1)
	src = strings.Replace(src, `rpc = "http://10.0.1.11:26657"`, fmt.Sprintf("rpc = %q", fn.urls[fn.s2]), 1)
	topo, err := ParseTopology([]byte(src), sampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	fn.topo = topo
	return fn
}

func (fn *fakeNet) verify(t *testing.T) (*VerifyReport, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := fn.topo.Verify(ctx, VerifyOptions{Public: []string{fn.urls[fn.public]}, Timeout: 2 * time.Second})
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return r, b.String()
}

func TestVerifyHealthy(t *testing.T) {
	fn := newFakeNet(t)
	r, text := fn.verify(t)
	if r.Failed() {
		t.Fatalf("healthy network fails:\n%s", text)
	}
	// 3 status + 2 validator links + "no other peers" + 2 sentry links + 2 address books (skipped) + 1 public
	if len(r.Checks) != 11 || r.Count(CheckSkip) != 2 {
		t.Errorf("unexpected checks:\n%s", text)
	}
}

func TestVerifyFailures(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(fn *fakeNet)
		want   []string
	}{
		{"validator has a public peer", func(fn *fakeNet) {
			fn.val.peers = append(fn.val.peers, fakePeer{"0123456789abcdef0123456789abcdef01234567", "someone", "198.51.100.1", true})
		}, []string{"FAIL  validator \"validator\" has no peers other than its sentries", "198.51.100.1"}},
		{"sentry connects from a public IP", func(fn *fakeNet) { fn.val.peers[1].remoteIP = "203.0.113.51" },
			[]string{"FAIL  validator \"validator\" is connected to sentry \"sentry-2\"", "not from the sentry's private IP 10.0.1.11"}},
		{"a sentry lost the validator", func(fn *fakeNet) { fn.s2.peers = nil },
			[]string{"FAIL  sentry \"sentry-2\" is connected to the validator", "not among the sentry's 0 peers"}},
		{"public node sees the validator", func(fn *fakeNet) {
			fn.public.peers = append(fn.public.peers, fakePeer{fn.val.id, "validator", "10.0.1.5", true})
		}, []string{"FAIL  public node", "the validator is connected to a public node"}},
		{"wrong node behind an rpc URL", func(fn *fakeNet) { fn.s1.id = "0123456789abcdef0123456789abcdef01234567" },
			[]string{"FAIL  sentry \"sentry-1\" is up and is the node in the topology", "node ID is 0123456789abcdef0123456789abcdef01234567"}},
		{"wrong chain", func(fn *fakeNet) { fn.val.network = "theta-testnet-001" },
			[]string{`chain is "theta-testnet-001", the topology says "cosmoshub-4"`}},
		{"rpc error", func(fn *fakeNet) { fn.s1.rpcError = true },
			[]string{"FAIL  sentry \"sentry-1\" /net_info", "error -32603"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := newFakeNet(t)
			tc.break_(fn)
			r, text := fn.verify(t)
			if !r.Failed() {
				t.Fatalf("verify passed:\n%s", text)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestVerifyUnreachable(t *testing.T) {
	fn := newFakeNet(t)
	// A listener that was closed: connection refused, quickly.
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	u := fn.topo.Sentries[1].RPC
	*u = *mustURL(t, dead)
	r, text := fn.verify(t)
	if !r.Failed() || !strings.Contains(text, "FAIL  sentry \"sentry-2\" is up") || !strings.Contains(text, "unreachable") {
		t.Fatalf("unreachable sentry not reported:\n%s", text)
	}
	// A server that never answers is cut off by the timeout.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(block) })
	*u = *mustURL(t, slow.URL)
	start := time.Now()
	r, text = fn.verify(t)
	if !r.Failed() || time.Since(start) > 15*time.Second {
		t.Fatalf("hanging RPC: failed=%v after %v:\n%s", r.Failed(), time.Since(start), text)
	}
}

func TestVerifyNotCometBFT(t *testing.T) {
	fn := newFakeNet(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>hello</html>") }))
	t.Cleanup(srv.Close)
	*fn.topo.Validator.RPC = *mustURL(t, srv.URL)
	r, text := fn.verify(t)
	if !r.Failed() || !strings.Contains(text, "not a CometBFT JSON-RPC response") {
		t.Fatalf("non-JSON RPC not reported:\n%s", text)
	}
}

func TestVerifyAddrBook(t *testing.T) {
	fn := newFakeNet(t)
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.json")
	leaky := filepath.Join(dir, "leaky.json")
	book := `{"key":"abc","addrs":[{"addr":{"id":"%s","ip":"%s","port":26656},"src":{"id":"x","ip":"203.0.113.9","port":26656},"buckets":[1],"attempts":0,"bucket_type":1,"last_attempt":"2024-01-01T00:00:00Z","last_success":"0001-01-01T00:00:00Z","last_ban_time":"0001-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(clean, []byte(fmt.Sprintf(book, "0123456789abcdef0123456789abcdef01234567", "198.51.100.1")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leaky, []byte(fmt.Sprintf(book, fn.val.id, "10.0.1.5")), 0o644); err != nil {
		t.Fatal(err)
	}
	fn.topo.Sentries[0].AddrBook = clean
	fn.topo.Sentries[1].AddrBook = filepath.Join(dir, "missing.json")
	r, text := fn.verify(t)
	if r.Failed() || !strings.Contains(text, "PASS  sentry \"sentry-1\" address book") || !strings.Contains(text, "SKIP  sentry \"sentry-2\" address book") {
		t.Fatalf("address books:\n%s", text)
	}
	fn.topo.Sentries[1].AddrBook = leaky
	r, text = fn.verify(t)
	if !r.Failed() || !strings.Contains(text, "FAIL  sentry \"sentry-2\" address book") {
		t.Fatalf("leaky address book not reported:\n%s", text)
	}
	leaks, n, err := AddrBookLeaks(leaky, NodeID(fn.val.id), netip.MustParseAddr("10.0.1.5"))
	if err != nil || n != 1 || len(leaks) != 1 {
		t.Errorf("AddrBookLeaks = %v, %d, %v", leaks, n, err)
	}
	if err := os.WriteFile(leaky, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, text = fn.verify(t); !r.Failed() || !strings.Contains(text, "not a CometBFT addrbook.json") {
		t.Fatalf("corrupt address book not reported:\n%s", text)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
