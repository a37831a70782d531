#!/usr/bin/env bash
# Full 65535-port TCP connect sweep of loopback: natkit vs nmap vs RustScan, side by side.
#
# What it does, in one run:
#   1. builds natkit-probe's `sweep` example and the `loopback_listeners` helper (release),
#      and installs RustScan with `cargo install rustscan --root $RUSTSCAN_ROOT` if missing;
#   2. as root, moves into a fresh network namespace (nk-pvn-PID, only `lo` in it), so no
#      other program's listener can come or go during the run; without root it stays on
#      the host's loopback and says so;
#   3. starts TCP listeners on 127.0.0.1: the low ports 21, 22, 80, 443 and 5 random ports
#      in 1024-65535 (each accepts and drops every connection, so no SYN is ever dropped);
#      the expected open set is what `ss` shows listening there (the listeners, plus any
#      other on the host loopback);
#   4. N rounds (default 7); each round runs, in a rotating order,
#        natkit:   sweep 127.0.0.1 1-65535/tcp           (defaults: 2048 in flight, ICMP details on)
#        nmap:     nmap -sT -p- -T5 -oG - 127.0.0.1      (the brief's command, greppable output)
#        rustscan: rustscan -a 127.0.0.1 -r 1-65535 -g -b $RS_BATCH -t 1000 --ulimit $RS_ULIMIT
#                  (-g: greppable, port scan only, nmap is not run afterwards)
#      timing each process's wall time (start to exit) and checking that each found exactly
#      the expected open set; any miss or extra is printed and makes the script exit 1;
#   5. reports the median wall time of each, the ratios natkit/nmap and natkit/RustScan
#      (of the medians, and the median and worst of the per-round ratios), and the load
#      average before and after;
#   6. measures natkit's peak memory (max RSS, /usr/bin/time) sweeping 1-1000, 1-10000 and
#      1-65535 (3 runs each, median), next to nmap's and RustScan's for 65535 ports.
#
# Peers' quirks seen here (details in benches/RESULTS.md):
#   - RustScan reports extra "open" ports in the ephemeral range (32768-60999): a connect
#     from 127.0.0.1 that is given source port P = the target port connects to itself
#     (TCP simultaneous open) and RustScan counts it. natkit and nmap do not.
#   - nmap's time is bimodal here, ~1.4 s or ~0.38 s for the same scan, with the same CPU.
#
# Usage: benches/probe_vs_nmap.sh [N]
# Environment: CARGO_TARGET_DIR (default ./target), RUSTSCAN_ROOT (default /work/tools),
#              RS_BATCH (default 4500, RustScan's own default), RS_ULIMIT (default 10000).
set -euo pipefail

N=${1:-7}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "error: N must be a positive number, not '$N'" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUSTSCAN_ROOT=${RUSTSCAN_ROOT:-/work/tools}
RUSTSCAN=$RUSTSCAN_ROOT/bin/rustscan
RS_BATCH=${RS_BATCH:-4500}
RS_ULIMIT=${RS_ULIMIT:-10000}
SWEEP=$TARGET/release/examples/sweep
LISTENERS=$TARGET/release/loopback_listeners

if [[ ${PVN_INSIDE:-} != 1 ]]; then
    command -v nmap >/dev/null || { echo "error: nmap is not installed" >&2; exit 1; }
    if [[ ! -x $RUSTSCAN ]]; then
        echo "installing RustScan into $RUSTSCAN_ROOT ..." >&2
        cargo install --locked rustscan --root "$RUSTSCAN_ROOT" >&2
    fi
    (cd "$ROOT" && cargo build --quiet --release -p natkit-probe --example sweep \
        && cargo build --quiet --release -p natkit-benches --bin loopback_listeners)
    if [[ $(id -u) == 0 ]]; then
        NS=nk-pvn-$$
        ip netns add "$NS"
        trap 'rc=$?; ip netns delete "$NS" 2>/dev/null || true; exit $rc' EXIT
        ip -n "$NS" link set lo up
        PVN_INSIDE=1 PVN_WHERE="network namespace $NS (only lo)" \
            ip netns exec "$NS" "$0" "$@"
        exit $?
    fi
    echo "warning: not root: sweeping the host's loopback; other programs' listeners" \
         "may come and go during the run" >&2
    PVN_WHERE="the host's loopback"
fi

# ---- inside: listeners, rounds, report ----

TMP=$(mktemp -d)
LISTEN_PID=
cleanup_inside() {
    local rc=$?
    if [[ -n $LISTEN_PID ]]; then
        kill "$LISTEN_PID" 2>/dev/null || true
        wait "$LISTEN_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup_inside EXIT

coproc LISTEN { exec "$LISTENERS" --random 5 21 22 80 443; }
LISTEN_PID=$LISTEN_PID
read -r OURS <&"${LISTEN[0]}" || { echo "error: the listeners did not start" >&2; exit 1; }

# Everything listening where a connect to 127.0.0.1 lands: 127.0.0.1, 0.0.0.0, *, and
# dual-stack [::] sockets.
EXPECTED=$(ss -Htln | awk '{ n = split($4, a, ":"); addr = substr($4, 1, length($4) - length(a[n]) - 1);
    if (addr == "127.0.0.1" || addr == "0.0.0.0" || addr == "*" || addr == "[::]" || addr == "[::ffff:127.0.0.1]")
        print a[n] }' | sort -nu | paste -sd, -)
for p in ${OURS//,/ }; do
    [[ ,$EXPECTED, == *,$p,* ]] || { echo "error: listener $p is not in ss's list" >&2; exit 1; }
done

now_ns() { date +%s%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Each runner: runs once, writes the wall time in ms to $TMP/ms and the open ports
# (sorted, comma-separated) to $TMP/open.
run_natkit() {
    local t0 t1
    t0=$(now_ns)
    "$SWEEP" 127.0.0.1 1-65535/tcp >"$TMP/out" 2>"$TMP/err"
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000)) | awk '{ printf "%.1f\n", $1 / 1000 }' >"$TMP/ms"
    grep -oP '^127\.0\.0\.1:\K[0-9]+(?=/tcp open)' "$TMP/out" | sort -n | paste -sd, - >"$TMP/open" || true
    # Honesty on loopback: every other port must be closed by a reset, none filtered.
    grep -q ' 0 filtered, 0 open_filtered' "$TMP/out" || { echo "natkit: unexpected verdicts:"; tail -3 "$TMP/out"; } >&2
}
run_nmap() {
    local t0 t1
    t0=$(now_ns)
    nmap -sT -p- -T5 -oG - 127.0.0.1 >"$TMP/out" 2>"$TMP/err"
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000)) | awk '{ printf "%.1f\n", $1 / 1000 }' >"$TMP/ms"
    grep -oP '[0-9]+(?=/open/tcp/)' "$TMP/out" | sort -n | paste -sd, - >"$TMP/open" || true
}
run_rustscan() {
    local t0 t1
    t0=$(now_ns)
    "$RUSTSCAN" --no-config -a 127.0.0.1 -r 1-65535 -g -b "$RS_BATCH" -t 1000 \
        --ulimit "$RS_ULIMIT" >"$TMP/out" 2>"$TMP/err"
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000)) | awk '{ printf "%.1f\n", $1 / 1000 }' >"$TMP/ms"
    grep -oP '^127\.0\.0\.1 -> \[\K[0-9,]*' "$TMP/out" | tr ',' '\n' | sort -n | paste -sd, - >"$TMP/open" || true
}

TOOLS=(natkit nmap rustscan)
declare -A TIMES
MISSES=0
LOAD_BEFORE=$(loadavg)
echo "where:     $PVN_WHERE"
echo "listeners: $OURS (expected open set: $EXPECTED)"
echo "tools:     $(nmap --version | head -1); $("$RUSTSCAN" --version 2>/dev/null | head -1); natkit $SWEEP"
echo "load before: $LOAD_BEFORE ($(nproc) cores)"
printf '%-6s %10s %10s %10s\n' round natkit_ms nmap_ms rustscan_ms
for ((r = 0; r < N; r++)); do
    declare -A ROUND=()
    for ((k = 0; k < 3; k++)); do
        tool=${TOOLS[$(((r + k) % 3))]}
        "run_$tool"
        ms=$(cat "$TMP/ms")
        open=$(cat "$TMP/open")
        ROUND[$tool]=$ms
        TIMES[$tool]+="$ms "
        if [[ $open != "$EXPECTED" ]]; then
            MISSES=$((MISSES + 1))
            missing=$(comm -23 <(tr ',' '\n' <<<"$EXPECTED" | sort) <(tr ',' '\n' <<<"$open" | sort) | sort -n | paste -sd, -)
            extra=$(comm -13 <(tr ',' '\n' <<<"$EXPECTED" | sort) <(tr ',' '\n' <<<"$open" | sort) | sort -n | paste -sd, -)
            echo "MISMATCH round $((r + 1)) $tool: found [$open], missing [$missing], extra [$extra]" >&2
            sed 's/^/    /' "$TMP/err" | head -5 >&2
        fi
    done
    printf '%-6s %10s %10s %10s\n' $((r + 1)) "${ROUND[natkit]}" "${ROUND[nmap]}" "${ROUND[rustscan]}"
    echo "$(ratio "${ROUND[natkit]}" "${ROUND[nmap]}") $(ratio "${ROUND[natkit]}" "${ROUND[rustscan]}")" >>"$TMP/ratios"
done
LOAD_AFTER=$(loadavg)

med() { tr ' ' '\n' <<<"${TIMES[$1]}" | grep . | median; }
NK=$(med natkit); NM=$(med nmap); RS=$(med rustscan)
echo
echo "median wall time over $N rounds: natkit ${NK} ms, nmap ${NM} ms, rustscan ${RS} ms"
echo "ratio of medians: natkit/nmap $(ratio "$NK" "$NM"), natkit/rustscan $(ratio "$NK" "$RS")"
echo "per-round ratios: natkit/nmap median $(cut -d' ' -f1 "$TMP/ratios" | median)," \
     "worst $(cut -d' ' -f1 "$TMP/ratios" | sort -g | tail -1);" \
     "natkit/rustscan median $(cut -d' ' -f2 "$TMP/ratios" | median)," \
     "worst $(cut -d' ' -f2 "$TMP/ratios" | sort -g | tail -1)"
if ((MISSES == 0)); then
    echo "open sets: all $((3 * N)) runs found exactly [$EXPECTED]"
else
    echo "open sets: $MISSES of $((3 * N)) runs did NOT find exactly [$EXPECTED] (see MISMATCH lines)"
fi
echo "load after: $LOAD_AFTER"

# Peak memory: max RSS in KiB, median of 3.
rss() { # command...
    for _ in 1 2 3; do
        /usr/bin/time -f '%M' -o "$TMP/rss" "$@" >/dev/null 2>&1
        tail -1 "$TMP/rss"
    done | median
}
echo
echo "peak memory (max RSS, KiB, median of 3):"
for spec in 1-1000 1-10000 1-65535; do
    echo "  natkit sweep $spec/tcp: $(rss "$SWEEP" 127.0.0.1 "$spec/tcp")"
done
echo "  nmap -p-: $(rss nmap -sT -p- -T5 -oG - 127.0.0.1)"
echo "  rustscan 1-65535: $(rss "$RUSTSCAN" --no-config -a 127.0.0.1 -r 1-65535 -g -b "$RS_BATCH" -t 1000 --ulimit "$RS_ULIMIT")"

((MISSES == 0))
