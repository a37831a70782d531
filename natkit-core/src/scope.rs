//! Address scopes: is an address on the internet, or behind something?
//!
//! Every double-NAT conclusion in natkit comes from [`AddressScope::of`]:
//! a router whose external address is not [`AddressScope::Global`] sits
//! behind another NAT (an ISP box, or carrier-grade NAT).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where an address is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum AddressScope {
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) or IPv6 unique local
    /// (`fc00::/7`).
    Private,
    /// RFC 6598 shared address space `100.64.0.0/10`, used by carrier-grade
    /// NAT.
    Shared,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Documentation ranges: `192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
    /// `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Multicast: `224/4`, `ff00::/8`.
    Multicast,
    /// Other special-purpose ranges that are not globally routable
    /// (`0/8`, `192.0.0/24`, `198.18/15`, `240/4`, broadcast, IPv6 outside
    /// `2000::/3` …).
    Reserved,
    /// A globally routable address.
    Global,
}

impl AddressScope {
    /// The scope of `ip`. IPv4-mapped IPv6 addresses take their IPv4 scope.
    pub fn of(ip: IpAddr) -> AddressScope {
        match ip {
            IpAddr::V4(v4) => scope_v4(v4),
            IpAddr::V6(v6) => scope_v6(v6),
        }
    }

    /// True only for [`AddressScope::Global`].
    pub fn is_global(self) -> bool {
        self == AddressScope::Global
    }

    /// The snake_case machine name, e.g. `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressScope::Unspecified => "unspecified",
            AddressScope::Loopback => "loopback",
            AddressScope::Private => "private",
            AddressScope::Shared => "shared",
            AddressScope::LinkLocal => "link_local",
            AddressScope::Documentation => "documentation",
            AddressScope::Multicast => "multicast",
            AddressScope::Reserved => "reserved",
            AddressScope::Global => "global",
        }
    }

    /// A short human description, e.g. "shared address space (carrier-grade NAT)".
    pub fn describe(self) -> &'static str {
        match self {
            AddressScope::Unspecified => "unspecified address",
            AddressScope::Loopback => "loopback address",
            AddressScope::Private => "private address",
            AddressScope::Shared => "shared address space (carrier-grade NAT)",
            AddressScope::LinkLocal => "link-local address",
            AddressScope::Documentation => "documentation address",
            AddressScope::Multicast => "multicast address",
            AddressScope::Reserved => "reserved address",
            AddressScope::Global => "public address",
        }
    }
}

impl fmt::Display for AddressScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// If a router reports `external` as its WAN address, is there another NAT
/// upstream? Returns the explanation when there is.
pub fn upstream_nat_note(external: IpAddr) -> Option<String> {
    let scope = AddressScope::of(external);
    (!scope.is_global()).then(|| {
        format!(
            "the router's external address is {external} ({}): another NAT is upstream; \
             mappings on this router do not reach the internet",
            scope.describe()
        )
    })
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn scope_v4(ip: Ipv4Addr) -> AddressScope {
    use AddressScope as S;
    const TABLE: &[([u8; 4], u32, AddressScope)] = &[
        ([0, 0, 0, 0], 32, S::Unspecified),
        ([0, 0, 0, 0], 8, S::Reserved),
        ([10, 0, 0, 0], 8, S::Private),
        ([100, 64, 0, 0], 10, S::Shared),
        ([127, 0, 0, 0], 8, S::Loopback),
        ([169, 254, 0, 0], 16, S::LinkLocal),
        ([172, 16, 0, 0], 12, S::Private),
        ([192, 0, 0, 0], 24, S::Reserved),
        ([192, 0, 2, 0], 24, S::Documentation),
        ([192, 88, 99, 0], 24, S::Reserved),
        ([192, 168, 0, 0], 16, S::Private),
        ([198, 18, 0, 0], 15, S::Reserved),
        ([198, 51, 100, 0], 24, S::Documentation),
        ([203, 0, 113, 0], 24, S::Documentation),
        ([224, 0, 0, 0], 4, S::Multicast),
        ([255, 255, 255, 255], 32, S::Reserved),
        ([240, 0, 0, 0], 4, S::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(S::Global, |(_, _, scope)| *scope)
}

fn in_v6(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == net & mask
}

fn scope_v6(ip: Ipv6Addr) -> AddressScope {
    use AddressScope as S;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return scope_v4(v4);
    }
    const TABLE: &[(u128, u32, AddressScope)] = &[
        (0, 128, S::Unspecified),
        (1, 128, S::Loopback),
        (0x0000_0000_0000_0000_0000_0000_0000_0000, 96, S::Reserved), // IPv4-compatible
        (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48, S::Private),  // NAT64 local use
        (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96, S::Global),   // NAT64 well-known
        (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, S::Reserved), // discard
        (
            0x2001_0db8_0000_0000_0000_0000_0000_0000,
            32,
            S::Documentation,
        ),
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 23, S::Reserved), // IETF protocol assignments
        (
            0x3fff_0000_0000_0000_0000_0000_0000_0000,
            20,
            S::Documentation,
        ),
        (0x2000_0000_0000_0000_0000_0000_0000_0000, 3, S::Global),
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, S::Private),
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, S::LinkLocal),
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, S::Multicast),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map_or(S::Reserved, |(_, _, scope)| *scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(ip: &str) -> AddressScope {
        AddressScope::of(ip.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges() {
        assert_eq!(s("0.0.0.0"), AddressScope::Unspecified);
        assert_eq!(s("0.1.2.3"), AddressScope::Reserved);
        assert_eq!(s("10.1.2.3"), AddressScope::Private);
        assert_eq!(s("172.15.255.255"), AddressScope::Global);
        assert_eq!(s("172.16.0.1"), AddressScope::Private);
        assert_eq!(s("172.31.255.255"), AddressScope::Private);
        assert_eq!(s("172.32.0.0"), AddressScope::Global);
        assert_eq!(s("192.168.77.1"), AddressScope::Private);
        assert_eq!(s("100.63.255.255"), AddressScope::Global);
        assert_eq!(s("100.64.0.2"), AddressScope::Shared);
        assert_eq!(s("100.127.255.255"), AddressScope::Shared);
        assert_eq!(s("100.128.0.0"), AddressScope::Global);
        assert_eq!(s("127.0.0.1"), AddressScope::Loopback);
        assert_eq!(s("169.254.1.1"), AddressScope::LinkLocal);
        assert_eq!(s("192.0.2.1"), AddressScope::Documentation);
        assert_eq!(s("198.51.100.1"), AddressScope::Documentation);
        assert_eq!(s("203.0.113.200"), AddressScope::Documentation);
        assert_eq!(s("198.19.1.1"), AddressScope::Reserved);
        assert_eq!(s("224.0.0.251"), AddressScope::Multicast);
        assert_eq!(s("239.255.255.250"), AddressScope::Multicast);
        assert_eq!(s("250.1.1.1"), AddressScope::Reserved);
        assert_eq!(s("255.255.255.255"), AddressScope::Reserved);
        assert_eq!(s("8.8.8.8"), AddressScope::Global);
        assert_eq!(s("1.1.1.1"), AddressScope::Global);
    }

    #[test]
    fn ipv6_ranges() {
        assert_eq!(s("::"), AddressScope::Unspecified);
        assert_eq!(s("::1"), AddressScope::Loopback);
        assert_eq!(s("fd00::1"), AddressScope::Private);
        assert_eq!(s("fc12::1"), AddressScope::Private);
        assert_eq!(s("fe80::1"), AddressScope::LinkLocal);
        assert_eq!(s("2001:db8::1"), AddressScope::Documentation);
        assert_eq!(s("3fff:0fff::1"), AddressScope::Documentation);
        assert_eq!(s("ff02::1"), AddressScope::Multicast);
        assert_eq!(s("2606:4700:4700::1111"), AddressScope::Global);
        assert_eq!(s("2001:4860::8888"), AddressScope::Global);
        assert_eq!(s("::ffff:192.168.1.1"), AddressScope::Private);
        assert_eq!(s("::ffff:8.8.8.8"), AddressScope::Global);
        assert_eq!(s("64:ff9b::808:808"), AddressScope::Global);
        assert_eq!(s("100::1"), AddressScope::Reserved);
        assert_eq!(s("4000::1"), AddressScope::Reserved);
    }

    #[test]
    fn upstream_note_only_for_non_global() {
        let note = upstream_nat_note("100.64.0.2".parse().unwrap()).unwrap();
        assert!(note.contains("100.64.0.2"), "{note}");
        assert!(note.contains("another NAT is upstream"), "{note}");
        assert!(upstream_nat_note("8.8.8.8".parse().unwrap()).is_none());
    }

    proptest! {
        /// The std library's own classifiers agree wherever they exist.
        #[test]
        fn agrees_with_std(bits in any::<u32>()) {
            let ip = Ipv4Addr::from(bits);
            let scope = scope_v4(ip);
            if ip.is_private() { prop_assert_eq!(scope, AddressScope::Private); }
            if ip.is_loopback() { prop_assert_eq!(scope, AddressScope::Loopback); }
            if ip.is_link_local() { prop_assert_eq!(scope, AddressScope::LinkLocal); }
            if ip.is_multicast() { prop_assert_eq!(scope, AddressScope::Multicast); }
            if ip.is_documentation() { prop_assert_eq!(scope, AddressScope::Documentation); }
            // A mapped IPv6 address has its IPv4 scope.
            prop_assert_eq!(AddressScope::of(IpAddr::V6(ip.to_ipv6_mapped())), scope);
        }
    }
}
