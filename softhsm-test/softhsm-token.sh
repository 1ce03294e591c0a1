#!/usr/bin/env bash
# softhsm-token.sh: make a throwaway SoftHSM token for `make demo` and e2e tests.
#
# Usage:
#   softhsm-token.sh DIR LABEL PIN [OBJECT]
#
#   DIR     folder for the SoftHSM config and tokens (created if missing; reused
#           if it already holds a softhsm2.conf written by this script, so
#           several tokens can share one config)
#   LABEL   token label, 1-32 characters of [A-Za-z0-9._-], new in DIR
#   PIN     user PIN, 4-255 characters, no newline
#   OBJECT  optional key label to put into the printed URI (;object=OBJECT)
#
# It writes DIR/softhsm2.conf and DIR/tokens/, initialises the token with
# `softhsm2-util --init-token --free`, writes the user PIN to DIR/LABEL.pin and
# a random security-officer PIN to DIR/LABEL.so-pin (both mode 0600), and
# prints two lines on stdout:
#
#   /abs/DIR/softhsm2.conf
#   pkcs11:token=LABEL[;object=OBJECT]?module-path=LIB&pin-source=file:/abs/DIR/LABEL.pin
#
# Every process that uses the token (signerd, softhsm2-util) needs
# SOFTHSM2_CONF set to the first line, e.g.
#
#   { read -r conf; read -r uri; } < <(softhsm-token.sh demo/hsm validator 1234 consensus)
#   SOFTHSM2_CONF=$conf signerd keys generate --key "$uri"
#
# The module is $SIGNERD_SOFTHSM2_LIB, default /usr/lib/softhsm/libsofthsm2.so.
# The script installs nothing: it needs softhsm2-util (Debian package softhsm2).
# Exit status is non-zero with a message on stderr on any failure.
set -euo pipefail

die() { echo "softhsm-token.sh: error: $*" >&2; exit 1; }

[ $# -ge 3 ] && [ $# -le 4 ] || die "usage: softhsm-token.sh DIR LABEL PIN [OBJECT]"
dir=$1 label=$2 pin=$3 object=${4:-}
lib=${SIGNERD_SOFTHSM2_LIB:-/usr/lib/softhsm/libsofthsm2.so}

[[ $label =~ ^[A-Za-z0-9._-]{1,32}$ ]] || die "label \"$label\" must be 1-32 characters of [A-Za-z0-9._-]"
[ ${#pin} -ge 4 ] && [ ${#pin} -le 255 ] || die "PIN must be 4-255 characters"
[[ $pin != *$'\n'* ]] || die "PIN must not contain a newline"
if [ -n "$object" ]; then
	[[ $object =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "object \"$object\" must be 1-64 characters of [A-Za-z0-9._-]"
fi
[ -f "$lib" ] || die "SoftHSM module $lib not found; install softhsm2 (apt-get install softhsm2) or set SIGNERD_SOFTHSM2_LIB"
command -v softhsm2-util >/dev/null || die "softhsm2-util not on PATH; install softhsm2 (apt-get install softhsm2)"

umask 077
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
conf=$dir/softhsm2.conf
marker="# written by softhsm-token.sh"
if [ -e "$conf" ]; then
	head -n1 "$conf" | grep -qxF "$marker" || die "$conf exists and was not written by this script; use another DIR"
else
	mkdir -p "$dir/tokens"
	printf '%s\ndirectories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
		"$marker" "$dir/tokens" >"$conf"
fi
export SOFTHSM2_CONF=$conf

if softhsm2-util --show-slots 2>/dev/null | grep -qE "^[[:space:]]*Label:[[:space:]]+${label//./\\.}[[:space:]]*$"; then
	die "a token labelled \"$label\" already exists in $dir; pick another label"
fi

so_pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pin" >"$dir/$label.pin"
printf '%s\n' "$so_pin" >"$dir/$label.so-pin"
chmod 600 "$dir/$label.pin" "$dir/$label.so-pin"

if ! softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null; then
	rm -f "$dir/$label.pin" "$dir/$label.so-pin"
	die "softhsm2-util --init-token failed for \"$label\""
fi

# Percent-encode a value for the query component (RFC 7512): keep unreserved
# characters and "/", encode everything else.
pct() {
	local s=$1 out= c i
	LC_ALL=C
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~/-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

uri="pkcs11:token=$label"
[ -z "$object" ] || uri+=";object=$object"
uri+="?module-path=$(pct "$lib")&pin-source=file:$(pct "$dir/$label.pin")"
printf '%s\n%s\n' "$conf" "$uri"
