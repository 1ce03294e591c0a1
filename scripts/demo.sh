#!/usr/bin/env bash
# make demo: a real single-validator CometBFT chain whose blocks are signed by
# signerd with the validator key inside a throwaway SoftHSM token.
#
#   make demo                  run until Ctrl-C, then print a summary
#   make demo DEMO_BLOCKS=20   stop by itself after 20 blocks
#
# Variables (all optional):
#   DEMO_BLOCKS          stop after this many blocks (0: run until Ctrl-C)        [0]
#   DEMO_TIMEOUT         seconds allowed for DEMO_BLOCKS blocks                   [60 + DEMO_BLOCKS]
#   DEMO_HOME            parent folder of the per-run folders                     [$HOME/.cache/signerd/demo]
#   DEMO_TIMEOUT_COMMIT  the node's consensus.timeout_commit                      [250ms]
#   DEMO_LOG_LEVEL       signerd's log level (debug logs every signature)        [info]
#   COMETBFT, SIGNERD    the binaries (make demo builds both)
#   SIGNERD_SOFTHSM2_LIB the SoftHSM module                                       [/usr/lib/softhsm/libsofthsm2.so]
#
# Everything a run makes lives in one fresh folder under DEMO_HOME (the last 5
# runs are kept); the node's and signerd's logs go to files there, never to
# the terminal.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

DEMO_BLOCKS=${DEMO_BLOCKS:-0}
DEMO_HOME=${DEMO_HOME:-$HOME/.cache/signerd/demo}
DEMO_TIMEOUT_COMMIT=${DEMO_TIMEOUT_COMMIT:-250ms}
DEMO_LOG_LEVEL=${DEMO_LOG_LEVEL:-info}
COMETBFT=${COMETBFT:-${SIGNERD_COMETBFT:-$HOME/.cache/signerd/cometbft-v0.38.26/cometbft}}
SIGNERD=${SIGNERD:-bin/signerd}
SOFTHSM2_LIB=${SIGNERD_SOFTHSM2_LIB:-/usr/lib/softhsm/libsofthsm2.so}
PROGRESS_EVERY=3   # seconds between progress lines
FIRST_BLOCK_TIMEOUT=30
KEEP_RUNS=5

say() { printf 'demo: %s\n' "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}
now() { printf '%s' "$EPOCHREALTIME"; }
# elapsed A B prints B-A seconds with one decimal.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / s; else printf "-" }'; }

case $DEMO_BLOCKS in '' | *[!0-9]*) die "DEMO_BLOCKS=$DEMO_BLOCKS: use a whole number of blocks (0 runs until Ctrl-C)" ;; esac
DEMO_TIMEOUT=${DEMO_TIMEOUT:-$((60 + DEMO_BLOCKS))}
case $DEMO_TIMEOUT in '' | *[!0-9]*) die "DEMO_TIMEOUT=$DEMO_TIMEOUT: use a whole number of seconds" ;; esac

# --- prerequisites ----------------------------------------------------------

if ! command -v softhsm2-util >/dev/null || [ ! -e "$SOFTHSM2_LIB" ]; then
	say "SoftHSM not found (softhsm2-util, $SOFTHSM2_LIB): installing the Debian package softhsm2"
	if [ "$(id -u)" -eq 0 ]; then
		SUDO=()
	elif command -v sudo >/dev/null; then
		say "(this needs root: running apt-get through sudo, which may ask for your password)"
		SUDO=(sudo)
	else
		die "softhsm2 is missing and this is not root and there is no sudo: run 'apt-get install -y softhsm2' as root, then make demo again"
	fi
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
		die "apt-get update failed (see above)"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null ||
		die "apt-get install softhsm2 failed (see above)"
	[ -e "$SOFTHSM2_LIB" ] || die "softhsm2 is installed but $SOFTHSM2_LIB is missing: set SIGNERD_SOFTHSM2_LIB to the module's path"
fi
[ -x "$COMETBFT" ] || die "no cometbft binary at $COMETBFT: run 'make cometbft' (make demo does it for you)"
[ -x "$SIGNERD" ] || die "no signerd binary at $SIGNERD: run 'make build' (make demo does it for you)"
COMETBFT=$(cd "$(dirname "$COMETBFT")" && pwd)/$(basename "$COMETBFT")
SIGNERD=$(cd "$(dirname "$SIGNERD")" && pwd)/$(basename "$SIGNERD")

# --- a fresh run folder -----------------------------------------------------

mkdir -p "$DEMO_HOME"
DEMO_HOME=$(cd "$DEMO_HOME" && pwd)
RUN=$DEMO_HOME/run-$(date +%Y%m%d-%H%M%S)-$$
mkdir -m 0700 "$RUN"
touch "$RUN/.signerd-demo"
ln -sfn "$RUN" "$DEMO_HOME/latest"
# Prune old runs: only folders this script made (they hold the marker file).
mapfile -t old < <(ls -1d "$DEMO_HOME"/run-* 2>/dev/null | sort | head -n -"$KEEP_RUNS")
for d in "${old[@]}"; do
	if [ -e "$d/.signerd-demo" ]; then rm -rf -- "$d"; fi
done

SETUP_LOG=$RUN/setup.log
NODE_LOG=$RUN/node.log
SIGNER_LOG=$RUN/signerd.log
NODE_HOME=$RUN/node
SIGNER_HOME=$RUN/signer
: >"$SETUP_LOG"

# quiet CMD...: run a setup command with its output in setup.log; on failure
# show the last lines and stop.
quiet() {
	printf '\n$ %s\n' "$*" >>"$SETUP_LOG"
	if ! "$@" >>"$SETUP_LOG" 2>&1; then
		printf 'demo: error: %s failed; the end of %s:\n' "$(basename "$1") ${2:-}" "$SETUP_LOG" >&2
		tail -n 8 "$SETUP_LOG" | sed 's/^/  | /' >&2
		exit 1
	fi
}

say "run folder $RUN"
trap 'die "interrupted during setup"' INT TERM

# --- a throwaway SoftHSM token ---------------------------------------------

TOKEN_DIR=$RUN/softhsm
PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
{ read -r SOFTHSM2_CONF && read -r KEY_URI; } < <(
	bash "$ROOT/softhsm-test/softhsm-token.sh" "$TOKEN_DIR" validator "$PIN" consensus 2>>"$SETUP_LOG" ||
		die "could not make a SoftHSM token: $(tail -n 1 "$SETUP_LOG")"
)
[ -n "${SOFTHSM2_CONF:-}" ] && [ -n "${KEY_URI:-}" ] ||
	die "softhsm-test/softhsm-token.sh printed no config and key URI: $(tail -n 1 "$SETUP_LOG")"
export SOFTHSM2_CONF
say "SoftHSM token 'validator' made in $TOKEN_DIR (PIN in validator.pin, mode 0600)"

# --- the chain --------------------------------------------------------------

quiet "$COMETBFT" init --home "$NODE_HOME"
CHAIN_ID=$(sed -n 's/^ *"chain_id": *"\([^"]*\)".*/\1/p' "$NODE_HOME/config/genesis.json" | head -n 1)
[ -n "$CHAIN_ID" ] || die "no chain_id in $NODE_HOME/config/genesis.json"
say "chain $CHAIN_ID: one validator, made by cometbft init"

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=()
p=36656
while [ ${#PORTS[@]} -lt 3 ] && [ $p -lt 36756 ]; do
	port_free $p && PORTS+=("$p")
	p=$((p + 1))
done
[ ${#PORTS[@]} -eq 3 ] || die "no 3 free ports between 36656 and 36755 on 127.0.0.1"
P2P_PORT=${PORTS[0]} RPC_PORT=${PORTS[1]} PRIVVAL_PORT=${PORTS[2]}
PRIVVAL_ADDR=tcp://127.0.0.1:$PRIVVAL_PORT

cfg=$NODE_HOME/config/config.toml
sed -i \
	-e 's#^proxy_app = .*#proxy_app = "kvstore"#' \
	-e "s#^priv_validator_laddr = .*#priv_validator_laddr = \"$PRIVVAL_ADDR\"#" \
	-e "s#^laddr = \"tcp://127.0.0.1:26657\"#laddr = \"tcp://127.0.0.1:$RPC_PORT\"#" \
	-e "s#^laddr = \"tcp://0.0.0.0:26656\"#laddr = \"tcp://127.0.0.1:$P2P_PORT\"#" \
	-e "s#^timeout_commit = .*#timeout_commit = \"$DEMO_TIMEOUT_COMMIT\"#" \
	-e 's#^moniker = .*#moniker = "signerd-demo"#' \
	"$cfg"
for want in 'proxy_app = "kvstore"' "priv_validator_laddr = \"$PRIVVAL_ADDR\"" "laddr = \"tcp://127.0.0.1:$RPC_PORT\"" \
	"laddr = \"tcp://127.0.0.1:$P2P_PORT\"" "timeout_commit = \"$DEMO_TIMEOUT_COMMIT\""; do
	grep -qxF "$want" "$cfg" || die "could not set '$want' in $cfg (has the cometbft config format changed?)"
done

# --- the key moves into SoftHSM ---------------------------------------------

quiet "$SIGNERD" init --home "$SIGNER_HOME"
quiet "$SIGNERD" keys import --key "$KEY_URI" --from "$NODE_HOME/config/priv_validator_key.json"
ADDRESS=$(sed -n 's/^address: *//p' "$SETUP_LOG" | tail -n 1)
rm -f "$NODE_HOME/config/priv_validator_key.json"
say "validator key $ADDRESS imported into SoftHSM; the node's key file is deleted"

cat >"$SIGNER_HOME/signerd.toml" <<EOF
# written by scripts/demo.sh
identity_key = "identity.json"
log_level = "$DEMO_LOG_LEVEL"

[[chain]]
id = "$CHAIN_ID"
key = "$KEY_URI"
state_file = "state/$CHAIN_ID.json"

[[validator]]
chain_id = "$CHAIN_ID"
addr = "$PRIVVAL_ADDR"
EOF
CONFIG=$SIGNER_HOME/signerd.toml
quiet "$SIGNERD" state import --config "$CONFIG" --chain "$CHAIN_ID" --from "$NODE_HOME/data/priv_validator_state.json"
say "double-sign state imported from priv_validator_state.json"

# --- run --------------------------------------------------------------------

SIGNER_PID='' NODE_PID=''
START_T='' FIRST_T='' FIRST_H=0 LAST_H=0 LAST_T=''
STOP_REASON='' INTERRUPTED=0 FAILED=0

# Children get their own session, so Ctrl-C reaches only this script, which
# then stops the node first and the signer second, in order.
spawn() {
	local log=$1
	shift
	if command -v setsid >/dev/null; then
		setsid "$@" >>"$log" 2>&1 </dev/null &
	else
		"$@" >>"$log" 2>&1 </dev/null &
	fi
}

# height prints the node's latest block height (RPC /status over bash's
# /dev/tcp: no curl needed).
height() {
	local resp
	resp=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
		cat <&3' _ "$RPC_PORT" 2>/dev/null) || return 1
	sed -n 's/.*"latest_block_height": *"\([0-9]*\)".*/\1/p' <<<"$resp" | head -n 1 | grep .
}

# stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
	local pid=$1 name=$2 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name (pid $pid) did not stop within 15 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# field NAME LINE: one value of signerd's summary log line, e.g.
# "stats.votes_signed=30" or 'stats.refusals_by_code="a=1 b=2"'.
field() {
	local v
	v=$(grep -oE "stats\.$1=(\"[^\"]*\"|[^ ]*)" <<<"$2" | head -n 1) || true
	v=${v#*=}
	v=${v#\"}
	printf '%s' "${v%\"}"
}

summary() {
	local end_t
	end_t=$(now)
	echo
	say "summary"
	local blocks=$((LAST_H - 0))
	printf '  blocks        %s (heights 1-%s)\n' "$blocks" "$LAST_H"
	if [ -n "$FIRST_T" ] && [ -n "$LAST_T" ]; then
		local total span
		total=$(elapsed "$START_T" "$LAST_T")
		span=$(elapsed "$FIRST_T" "$LAST_T")
		printf '  elapsed       %s s from start (first block after %s s)\n' "$total" "$(elapsed "$START_T" "$FIRST_T")"
		printf '  rate          %s blocks/s (%s blocks/s after the first block)\n' \
			"$(rate "$blocks" "$total")" "$(rate "$((LAST_H - FIRST_H))" "$span")"
	else
		printf '  elapsed       %s s, no block\n' "$(elapsed "$START_T" "$end_t")"
	fi
	local line
	line=$(grep 'msg=summary' "$SIGNER_LOG" 2>/dev/null | tail -n 1 || true)
	if [ -n "$line" ]; then
		printf '  signatures    %s proposals, %s prevotes, %s precommits, %s vote extensions; %s public key requests\n' \
			"$(field proposals_signed "$line")" "$(field prevotes_signed "$line")" "$(field precommits_signed "$line")" "$(field extensions_signed "$line")" \
			"$(field pubkey_requests "$line")"
		local by
		by=$(field refusals_by_code "$line")
		printf '  refusals      %s%s\n' "$(field refusals "$line")" "${by:+ ($by)}"
	else
		printf '  signatures    signerd logged no summary line (see %s)\n' "$SIGNER_LOG"
	fi
	if [ -z "$SIGNER_PID" ] || ! kill -0 "$SIGNER_PID" 2>/dev/null; then
		printf '  signer state  %s\n' "$("$SIGNERD" state show --config "$CONFIG" --chain "$CHAIN_ID" 2>&1 |
			sed -n 's/^ *last signed: *//p' | head -n 1)"
	fi
	printf '  logs          %s\n                %s\n' "$SIGNER_LOG" "$NODE_LOG"
	printf '  config        %s\n' "$CONFIG"
}

cleanup() {
	local rc=$?
	# Finish stopping both processes even if Ctrl-C is pressed again.
	trap - EXIT
	trap '' INT TERM
	if [ -n "$NODE_PID$SIGNER_PID" ]; then
		# Final height before the node goes.
		local h
		if h=$(height); then
			LAST_H=$h LAST_T=$(now)
		fi
		stop_pid "$NODE_PID" cometbft
		stop_pid "$SIGNER_PID" signerd
		if [ -n "$STOP_REASON" ] && [ "$FAILED" = 0 ]; then say "$STOP_REASON"; fi
		summary
		if [ -n "$STOP_REASON" ] && [ "$FAILED" = 1 ]; then printf '\ndemo: %s\n' "$STOP_REASON" >&2; fi
	fi
	if [ "$FAILED" = 1 ] && [ "$rc" = 0 ]; then rc=1; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'INTERRUPTED=1' INT TERM
# From here on failures are handled one by one: a command cut short by Ctrl-C
# must not end the script before it has stopped the node and signerd.
set +e

SECONDS=0
START_T=$(now)
spawn "$SIGNER_LOG" "$SIGNERD" start --config "$CONFIG"
SIGNER_PID=$!
say "signerd started (pid $SIGNER_PID), dialing the node at $PRIVVAL_ADDR"
spawn "$NODE_LOG" "$COMETBFT" start --home "$NODE_HOME"
NODE_PID=$!
say "cometbft started (pid $NODE_PID), RPC http://127.0.0.1:$RPC_PORT"
if [ "$DEMO_BLOCKS" -gt 0 ]; then
	say "waiting for $DEMO_BLOCKS blocks (at most $DEMO_TIMEOUT s)"
else
	say "signing blocks; press Ctrl-C to stop"
fi

# alive PID NAME LOG: false, with STOP_REASON saying why, once the process
# has exited.
alive() {
	kill -0 "$1" 2>/dev/null && return 0
	local st=0
	wait "$1" 2>/dev/null || st=$?
	STOP_REASON="error: $2 exited (status $st); the end of $3:
$(tail -n 6 "$3" | cut -c1-200 | sed 's/^/  | /')"
	return 1
}

prev_h=0 prev_t=$START_T next_print=$((SECONDS + PROGRESS_EVERY))
while [ "$INTERRUPTED" = 0 ]; do
	if ! alive "$NODE_PID" cometbft "$NODE_LOG" || ! alive "$SIGNER_PID" signerd "$SIGNER_LOG"; then
		FAILED=1
		break
	fi
	if h=$(height) && [ "$h" -gt 0 ]; then
		t=$(now)
		LAST_H=$h LAST_T=$t
		if [ -z "$FIRST_T" ]; then
			FIRST_T=$t FIRST_H=$h
			say "first block after $(elapsed "$START_T" "$t") s"
		fi
	fi
	if [ "$DEMO_BLOCKS" -gt 0 ] && [ "$LAST_H" -ge "$DEMO_BLOCKS" ]; then
		STOP_REASON="reached $DEMO_BLOCKS blocks; stopping"
		break
	fi
	if [ -z "$FIRST_T" ] && ((SECONDS > FIRST_BLOCK_TIMEOUT)); then
		STOP_REASON="error: no block after $FIRST_BLOCK_TIMEOUT s; see $NODE_LOG and $SIGNER_LOG"
		FAILED=1
		break
	fi
	if [ "$DEMO_BLOCKS" -gt 0 ] && ((SECONDS > DEMO_TIMEOUT)); then
		STOP_REASON="error: only $LAST_H of $DEMO_BLOCKS blocks after $DEMO_TIMEOUT s (raise DEMO_TIMEOUT?); see $NODE_LOG and $SIGNER_LOG"
		FAILED=1
		break
	fi
	if ((SECONDS >= next_print)) && [ -n "$FIRST_T" ]; then
		t=$(now)
		d=$(elapsed "$prev_t" "$t")
		printf 'demo: height %6s   +%-4s in %4s s   %5s blocks/s\n' "$LAST_H" "$((LAST_H - prev_h))" "$d" \
			"$(rate "$((LAST_H - prev_h))" "$d")"
		prev_h=$LAST_H prev_t=$t next_print=$((SECONDS + PROGRESS_EVERY))
	fi
	sleep 0.2 || true
done
if [ "$INTERRUPTED" = 1 ]; then STOP_REASON="interrupted; stopping the node, then signerd"; fi
exit 0
