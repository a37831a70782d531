#!/usr/bin/env bash
# Installs the Debian packages the NAT lab and its tests need, as root; does
# nothing (and needs no network) when every one is already installed. Called by
# the README's test command (test.sh) and by .ci/run.
set -euo pipefail

PACKAGES=(
    nftables iproute2 procps iputils-ping util-linux
    miniupnpd-nftables miniupnpc natpmpc
    stun-client stun-server coturn conntrack
    nmap netcat-openbsd jq dnsmasq-base
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# systemd-analyze checks the servers' units (natkit-cli/tests/systemd_units.rs); it
# comes with systemd, installed only where it is missing (not upgraded under us).
command -v systemd-analyze >/dev/null || missing+=(systemd)
if ((${#missing[@]} == 0)); then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "the NAT lab needs these Debian packages: ${missing[*]}; run as root to install them" >&2
    exit 1
fi
echo "installing the lab's Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing miniupnpd, stund and coturn must not start them on the host: the lab
# runs its own instances inside network namespaces. Debian's invoke-rc.d asks
# policy-rc.d; exit 101 means "do not start".
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
