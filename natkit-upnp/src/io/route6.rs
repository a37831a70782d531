//! This host's IPv6 default router: where the IPv6 firewall's requests go
//! (see `firewall.rs` for why that router).
//!
//! On Linux from `/proc/net/ipv6_route` (the parser is sans-IO), which names
//! each default route's interface: the router of the interface that holds
//! the pinhole's address is the one that matters on a multi-homed host.
//! Elsewhere the fallback is natkit-core's gateway lookup (the IPv4 default
//! interface's IPv6 gateway). Which of this host's addresses a pinhole uses
//! is natkit-core's [`addresses`](natkit_core::addresses) module.

use std::net::Ipv6Addr;

/// The most routes read from the table.
pub const MAX_ENTRIES: usize = 512;

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
        let line = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000009 00000100 00000001 00000000 00450003 eth1\n";
        assert_eq!(
            parse_ipv6_route(&line.repeat(MAX_ENTRIES * 2)).len(),
            MAX_ENTRIES
        );
        assert!(parse_ipv6_route("zz000000000000000000000000000000 00 0 00 fe800000000000000000000000000009 1 1 1 1 eth1").is_empty());
        // A metric that is not hex sorts last instead of failing.
        let odd = line.replace("00000100", "zz");
        assert_eq!(parse_ipv6_route(&odd)[0].metric, u32::MAX);
    }
}
