#!/usr/bin/env bash
# natlab.sh — the natkit NAT lab: real Linux NAT topologies in network namespaces.
#
#   natlab.sh up   --id ID --nat KIND [--miniupnpd] [--ext-ip IP] [--stund] [--coturn]
#                  [--hairpin] [--double-nat] [--lan2] [--loss N] [--block-inbound PORT/PROTO]...
#                  [--dns] [--dns-host NAME=IP]... [--dns-silent] [--sip-alg]
#                  [--block-outbound PORT/PROTO]... [--rate-limit-kbps N] [--ipv6]
#                  [--ipv6-quirk QUIRK]
#   natlab.sh down --id ID                 # idempotent, always exits 0
#   natlab.sh env  --id ID                 # print the lab's KEY=VALUE file
#   natlab.sh link --id ID rtr-lan|rtr-wan up|down
#   natlab.sh restart-miniupnpd --id ID    # "router reboot": new epoch, no mappings
#   natlab.sh reset-nat --id ID            # forget every NAT binding and filter entry
#   natlab.sh list                         # ids of the labs that exist
#   natlab.sh gc                           # down labs of dead natkit-lab processes
#
# Must run as root. See lab/README.md for the topology picture and the quirks.
#
# NETWORK RULE: nothing here is ever linked to the host's own network. Every veth is
# created with both ends directly inside lab namespaces (`ip link add A netns X type
# veth peer name B netns Y`), so no interface ever appears in the root namespace and
# the "internet" (the wan namespace) has no route anywhere but the lab.
#
# Topology (default, --lan2 adds lan2 on the same bridge):
#
#   nk-ID-lan  eth0 192.168.77.2 ──┐
#   nk-ID-lan2 eth0 192.168.77.3 ──┤ lan0/lan1 (bridge ports)
#                        nk-ID-rtr br0 192.168.77.1   wan0 88.77.66.2 ── eth0 nk-ID-wan
#                                                                         88.77.66.20 PEER
#                                                                         88.77.66.21 PEER2
#                                                                         88.77.66.10 STUN1
#                                                                         88.77.66.11 STUN2
#                                                                         88.77.66.1  GW
# --double-nat puts nk-ID-isp between rtr and wan:
#   rtr wan0 100.64.0.2/10 ── lan0 100.64.0.1/10 nk-ID-isp wan0 88.77.66.2 ── eth0 wan
# --nat open gives the LAN a public /24 instead: 88.77.67.0/24 (rtr .1, lan .2, lan2 .3),
# routed by wan via 88.77.66.2.
# --ipv6 adds IPv6 on the same links (no NAT on IPv6: the router routes the LAN /64):
#   LAN 2a0d:88:77:77::/64: rtr br0 ::1, lan ::2 (+ SLAAC stable and temporary),
#   lan2 ::3 (+ SLAAC); internet 2a0d:88:77:66::/64: GW ::1, rtr wan0 ::2, STUN1 ::10,
#   STUN2 ::11, PEER ::20, PEER2 ::21; wan routes the LAN /64 via rtr's ::2.
#   With --double-nat the ISP routes IPv6 (no CGN on IPv6): rtr wan0
#   2a0d:88:77:65::2/64 ── isp lan0 2a0d:88:77:65::1, isp wan0 2a0d:88:77:66::2.

set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

RUN_BASE="${NATLAB_RUN_BASE:-/run/natlab}"
ROLES=(lan lan2 rtr isp wan)

# --- addresses --------------------------------------------------------------------
# The WAN /24 must not be in miniupnpd's reserved list (addr_is_reserved(): 0/8, 10/8,
# 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24 (TEST-NET-1),
# 192.88.99/24, 192.168/16, 198.18/15, 198.51.100/24 (TEST-NET-2), 203.0.113/24
# (TEST-NET-3), 224/4, 240/4 ...): with a reserved address on its ext interface
# miniupnpd 2.3.1 refuses to forward ports at all. So the lab "internet" is
# 88.77.66.0/24. It exists only inside the lab namespaces.
WAN_PREFIX=88.77.66
WAN_GW=$WAN_PREFIX.1
PUBLIC_WAN_IP=$WAN_PREFIX.2
STUN1=$WAN_PREFIX.10
STUN2=$WAN_PREFIX.11
PEER_IP=$WAN_PREFIX.20
PEER2_IP=$WAN_PREFIX.21
CGN_ISP_IP=100.64.0.1
CGN_RTR_IP=100.64.0.2
CGN_PLEN=10
OPEN_PREFIX=88.77.67
# The lab's DNS server (--dns, --dns-silent), in wan: the LAN hosts' only nameserver.
DNS_IP=$WAN_PREFIX.53
PRIV_PREFIX=192.168.77
MINIUPNPD_HTTP_PORT=2869
# IPv6 (--ipv6). A made-up global-looking space that exists only in the lab:
# 2001:db8::/32 and 3fff::/20 are documentation ranges, which natkit's scope rules
# (like miniupnpd's) treat as not global. No NAT on IPv6: the LAN /64 is routed.
WAN6_PREFIX=2a0d:88:77:66
LAN6_PREFIX=2a0d:88:77:77
# The link between rtr and isp with --double-nat (the ISP routes the LAN /64 over it).
CGN6_PREFIX=2a0d:88:77:65
WAN_GW6=$WAN6_PREFIX::1
PUBLIC_WAN_IP6=$WAN6_PREFIX::2
STUN1_6=$WAN6_PREFIX::10
STUN2_6=$WAN6_PREFIX::11
PEER_IP6=$WAN6_PREFIX::20
PEER2_IP6=$WAN6_PREFIX::21
LAN_NET6=$LAN6_PREFIX::/64
RTR_LAN_IP6=$LAN6_PREFIX::1
LAN_IP6=$LAN6_PREFIX::2
LAN2_IP6=$LAN6_PREFIX::3
# coturn's ports on STUN1 and STUN2 (stund has 3478/3479, natkit's server tests 4478/4479).
COTURN_PORT1=5478
COTURN_PORT2=5479
# --ipv6-quirk: real-world IPv6 networks the plain dual-stack lab leaves out (README,
# "IPv6 quirks"); each implies --ipv6.
IPV6_QUIRKS="no-firewall|reject|temporary-only|ula-only|link-local-only|dead-uplink|no-upstream|nat66|miniupnpd-no-ipv6"
NAT_KINDS="port-restricted|symmetric|full-cone|restricted-cone|restricted-cone-per-host|port-restricted-per-host|address-dependent-mapping|port-restricted-no-preserve|open"

die() {
    echo "natlab: $*" >&2
    exit 2
}

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

ns() { echo "nk-$ID-$1"; }

# Run a command inside a lab namespace. (`ip netns exec` execs the program, so when it
# is started with `&` directly — not through this function — `$!` is the program's pid.)
inns() {
    local role=$1
    shift
    ip netns exec "$(ns "$role")" "$@"
}

check_id() {
    [[ -n "${ID:-}" ]] || die "missing --id"
    # Short, and only characters that are safe in a file and namespace name.
    [[ "$ID" =~ ^[A-Za-z0-9]{1,24}$ ]] || die "bad --id '$ID' (1-24 letters/digits)"
    DIR="$RUN_BASE/$ID"
}

# /run/netns is set up (made a shared mount point) by the first `ip netns add`; two
# labs created at the same moment can race there, and nothing else in the lab needs
# serialising, so only namespace creation and deletion take this lock.
with_ns_lock() {
    mkdir -p "$RUN_BASE"
    flock "$RUN_BASE/.netns.lock" "$@"
}

# --- helpers for daemons ----------------------------------------------------------

# proc_state PID: the state letter from /proc/PID/stat (R, S, Z, ...), empty if the
# process is gone. The comm field may contain spaces and parentheses, so take what
# follows its last ')'.
proc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    echo "${stat%% *}"
}

# alive PID: the process exists and is not a zombie.
alive() {
    local state
    state=$(proc_state "$1")
    [[ -n "$state" && "$state" != Z ]]
}

# is_ours PID ROLE...: true if PID is alive and lives in one of our namespaces.
# Guards against pid reuse before we signal anything.
is_ours() {
    local pid=$1
    shift
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    local where r
    where=$(ip netns identify "$pid" 2>/dev/null) || return 1
    for r in "$@"; do
        [[ "$where" == "$(ns "$r")" ]] && return 0
    done
    return 1
}

# stop_pid PID: TERM, wait up to 3 s, then KILL. Only ever called on pids that
# is_ours() accepted or that `ip netns pids` reports for our own namespaces.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 30); do
        alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do
        alive "$pid" || return 0
        sleep 0.1
    done
}

# wait_listen ROLE PROTO [ADDR]:PORT PID NAME: wait until a socket is bound to PORT
# (and to ADDR, if given; miniupnpd binds its HTTP and NAT-PMP ports to 0.0.0.0), or
# fail with the daemon's log if it died or did not come up within 5 s.
wait_listen() {
    local role=$1 proto=$2 local_addr=$3 pid=$4 name=$5 i
    local port=${local_addr##*:} addr=${local_addr%:*}
    for i in $(seq 1 100); do
        if inns "$role" ss -Hln"${proto:0:1}" "sport = :$port" 2>/dev/null |
            awk -v want="$addr:$port" -v any="${addr:+0}" 'any == "" || $4 == want { f = 1 } END { exit !f }'; then
            return 0
        fi
        if ! alive "$pid"; then
            fail_with_log "$name" "$name exited during start-up"
            return 1
        fi
        sleep 0.05
    done
    fail_with_log "$name" "$name did not bind $proto $local_addr within 5 s"
}

# fail_with_log NAME MESSAGE: print MESSAGE and the end of the daemon NAME's log; fails.
fail_with_log() {
    echo "natlab: $2; its log:" >&2
    tail -n 30 "$DIR/$1.log" >&2 || true
    return 1
}

# --- miniupnpd --------------------------------------------------------------------

write_miniupnpd_conf() {
    # Gotchas (miniupnpd-nftables 2.3.1, Debian 12):
    # - The Debian package ships no config file, no man page and no
    #   miniupnpd_functions.sh (the nft_*.sh helpers in /etc/miniupnpd source it and
    #   so do not run). The option names below come from the binary itself.
    # - It does NOT create its nft tables/chains: they must exist before it starts
    #   (we create them in the router ruleset, see rtr_ruleset). The names must match
    #   upnp_table_name / upnp_nat_table_name / upnp_forward_chain / upnp_nat_chain /
    #   upnp_nat_postrouting_chain; its built-in default puts the NAT chains in table
    #   "filter", hence the explicit upnp_nat_table_name=nat. Tables are family inet.
    # - Each instance needs its own pid file (-P): on start it refuses to run when the
    #   pid in /var/run/miniupnpd.pid is alive ("MiniUPnPd is already running").
    # - ext_ip / an ext interface address in a reserved range (100.64/10, RFC 1918,
    #   TEST-NETs, 198.18/15 …) disables port forwarding entirely in 2.3.1; there is no
    #   ext_allow_private_ipv4 option yet in this version (see README, double NAT).
    local ext_if=$1 ext_ip=${2:-} uuid
    uuid=$(printf 'aa5e1ab0-0000-4000-8000-%012x' "$(cksum <<<"$ID" | awk '{print $1}')")
    cat >"$DIR/miniupnpd.conf" <<EOF
# natlab $ID — generated by natlab.sh
ext_ifname=$ext_if
listening_ip=br0
http_port=$MINIUPNPD_HTTP_PORT
enable_upnp=yes
# NAT-PMP and PCP (one switch in 2.3.1)
enable_natpmp=yes
secure_mode=no
system_uptime=no
notify_interval=60
clean_ruleset_interval=600
lease_file=$DIR/miniupnpd.leases
uuid=$uuid
friendly_name=natlab $ID
model_number=natlab
serial=$ID
upnp_table_name=filter
upnp_nat_table_name=nat
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
# Anyone on the lab LAN may map any port (the tests map 443 on purpose).
allow 1-65535 $LAN_NET 1-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
    if ((IPV6)) && [[ "$IPV6_QUIRK" != miniupnpd-no-ipv6 ]]; then
        # IPv6: WANIPv6FirewallControl (IGD:2) pinholes and PCP MAP for IPv6 internal
        # addresses. Both end up as accept rules in upnp_forward_chain (inet filter
        # miniupnpd), matching the WAN interface, the internal address and port.
        # - No ipv6_listening_ip: with it (= RTR_LAN_IP6) 2.3.1 binds its one HTTP
        #   socket (IPv6, not v6only) to that address, and IPv4 UPnP is gone (nothing
        #   on 192.168.77.1:2869, upnpc: "No IGD UPnP Device found"). Without it the
        #   socket is [::]%br0:2869 for both families, and miniupnpd takes br0's
        #   global IPv6 address for the IPv6 URLs itself ("HTTP IPv6 address given
        #   to control points : [2a0d:88:77:77::1]"). PCP listens on [::]:5351.
        # - The allow/deny lines above are IPv4-only in 2.3.1 (`allow 1024-65535
        #   2a0d:88:77:77::/64 1024-65535` is a "parsing error" and it exits), and the
        #   deny-all line does not stop pinholes; a pinhole is allowed to
        #   whoever asks for its own address (IGD:2: InternalClient must be the control
        #   point's source address, else 606 -- miniupnp issue 731; a LAN host with a
        #   temporary address sends from that one unless told otherwise).
        cat >>"$DIR/miniupnpd.conf" <<EOF
ext_ifname6=$ext_if
force_igd_desc_v1=no
EOF
    else
        echo "ipv6_disable=yes" >>"$DIR/miniupnpd.conf"
    fi
    if [[ -n "$ext_ip" ]]; then
        # --ext-ip: what miniupnpd reports as external address instead of wan0's.
        # Must not be reserved (miniupnpd exits: "option ext_ip contains reserved /
        # private address"). Behind the CGN this is how a user makes 2.3.1 forward.
        echo "ext_ip=$ext_ip" >>"$DIR/miniupnpd.conf"
    fi
}

start_miniupnpd() {
    : >"$DIR/miniupnpd.log"
    # -d: stay in the foreground (so $! is its pid) and log to stderr.
    # It also logs every line through syslog; with no /dev/log, glibc falls back
    # to /dev/console, which on a VM can be a 9600-baud serial port that blocks
    # the single-threaded daemon for tens of ms per line (lab/README.md). A real
    # router has a syslog daemon; here, in a private mount namespace, the console
    # is /dev/null. unshare and sh exec, so $! stays miniupnpd's pid.
    ip netns exec "$(ns rtr)" unshare --mount --propagation private \
        sh -c 'mount --bind /dev/null /dev/console && exec "$@"' sh \
        /usr/sbin/miniupnpd -d -f "$DIR/miniupnpd.conf" \
        -P "$DIR/miniupnpd.pid" </dev/null >>"$DIR/miniupnpd.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$DIR/pids/miniupnpd"
    wait_listen rtr tcp ":$MINIUPNPD_HTTP_PORT" "$pid" miniupnpd
    wait_listen rtr udp ":5351" "$pid" miniupnpd
    set_env MINIUPNPD_PID "$pid"
}

stop_miniupnpd() {
    local pid
    pid=$(cat "$DIR/pids/miniupnpd" 2>/dev/null || true)
    if [[ -n "$pid" ]] && is_ours "$pid" rtr; then
        stop_pid "$pid"
    fi
    rm -f "$DIR/pids/miniupnpd"
}

# --- coturn ---------------------------------------------------------------------

start_coturn() {
    : >"$DIR/coturn.log"
    # coturn 4.6.1 as an RFC 5780 STUN server on STUN1 and STUN2, ports 5478 and 5479.
    # -n: no config file. Debian's /etc/turnserver.conf says no-rfc5780, and with it
    # coturn ignores CHANGE-REQUEST and sends no OTHER-ADDRESS, so no behaviour test
    # could run against it. Its own files (pid, SQLite user db) go to the run dir, not
    # /var, so labs in parallel do not share them. Without -o it stays in the
    # foreground: $! is its pid.
    ip netns exec "$(ns wan)" /usr/bin/turnserver -n --stun-only --no-cli --no-tls --no-dtls \
        -L "$STUN1" -L "$STUN2" -p "$COTURN_PORT1" --alt-listening-port "$COTURN_PORT2" \
        --pidfile "$DIR/coturn.pid" --db "$DIR/turndb" --log-file stdout --simple-log \
        </dev/null >>"$DIR/coturn.log" 2>&1 &
    local pid=$! a
    echo "$pid" >"$DIR/pids/coturn"
    for a in "$STUN1:$COTURN_PORT1" "$STUN1:$COTURN_PORT2" "$STUN2:$COTURN_PORT1" "$STUN2:$COTURN_PORT2"; do
        wait_listen wan udp "$a" "$pid" coturn
    done
    set_env COTURN_PID "$pid"
}

# --- DNS --------------------------------------------------------------------------

# lan_resolver ROLE: the LAN host's resolver is the lab's DNS server and nothing else.
# `ip netns exec` bind-mounts /etc/netns/NS/* over /etc/*, so every program run in the
# namespace that way (the tests, natlab's own commands) reads these. nsswitch.conf
# and hosts are pinned too: whatever the host's own say (systemd-resolved's `resolve`
# module, an /etc/hosts entry), a lookup in the lab goes to DNS_IP, inside the lab,
# or nowhere. (A program entered with nsenter, without the bind mounts, would use
# the host's resolv.conf; its queries go through the lab router and die in wan, which
# has no route out.)
lan_resolver() {
    local d
    d="/etc/netns/$(ns "$1")"
    mkdir -p "$d"
    echo "nameserver $DNS_IP" >"$d/resolv.conf"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' >"$d/nsswitch.conf"
    printf '127.0.0.1 localhost\n' >"$d/hosts"
}

# start_dnsmasq [NAME=IP...]: dnsmasq in wan on DNS_IP:53, forwarding nowhere: the
# given names resolve to their addresses (A only), every other name is NXDOMAIN
# (--address=/#/). No upstream (--no-resolv, no --server), no /etc/hosts, no config
# file, no DHCP; queries are logged to dnsmasq.log.
start_dnsmasq() {
    : >"$DIR/dnsmasq.log"
    : >"$DIR/dns.hosts"
    local h
    for h in "$@"; do
        echo "${h#*=} ${h%%=*}" >>"$DIR/dns.hosts"
    done
    # -k: foreground without debug mode, so $! is its pid. --user=root: no privilege
    # drop (the lab's files stay readable). Its pid file in the run dir: the default
    # /run/dnsmasq/dnsmasq.pid would be shared by labs in parallel.
    ip netns exec "$(ns wan)" /usr/sbin/dnsmasq -k --conf-file=/dev/null --user=root \
        --no-resolv --no-poll --no-hosts --addn-hosts="$DIR/dns.hosts" --address=/#/ \
        --listen-address="$DNS_IP" --bind-dynamic --port=53 \
        --pid-file="$DIR/dnsmasq.pid" --log-queries --log-facility=- \
        </dev/null >>"$DIR/dnsmasq.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$DIR/pids/dnsmasq"
    wait_listen wan udp "$DNS_IP:53" "$pid" dnsmasq
    set_env DNSMASQ_PID "$pid"
}

# --- IPv6 (--ipv6) -----------------------------------------------------------------

# ipv6_sysctls ROLE: IPv6 on in a fresh namespace, set before its links exist so every
# interface inherits the defaults.
# - accept_dad=0: no duplicate address detection, so addresses are usable at once
#   (with DAD an address stays "tentative" ~1 s and cannot be bound); nothing else is
#   on these links.
# - keep_addr_on_down=1: `link rtr-wan|rtr-lan down` would otherwise flush every IPv6
#   address of the device (the kernel's default), not only the routes as for IPv4.
# - LAN hosts: accept_ra=2, use_tempaddr=2: SLAAC from the router's advertisements,
#   a stable (EUI-64, "mngtmpaddr") and a temporary (RFC 8981 privacy) address that is
#   preferred as source for outgoing connections, as on a desktop OS.
# - Router and ISP forward IPv6 (forwarding=1; they take no RAs themselves).
ipv6_sysctls() {
    local role=$1
    inns "$role" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
        net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
        net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1
    case "$role" in
    lan | lan2)
        inns "$role" sysctl -qw net.ipv6.conf.default.accept_ra=2 net.ipv6.conf.all.accept_ra=2 \
            net.ipv6.conf.default.use_tempaddr=2 net.ipv6.conf.all.use_tempaddr=2 \
            net.ipv6.conf.default.router_solicitation_delay=0
        ;;
    rtr | isp)
        inns "$role" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.accept_ra=0
        ;;
    *)
        inns "$role" sysctl -qw net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.all.accept_ra=0
        ;;
    esac
}

# setup_ipv6: the IPv6 addresses and routes, on the links the IPv4 setup made and
# brought up. Static addresses are added `nodad` (usable at once). The LAN hosts'
# default route and SLAAC addresses come from the router's advertisements (start_ra).
setup_ipv6() {
    inns rtr ip -6 addr add "$RTR_LAN_IP6/64" dev br0 nodad
    inns rtr ip -6 addr add "$RTR_WAN_IP6/64" dev wan0 nodad
    inns rtr ip -6 route add default via "$RTR_GW6"
    inns lan ip -6 addr add "$LAN_IP6/64" dev eth0 nodad
    ((LAN2)) && inns lan2 ip -6 addr add "$LAN2_IP6/64" dev eth0 nodad
    if ((DOUBLE)); then
        # The carrier-grade NAT is IPv4 only (as with DS-Lite or dual-stack ISPs): the
        # ISP routes the customer's /64 to the router's WAN address on their link.
        inns isp ip -6 addr add "$CGN6_PREFIX::1/64" dev lan0 nodad
        inns isp ip -6 addr add "$PUBLIC_WAN_IP6/64" dev wan0 nodad
        inns isp ip -6 route add default via "$WAN_GW6"
        inns isp ip -6 route add "$LAN_NET6" via "$RTR_WAN_IP6"
    fi
    # The internet. Linux puts a new address before the older ones of the same scope,
    # and picks among equal candidates the first, so PEER_IP6, added last, is the
    # source of a program in wan that does not bind (as PEER_IP for IPv4).
    local a
    for a in "$WAN_GW6" "$STUN2_6" "$STUN1_6" "$PEER2_IP6" "$PEER_IP6"; do
        inns wan ip -6 addr add "$a/64" dev eth0 nodad
    done
    # ula-only: the internet routes no unique local prefix; nat66: the ISP routes only
    # the router's WAN /64, the router translates the LAN to its WAN address.
    case "$IPV6_QUIRK" in
    ula-only | nat66) ;;
    *) inns wan ip -6 route add "$LAN_NET6" via "$PUBLIC_WAN_IP6" ;;
    esac
}

# start_ra: router advertisements on the LAN: dnsmasq in rtr with --enable-ra and an
# ra-only range (no DHCPv4/v6, no DNS: --port=0). It advertises LAN_NET6 with the
# autonomous flag (SLAAC) and itself as default router. A RA every 10 s at most (and
# one in answer to each router solicitation) keeps `up` short.
start_ra() {
    : >"$DIR/ra.log"
    ip netns exec "$(ns rtr)" /usr/sbin/dnsmasq -k --conf-file=/dev/null --user=root \
        --port=0 --no-resolv --no-hosts --interface=br0 --bind-interfaces \
        --enable-ra --dhcp-range="$LAN6_PREFIX::,ra-only,64,1h" --ra-param=br0,10,1800 \
        --dhcp-leasefile="$DIR/ra.leases" --pid-file="$DIR/ra.pid" --log-facility=- \
        </dev/null >>"$DIR/ra.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$DIR/pids/ra"
    set_env RA_PID "$pid"
}

# wait_slaac ROLE PREFIX: wait (up to 10 s) until the LAN host has its stable SLAAC
# address and a temporary one, and a default route; set PREFIX_SLAAC_IP6 and
# PREFIX_TEMP_IP6 in the env.
wait_slaac() {
    local role=$1 key=$2 i out stable temp
    for i in $(seq 1 200); do
        out=$(inns "$role" ip -6 -o addr show dev eth0 scope global)
        stable=$(awk '/mngtmpaddr/ && !/tentative/ { sub("/.*", "", $4); print $4; exit }' <<<"$out")
        temp=$(awk '/temporary/ && !/tentative/ { sub("/.*", "", $4); print $4; exit }' <<<"$out")
        if [[ -n "$stable" && -n "$temp" ]] && inns "$role" ip -6 route show default | grep -q .; then
            set_env "${key}_SLAAC_IP6" "$stable"
            set_env "${key}_TEMP_IP6" "$temp"
            return 0
        fi
        if ! alive "$(cat "$DIR/pids/ra")"; then
            fail_with_log ra "the router advertisement daemon (dnsmasq) exited"
            return 1
        fi
        sleep 0.05
    done
    inns "$role" ip -6 addr show dev eth0 >&2 || true
    fail_with_log ra "$role got no SLAAC addresses within 10 s (its addresses above)"
}

# ipv6_quirk QUIRK: turns the dual-stack lab into one of the IPv6 networks it leaves
# out (lab/README.md, "IPv6 quirks"). Applied last, once the LAN hosts have their
# SLAAC addresses (the env keeps the keys of addresses a quirk removes).
ipv6_quirk() {
    case "$1" in
    no-firewall)
        # The router's IPv6 firewall is off: new inbound IPv6 is forwarded to the LAN
        # (after miniupnpd's chain; miniupnpd still says its firewall is on).
        inns rtr nft add rule inet filter forward iifname "wan0" oifname "br0" meta nfproto ipv6 accept
        ;;
    reject)
        # The firewall rejects instead of dropping: TCP gets a reset, everything else
        # ICMPv6 administratively prohibited (OpenWrt's REJECT); pinholes still pass.
        inns rtr nft add rule inet filter forward iifname "wan0" oifname "br0" meta nfproto ipv6 meta l4proto tcp reject with tcp reset
        inns rtr nft add rule inet filter forward iifname "wan0" oifname "br0" meta nfproto ipv6 reject with icmpv6 type admin-prohibited
        ;;
    temporary-only)
        # Only temporary (privacy) addresses are preferred: the static address is
        # removed and the stable SLAAC one deprecated (preferred_lft 0, as when its
        # prefix is being withdrawn). It cannot be removed: the kernel deletes the
        # temporaries derived from a mngtmpaddr address with it, and deprecating it
        # deprecates them too, so they are made preferred again afterwards. Prefix
        # information of later advertisements is ignored, or SLAAC would renew the
        # stable address (the default route still comes from them).
        local stable temp
        stable=$(sed -n 's/^LAN_SLAAC_IP6=//p' "$DIR/env")
        inns lan sysctl -qw net.ipv6.conf.eth0.accept_ra_pinfo=0
        inns lan ip -6 addr del "$LAN_IP6/64" dev eth0
        inns lan ip -6 addr change "$stable/64" dev eth0 valid_lft 3600 preferred_lft 0 mngtmpaddr
        for temp in $(inns lan ip -6 -o addr show dev eth0 temporary | awk '{ sub("/.*", "", $4); print $4 }'); do
            inns lan ip -6 addr change "$temp/64" dev eth0 valid_lft 3600 preferred_lft 3600
        done
        ;;
    link-local-only)
        # No router advertisements reach the host: only its link-local address, no
        # IPv6 default route.
        inns lan sysctl -qw net.ipv6.conf.eth0.accept_ra=0
        inns lan ip -6 addr flush dev eth0 scope global
        inns lan ip -6 route flush default
        ;;
    dead-uplink)
        # The ISP's IPv6 is dead while its IPv4 works: the internet drops every IPv6
        # packet on the router's link, silently. The router's link and routes stay
        # up, so it keeps advertising itself as the LAN's default router.
        cat >"$DIR/dead6.nft" <<'EOF'
table netdev dead_uplink6 {
	chain ingress {
		type filter hook ingress device "eth0" priority filter; policy accept;
		meta protocol ip6 counter drop
	}
}
EOF
        inns wan nft -f "$DIR/dead6.nft"
        ;;
    no-upstream)
        # The router's WAN has no IPv6 (the ISP offers none, or DHCPv6 failed): no
        # address, no route there, while it still advertises its LAN prefix. It
        # answers the LAN's packets to the internet with ICMPv6 no route.
        inns rtr ip -6 route del default
        inns rtr ip -6 addr del "$RTR_WAN_IP6/64" dev wan0
        ;;
    nat66)
        # NAT66 (OpenWrt's masq6): the router masquerades the LAN's IPv6 to its WAN
        # address, and the internet has no route to the LAN /64.
        cat >"$DIR/nat66.nft" <<'EOF'
table ip6 nat66 {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" masquerade
	}
}
EOF
        inns rtr nft -f "$DIR/nat66.nft"
        ;;
    ula-only | miniupnpd-no-ipv6) ;; # set up before (the prefix, miniupnpd.conf)
    esac
}

# --- env file ---------------------------------------------------------------------

set_env() {
    local key=$1 val=$2
    local f="$DIR/env"
    touch "$f"
    grep -v "^$key=" "$f" >"$f.tmp" || true
    echo "$key=$val" >>"$f.tmp"
    mv "$f.tmp" "$f"
}

# --- up ---------------------------------------------------------------------------

cmd_up() {
    local NAT="" MINIUPNPD=0 EXT_IP="" STUND=0 COTURN=0 DOUBLE=0 LAN2=0 LOSS=0
    HAIRPIN=0 DNS=0 DNS_SILENT=0 SIP_ALG=0 RATE_KBPS=0 IPV6=0 IPV6_QUIRK=""
    local -a BLOCKS=() OUT_BLOCKS=() DNS_HOSTS=()
    while (($#)); do
        case "$1" in
        --id) ID=${2:-}; shift 2 ;;
        --nat) NAT=${2:-}; shift 2 ;;
        --miniupnpd) MINIUPNPD=1; shift ;;
        --ext-ip) EXT_IP=${2:-}; MINIUPNPD=1; shift 2 ;;
        --stund) STUND=1; shift ;;
        --coturn) COTURN=1; shift ;;
        --hairpin) HAIRPIN=1; shift ;;
        --double-nat) DOUBLE=1; shift ;;
        --lan2) LAN2=1; shift ;;
        --loss) LOSS=${2:-}; shift 2 ;;
        --block-inbound) BLOCKS+=("${2:-}"); shift 2 ;;
        --block-outbound) OUT_BLOCKS+=("${2:-}"); shift 2 ;;
        --rate-limit-kbps) RATE_KBPS=${2:-}; shift 2 ;;
        --dns) DNS=1; shift ;;
        --dns-host) DNS_HOSTS+=("${2:-}"); DNS=1; shift 2 ;;
        --dns-silent) DNS_SILENT=1; shift ;;
        --sip-alg) SIP_ALG=1; shift ;;
        --ipv6) IPV6=1; shift ;;
        --ipv6-quirk) IPV6_QUIRK=${2:-}; IPV6=1; shift 2 ;;
        -h | --help) usage ;;
        *) die "unknown option '$1' (try --help)" ;;
        esac
    done
    check_id
    [[ -n "$NAT" ]] || die "missing --nat KIND"
    [[ "|$NAT_KINDS|" == *"|$NAT|"* ]] || die "bad --nat '$NAT' ($NAT_KINDS)"
    [[ "$LOSS" =~ ^[0-9]+$ ]] && ((LOSS <= 100)) || die "bad --loss '$LOSS' (0-100)"
    [[ "$RATE_KBPS" =~ ^[0-9]{1,7}$ ]] || die "bad --rate-limit-kbps '$RATE_KBPS' (kbit/s, 1-9999999)"
    if [[ -n "$EXT_IP" ]]; then
        [[ "$EXT_IP" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "bad --ext-ip '$EXT_IP'"
    fi
    local b
    for b in "${BLOCKS[@]+"${BLOCKS[@]}"}"; do
        [[ "$b" =~ ^([0-9]+)/(tcp|udp)$ ]] && ((10#${BASH_REMATCH[1]} >= 1 && 10#${BASH_REMATCH[1]} <= 65535)) ||
            die "bad --block-inbound '$b' (PORT/tcp or PORT/udp)"
    done
    for b in "${OUT_BLOCKS[@]+"${OUT_BLOCKS[@]}"}"; do
        [[ "$b" =~ ^([0-9]+)/(tcp|udp)$ ]] && ((10#${BASH_REMATCH[1]} >= 1 && 10#${BASH_REMATCH[1]} <= 65535)) ||
            die "bad --block-outbound '$b' (PORT/tcp or PORT/udp)"
    done
    local h
    for h in "${DNS_HOSTS[@]+"${DNS_HOSTS[@]}"}"; do
        [[ "$h" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})=([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*)$ ]] ||
            die "bad --dns-host '$h' (NAME=IPv4 or NAME=IPv6)"
    done
    ((DNS == 0 || DNS_SILENT == 0)) || die "--dns and --dns-silent do not combine"
    if [[ -n "$IPV6_QUIRK" ]]; then
        [[ "|$IPV6_QUIRKS|" == *"|$IPV6_QUIRK|"* ]] || die "bad --ipv6-quirk '$IPV6_QUIRK' ($IPV6_QUIRKS)"
        # Each quirk is one change to the plain dual-stack router or LAN.
        [[ "$NAT" != open ]] || die "--ipv6-quirk and --nat open do not combine"
        ((DOUBLE == 0)) || die "--ipv6-quirk and --double-nat do not combine"
        if [[ "$IPV6_QUIRK" == miniupnpd-no-ipv6 ]]; then
            ((MINIUPNPD)) || die "--ipv6-quirk miniupnpd-no-ipv6 needs --miniupnpd"
        fi
        if [[ "$IPV6_QUIRK" == ula-only ]]; then
            # A unique local prefix (fd00::/8) instead of the global one.
            LAN6_PREFIX=fd00:88:77:77
            LAN_NET6=$LAN6_PREFIX::/64
            RTR_LAN_IP6=$LAN6_PREFIX::1
            LAN_IP6=$LAN6_PREFIX::2
            LAN2_IP6=$LAN6_PREFIX::3
        fi
    fi
    if [[ "$NAT" == open ]]; then
        ((DOUBLE == 0)) || die "--nat open and --double-nat do not combine"
        # Without NAT, nf_nat_sip has no address to rewrite.
        ((SIP_ALG == 0)) || die "--nat open and --sip-alg do not combine"
        # miniupnpd wants a private LAN and has nothing to forward without NAT.
        ((MINIUPNPD == 0)) || die "--nat open and --miniupnpd do not combine"
    fi
    if ((HAIRPIN)); then
        # Hairpinned traffic is sent back to the LAN host on the port it was sent to,
        # which is its own port only where the NAT keeps ports; and with double NAT the
        # public address is the ISP's, whose NAT would have to do it.
        case "$NAT" in
        port-restricted | full-cone | restricted-cone | restricted-cone-per-host | port-restricted-per-host) ;;
        *) die "--hairpin needs a NAT that keeps ports (not '$NAT')" ;;
        esac
        ((DOUBLE == 0)) || die "--hairpin and --double-nat do not combine"
    fi
    if [[ -e "$DIR" ]]; then
        die "lab '$ID' exists ($DIR); run: $0 down --id $ID"
    fi
    local r
    for r in "${ROLES[@]}"; do
        [[ ! -e "/run/netns/$(ns "$r")" ]] || die "namespace $(ns "$r") exists; run: $0 down --id $ID"
    done

    mkdir -p "$DIR/pids"
    # From here on, any failure tears down what was built.
    trap 'rc=$?; echo "natlab: up failed (exit $rc), tearing down lab $ID" >&2; cmd_down --id "$ID" >/dev/null 2>&1 || true; exit 1' ERR
    set -E

    if [[ "$NAT" == open ]]; then
        LAN_PREFIX=$OPEN_PREFIX
    else
        LAN_PREFIX=$PRIV_PREFIX
    fi
    LAN_NET=$LAN_PREFIX.0/24
    RTR_LAN_IP=$LAN_PREFIX.1
    LAN_IP=$LAN_PREFIX.2
    LAN2_IP=$LAN_PREFIX.3
    if ((DOUBLE)); then
        RTR_WAN_IP=$CGN_RTR_IP
        RTR_WAN_PLEN=$CGN_PLEN
        RTR_GW=$CGN_ISP_IP
    else
        RTR_WAN_IP=$PUBLIC_WAN_IP
        RTR_WAN_PLEN=24
        RTR_GW=$WAN_GW
    fi
    if ((DOUBLE)); then
        RTR_WAN_IP6=$CGN6_PREFIX::2
        RTR_GW6=$CGN6_PREFIX::1
    else
        RTR_WAN_IP6=$PUBLIC_WAN_IP6
        RTR_GW6=$WAN_GW6
    fi

    local -a roles=(lan rtr wan)
    ((LAN2)) && roles+=(lan2)
    ((DOUBLE)) && roles+=(isp)

    # Namespaces. Without --ipv6, IPv6 is off everywhere: router solicitations and DAD
    # would only add noise (and count against --loss), and a program must not find an
    # IPv6 path the topology does not have.
    with_ns_lock bash -c 'for n in "$@"; do ip netns add "$n"; done' _ \
        $(for r in "${roles[@]}"; do ns "$r"; done)
    for r in "${roles[@]}"; do
        if ((IPV6)); then
            ipv6_sysctls "$r"
        else
            inns "$r" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        fi
        inns "$r" ip link set lo up
    done

    # Links: both ends created directly inside their namespaces.
    ip link add eth0 netns "$(ns lan)" type veth peer name lan0 netns "$(ns rtr)"
    if ((LAN2)); then
        ip link add eth0 netns "$(ns lan2)" type veth peer name lan1 netns "$(ns rtr)"
    fi
    if ((DOUBLE)); then
        ip link add wan0 netns "$(ns rtr)" type veth peer name lan0 netns "$(ns isp)"
        ip link add wan0 netns "$(ns isp)" type veth peer name eth0 netns "$(ns wan)"
    else
        ip link add wan0 netns "$(ns rtr)" type veth peer name eth0 netns "$(ns wan)"
    fi

    # Router LAN side: always a bridge (br0), so the config is the same with or without
    # lan2. STP off and snooping off: ports forward at once and SSDP multicast
    # (239.255.255.250) always reaches miniupnpd.
    inns rtr ip link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    # Gotcha: where br_netfilter is loaded (Docker, k8s hosts; here too), bridged IPv4
    # frames traverse the inet forward hook, whose policy is drop: lan and lan2 could
    # not talk. These sysctls are per namespace, so turn them off in rtr only.
    inns rtr sh -c 'for k in iptables ip6tables arptables; do
        f=/proc/sys/net/bridge/bridge-nf-call-$k; [ ! -e "$f" ] || echo 0 >"$f"; done'
    inns rtr ip link set lan0 master br0
    ((LAN2)) && inns rtr ip link set lan1 master br0
    inns rtr ip addr add "$RTR_LAN_IP/24" dev br0
    inns rtr ip link set lan0 up
    ((LAN2)) && inns rtr ip link set lan1 up
    inns rtr ip link set br0 up
    inns rtr ip addr add "$RTR_WAN_IP/$RTR_WAN_PLEN" dev wan0
    inns rtr ip link set wan0 up
    inns rtr ip route add default via "$RTR_GW"
    inns rtr sysctl -qw net.ipv4.ip_forward=1
    if ((HAIRPIN)); then
        # Hairpinned packets leave by the interface they came in on, which makes the
        # router send ICMP redirects ("reach 88.77.66.2 directly via 192.168.77.2")
        # that the LAN host would obey.
        inns rtr sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.br0.send_redirects=0
    fi

    inns lan ip addr add "$LAN_IP/24" dev eth0
    inns lan ip link set eth0 up
    inns lan ip route add default via "$RTR_LAN_IP"
    if ((LAN2)); then
        inns lan2 ip addr add "$LAN2_IP/24" dev eth0
        inns lan2 ip link set eth0 up
        inns lan2 ip route add default via "$RTR_LAN_IP"
    fi

    if ((DOUBLE)); then
        inns isp ip addr add "$CGN_ISP_IP/$CGN_PLEN" dev lan0
        inns isp ip link set lan0 up
        inns isp ip addr add "$PUBLIC_WAN_IP/24" dev wan0
        inns isp ip link set wan0 up
        inns isp ip route add default via "$WAN_GW"
        inns isp sysctl -qw net.ipv4.ip_forward=1
    fi

    # The internet. The first address is the primary one, so a process in wan that
    # does not bind explicitly talks from PEER_IP. No default route: wan reaches only
    # the lab.
    local a
    for a in "$PEER_IP" "$PEER2_IP" "$STUN1" "$STUN2" "$WAN_GW"; do
        inns wan ip addr add "$a/24" dev eth0
    done
    if ((DNS || DNS_SILENT)); then
        inns wan ip addr add "$DNS_IP/24" dev eth0
        lan_resolver lan
        ((LAN2)) && lan_resolver lan2
    fi
    inns wan ip link set eth0 up
    if [[ "$NAT" == open ]]; then
        inns wan ip route add "$LAN_NET" via "$RTR_WAN_IP"
    fi
    if ((IPV6)); then
        setup_ipv6
    fi

    # Firewall and NAT.
    rtr_ruleset "$NAT" "${BLOCKS[@]+"${BLOCKS[@]}"}" >"$DIR/rtr.nft"
    inns rtr nft -f "$DIR/rtr.nft"
    if ((DOUBLE)); then
        isp_ruleset "${BLOCKS[@]+"${BLOCKS[@]}"}" >"$DIR/isp.nft"
        inns isp nft -f "$DIR/isp.nft"
    fi
    if ((SIP_ALG)); then
        sip_alg_ruleset >"$DIR/sip_alg.nft"
        inns rtr nft -f "$DIR/sip_alg.nft"
    fi
    if ((10#$RATE_KBPS > 0)); then
        rate_limit_ruleset "$((10#$RATE_KBPS))" >"$DIR/rate_limit.nft"
        inns rtr nft -f "$DIR/rate_limit.nft"
    fi
    if ((${#OUT_BLOCKS[@]})); then
        block_outbound_ruleset "${OUT_BLOCKS[@]}" >"$DIR/block_outbound.nft"
        inns rtr nft -f "$DIR/block_outbound.nft"
    fi

    local public_ip=$PUBLIC_WAN_IP
    [[ "$NAT" == open ]] && public_ip=$LAN_IP
    {
        echo "ID=$ID"
        echo "NAT=$NAT"
        echo "HAIRPIN=$HAIRPIN"
        echo "DOUBLE_NAT=$DOUBLE"
        echo "LOSS=$LOSS"
        echo "SIP_ALG=$SIP_ALG"
        echo "BLOCK_INBOUND=$(IFS=,; echo "${BLOCKS[*]+"${BLOCKS[*]}"}")"
        echo "RATE_LIMIT_KBPS=$((10#$RATE_KBPS))"
        echo "BLOCK_OUTBOUND=$(IFS=,; echo "${OUT_BLOCKS[*]+"${OUT_BLOCKS[*]}"}")"
        echo "RUN_DIR=$DIR"
        echo "LAN_NS=$(ns lan)"
        ((LAN2)) && echo "LAN2_NS=$(ns lan2)"
        echo "RTR_NS=$(ns rtr)"
        ((DOUBLE)) && echo "ISP_NS=$(ns isp)"
        echo "WAN_NS=$(ns wan)"
        echo "LAN_NET=$LAN_NET"
        echo "LAN_IF=eth0"
        echo "LAN_IP=$LAN_IP"
        ((LAN2)) && echo "LAN2_IP=$LAN2_IP"
        echo "RTR_LAN_IF=br0"
        echo "RTR_LAN_IP=$RTR_LAN_IP"
        echo "RTR_WAN_IF=wan0"
        echo "RTR_WAN_IP=$RTR_WAN_IP"
        echo "RTR_GW=$RTR_GW"
        if ((DOUBLE)); then
            echo "ISP_LAN_IP=$CGN_ISP_IP"
            echo "ISP_WAN_IP=$PUBLIC_WAN_IP"
        fi
        echo "PUBLIC_IP=$public_ip"
        echo "WAN_GW=$WAN_GW"
        echo "STUN1=$STUN1"
        echo "STUN2=$STUN2"
        echo "STUN_PORT1=3478"
        echo "STUN_PORT2=3479"
        echo "PEER_IP=$PEER_IP"
        echo "PEER2_IP=$PEER2_IP"
        if ((COTURN)); then
            echo "COTURN_PORT1=$COTURN_PORT1"
            echo "COTURN_PORT2=$COTURN_PORT2"
        fi
        ((MINIUPNPD)) && echo "MINIUPNPD_HTTP_PORT=$MINIUPNPD_HTTP_PORT"
        [[ -n "$EXT_IP" ]] && echo "MINIUPNPD_EXT_IP=$EXT_IP"
        ((DNS)) && echo "DNS=up"
        ((DNS_SILENT)) && echo "DNS=silent"
        ((DNS || DNS_SILENT)) && echo "DNS_IP=$DNS_IP"
        echo "IPV6=$IPV6"
        [[ -n "$IPV6_QUIRK" ]] && echo "IPV6_QUIRK=$IPV6_QUIRK"
        if ((IPV6)); then
            echo "LAN_NET6=$LAN_NET6"
            echo "LAN_IP6=$LAN_IP6"
            ((LAN2)) && echo "LAN2_IP6=$LAN2_IP6"
            echo "RTR_LAN_IP6=$RTR_LAN_IP6"
            echo "RTR_WAN_IP6=$RTR_WAN_IP6"
            echo "RTR_GW6=$RTR_GW6"
            if ((DOUBLE)); then
                echo "ISP_LAN_IP6=$CGN6_PREFIX::1"
                echo "ISP_WAN_IP6=$PUBLIC_WAN_IP6"
            fi
            echo "WAN_GW6=$WAN_GW6"
            echo "STUN1_6=$STUN1_6"
            echo "STUN2_6=$STUN2_6"
            echo "PEER_IP6=$PEER_IP6"
            echo "PEER2_IP6=$PEER2_IP6"
        fi
        true
    } >"$DIR/env"

    if ((IPV6)); then
        start_ra
        wait_slaac lan LAN
        ((LAN2)) && wait_slaac lan2 LAN2
    fi
    # Loss only once the LAN hosts have their SLAAC addresses: a lost router
    # advertisement would otherwise cost up to its 10 s interval. Nothing else is
    # running yet.
    if ((LOSS > 0)); then
        loss_ruleset "$LOSS" >"$DIR/loss.nft"
        inns rtr nft -f "$DIR/loss.nft"
    fi

    if ((STUND)); then
        : >"$DIR/stund.log"
        # stund (stun-server 0.97) binds STUN1:3478, STUN1:3479, STUN2:3478, STUN2:3479.
        # Without -b it stays in the foreground, so $! is its pid.
        ip netns exec "$(ns wan)" /usr/sbin/stund -h "$STUN1" -a "$STUN2" \
            </dev/null >>"$DIR/stund.log" 2>&1 &
        local spid=$!
        echo "$spid" >"$DIR/pids/stund"
        for a in "$STUN1:3478" "$STUN1:3479" "$STUN2:3478" "$STUN2:3479"; do
            wait_listen wan udp "$a" "$spid" stund
        done
        set_env STUND_PID "$spid"
    fi

    if ((COTURN)); then
        start_coturn
    fi

    if ((DNS)); then
        start_dnsmasq "${DNS_HOSTS[@]+"${DNS_HOSTS[@]}"}"
    elif ((DNS_SILENT)); then
        # A resolver that never answers, and no ICMP either: what a LAN host sees
        # when its DNS server is unreachable behind a dead uplink.
        cat >"$DIR/wan.nft" <<EOF
table inet dns_silent {
	chain input {
		type filter hook input priority filter; policy accept;
		ip daddr $DNS_IP counter drop
	}
}
EOF
        inns wan nft -f "$DIR/wan.nft"
    fi

    if ((MINIUPNPD)); then
        write_miniupnpd_conf wan0 "$EXT_IP"
        start_miniupnpd
    fi
    if [[ -n "$IPV6_QUIRK" ]]; then
        ipv6_quirk "$IPV6_QUIRK"
    fi

    trap - ERR
    cat "$DIR/env"
}

# rtr_ruleset KIND [BLOCK...]: the router's nftables ruleset on stdout.
rtr_ruleset() {
    local kind=$1
    shift
    local nat_rule pre_rule="" fwd_in_rule="" remember="" host_set="" host_type="" host_key=""
    case "$kind" in
    port-restricted)
        # Endpoint-independent mapping (Linux keeps the source port when it can and
        # reuses the mapping for every destination), address-and-port-dependent
        # filtering (only conntrack replies come back in).
        nat_rule='oifname "wan0" masquerade'
        ;;
    symmetric)
        # Every new conntrack (= every new destination) gets a random port.
        nat_rule='oifname "wan0" masquerade fully-random'
        ;;
    full-cone)
        # snat keeps the port, and every new inbound tcp/udp flow to the WAN address
        # goes to the LAN host on the same port, whoever sends it.
        nat_rule="oifname \"wan0\" snat ip to $RTR_WAN_IP"
        pre_rule="iifname \"wan0\" meta l4proto { tcp, udp } dnat ip to $LAN_IP"
        fwd_in_rule='iifname "wan0" oifname "br0" ct status dnat accept'
        ;;
    restricted-cone)
        # As full cone, but inbound is admitted only from remote addresses this
        # mapping (external port) has sent to, any remote port. The set is filled in
        # postrouting AFTER snat (priority srcnat + 10), so its key is
        # (remote address, protocol, external port): per mapping, not per host.
        # (A per-host set of remote addresses is not enough: the stun client sends to
        # STUN2 from one socket and expects STUN2's packets to its other socket to be
        # filtered. Keyed by host only, that made restricted cone flake to "Independent
        # Filter". The per-host filter is restricted-cone-per-host.)
        nat_rule="oifname \"wan0\" snat ip to $RTR_WAN_IP"
        pre_rule="iifname \"wan0\" ip saddr . meta l4proto . th dport @contacted dnat ip to $LAN_IP"
        fwd_in_rule='iifname "wan0" oifname "br0" ct status dnat accept'
        remember=1
        ;;
    restricted-cone-per-host)
        # RFC 3489's restricted cone, as worded there: "an external host with IP
        # address X can send to the internal host only if the internal host had
        # previously sent a packet to IP address X", from any of its sockets. Full
        # cone's snat/dnat, with inbound admitted only from the remote addresses in
        # @contacted_hosts, which every packet the LAN host forwards to the internet
        # adds (forward hook, before snat: the key is the internal host's
        # destination, whatever its source port). The LAN host is the one dnat
        # target, so only its own traffic fills the set.
        nat_rule="oifname \"wan0\" snat ip to $RTR_WAN_IP"
        pre_rule="iifname \"wan0\" ip saddr @contacted_hosts meta l4proto { tcp, udp } dnat ip to $LAN_IP"
        fwd_in_rule='iifname "wan0" oifname "br0" ct status dnat accept'
        host_set=contacted_hosts host_type=ipv4_addr host_key="ip daddr"
        ;;
    port-restricted-per-host)
        # The same per host, keyed by remote address and port: X:p may send to the
        # LAN host once the LAN host sent to X:p from any of its ports (a mapping it
        # never used towards X:p admits X:p too).
        nat_rule="oifname \"wan0\" snat ip to $RTR_WAN_IP"
        pre_rule="iifname \"wan0\" ip saddr . meta l4proto . th sport @contacted_eps dnat ip to $LAN_IP"
        fwd_in_rule='iifname "wan0" oifname "br0" ct status dnat accept'
        host_set=contacted_eps host_type="ipv4_addr . inet_proto . inet_service"
        host_key="ip daddr . meta l4proto . th dport"
        ;;
    address-dependent-mapping)
        # One external port per (internal endpoint, remote ADDRESS), whatever the
        # remote port; filtering by conntrack (address and port dependent). Each
        # remote address of the lab's internet gets its own snat port range: the
        # kernel's NAT first reuses the external port of an existing conntrack from the
        # same internal endpoint if that port lies in the rule's range (nf_nat's
        # find_appropriate_src), else picks a random free one in the range. So a second
        # flow to the same address (another port) gets the first one's port, and a flow
        # to another address a port from another range. The ranges lie below 16384,
        # outside the ports clients bind (Linux ephemeral 32768-60999, stund's client
        # 16384-32767), so no flow keeps its own port by chance. Any other
        # destination shares the last range.
        nat_rule=$(
            local i=0 a
            for a in "$STUN1" "$STUN2" "$PEER_IP" "$PEER2_IP" "$WAN_GW"; do
                printf 'oifname "wan0" ip daddr %s meta l4proto { tcp, udp } snat ip to %s:%d-%d\n\t\t' \
                    "$a" "$RTR_WAN_IP" $((10000 + 1000 * i)) $((10999 + 1000 * i))
                i=$((i + 1))
            done
            printf 'oifname "wan0" meta l4proto { tcp, udp } snat ip to %s:15000-15999\n\t\t' "$RTR_WAN_IP"
            printf 'oifname "wan0" snat ip to %s' "$RTR_WAN_IP"
        )
        ;;
    port-restricted-no-preserve)
        # Endpoint-independent mapping that never keeps the port: the snat range
        # excludes the source port (low ports go high, high ports go low), so the
        # kernel cannot keep it and reuses the external port of an existing conntrack
        # from the same internal endpoint (find_appropriate_src), else takes a random
        # free one in the range. Filtering by conntrack, as port-restricted.
        nat_rule="oifname \"wan0\" meta l4proto { tcp, udp } th sport 0-32767 snat ip to $RTR_WAN_IP:40000-60999
		oifname \"wan0\" meta l4proto { tcp, udp } th sport 32768-65535 snat ip to $RTR_WAN_IP:10000-30999
		oifname \"wan0\" snat ip to $RTR_WAN_IP"
        ;;
    open)
        nat_rule=""
        fwd_in_rule='iifname "wan0" oifname "br0" accept'
        ;;
    esac
    local hairpin_pre="" hairpin_post="" hairpin_fwd=""
    if [[ "${HAIRPIN:-0}" == 1 ]]; then
        # Hairpinning: a LAN host's packet to the WAN address comes back to the LAN
        # host on the same port (its mapping, where ports are kept), with the sender's
        # mapping (the WAN address) as source, so the answer goes back through the
        # router too. Without --hairpin such a packet is for the router itself, where
        # nothing listens.
        hairpin_pre="iifname \"br0\" ip daddr $RTR_WAN_IP meta l4proto { tcp, udp } dnat ip to $LAN_IP"
        hairpin_post="oifname \"br0\" ip saddr $LAN_NET ct status dnat snat ip to $RTR_WAN_IP"
        hairpin_fwd='iifname "br0" oifname "br0" ct status dnat accept'
    fi
    local v6_fwd="" v6_nat=""
    if ((${IPV6:-0})); then
        # IPv6 is routed, not translated, and the same forward chain is its stateful
        # firewall: outbound (br0 -> wan0) and replies (established,related) pass,
        # new inbound meets the policy drop unless miniupnpd put a pinhole into its
        # chain. ICMPv6 errors that belong to a flow are "related" already; the
        # ones below pass on their own as RFC 4890 (4.3.1) asks of a firewall, and
        # as OpenWrt's default does (echo requests too: a ping reaches the LAN host).
        # The inet nat chains would otherwise masquerade IPv6 as well
        # (`oifname "wan0" masquerade` has no family): IPv6 skips them.
        v6_fwd='meta l4proto ipv6-icmp icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply } accept'
        v6_nat='meta nfproto ipv6 accept'
    fi
    cat <<EOF
# natlab $ID: router (nat kind $kind, hairpin ${HAIRPIN:-0})
# Tables and chain names are the ones miniupnpd is configured with; they exist even
# without --miniupnpd so the ruleset is the same in both cases.
table inet filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		$v6_fwd
		iifname "br0" oifname "wan0" accept
		$hairpin_fwd
		jump miniupnpd
		$fwd_in_rule
	}
	chain miniupnpd {
	}
}
table inet nat {
EOF
    if [[ -n "$remember" ]]; then
        cat <<'EOF'
	set contacted {
		type ipv4_addr . inet_proto . inet_service
		flags dynamic, timeout
		timeout 5m
	}
	chain remember {
		type filter hook postrouting priority srcnat + 10; policy accept;
		oifname "wan0" meta l4proto { tcp, udp } update @contacted { ip daddr . meta l4proto . th sport }
	}
EOF
    fi
    if [[ -n "$host_set" ]]; then
        # Every packet the LAN host sends out (before snat, so the set is the host's,
        # not a mapping's), established or not: the entry lives 5 min after the
        # host's last packet to that remote.
        cat <<EOF
	set $host_set {
		type $host_type
		flags dynamic, timeout
		timeout 5m
	}
	chain remember_host {
		type filter hook forward priority filter - 10; policy accept;
		iifname "br0" oifname "wan0" ip saddr $LAN_IP meta l4proto { tcp, udp } update @$host_set { $host_key }
	}
EOF
    fi
    cat <<EOF
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		$v6_nat
		# miniupnpd's port mappings first
		jump prerouting_miniupnpd
		$pre_rule
		$hairpin_pre
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		$v6_nat
		jump postrouting_miniupnpd
		$hairpin_post
		$nat_rule
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
EOF
    # Without double NAT the ISP's inbound port block sits on the router's WAN device
    # at netdev ingress: before conntrack, before any DNAT, before miniupnpd's rules.
    if [[ "$DOUBLE" == 0 ]]; then
        block_table wan0 "$@"
    fi
}

# isp_ruleset [BLOCK...]: the carrier-grade NAT (port-restricted) and the ISP's port
# blocks.
isp_ruleset() {
    cat <<'EOF'
table inet nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta nfproto ipv4 oifname "wan0" masquerade
	}
}
EOF
    block_table wan0 "$@"
}

# block_table DEV [PORT/PROTO...]: drop inbound packets to those ports at DEV.
block_table() {
    local dev=$1
    shift
    (($#)) || return 0
    echo "table netdev upstream {"
    echo "	chain block_inbound {"
    echo "		type filter hook ingress device \"$dev\" priority filter; policy accept;"
    local b
    for b in "$@"; do
        echo "		${b#*/} dport ${b%/*} counter drop"
    done
    echo "	}"
    echo "}"
}

# block_outbound_ruleset PORT/PROTO...: the router drops what the LAN sends to those
# ports on the internet, silently (no ICMP, no reset), in the forward hook of its own
# table, as an organisation's egress firewall does. The router's own traffic and
# everything inbound are untouched.
block_outbound_ruleset() {
    echo "table inet block_outbound {"
    echo "	chain forward {"
    echo "		type filter hook forward priority filter - 10; policy accept;"
    local b
    for b in "$@"; do
        echo "		iifname \"br0\" oifname \"wan0\" ${b#*/} dport ${b%/*} counter drop"
    done
    echo "	}"
    echo "}"
}

# rate_limit_ruleset KBPS: the router forwards at most KBPS kbit/s each way between
# the LAN and the internet (a slow uplink); what is over the rate is dropped (a
# policer: TCP backs off to about the rate). The router's own traffic is untouched.
rate_limit_ruleset() {
    local bytes=$(($1 * 1000 / 8))
    local burst=$((bytes / 4 > 1600 ? bytes / 4 : 1600))
    cat <<EOF
table inet rate_limit {
	chain forward {
		type filter hook forward priority filter - 20; policy accept;
		iifname "br0" oifname "wan0" limit rate over $bytes bytes/second burst $burst bytes counter drop
		iifname "wan0" oifname "br0" limit rate over $bytes bytes/second burst $burst bytes counter drop
	}
}
EOF
}

# loss_ruleset N: drop N % of the packets that enter the router on either side, and of
# the router's own packets leaving on either side. A forwarded packet is thus dropped
# with probability N %, a round trip through the router with 1-(1-N)^2.
# (The kernel here has no netem; numgen gives 0..99.)
loss_ruleset() {
    cat <<EOF
table inet loss {
	chain ingress_loss {
		type filter hook prerouting priority raw - 10; policy accept;
		iifname { "br0", "wan0" } numgen random mod 100 < $1 counter drop
	}
	chain egress_loss {
		type filter hook output priority raw - 10; policy accept;
		oifname { "br0", "wan0" } numgen random mod 100 < $1 counter drop
	}
}
EOF
}

# sip_alg_ruleset: the kernel's own SIP ALG on the router, as many home routers run
# one. The ct helper attaches nf_conntrack_sip to SIP flows (UDP and TCP to 5060);
# with the NAT rules, nf_nat_sip then rewrites the LAN host's address in Via, From
# and Contact of a request leaving to the router's WAN address, and the reverse in
# what comes back (for a request from outside it restores From and Contact, not
# Via). SDP is rewritten only in INVITE, UPDATE, ACK, PRACK and responses, not in
# OPTIONS. Both are built into this kernel (CONFIG_NF_CONNTRACK_SIP=y,
# CONFIG_NF_NAT_SIP=y); where they are modules, loading the ruleset asks the kernel
# for nf_conntrack_sip (nfct-helper-sip), and nf_nat_sip may need a modprobe in the
# host: without it the helper tracks but rewrites nothing.
sip_alg_ruleset() {
    cat <<'EOF'
table inet sip_alg {
	ct helper sip-udp {
		type "sip" protocol udp;
		l3proto ip;
	}
	ct helper sip-tcp {
		type "sip" protocol tcp;
		l3proto ip;
	}
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		udp dport 5060 ct helper set "sip-udp"
		tcp dport 5060 ct helper set "sip-tcp"
	}
}
EOF
}

# --- down -------------------------------------------------------------------------

# id_only_args ARGS...: the arguments of a command that takes only --id ID; sets ID
# and DIR.
id_only_args() {
    while (($#)); do
        case "$1" in
        --id) ID=${2:-}; shift 2 ;;
        *) die "unknown option '$1'" ;;
        esac
    done
    check_id
}

cmd_down() {
    id_only_args "$@"
    set +e
    local f pid r
    # 1. The daemons the lab started, by the pids it wrote (checked to still be ours).
    if [[ -d "$DIR/pids" ]]; then
        for f in "$DIR"/pids/*; do
            [[ -e "$f" ]] || continue
            pid=$(cat "$f" 2>/dev/null)
            if is_ours "$pid" "${ROLES[@]}"; then
                stop_pid "$pid"
            fi
        done
    fi
    # 2. Anything else still running inside our namespaces (processes tests left).
    for r in "${ROLES[@]}"; do
        [[ -e "/run/netns/$(ns "$r")" ]] || continue
        for pid in $(ip netns pids "$(ns "$r")" 2>/dev/null); do
            stop_pid "$pid"
        done
    done
    # 3. The namespaces (their veths and bridges go with them).
    local -a gone=()
    for r in "${ROLES[@]}"; do
        [[ -e "/run/netns/$(ns "$r")" ]] && gone+=("$(ns "$r")")
    done
    if ((${#gone[@]})); then
        with_ns_lock bash -c 'for n in "$@"; do ip netns del "$n" 2>/dev/null; done; true' _ "${gone[@]}"
    fi
    # 4. The LAN hosts' resolver files (--dns, --dns-silent).
    for r in lan lan2; do
        rm -rf "/etc/netns/$(ns "$r")"
    done
    rm -rf "$DIR"
    return 0
}

# --- small commands -----------------------------------------------------------------

cmd_env() {
    id_only_args "$@"
    [[ -r "$DIR/env" ]] || die "no lab '$ID'"
    cat "$DIR/env"
}

cmd_link() {
    local target="" state=""
    while (($#)); do
        case "$1" in
        --id) ID=${2:-}; shift 2 ;;
        rtr-lan | rtr-wan) target=$1; shift ;;
        up | down) state=$1; shift ;;
        *) die "unknown argument '$1'" ;;
        esac
    done
    check_id
    [[ -n "$target" && -n "$state" ]] || die "usage: link --id ID rtr-lan|rtr-wan up|down"
    [[ -r "$DIR/env" ]] || die "no lab '$ID'"
    case "$target" in
    rtr-lan) inns rtr ip link set br0 "$state" ;;
    rtr-wan) inns rtr ip link set wan0 "$state" ;;
    esac
    if [[ "$target" == rtr-wan && "$state" == up ]]; then
        # Taking the device down deleted the default route with it.
        local gw
        gw=$(sed -n 's/^RTR_GW=//p' "$DIR/env")
        inns rtr ip route replace default via "$gw"
        gw=$(sed -n 's/^RTR_GW6=//p' "$DIR/env")
        [[ -z "$gw" ]] || inns rtr ip -6 route replace default via "$gw"
    fi
}

cmd_restart_miniupnpd() {
    id_only_args "$@"
    [[ -r "$DIR/miniupnpd.conf" ]] || die "lab '$ID' has no miniupnpd"
    RTR_LAN_IP=$(sed -n 's/^RTR_LAN_IP=//p' "$DIR/env")
    stop_miniupnpd
    # A reboot forgets every mapping: empty miniupnpd's chains and its lease file
    # (otherwise it would re-create the leases on start).
    inns rtr nft flush chain inet filter miniupnpd
    inns rtr nft flush chain inet nat prerouting_miniupnpd
    inns rtr nft flush chain inet nat postrouting_miniupnpd
    rm -f "$DIR/miniupnpd.leases" "$DIR/miniupnpd.pid"
    start_miniupnpd
    sed -n 's/^MINIUPNPD_PID=//p' "$DIR/env"
}

# reset-nat: the NAT as after a reboot, without rebuilding the lab: every conntrack
# entry (the NAT bindings, and with them the kernel's memory of which external port an
# internal endpoint had) and every remembered remote (the filter sets) of the router
# and the ISP NAT are gone. miniupnpd's port mappings are rules and stay. Tests that
# must start from fresh NAT state (a per-host filter remembers addresses for 5 min)
# call it between runs; it takes a few ms. Needs conntrack (Debian package conntrack):
# nft 1.0.6 can list conntrack-based rules but cannot flush the table.
cmd_reset_nat() {
    id_only_args "$@"
    [[ -r "$DIR/env" ]] || die "no lab '$ID'"
    command -v conntrack >/dev/null || die "reset-nat needs conntrack (Debian package conntrack)"
    local r set
    for r in rtr isp; do
        [[ -e "/run/netns/$(ns "$r")" ]] || continue
        for set in $(inns "$r" nft list sets inet 2>/dev/null | awk '$1 == "set" { print $2 }'); do
            inns "$r" nft flush set inet nat "$set"
        done
        # Prints "N flow entries have been deleted" on stderr; fails only on errors.
        inns "$r" conntrack -F 2>/dev/null
    done
}

# gc: tear down labs left by test processes that died without dropping them (killed
# by a timeout, SIGKILL). Only ids of the form PIDxN (what natkit-lab generates) whose
# PID no longer exists are touched; labs with other ids are never collected.
cmd_gc() {
    local ids=() n d id
    for n in /run/netns/nk-*; do
        [[ -e "$n" ]] || continue
        n=${n#/run/netns/nk-}
        ids+=("${n%-*}")
    done
    if [[ -d "$RUN_BASE" ]]; then
        for d in "$RUN_BASE"/*/; do
            [[ -d "$d" ]] && ids+=("$(basename "$d")")
        done
    fi
    for id in $(printf '%s\n' "${ids[@]+"${ids[@]}"}" | sort -u); do
        [[ "$id" =~ ^([0-9]+)x[0-9]+$ ]] || continue
        [[ -e "/proc/${BASH_REMATCH[1]}" ]] && continue
        echo "natlab: collecting lab $id (process ${BASH_REMATCH[1]} is gone)" >&2
        (cmd_down --id "$id")
    done
}

cmd_list() {
    [[ -d "$RUN_BASE" ]] || return 0
    local d
    for d in "$RUN_BASE"/*/; do
        [[ -e "$d/env" ]] && basename "$d"
    done
    true
}

(($# >= 1)) || usage
[[ $EUID -eq 0 ]] || die "must run as root"
cmd=$1
shift
case "$cmd" in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
env) cmd_env "$@" ;;
link) cmd_link "$@" ;;
restart-miniupnpd) cmd_restart_miniupnpd "$@" ;;
reset-nat) cmd_reset_nat "$@" ;;
list) cmd_list ;;
gc) cmd_gc ;;
-h | --help | help) usage ;;
*) die "unknown command '$cmd' (up|down|env|link|restart-miniupnpd|reset-nat|list|gc)" ;;
esac
