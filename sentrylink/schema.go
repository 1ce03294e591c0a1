package sentrylink

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// nodeConfig mirrors the parts of CometBFT's config.toml sentrylink reads:
// every top-level, [p2p] and [rpc] key of v0.38 and v1 (the union), and
// [consensus] for one advisory check. Other sections are decoded opaquely.
// Sources: config/config.go of cometbft v0.38.26 and v1.0.1.
type nodeConfig struct {
	Version                string `toml:"version"`
	Home                   string `toml:"home"`
	ProxyApp               string `toml:"proxy_app"`
	Moniker                string `toml:"moniker"`
	DBBackend              string `toml:"db_backend"`
	DBDir                  string `toml:"db_dir"`
	LogLevel               string `toml:"log_level"`
	LogFormat              string `toml:"log_format"`
	LogColors              bool   `toml:"log_colors"` // v1
	GenesisFile            string `toml:"genesis_file"`
	PrivValidatorKeyFile   string `toml:"priv_validator_key_file"`
	PrivValidatorStateFile string `toml:"priv_validator_state_file"`
	PrivValidatorLaddr     string `toml:"priv_validator_laddr"`
	NodeKeyFile            string `toml:"node_key_file"`
	ABCI                   string `toml:"abci"`
	FilterPeers            bool   `toml:"filter_peers"`
	EventBusBufferCapacity int    `toml:"event_bus_buffer_capacity"` // v0.38

	RPC rpcConfig `toml:"rpc"`
	P2P p2pConfig `toml:"p2p"`

	Consensus       map[string]any `toml:"consensus"`
	GRPC            map[string]any `toml:"grpc"` // v1
	Mempool         map[string]any `toml:"mempool"`
	StateSync       map[string]any `toml:"statesync"`
	BlockSync       map[string]any `toml:"blocksync"`
	FastSync        map[string]any `toml:"fastsync"` // v0.34 files
	Storage         map[string]any `toml:"storage"`
	TxIndex         map[string]any `toml:"tx_index"`
	Instrumentation map[string]any `toml:"instrumentation"`
}

type rpcConfig struct {
	Laddr                                string       `toml:"laddr"`
	CORSAllowedOrigins                   []string     `toml:"cors_allowed_origins"`
	CORSAllowedMethods                   []string     `toml:"cors_allowed_methods"`
	CORSAllowedHeaders                   []string     `toml:"cors_allowed_headers"`
	GRPCLaddr                            string       `toml:"grpc_laddr"`                // v0.38
	GRPCMaxOpenConnections               int          `toml:"grpc_max_open_connections"` // v0.38
	Unsafe                               bool         `toml:"unsafe"`
	MaxOpenConnections                   int          `toml:"max_open_connections"`
	MaxSubscriptionClients               int          `toml:"max_subscription_clients"`
	MaxSubscriptionsPerClient            int          `toml:"max_subscriptions_per_client"`
	ExperimentalSubscriptionBufferSize   int          `toml:"experimental_subscription_buffer_size"`
	ExperimentalWebsocketWriteBufferSize int          `toml:"experimental_websocket_write_buffer_size"`
	ExperimentalCloseOnSlowClient        bool         `toml:"experimental_close_on_slow_client"`
	TimeoutBroadcastTxCommit             tomlDuration `toml:"timeout_broadcast_tx_commit"`
	MaxRequestBatchSize                  int          `toml:"max_request_batch_size"`
	MaxBodyBytes                         int64        `toml:"max_body_bytes"`
	MaxHeaderBytes                       int          `toml:"max_header_bytes"`
	TLSCertFile                          string       `toml:"tls_cert_file"`
	TLSKeyFile                           string       `toml:"tls_key_file"`
	PprofLaddr                           string       `toml:"pprof_laddr"`
}

type p2pConfig struct {
	Laddr                        string         `toml:"laddr"`
	ExternalAddress              string         `toml:"external_address"`
	Seeds                        string         `toml:"seeds"`
	PersistentPeers              string         `toml:"persistent_peers"`
	AddrBookFile                 string         `toml:"addr_book_file"`
	AddrBookStrict               bool           `toml:"addr_book_strict"`
	MaxNumInboundPeers           int            `toml:"max_num_inbound_peers"`
	MaxNumOutboundPeers          int            `toml:"max_num_outbound_peers"`
	UnconditionalPeerIDs         string         `toml:"unconditional_peer_ids"`
	PersistentPeersMaxDialPeriod tomlDuration   `toml:"persistent_peers_max_dial_period"`
	FlushThrottleTimeout         tomlDuration   `toml:"flush_throttle_timeout"`
	MaxPacketMsgPayloadSize      int            `toml:"max_packet_msg_payload_size"`
	SendRate                     int64          `toml:"send_rate"`
	RecvRate                     int64          `toml:"recv_rate"`
	Pex                          bool           `toml:"pex"`
	SeedMode                     bool           `toml:"seed_mode"`
	PrivatePeerIDs               string         `toml:"private_peer_ids"`
	AllowDuplicateIP             bool           `toml:"allow_duplicate_ip"`
	HandshakeTimeout             tomlDuration   `toml:"handshake_timeout"`
	DialTimeout                  tomlDuration   `toml:"dial_timeout"`
	TestDialFail                 bool           `toml:"test_dial_fail"`
	TestFuzz                     bool           `toml:"test_fuzz"`
	TestFuzzConfig               map[string]any `toml:"test_fuzz_config"`
	Libp2p                       map[string]any `toml:"libp2p"` // v0.40 [p2p.libp2p]
}

// tomlDuration is a TOML string holding a Go duration, as CometBFT reads it.
type tomlDuration time.Duration

func (d *tomlDuration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"3s\"", b)
	}
	*d = tomlDuration(v)
	return nil
}

// keyKind is the TOML shape a known key must have.
type keyKind int

const (
	kBool keyKind = iota + 1
	kInt
	kString
	kDuration
	kStringArray
	kTable // an opaque table (any content)
)

func (k keyKind) String() string {
	switch k {
	case kBool:
		return "a boolean (true or false)"
	case kInt:
		return "an integer"
	case kString:
		return "a string"
	case kDuration:
		return `a duration string such as "3s"`
	case kStringArray:
		return "an array of strings"
	case kTable:
		return "a table"
	}
	return "?"
}

// ownedSections are the config.toml sections whose keys sentrylink checks
// for unknown and kebab-case spellings ("" is the top level).
var ownedSections = []string{"", "p2p", "rpc"}

// configSchema maps "p2p.pex"-style keys of the owned sections to their kind.
var configSchema = buildSchema()

func buildSchema() map[string]keyKind {
	m := map[string]keyKind{}
	durType := reflect.TypeOf(tomlDuration(0))
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "" {
				continue
			}
			key := prefix + tag
			switch {
			case f.Type == durType:
				m[key] = kDuration
			case f.Type.Kind() == reflect.Bool:
				m[key] = kBool
			case f.Type.Kind() == reflect.Int || f.Type.Kind() == reflect.Int64:
				m[key] = kInt
			case f.Type.Kind() == reflect.String:
				m[key] = kString
			case f.Type.Kind() == reflect.Slice:
				m[key] = kStringArray
			case f.Type.Kind() == reflect.Map:
				m[key] = kTable
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, key+".")
			}
		}
	}
	walk(reflect.TypeOf(nodeConfig{}), "")
	return m
}

// sectionOf returns the owned section of a full key and the rest of the key,
// or ok=false when the key is outside the owned sections.
func sectionOf(full []string) (section string, rest []string, ok bool) {
	if len(full) == 0 {
		return "", nil, false
	}
	if len(full) == 1 {
		// A top-level key, unless it names a known table (written inline).
		if k, known := configSchema[full[0]]; known && k == kTable {
			return "", nil, false
		}
		return "", full, true
	}
	switch full[0] {
	case "p2p", "rpc":
		return full[0], full[1:], true
	}
	return "", nil, false
}

// knownKeysOf lists the schema's keys of one owned section, for suggestions.
func knownKeysOf(section string) []string {
	var out []string
	for k, kind := range configSchema {
		if kind == kTable {
			continue
		}
		if section == "" && !strings.Contains(k, ".") {
			out = append(out, k)
		} else if section != "" && strings.HasPrefix(k, section+".") && strings.Count(k, ".") == 1 {
			out = append(out, strings.TrimPrefix(k, section+"."))
		}
	}
	sort.Strings(out)
	return out
}

// closest returns the known key nearest to s (edit distance at most 3).
func closest(s string, known []string) string {
	best, bestD := "", 4
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
