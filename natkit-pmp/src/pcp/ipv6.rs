//! Where a PCP request for an IPv6 pinhole goes, and from which address.
//!
//! RFC 6887 §8.1 sends PCP to the default router. For IPv4 that is the
//! default gateway; for IPv6 it is the router of the IPv6 default route,
//! which router advertisements install with the router's *link-local*
//! address (`default via fe80::… dev eth0 proto ra`). That address alone is
//! not enough in practice:
//!
//! - miniupnpd 2.3.1 binds its IPv6 PCP socket (`OpenAndConfPCPv6Socket`)
//!   to `ipv6_listening_ip` when its configuration sets one (a global
//!   address of its LAN side), else to `::`. In the first case its
//!   link-local address answers PCP with ICMP port unreachable, which the
//!   driver hears at once (`IPV6_RECVERR`). Bound to `::`, it answers on
//!   the link-local address too, from that address (`IPV6_PKTINFO`), so
//!   the answer passes the source check.
//! - A router advertisement does not carry the router's global address
//!   (only Mobile IPv6's R flag would, and home routers do not set it).
//!
//! So the servers are tried in this order ([`server_candidates`]), and the
//! first that answers an ANNOUNCE is kept:
//!
//! 1. every IPv6 default router, as the routing table holds it (link-local
//!    with its interface as scope id), best metric first;
//! 2. the first address (`prefix::1`) of every global prefix this host has
//!    on a default router's interface: where OpenWrt puts its LAN side by
//!    default (netifd's `ip6ifaceid` `::1`), and where the lab's router is.
//!    It is on the link, so a wrong guess costs one unanswered ANNOUNCE on
//!    the LAN and never leaves it.
//!
//! `tests/lab_pcp_ipv6.rs` finds miniupnpd both ways: at its link-local
//! address, and at `prefix::1` once that link-local port is rejected.
//!
//! [`PcpConfig::ipv6_server`](crate::pcp::PcpConfig::ipv6_server) skips the
//! search (e.g. with the address from DHCPv6's OPTION_V6_PCP_SERVER, RFC
//! 7291, which natkit does not read).
//!
//! The routing table is read from `/proc/net/ipv6_route` on Linux (the
//! kernel's own table: RA-learned and static routes alike, with metrics and
//! the interface) and from `natkit_core::default_gateway()`'s IPv6 gateway
//! elsewhere, which has no scope id: there only a global router address is
//! usable, else set `ipv6_server`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use natkit_core::{AddressScope, HostIpv6, Ipv6Kind};

/// `RTF_GATEWAY`: the route has a next hop.
const RTF_GATEWAY: u32 = 0x0002;
/// `RTF_REJECT`: an unreachable route (the kernel's `lo` catch-all).
const RTF_REJECT: u32 = 0x0200;

/// An IPv6 default route's router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRouter6 {
    /// The next hop, usually link-local.
    pub address: Ipv6Addr,
    /// The interface the route leaves by (empty when the OS did not say).
    pub interface: String,
    /// The route's metric (lower is preferred).
    pub metric: u32,
}

/// The default routes in the text of Linux's `/proc/net/ipv6_route`
/// (`DEST PLEN SRC PLEN NEXTHOP METRIC REFCNT USE FLAGS DEV`, hex fields),
/// best metric first. Lines that are not a usable default route, or that
/// do not parse, are skipped: the table is the kernel's, and a line this
/// code does not understand is no reason to give up on the others.
pub fn parse_ipv6_route(text: &str) -> Vec<DefaultRouter6> {
    let mut out: Vec<DefaultRouter6> = text.lines().filter_map(default_route).collect();
    out.sort_by_key(|r| r.metric);
    out.dedup();
    out
}

fn default_route(line: &str) -> Option<DefaultRouter6> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [
        dest,
        dest_len,
        _src,
        _src_len,
        next_hop,
        metric,
        _refcnt,
        _use,
        flags,
        dev,
    ] = f[..]
    else {
        return None;
    };
    let hex128 = |s: &str| (s.len() == 32).then(|| u128::from_str_radix(s, 16).ok())?;
    let hex32 = |s: &str| u32::from_str_radix(s, 16).ok();
    let flags = hex32(flags)?;
    let address = Ipv6Addr::from(hex128(next_hop)?);
    let metric = hex32(metric)?;
    let is_default = hex128(dest)? == 0 && hex32(dest_len)? == 0;
    let usable = flags & RTF_GATEWAY != 0 && flags & RTF_REJECT == 0 && dev != "lo";
    (is_default && usable && !address.is_unspecified()).then(|| DefaultRouter6 {
        address,
        interface: dev.to_owned(),
        metric,
    })
}

/// This host's IPv6 default routers (see the module doc for the sources).
pub fn default_routers() -> Vec<DefaultRouter6> {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string("/proc/net/ipv6_route") {
            Ok(text) => parse_ipv6_route(&text),
            Err(e) => {
                tracing::debug!(error = %e, "no IPv6 routing table");
                Vec::new()
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        natkit_core::default_gateway()
            .ok()
            .and_then(|g| {
                g.address_v6.map(|address| DefaultRouter6 {
                    address,
                    interface: g.interface,
                    metric: 0,
                })
            })
            .into_iter()
            .collect()
    }
}

/// The PCP servers to try for IPv6 pinholes, in order (see the module doc),
/// on `port`, from the default `routers` and this host's addresses
/// `addrs`.
pub fn server_candidates(
    routers: &[DefaultRouter6],
    addrs: &[HostIpv6],
    port: u16,
) -> Vec<SocketAddrV6> {
    let mut out: Vec<SocketAddrV6> = Vec::new();
    let mut push = |a: SocketAddrV6| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for r in routers {
        if is_link_local(r.address) {
            // A link-local address means nothing without its interface.
            if let Some(index) = if_index(addrs, &r.interface) {
                push(SocketAddrV6::new(r.address, port, 0, index));
            }
        } else {
            push(SocketAddrV6::new(r.address, port, 0, 0));
        }
    }
    for r in routers {
        for a in addrs.iter().filter(|a| {
            a.interface.as_deref() == Some(r.interface.as_str())
                && (a.kind.is_usable_global() || a.kind == Ipv6Kind::Deprecated)
                && (1..=64).contains(&a.prefix_len)
        }) {
            let first = first_address(a.address, a.prefix_len);
            if !addrs.iter().any(|own| own.address == first) {
                push(SocketAddrV6::new(first, port, 0, 0));
            }
        }
    }
    out
}

/// `prefix::1` of `address`'s `prefix_len` network.
fn first_address(address: Ipv6Addr, prefix_len: u8) -> Ipv6Addr {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0);
    Ipv6Addr::from((u128::from(address) & mask) | 1)
}

fn if_index(addrs: &[HostIpv6], interface: &str) -> Option<u32> {
    addrs
        .iter()
        .find(|a| a.interface.as_deref() == Some(interface) && a.if_index != 0)
        .map(|a| a.if_index)
}

fn is_link_local(ip: Ipv6Addr) -> bool {
    AddressScope::of(IpAddr::V6(ip)) == AddressScope::LinkLocal
}

/// The interface name of a server's scope id, for choosing the stable
/// address on the link the server is on.
pub(crate) fn interface_of(server: SocketAddr, addrs: &[HostIpv6]) -> Option<String> {
    match server {
        SocketAddr::V6(s) if s.scope_id() != 0 => addrs
            .iter()
            .find(|a| a.if_index == s.scope_id())
            .and_then(|a| a.interface.clone()),
        _ => None,
    }
}

/// Whether a server address needs the interface to pick a source from
/// (a link-local address: the kernel's choice towards it is link-local).
pub(crate) fn needs_interface(server: SocketAddr) -> bool {
    match server.ip() {
        IpAddr::V6(v6) => is_link_local(v6),
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::addresses::parse_if_inet6;

    /// `ip -6 route` on the lab's LAN host: the RA's default route (metric
    /// 1024), a static one on another interface (metric 2048), the LAN
    /// prefix, the kernel's `lo` reject route and a local route.
    const ROUTES: &str = "\
2a0d0088007700770000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000042 00000800 00000001 00000000 00000003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe80000000000000ac1122fffe334455 00000400 00000002 00000000 00450003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
2a0d0088007700770000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0
";

    /// `/proc/net/if_inet6` on the same host: static ::2, a SLAAC stable
    /// and a temporary address, link-locals, and eth1 with no global one.
    const ADDRS: &str = "\
2a0d0088007700770000000000000002 04 40 00 80     eth0
2a0d00880077007758c1d2fffe0a0b0c 04 40 00 00     eth0
2a0d008800770077a1b2c3d4e5f60718 04 40 00 01     eth0
fe8000000000000058c1d2fffe0a0b0c 04 40 20 80     eth0
fe800000000000000000000000000009 07 40 20 80     eth1
00000000000000000000000000000001 01 80 10 80       lo
";

    #[test]
    fn default_routes_from_the_kernel_table() {
        let routers = parse_ipv6_route(ROUTES);
        assert_eq!(
            routers,
            vec![
                DefaultRouter6 {
                    address: "fe80::ac11:22ff:fe33:4455".parse().unwrap(),
                    interface: "eth0".into(),
                    metric: 1024
                },
                DefaultRouter6 {
                    address: "fe80::42".parse().unwrap(),
                    interface: "eth1".into(),
                    metric: 2048
                },
            ]
        );
        assert!(parse_ipv6_route("").is_empty());
        assert!(parse_ipv6_route("garbage\n00 00 00\n").is_empty());
    }

    #[test]
    fn candidates_link_local_router_then_prefix_first_address() {
        let routers = parse_ipv6_route(ROUTES);
        let addrs = parse_if_inet6(ADDRS).unwrap();
        let c = server_candidates(&routers, &addrs, 5351);
        assert_eq!(
            c,
            vec![
                SocketAddrV6::new("fe80::ac11:22ff:fe33:4455".parse().unwrap(), 5351, 0, 4),
                SocketAddrV6::new("fe80::42".parse().unwrap(), 5351, 0, 7),
                // One prefix on eth0 (three addresses in it); none on eth1.
                SocketAddrV6::new("2a0d:88:77:77::1".parse().unwrap(), 5351, 0, 0),
            ]
        );
        assert_eq!(
            interface_of(SocketAddr::V6(c[1]), &addrs).as_deref(),
            Some("eth1")
        );
        assert!(needs_interface(SocketAddr::V6(c[0])));
        assert!(!needs_interface(SocketAddr::V6(c[2])));
    }

    #[test]
    fn a_global_router_is_used_as_is_and_own_addresses_are_not_guessed() {
        let routers = vec![DefaultRouter6 {
            address: "2a0d:88:77:77::fe".parse().unwrap(),
            interface: "eth0".into(),
            metric: 0,
        }];
        // This host is itself prefix::1: that guess is dropped.
        let addrs = parse_if_inet6("2a0d0088007700770000000000000001 04 40 00 80 eth0\n").unwrap();
        assert_eq!(
            server_candidates(&routers, &addrs, 5351),
            vec![SocketAddrV6::new(
                "2a0d:88:77:77::fe".parse().unwrap(),
                5351,
                0,
                0
            )]
        );
        // A link-local router on an interface with no known index is
        // unusable (no scope id).
        let ll = vec![DefaultRouter6 {
            address: "fe80::1".parse().unwrap(),
            interface: "wlan0".into(),
            metric: 0,
        }];
        assert!(server_candidates(&ll, &addrs, 5351).is_empty());
    }

    #[test]
    fn first_address_of_prefixes() {
        let a: Ipv6Addr = "2a0d:88:77:77:1:2:3:4".parse().unwrap();
        assert_eq!(
            first_address(a, 64),
            "2a0d:88:77:77::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            first_address(a, 48),
            "2a0d:88:77::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(first_address(a, 1), "::1".parse::<Ipv6Addr>().unwrap());
    }
}
