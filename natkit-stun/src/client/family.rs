//! IPv4 or IPv6: which servers a question goes to, and which answer it gets.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum IpFamily {
    /// IPv4: behind a NAT at most homes.
    #[cfg_attr(feature = "serde", serde(rename = "ipv4"))]
    V4,
    /// IPv6: no NAT, but usually the router's stateful firewall.
    #[cfg_attr(feature = "serde", serde(rename = "ipv6"))]
    V6,
}

impl IpFamily {
    /// Both families, IPv4 first.
    pub const BOTH: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    /// The family of `ip`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is IPv4:
    /// that is what goes on the wire.
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip.to_canonical() {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Whether `addr` is of this family.
    pub fn has(self, addr: &SocketAddr) -> bool {
        IpFamily::of(addr.ip()) == self
    }

    /// `ipv4` or `ipv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        }
    }

    /// `IPv4` or `IPv6`, for people.
    pub fn name(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(IpFamily::of(ip("192.0.2.1")), IpFamily::V4);
        assert_eq!(IpFamily::of(ip("2a0d:88:77:66::10")), IpFamily::V6);
        assert_eq!(IpFamily::of(ip("::ffff:192.0.2.1")), IpFamily::V4);
        assert!(IpFamily::V6.has(&"[::1]:3478".parse().expect("addr")));
        assert_eq!(IpFamily::V6.to_string(), "IPv6");
        assert_eq!(IpFamily::V4.as_str(), "ipv4");
    }
}
