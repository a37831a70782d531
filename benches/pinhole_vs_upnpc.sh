#!/usr/bin/env bash
# IPv6 pinholes, natkit vs miniupnpc's `upnpc -6`, and a PCP IPv6 MAP vs natkit's own
# IPv4 PCP MAP, side by side in one run.
#
# Builds the dual-stack lab (lab/natlab.sh up --ipv6 --miniupnpd: miniupnpd serving
# WANIPv6FirewallControl and PCP for IPv6) and, in its LAN host, runs N rounds of:
#   - natkit UPnP:  pinhole_latency upnp6 P  (gateway lookup, stable-address choice,
#                   SSDP discovery, description, AddPinhole; the pinhole is left)
#   - upnpc -6 -A "" 0 LAN_IP6 P TCP 3600   (SSDP discovery over IPv6, AddPinhole)
#   - upnpc -6 -u URL -A …                  (AddPinhole with the description URL
#                                            given: no discovery; a floor, not a peer)
#   - natkit PCP v6: pinhole_latency pcp6 P  (gateway lookup, stable address, IPv6
#                   PCP server search, MAP; deleted after the timing)
#   - natkit PCP v4: pinhole_latency pcp4 P  (gateway lookup, MAP; deleted after)
# Every run must succeed (natkit prints its grant, upnpc a "Pinhole ID"), or the
# script fails. After each round miniupnpd is restarted (untimed) so every round
# starts from an empty pinhole table.
#
# upnpc's SOAP requests must come from the pinhole's own address (miniupnpd answers
# 606 otherwise, miniupnp issue 731), and the LAN host's default source is its
# temporary address: a route to the router with the static address as preferred
# source makes upnpc's requests come from it (natkit binds the address itself).
#
# Reports the median process wall time (through `ip netns exec`, process start
# included), natkit's in-process time (`ok ELAPSED_US`), the ratios and the load.
#
# Usage (root): benches/pinhole_vs_upnpc.sh [N]     (default N = 15)
# Uses $CARGO_TARGET_DIR (default ./target) and a release build.
set -euo pipefail

N=${1:-15}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ID=pvu$$
[[ $(id -u) == 0 ]] || { echo "error: needs root (the NAT lab)" >&2; exit 1; }
command -v upnpc >/dev/null || { echo "error: upnpc (miniupnpc) is not installed" >&2; exit 1; }

(cd "$ROOT" && cargo build --quiet --release -p natkit-benches --bin pinhole_latency)
BIN=$TARGET/release/pinhole_latency

cleanup() { "$ROOT/lab/natlab.sh" down --id "$ID" >/dev/null 2>&1 || true; }
trap cleanup EXIT

"$ROOT/lab/natlab.sh" up --id "$ID" --nat port-restricted --miniupnpd --ipv6 >/dev/null
env_of() { "$ROOT/lab/natlab.sh" env --id "$ID" | sed -n "s/^$1=//p"; }
LAN6=$(env_of LAN_IP6)
RTR6=$(env_of RTR_LAN_IP6)
URL="http://[$RTR6]:2869/rootDesc.xml"
LAN="ip netns exec nk-$ID-lan"
$LAN ip -6 route add "$RTR6/128" dev eth0 src "$LAN6"

now_ns() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms() { awk '{ printf "%.1f", $1 / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", a / b }'; }

declare -a NK_UPNP NK_UPNP_IN UPNPC UPNPC_URL PCP6 PCP6_IN PCP4 PCP4_IN
natkit() { # contender port → "wall_us inner_us"
    local t0 out t1
    t0=$(now_ns)
    out=$($LAN "$BIN" "$1" "$2")
    t1=$(now_ns)
    [[ $out == ok\ * && $out == *"[$LAN6]:$2"* || $1 == pcp4 && $out == ok\ * ]] \
        || { echo "error: natkit $1 said: $out" >&2; exit 1; }
    echo "$(( (t1 - t0) / 1000 ))" "$(cut -d' ' -f2 <<<"$out")"
}
upnpc6() { # port [upnpc options…] → wall_us
    local port=$1 t0 out t1
    shift
    t0=$(now_ns)
    out=$($LAN upnpc -6 "$@" -A "" 0 "$LAN6" "$port" TCP 3600 2>&1 || true)
    t1=$(now_ns)
    grep -q "Pinhole ID = " <<<"$out" || { echo "error: upnpc -6 $* said: $out" >&2; exit 1; }
    echo "$(( (t1 - t0) / 1000 ))"
}

port=40000
for i in $(seq "$N"); do
    read -r w e < <(natkit upnp6 $((port + 1))); NK_UPNP+=("$w"); NK_UPNP_IN+=("$e")
    UPNPC+=("$(upnpc6 $((port + 2)))")
    UPNPC_URL+=("$(upnpc6 $((port + 3)) -u "$URL")")
    read -r w e < <(natkit pcp6 $((port + 4))); PCP6+=("$w"); PCP6_IN+=("$e")
    read -r w e < <(natkit pcp4 $((port + 5))); PCP4+=("$w"); PCP4_IN+=("$e")
    port=$((port + 10))
    "$ROOT/lab/natlab.sh" restart-miniupnpd --id "$ID" >/dev/null
done

m() { printf '%s\n' "$@" | median; }
m_nk=$(m "${NK_UPNP[@]}"); m_nk_in=$(m "${NK_UPNP_IN[@]}")
m_upnpc=$(m "${UPNPC[@]}"); m_url=$(m "${UPNPC_URL[@]}")
m_p6=$(m "${PCP6[@]}"); m_p6_in=$(m "${PCP6_IN[@]}")
m_p4=$(m "${PCP4[@]}"); m_p4_in=$(m "${PCP4_IN[@]}")
ver=$(ip netns exec "nk-$ID-rtr" miniupnpd --version 2>&1 | head -1 || true)
echo "dual-stack lab ($ver), $N runs each; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| contender | median wall (process) | median in-process | ratio |"
echo "|---|---|---|---|"
echo "| natkit UPnP pinhole (discovery + AddPinhole) | $(ms <<<"$m_nk") ms | $(ms <<<"$m_nk_in") ms | 1.0× |"
echo "| \`upnpc -6 -A\` (discovery + AddPinhole) | $(ms <<<"$m_upnpc") ms | — | $(ratio "$m_upnpc" "$m_nk") natkit's wall |"
echo "| \`upnpc -6 -u URL -A\` (no discovery) | $(ms <<<"$m_url") ms | — | $(ratio "$m_url" "$m_nk") natkit's wall (a floor: no discovery) |"
echo "| natkit PCP IPv6 MAP (pinhole) | $(ms <<<"$m_p6") ms | $(ms <<<"$m_p6_in") ms | $(ratio "$m_p6_in" "$m_p4_in") the IPv4 MAP's time (in-process) |"
echo "| natkit PCP IPv4 MAP | $(ms <<<"$m_p4") ms | $(ms <<<"$m_p4_in") ms | 1.0× |"
echo "natkit UPnP in-process, every run (ms): $(printf '%s\n' "${NK_UPNP_IN[@]}" | awk '{ printf "%.1f ", $1 / 1000 }')"
echo "upnpc -6 -A, every run (ms): $(printf '%s\n' "${UPNPC[@]}" | awk '{ printf "%.0f ", $1 / 1000 }')"
echo "PCP v6 / v4 in-process, every run (ms): $(paste -d/ <(printf '%s\n' "${PCP6_IN[@]}") <(printf '%s\n' "${PCP4_IN[@]}") | awk -F/ '{ printf "%.1f/%.1f ", $1 / 1000, $2 / 1000 }')"
