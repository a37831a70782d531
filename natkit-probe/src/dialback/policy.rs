//! Which addresses a dial-back server may dial, and which ports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use natkit_core::{AddressScope, PortSpec};

use super::message::DialPort;

/// An address prefix such as `192.168.77.0/24` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why an [`IpPrefix`] did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The length is not a number within the family's width.
    #[error("prefix length {0:?} is not 0..=32 (IPv4) or 0..=128 (IPv6)")]
    Length(String),
}

impl IpPrefix {
    /// The prefix `addr/len`; `None` if `len` exceeds the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(IpPrefix {
            addr: canonical(addr),
            len,
        })
    }

    /// Whether `ip` lies inside the prefix (IPv4-mapped IPv6 addresses
    /// count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// `ADDR/LEN`, or a bare address for a single host.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|_| PrefixError::Address(a.to_owned()))?;
        let len = if l.is_empty() {
            if addr.is_ipv4() { 32 } else { 128 }
        } else {
            l.parse().map_err(|_| PrefixError::Length(l.to_owned()))?
        };
        IpPrefix::new(addr, len).ok_or_else(|| PrefixError::Length(l.to_owned()))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; everything else unchanged. A dual-stack
/// listener sees IPv4 clients in the mapped form; scope checks and rate
/// limits must see the same address either way.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses a server may dial back.
///
/// By default only globally routable addresses: a dial-back server on the
/// internet must never be talked into connecting to a private network
/// (its own LAN, a cloud metadata address) on anyone's behalf. A lab server
/// may allow more, explicitly.
///
/// The rules are [`AddressScope`]'s, for both families: for IPv6, unique
/// local (`fc00::/7`), link-local, loopback, documentation (`2001:db8::/32`,
/// `3fff::/20`), IPv4-compatible and everything outside `2000::/3` are not
/// global. An IPv6 address that stands for an IPv4 one is judged by that
/// IPv4 address too, so no IPv6 spelling reaches a network its IPv4 form
/// could not: IPv4-mapped `::ffff:a.b.c.d` (as a dual-stack listener sees
/// IPv4 clients), NAT64's well-known `64:ff9b::/96` (RFC 6052 forbids it
/// for non-global IPv4, but a NAT64 gateway beside the server would carry
/// `64:ff9b::10.0.0.1` to its own 10.0.0.1) and 6to4's `2002::/16`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow every unicast address that is not global: private, shared
    /// (CGNAT), loopback, link-local, documentation, reserved. For labs
    /// only.
    pub allow_non_global: bool,
    /// Non-global prefixes allowed even without `allow_non_global`, e.g.
    /// a lab's `100.64.0.0/10`.
    pub allow: Vec<IpPrefix>,
}

impl TargetPolicy {
    /// Whether `ip` may be dialled. Unspecified, multicast and broadcast
    /// addresses (or IPv6 addresses standing for one) never may, whatever
    /// the configuration.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        // The IPv4 address behind a translator or tunnel, when that is
        // not global: then it is what the dial would reach.
        let judged = embedded_v4(ip)
            .filter(|v4| !AddressScope::of(IpAddr::V4(*v4)).is_global())
            .map_or(ip, IpAddr::V4);
        match AddressScope::of(judged) {
            AddressScope::Global => true,
            AddressScope::Unspecified | AddressScope::Multicast => false,
            _ if is_broadcast(judged) => false,
            _ => {
                self.allow_non_global
                    || self
                        .allow
                        .iter()
                        .any(|p| p.contains(ip) || p.contains(judged))
            }
        }
    }
}

/// The IPv4 address inside a NAT64 well-known-prefix (`64:ff9b::/96`, its
/// last 32 bits) or 6to4 (`2002:AABB:CCDD::/48`, bits 16-47) address.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let o = v6.octets();
    let seg = v6.segments();
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else if seg[0] == 0x2002 {
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        None
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// The ports a server agrees to dial: all of them by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPolicy {
    /// When set, only these ports and protocols.
    pub only: Option<PortSpec>,
}

impl PortPolicy {
    /// Whether `port` may be dialled.
    pub fn permits(&self, port: DialPort) -> bool {
        self.only
            .as_ref()
            .is_none_or(|spec| spec.contains(port.port, port.protocol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::Protocol;

    fn dial_port(port: u16, protocol: Protocol) -> DialPort {
        DialPort { port, protocol }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_and_match() {
        let p: IpPrefix = "100.64.0.0/10".parse().unwrap();
        assert!(p.contains(ip("100.127.255.1")));
        assert!(!p.contains(ip("100.128.0.1")));
        assert!(p.contains(ip("::ffff:100.64.0.2")));
        assert_eq!(p.to_string(), "100.64.0.0/10");
        let host: IpPrefix = "192.168.77.2".parse().unwrap();
        assert!(host.contains(ip("192.168.77.2")));
        assert!(!host.contains(ip("192.168.77.3")));
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("10.0.0.1")));
        assert!(!all.contains(ip("fd00::1")));
        let v6: IpPrefix = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert_eq!(
            "1.2.3.4/33".parse::<IpPrefix>(),
            Err(PrefixError::Length("33".into()))
        );
        assert_eq!(
            "x/8".parse::<IpPrefix>(),
            Err(PrefixError::Address("x".into()))
        );
        assert_eq!(
            "1.2.3.4/a".parse::<IpPrefix>(),
            Err(PrefixError::Length("a".into()))
        );
    }

    #[test]
    fn only_global_by_default() {
        let p = TargetPolicy::default();
        assert!(p.permits(ip("88.77.66.2")));
        assert!(p.permits(ip("2a00:1450::1")));
        for bad in [
            "192.168.77.2",
            "10.1.2.3",
            "172.16.0.1",
            "100.64.0.2",
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "fd00::1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::ffff:192.168.1.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.permits(ip(bad)), "{bad}");
        }
        assert!(p.permits(ip("::ffff:88.77.66.2")));
    }

    /// Every IPv6 range that is not global, one address each, refused by
    /// default as its IPv4 counterpart is.
    #[test]
    fn ipv6_non_global_ranges_are_refused_by_default() {
        let p = TargetPolicy::default();
        for (bad, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fe80::1c2:3ff:fe45:6789", "link-local, SLAAC"),
            ("febf:ffff::1", "link-local, top of fe80::/10"),
            ("fc00::1", "unique local, fc00::/7 bottom"),
            ("fd00::1", "unique local"),
            ("fdff:ffff::1", "unique local, top"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast, link scope"),
            ("ff05::2", "multicast, site scope"),
            ("ff0e::1", "multicast, global scope"),
            ("2001:db8::1", "documentation"),
            ("2001:db8:ffff::1", "documentation, top"),
            ("3fff::1", "documentation, 3fff::/20"),
            ("3fff:fff::1", "documentation, 3fff::/20 top"),
            ("::ffff:10.0.0.1", "v4-mapped private"),
            ("::ffff:192.168.77.2", "v4-mapped private"),
            ("::ffff:127.0.0.1", "v4-mapped loopback"),
            ("::ffff:100.64.0.2", "v4-mapped shared (CGNAT)"),
            ("::ffff:169.254.169.254", "v4-mapped metadata"),
            ("::ffff:0.0.0.0", "v4-mapped unspecified"),
            ("::ffff:255.255.255.255", "v4-mapped broadcast"),
            ("::10.0.0.1", "IPv4-compatible (deprecated)"),
            ("::8.8.8.8", "IPv4-compatible, even of a global address"),
            ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
            ("64:ff9b::c0a8:4d02", "NAT64 of 192.168.77.2"),
            ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
            ("64:ff9b::6440:2", "NAT64 of 100.64.0.2"),
            ("64:ff9b::c000:201", "NAT64 of 192.0.2.1"),
            ("64:ff9b::e000:1", "NAT64 of 224.0.0.1"),
            ("64:ff9b::ffff:ffff", "NAT64 of 255.255.255.255"),
            ("64:ff9b::", "NAT64 of 0.0.0.0"),
            ("64:ff9b:1::a00:1", "NAT64 local-use prefix"),
            ("2002:a00:1::1", "6to4 of 10.0.0.1"),
            ("2002:c0a8:4d02::1", "6to4 of 192.168.77.2"),
            ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
            ("2001::1", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("100::1", "discard-only"),
            ("4000::1", "outside 2000::/3"),
        ] {
            assert!(!p.permits(ip(bad)), "{bad} ({range})");
        }
        for good in [
            "2a0d:88:77:77::2",
            "2a0d:88:77:66::20",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:88.77.66.2",
        ] {
            assert!(p.permits(ip(good)), "{good}");
        }
    }

    /// A lab server opens non-global IPv6 as it does IPv4, but never the
    /// unspecified address, multicast, or an IPv6 spelling of either.
    #[test]
    fn lab_configuration_for_ipv6() {
        let lab = TargetPolicy {
            allow_non_global: true,
            allow: vec![],
        };
        for ok in ["::1", "fe80::1", "fd00::1", "2001:db8::1", "64:ff9b::a00:1"] {
            assert!(lab.permits(ip(ok)), "{ok}");
        }
        for never in [
            "::",
            "ff02::1",
            "ff0e::1",
            "::ffff:0.0.0.0",
            "64:ff9b::",
            "64:ff9b::e000:1",
            "64:ff9b::ffff:ffff",
            "2002:e000:1::1",
        ] {
            assert!(!lab.permits(ip(never)), "{never}");
        }
        // A listed prefix opens that prefix only.
        let ula = TargetPolicy {
            allow_non_global: false,
            allow: vec!["fd00::/8".parse().unwrap()],
        };
        assert!(ula.permits(ip("fd12:3456::1")));
        assert!(!ula.permits(ip("fe80::1")));
        assert!(!ula.permits(ip("fc00::1")));
        // An IPv4 prefix covers the NAT64 spelling of its addresses.
        let net10 = TargetPolicy {
            allow_non_global: false,
            allow: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert!(net10.permits(ip("64:ff9b::a00:1")));
        assert!(!net10.permits(ip("64:ff9b::c0a8:4d02")));
    }

    #[test]
    fn lab_configuration_opens_non_global_but_never_multicast() {
        let lab = TargetPolicy {
            allow_non_global: true,
            allow: vec![],
        };
        assert!(lab.permits(ip("127.0.0.1")));
        assert!(lab.permits(ip("192.168.77.2")));
        assert!(!lab.permits(ip("0.0.0.0")));
        assert!(!lab.permits(ip("239.255.255.250")));
        assert!(!lab.permits(ip("255.255.255.255")));
        let listed = TargetPolicy {
            allow_non_global: false,
            allow: vec!["100.64.0.0/10".parse().unwrap()],
        };
        assert!(listed.permits(ip("100.64.0.2")));
        assert!(!listed.permits(ip("192.168.77.2")));
    }

    #[test]
    fn port_policy() {
        let all = PortPolicy::default();
        assert!(all.permits(dial_port(25, Protocol::Tcp)));
        let some = PortPolicy {
            only: Some("443/tcp,4500/udp".parse().unwrap()),
        };
        assert!(some.permits(dial_port(443, Protocol::Tcp)));
        assert!(!some.permits(dial_port(443, Protocol::Udp)));
        assert!(!some.permits(dial_port(25, Protocol::Tcp)));
    }
}
