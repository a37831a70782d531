#!/usr/bin/env bash
# NAT classification, natkit vs stund's client, side by side in one run.
#
# Builds the lab's port-restricted NAT (lab/natlab.sh) with stund in wan, starts
# natkit's `natkit stun-server` beside it (88.77.66.10:4478 / 88.77.66.11:4479), then
# runs N times each, alternating so machine load hits both alike:
#   - natkit:  natkit nat-type --stun 88.77.66.10:3478 --json   (against stund, like stun)
#   - natkit:  natkit nat-type --stun 88.77.66.10:4478 --json   (against natkit's server)
#   - stund:   stun 88.77.66.10 -v                        (stun-client 0.97)
# Every run must name port-restricted cone (natkit: "port_restricted_cone"; stun:
# "Independent Mapping, Port Dependent Filter"), or the script fails: only equal
# answers are timed. Reports the median process wall time of each (both through
# `ip netns exec`, process start included), natkit's own `elapsed_ms` (the classify
# call alone), the ratio stund / natkit, and the load average.
#
# Usage (root): benches/classify_vs_stund.sh [N]      (default N = 20)
# Uses $CARGO_TARGET_DIR (default ./target) and a release build of the natkit binary.
set -euo pipefail

N=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ID=cvs$$
[[ $(id -u) == 0 ]] || { echo "error: needs root (the NAT lab)" >&2; exit 1; }
command -v stun >/dev/null || { echo "error: stun (stun-client) is not installed" >&2; exit 1; }

(cd "$ROOT" && cargo build --quiet --release -p natkit-cli --bin natkit)
BIN=$TARGET/release

SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    "$ROOT/lab/natlab.sh" down --id "$ID" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$ROOT/lab/natlab.sh" up --id "$ID" --nat port-restricted --stund >/dev/null
# --rate: N back-to-back classifications from one address exceed the default
# per-source refill of 20 requests/s (then natkit answers inconclusive, and the
# script stops: only equal answers are timed).
ip netns exec "nk-$ID-wan" "$BIN/natkit" stun-server --bind 88.77.66.10:4478 --alternate 88.77.66.11:4479 \
    --rate 1000 >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    ip netns exec "nk-$ID-wan" ss -Hlun | grep -q ':4479 ' && break
    sleep 0.1
done

now_ns() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -a NK_STUND NK_OURS NK_STUND_IN NK_OURS_IN STUND
run_natkit() { # server → "wall_ms elapsed_ms"
    local t0 out t1
    t0=$(now_ns)
    out=$(ip netns exec "nk-$ID-lan" "$BIN/natkit" nat-type --stun "$1" --json)
    t1=$(now_ns)
    grep -q '"legacy_type":"port_restricted_cone"' <<<"$out" \
        || { echo "error: natkit against $1 said: $out" >&2; exit 1; }
    local inner
    inner=$(sed -E 's/.*"elapsed_ms":([0-9.]+).*/\1/' <<<"$out")
    echo "$(( (t1 - t0) / 1000 ))" "$inner"
}
for i in $(seq "$N"); do
    read -r w e < <(run_natkit 88.77.66.10:3478); NK_STUND+=("$w"); NK_STUND_IN+=("$e")
    read -r w e < <(run_natkit 88.77.66.10:4478); NK_OURS+=("$w"); NK_OURS_IN+=("$e")
    t0=$(now_ns)
    out=$(ip netns exec "nk-$ID-lan" stun 88.77.66.10 -v 2>&1 || true)
    t1=$(now_ns)
    grep -q 'Primary: Independent Mapping, Port Dependent Filter' <<<"$out" \
        || { echo "error: stun said: $out" >&2; exit 1; }
    STUND+=("$(( (t1 - t0) / 1000 ))")
done

ms() { awk '{ printf "%.1f", $1 / 1000 }'; }
m_nk_stund=$(printf '%s\n' "${NK_STUND[@]}" | median)
m_nk_ours=$(printf '%s\n' "${NK_OURS[@]}" | median)
m_stund=$(printf '%s\n' "${STUND[@]}" | median)
m_in_stund=$(printf '%s\n' "${NK_STUND_IN[@]}" | median)
m_in_ours=$(printf '%s\n' "${NK_OURS_IN[@]}" | median)
max_in=$(printf '%s\n' "${NK_STUND_IN[@]}" "${NK_OURS_IN[@]}" | sort -n | tail -1)
echo "port-restricted lab, $N runs each, all answers port-restricted cone; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| client (server) | median wall (process) | median classify() | stund / natkit (wall) |"
echo "|---|---|---|---|"
echo "| natkit nat-type (stund) | $(ms <<<"$m_nk_stund") ms | $(printf '%.1f' "$m_in_stund") ms | $(awk -v a="$m_stund" -v b="$m_nk_stund" 'BEGIN { printf "%.1f×", a / b }') |"
echo "| natkit nat-type (natkit stun-server) | $(ms <<<"$m_nk_ours") ms | $(printf '%.1f' "$m_in_ours") ms | $(awk -v a="$m_stund" -v b="$m_nk_ours" 'BEGIN { printf "%.1f×", a / b }') |"
echo "| stund \`stun -v\` (stund) | $(ms <<<"$m_stund") ms | — | 1.0× |"
echo "slowest natkit classify(): $(printf '%.1f' "$max_in") ms"
