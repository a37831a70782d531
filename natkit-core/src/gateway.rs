//! The default gateway and the local address that routes to it.
//!
//! Looked up through the `netdev` crate (netlink on Linux, the routing
//! socket and SystemConfiguration on macOS) rather than by parsing OS
//! tables by hand. The lookup is synchronous and takes a few milliseconds.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::Error;

/// The default IPv4 gateway and how this host reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Gateway {
    /// The interface the default route leaves by, e.g. `eth0` or `en0`.
    pub interface: String,
    /// The gateway's IPv4 address: the router that port mapping talks to.
    pub address: Ipv4Addr,
    /// This host's IPv4 address on that interface (the one in the
    /// gateway's subnet where there is one).
    pub local_address: Ipv4Addr,
    /// The prefix length of the local address's subnet.
    pub prefix_len: u8,
    /// The gateway's IPv6 address, if the default interface has one.
    pub address_v6: Option<Ipv6Addr>,
    /// This host's global IPv6 addresses on that interface.
    pub local_v6: Vec<Ipv6Addr>,
}

impl Gateway {
    /// Whether `ip` is in the local address's subnet (the LAN).
    pub fn is_on_lan(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => same_subnet(v4, self.local_address, self.prefix_len),
            IpAddr::V6(_) => false,
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gateway {} via {} (this host {}/{})",
            self.address, self.interface, self.local_address, self.prefix_len
        )
    }
}

/// Whether `a` and `b` share the first `prefix` bits.
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let prefix = u32::from(prefix.min(32));
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(a) & mask == u32::from(b) & mask
}

/// Picks the local address to use towards `gateway` among an interface's
/// IPv4 addresses: the first whose subnet contains the gateway, else the
/// first that is not loopback or link-local.
pub fn choose_local_address(gateway: Ipv4Addr, addrs: &[(Ipv4Addr, u8)]) -> Option<(Ipv4Addr, u8)> {
    addrs
        .iter()
        .find(|(a, p)| same_subnet(*a, gateway, *p))
        .or_else(|| {
            addrs
                .iter()
                .find(|(a, _)| !a.is_loopback() && !a.is_link_local() && !a.is_unspecified())
        })
        .copied()
}

/// Looks up the default IPv4 gateway, its interface and this host's
/// address on it.
///
/// Fails with [`Error::NoDefaultGateway`] when the host has no default
/// route or the default interface has no IPv4 address: that is the
/// "no network" case.
pub fn default_gateway() -> Result<Gateway, Error> {
    let no_gw = |detail: String| Error::NoDefaultGateway { detail };
    let iface = netdev::get_default_interface().map_err(no_gw)?;
    let device = iface
        .gateway
        .as_ref()
        .ok_or_else(|| no_gw(format!("interface {} has no gateway", iface.name)))?;
    let address = *device
        .ipv4
        .first()
        .ok_or_else(|| no_gw(format!("interface {} has no IPv4 gateway", iface.name)))?;
    let addrs: Vec<(Ipv4Addr, u8)> = iface
        .ipv4
        .iter()
        .map(|n| (n.addr(), n.prefix_len()))
        .collect();
    let (local_address, prefix_len) = choose_local_address(address, &addrs).ok_or_else(|| {
        no_gw(format!(
            "interface {} has no usable IPv4 address",
            iface.name
        ))
    })?;
    let local_v6 = iface
        .ipv6
        .iter()
        .map(|n| n.addr())
        .filter(|a| crate::AddressScope::of(IpAddr::V6(*a)).is_global())
        .collect();
    Ok(Gateway {
        interface: iface.name.clone(),
        address,
        local_address,
        prefix_len,
        address_v6: device.ipv6.first().copied(),
        local_v6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn picks_the_address_in_the_gateways_subnet() {
        let addrs = [(ip("10.8.0.5"), 24), (ip("192.168.77.2"), 24)];
        assert_eq!(
            choose_local_address(ip("192.168.77.1"), &addrs),
            Some((ip("192.168.77.2"), 24))
        );
        // Point-to-point style: the gateway is outside every subnet.
        let addrs = [(ip("169.254.3.3"), 16), (ip("100.70.1.2"), 32)];
        assert_eq!(
            choose_local_address(ip("100.70.0.1"), &addrs),
            Some((ip("100.70.1.2"), 32))
        );
        assert_eq!(choose_local_address(ip("10.0.0.1"), &[]), None);
    }

    #[test]
    fn lan_membership() {
        let gw = Gateway {
            interface: "eth0".into(),
            address: ip("192.168.77.1"),
            local_address: ip("192.168.77.2"),
            prefix_len: 24,
            address_v6: None,
            local_v6: vec![],
        };
        assert!(gw.is_on_lan("192.168.77.200".parse().unwrap()));
        assert!(!gw.is_on_lan("192.168.78.1".parse().unwrap()));
        assert_eq!(
            gw.to_string(),
            "gateway 192.168.77.1 via eth0 (this host 192.168.77.2/24)"
        );
    }

    /// On any machine: the lookup either finds a consistent gateway or says
    /// why not; it never panics.
    #[test]
    fn lookup_is_consistent_or_explains() {
        match default_gateway() {
            Ok(gw) => assert!(!gw.interface.is_empty()),
            Err(Error::NoDefaultGateway { detail }) => assert!(!detail.is_empty()),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}
