//! This host's IPv6 side, for pinholes: its addresses (which one is
//! stable) and its IPv6 default router.
//!
//! A pinhole is for one address. A host with SLAAC privacy extensions
//! (RFC 8981, `use_tempaddr=2`) has a stable address and temporary ones
//! that are replaced every day or so; a pinhole for a temporary address
//! stops working when it is, and its address says less about the host. So a
//! request for `::` gets the stable global address ([`choose_stable`]).
//!
//! On Linux both come from `/proc` (`if_inet6` carries the temporary and
//! deprecated flags that the portable interface listings drop); the parsers
//! are sans-IO. natkit-core has no IPv6 address module yet; when it gets
//! one this belongs there. Elsewhere the fallback is natkit-core's gateway
//! lookup, which lists global addresses without telling temporary ones
//! apart and gives the router without a scope.

use std::net::{IpAddr, Ipv6Addr};

use natkit_core::AddressScope;

/// The most addresses or routes read from one table.
pub const MAX_ENTRIES: usize = 512;

/// One IPv6 address of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress6 {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its interface's index (the scope of link-local addresses on it).
    pub ifindex: u32,
    /// Its interface's name.
    pub interface: String,
    /// A temporary (privacy) address (`IFA_F_TEMPORARY`).
    pub temporary: bool,
    /// Deprecated: its preferred lifetime is over, new connections avoid it.
    pub deprecated: bool,
    /// Not usable yet or at all (tentative, or duplicate address detection
    /// failed).
    pub unusable: bool,
    /// Configured by hand, not by SLAAC or DHCPv6 (`IFA_F_PERMANENT`).
    pub permanent: bool,
}

impl LocalAddress6 {
    /// Whether natkit's scope rules call it global.
    pub fn is_global(&self) -> bool {
        AddressScope::of(IpAddr::V6(self.addr)).is_global()
    }
}

const IFA_F_TEMPORARY: u32 = 0x01;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_DEPRECATED: u32 = 0x20;
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_PERMANENT: u32 = 0x80;

/// Parses Linux's `/proc/net/if_inet6` (`address ifindex prefixlen scope
/// flags name`, hex). Lines that do not parse are skipped; at most
/// [`MAX_ENTRIES`].
pub fn parse_if_inet6(text: &str) -> Vec<LocalAddress6> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [addr, ifindex, _plen, _scope, flags, name] = f.as_slice() else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            Some(LocalAddress6 {
                addr: hex_addr(addr)?,
                ifindex: u32::from_str_radix(ifindex, 16).ok()?,
                interface: (*name).to_owned(),
                temporary: flags & IFA_F_TEMPORARY != 0,
                deprecated: flags & IFA_F_DEPRECATED != 0,
                unusable: flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0,
                permanent: flags & IFA_F_PERMANENT != 0,
            })
        })
        .take(MAX_ENTRIES)
        .collect()
}

/// The stable global address a pinhole should be for: global, not
/// temporary, not deprecated, usable; on `interface` (the default route's)
/// when it has one; an address configured by hand before a SLAAC one (it
/// is the one the host's owner chose). `None` when there is none: a host
/// with only temporary global addresses gets no pinhole for `::`.
pub fn choose_stable<'a>(
    addrs: &'a [LocalAddress6],
    interface: Option<&str>,
) -> Option<&'a LocalAddress6> {
    let usable = |a: &&LocalAddress6| a.is_global() && !a.temporary && !a.deprecated && !a.unusable;
    let rank = |a: &LocalAddress6| (interface.is_some_and(|i| a.interface != i), !a.permanent);
    addrs.iter().filter(usable).min_by_key(|a| rank(a))
}

/// One IPv6 default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute6 {
    /// The next hop (usually the router's link-local address, learnt from
    /// its router advertisements).
    pub via: Ipv6Addr,
    /// The interface's name.
    pub interface: String,
    /// The metric; lower wins.
    pub metric: u32,
}

/// Parses Linux's `/proc/net/ipv6_route` for default routes (`::/0` with a
/// next hop), best metric first. At most [`MAX_ENTRIES`] lines are read.
pub fn parse_ipv6_route(text: &str) -> Vec<DefaultRoute6> {
    let mut routes: Vec<DefaultRoute6> = text
        .lines()
        .take(MAX_ENTRIES)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [
                dest,
                plen,
                _src,
                _splen,
                via,
                metric,
                _ref,
                _use,
                _flags,
                name,
            ] = f.as_slice()
            else {
                return None;
            };
            let via = hex_addr(via)?;
            let default = hex_addr(dest)?.is_unspecified() && *plen == "00";
            (default && !via.is_unspecified()).then(|| DefaultRoute6 {
                via,
                interface: (*name).to_owned(),
                metric: u32::from_str_radix(metric, 16).unwrap_or(u32::MAX),
            })
        })
        .collect();
    routes.sort_by_key(|r| r.metric);
    routes
}

fn hex_addr(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
}

/// This host's IPv6 addresses (Linux: `/proc/net/if_inet6`).
#[cfg(target_os = "linux")]
pub fn local_addresses() -> std::io::Result<Vec<LocalAddress6>> {
    Ok(parse_if_inet6(&std::fs::read_to_string(
        "/proc/net/if_inet6",
    )?))
}

/// This host's global IPv6 addresses, from natkit-core's gateway lookup:
/// it does not tell temporary addresses apart, so all count as stable.
#[cfg(not(target_os = "linux"))]
pub fn local_addresses() -> std::io::Result<Vec<LocalAddress6>> {
    let gw = natkit_core::default_gateway().map_err(std::io::Error::other)?;
    Ok(gw
        .local_v6
        .iter()
        .map(|&addr| LocalAddress6 {
            addr,
            ifindex: 0,
            interface: gw.interface.clone(),
            temporary: false,
            deprecated: false,
            unusable: false,
            permanent: false,
        })
        .collect())
}

/// This host's IPv6 default routes, best first (Linux:
/// `/proc/net/ipv6_route`).
#[cfg(target_os = "linux")]
pub fn default_routes() -> std::io::Result<Vec<DefaultRoute6>> {
    Ok(parse_ipv6_route(&std::fs::read_to_string(
        "/proc/net/ipv6_route",
    )?))
}

/// The IPv6 default route of natkit-core's gateway lookup.
#[cfg(not(target_os = "linux"))]
pub fn default_routes() -> std::io::Result<Vec<DefaultRoute6>> {
    let gw = natkit_core::default_gateway().map_err(std::io::Error::other)?;
    Ok(gw
        .address_v6
        .map(|via| DefaultRoute6 {
            via,
            interface: gw.interface.clone(),
            metric: 0,
        })
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab's LAN host: a static stable address, a SLAAC stable one, a
    /// temporary one, a deprecated old temporary one, link-local, loopback.
    const IF_INET6: &str = "\
2a0d0088007700770000000000000002 02 40 00 80     eth0
2a0d00880077007702aabbfffecc0011 02 40 00 00     eth0
2a0d008800770077d1c5a2b3e4f50607 02 40 00 01     eth0
2a0d008800770077aaaabbbbccccdddd 02 40 00 21     eth0
fe8000000000000002aabbfffecc0011 02 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
garbage line
";

    #[test]
    fn parses_if_inet6() {
        let a = parse_if_inet6(IF_INET6);
        assert_eq!(a.len(), 6);
        assert_eq!(a[0].addr, "2a0d:88:77:77::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((a[0].ifindex, a[0].interface.as_str()), (2, "eth0"));
        assert!(a[0].permanent && !a[0].temporary);
        assert!(a[2].temporary && !a[2].deprecated);
        assert!(a[3].temporary && a[3].deprecated);
        assert!(!a[4].is_global() && !a[5].is_global());
    }

    #[test]
    fn chooses_the_stable_address() {
        let a = parse_if_inet6(IF_INET6);
        let chosen = choose_stable(&a, Some("eth0")).unwrap();
        assert_eq!(chosen.addr, "2a0d:88:77:77::2".parse::<Ipv6Addr>().unwrap());
        // Without the static one, the SLAAC stable one; never a temporary.
        let slaac: Vec<LocalAddress6> = a[1..].to_vec();
        let chosen = choose_stable(&slaac, None).unwrap();
        assert_eq!(
            chosen.addr,
            "2a0d:88:77:77:2aa:bbff:fecc:11"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        let temporary_only: Vec<LocalAddress6> = a[2..].to_vec();
        assert_eq!(choose_stable(&temporary_only, None), None);
        // The default route's interface first.
        let mut other = a[0].clone();
        other.interface = "wlan0".into();
        other.addr = "2a0d:88:77:99::5".parse().unwrap();
        let both = vec![other, a[1].clone()];
        assert_eq!(
            choose_stable(&both, Some("eth0")).unwrap().interface,
            "eth0"
        );
        // Tentative or failed addresses are not used.
        let mut tentative = a[0].clone();
        tentative.unusable = true;
        assert_eq!(choose_stable(&[tentative], None), None);
    }

    #[test]
    fn parses_default_routes() {
        let table = "\
2a0d0088007700770000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe8000000000000000aabbfffe000001 00000400 00000001 00000000 00450003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000009 00000100 00000001 00000000 00450003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
short
";
        let r = parse_ipv6_route(table);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].interface, "eth1");
        assert_eq!(r[0].metric, 0x100);
        assert_eq!(
            r[1].via,
            "fe80::aa:bbff:fe00:1".parse::<Ipv6Addr>().unwrap()
        );
        assert!(parse_ipv6_route("").is_empty());
    }

    #[test]
    fn hostile_tables_are_bounded() {
        let line = "2a0d0088007700770000000000000002 02 40 00 80 eth0\n";
        assert_eq!(
            parse_if_inet6(&line.repeat(MAX_ENTRIES * 2)).len(),
            MAX_ENTRIES
        );
        assert!(parse_if_inet6("zz0d0088007700770000000000000002 02 40 00 80 eth0").is_empty());
        assert!(parse_if_inet6("2a0d 02 40 00 80 eth0").is_empty());
    }
}
