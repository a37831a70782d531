#!/usr/bin/env bash
# STUN Binding throughput: natkit's STUN server (`natkit stun-server`) vs coturn (turnserver --stun-only), one
# core each, same load generator (stun_load), same run, rounds alternating.
#
#   benches/stun_server_vs_coturn.sh [ROUNDS] [SECONDS]
#
# Method (see benches/RESULTS.md, "STUN server vs coturn"):
# - both servers listen on 127.0.0.1 (one UDP socket each), pinned to CPU 0 with taskset;
#   the generator is pinned to CPU 1;
# - coturn: --stun-only, UDP only, one relay thread, no CLI, no TLS/DTLS, no TCP;
# - natkit: `natkit stun-server --no-rate-limit` (coturn has no per-source rate
#   limit and every request comes from 127.0.0.1; the limiter's buckets are still kept, so
#   their cost is measured);
# - when run as root, servers and generator run SCHED_FIFO (chrt -f 10): on a shared
#   machine where others compile, CFS wake-up latency otherwise dominates a closed-loop
#   test (we measured both servers at ~14% CPU, p90 latency 4-8 ms, without it);
# - stun_load: 4 connected sockets, 32 requests outstanding each (closed loop), FINGERPRINT
#   on every request, every response validated (--check fails the run on a bad answer).
# Prints the median answered requests/s of each, the ratio, and the load average.
set -euo pipefail

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
COTURN_PORT=${COTURN_PORT:-34780}
NATKIT_PORT=${NATKIT_PORT:-34790}
LOAD_ARGS=${LOAD_ARGS:---sockets 4 --window 32}

command -v turnserver >/dev/null || { echo "error: turnserver (coturn) not installed" >&2; exit 2; }
command -v jq >/dev/null || { echo "error: jq not installed" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "error: needs 2 CPUs (server on one, generator on the other)" >&2; exit 2; }

(cd "$ROOT" && cargo build --release -q -p natkit-cli --bin natkit \
    && cargo build --release -q -p natkit-benches --bin stun_load)
SERVER=$TARGET/release/natkit
LOAD=$TARGET/release/stun_load

RT=()
if [ "$(id -u)" = 0 ] && command -v chrt >/dev/null; then
    RT=(chrt -f 10)
    METHOD="SCHED_FIFO 10 (chrt) for servers and generator"
else
    METHOD="normal scheduling (not root: no chrt)"
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/turnserver.conf" <<EOF
listening-ip=127.0.0.1
listening-port=$COTURN_PORT
stun-only
no-tcp
no-tls
no-dtls
relay-threads=1
no-cli
no-stdout-log
log-file=$WORK/turn.log
simple-log
pidfile=$WORK/turn.pid
EOF
# taskset and chrt exec, so $! is the server's own pid.
taskset -c 0 "${RT[@]}" turnserver -c "$WORK/turnserver.conf" >"$WORK/turn.out" 2>&1 &
PIDS+=($!)
COTURN_PID=$!
taskset -c 0 "${RT[@]}" "$SERVER" stun-server --bind "127.0.0.1:$NATKIT_PORT" --no-rate-limit \
    >"$WORK/natkit.out" 2>&1 &
PIDS+=($!)
NATKIT_PID=$!

# Wait until both answer.
for port in $COTURN_PORT $NATKIT_PORT; do
    ok=
    for _ in $(seq 50); do
        if "$LOAD" --target "127.0.0.1:$port" --sockets 1 --window 1 --duration 0.1 \
            --warmup 0 --timeout-ms 100 --check >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "error: no STUN answer on 127.0.0.1:$port" >&2; cat "$WORK"/*.out >&2; exit 1; }
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# CPU time (user + system, all threads) of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
run() { # port pid -> "answered/s server-cpu-fraction" (JSON line saved)
    local t0 c0 t1 c1
    t0=$(date +%s.%N); c0=$(ticks "$2")
    # shellcheck disable=SC2086
    taskset -c 1 "${RT[@]}" "$LOAD" --target "127.0.0.1:$1" $LOAD_ARGS \
        --duration "$SECONDS_PER_RUN" --warmup 1 --json --check >"$WORK/run.json"
    t1=$(date +%s.%N); c1=$(ticks "$2")
    # The server's share of its core over the whole run (warm-up included): when it is
    # below 1, the generator (one core) and not the server was the limit.
    echo "$(jq -r .answered_per_s "$WORK/run.json") $(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz / (e - s)}')"
    jq -c '{answered_per_s, lost, invalid, latency_us}' "$WORK/run.json" >&2
}
COTURN=()
NATKIT=()
COTURN_CPU=()
NATKIT_CPU=()
for r in $(seq "$ROUNDS"); do
    echo "round $r: coturn" >&2
    read -r rate cpu < <(run $COTURN_PORT "$COTURN_PID")
    COTURN+=("$rate"); COTURN_CPU+=("$cpu")
    echo "round $r: natkit" >&2
    read -r rate cpu < <(run $NATKIT_PORT "$NATKIT_PID")
    NATKIT+=("$rate"); NATKIT_CPU+=("$cpu")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
MC=$(median "${COTURN[@]}")
MN=$(median "${NATKIT[@]}")
echo "method:   one core each (taskset), $METHOD, stun_load $LOAD_ARGS, ${SECONDS_PER_RUN}s x $ROUNDS rounds"
CC=$(median "${COTURN_CPU[@]}")
CN=$(median "${NATKIT_CPU[@]}")
echo "coturn:   $(turnserver --version 2>/dev/null | head -1) runs ${COTURN[*]} req/s, median $MC; server CPU ${COTURN_CPU[*]} of its core"
echo "natkit:   runs ${NATKIT[*]} req/s, median $MN; server CPU ${NATKIT_CPU[*]} of its core"
echo "ratio:    $(awk -v n="$MN" -v c="$MC" 'BEGIN {printf "%.2f", n / c}') (natkit / coturn, requests/s)"
echo "per core: $(awk -v n="$MN" -v c="$MC" -v cn="$CN" -v cc="$CC" 'BEGIN {printf "%.0f vs %.0f req per CPU-second, %.2f", n / cn, c / cc, (n / cn) / (c / cc)}') (natkit / coturn; a server below 1.0 CPU was held back by the generator)"
echo "load avg: before $LOAD_BEFORE, after $LOAD_AFTER"
