#!/usr/bin/env bash
# 60 s soak of natkit's STUN server on loopback at full rate with 10% malformed packets.
#
#   benches/stun_soak.sh [SECONDS]
#
# `natkit stun-server` (--no-rate-limit: every request comes from 127.0.0.1) runs on
# CPU 0, stun_load on CPU 1 (SCHED_FIFO when root, as in stun_server_vs_coturn.sh), closed
# loop: 4 sockets x 16 requests outstanding, one packet in ten malformed (truncated, bad
# FINGERPRINT, not STUN, a response, a bad CHANGE-REQUEST). The window bounds the server's
# receive queue, so the kernel has no reason to drop anything: the soak fails unless every
# valid request is answered, no malformed packet is answered, the kernel reports no UDP
# receive-buffer drops, and the server's own counters agree (answered = valid sent,
# dropped = malformed sent). Memory: VmRSS and VmHWM of the server 2 s into the load and
# at its end.
set -euo pipefail

DURATION=${1:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PORT=${SOAK_PORT:-34800}

(cd "$ROOT" && cargo build --release -q -p natkit-cli --bin natkit \
    && cargo build --release -q -p natkit-benches --bin stun_load)
RT=()
if [ "$(id -u)" = 0 ] && command -v chrt >/dev/null; then RT=(chrt -f 10); fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

taskset -c 0 "${RT[@]}" "$TARGET/release/natkit" stun-server --bind "127.0.0.1:$PORT" \
    --no-rate-limit --json >"$WORK/server.out" 2>&1 &
SERVER_PID=$!
mem() { awk '/^(VmRSS|VmHWM)/ {printf "%s %s kB  ", $1, $2}' "/proc/$SERVER_PID/status"; }
sleep 0.5
echo "server idle:  $(mem)"

taskset -c 1 "${RT[@]}" "$TARGET/release/stun_load" --target "127.0.0.1:$PORT" \
    --sockets 4 --window 16 --malformed 0.1 --duration "$DURATION" --warmup 1 --json --check \
    >"$WORK/load.json" &
LOAD_PID=$!
sleep 3
MEM_START=$(mem)
echo "load +2 s:    $MEM_START"
sleep "$((DURATION - 3))"
MEM_END=$(mem)
echo "load end:     $MEM_END"
STATUS=0
wait "$LOAD_PID" || STATUS=$?
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=

jq -c '{answered_per_s, sent_valid, answered, lost, sent_malformed, answered_malformed, invalid, late, kernel_udp_rcvbuf_errors, kernel_udp_in_errors, latency_us}' "$WORK/load.json"
COUNTERS=$(jq -c 'select(.stopped) | .stopped' "$WORK/server.out")
echo "server:       $COUNTERS"
SENT_VALID=$(jq .sent_valid "$WORK/load.json")
SENT_BAD=$(jq .sent_malformed "$WORK/load.json")
ANSWERED=$(echo "$COUNTERS" | jq .answered)
DROPPED=$(echo "$COUNTERS" | jq '.dropped_malformed + .dropped_not_binding_request + .dropped_bad_fingerprint + .dropped_rate_limited + .dropped_other')
RCVBUF=$(jq .kernel_udp_rcvbuf_errors "$WORK/load.json")
echo "load avg:     $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$STATUS" != 0 ] || [ "$ANSWERED" != "$SENT_VALID" ] || [ "$DROPPED" != "$SENT_BAD" ] || [ "$RCVBUF" != 0 ]; then
    echo "SOAK FAILED: generator status $STATUS, answered $ANSWERED of $SENT_VALID, dropped $DROPPED of $SENT_BAD malformed, kernel rcvbuf drops $RCVBUF" >&2
    exit 1
fi
echo "soak ok: $SENT_VALID valid requests all answered, $SENT_BAD malformed all dropped and counted"
