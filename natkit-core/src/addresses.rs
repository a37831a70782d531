//! This host's IPv6 addresses, what kind each is, and which one a pinhole
//! should use.
//!
//! A host on an IPv6 network with SLAAC usually holds several global
//! addresses on one interface: a stable one (EUI-64 or RFC 7217
//! stable-privacy, or a static one) and one or more temporary "privacy"
//! addresses (RFC 8981) that change every day or so and that the kernel
//! prefers as the source of outbound connections (`use_tempaddr=2`).
//! A pinhole opened for a temporary address stops working when the address
//! is retired, so natkit opens pinholes for a stable address only
//! ([`choose_stable_ipv6`], [`stable_ipv6_for`]), and says which it used.
//!
//! # Platforms
//!
//! - **Linux** reads `/proc/net/if_inet6`, which carries the kernel's
//!   address flags: every address gets its real [`Ipv6Kind`].
//! - **Elsewhere** the only address known is the kernel's chosen source
//!   towards a global address ([`kernel_source_v6`]: a UDP socket is
//!   connected, which sends no packet), reported as
//!   [`Ipv6Kind::GlobalUnknown`] when global: the OS may have picked a
//!   temporary address, and natkit cannot tell.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};

use crate::scope::AddressScope;

/// A global address used only as the destination of a route lookup
/// ([`kernel_source_v6`]) when the caller has nothing better: it lies in
/// `2000::/3`, so the lookup follows the default route, and no packet is
/// ever sent to it.
pub const ROUTE_LOOKUP_V6: Ipv6Addr = Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 1);

/// The Linux address flags (`IFA_F_*` of `<linux/if_addr.h>`) as
/// `/proc/net/if_inet6` shows them: the low eight bits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ipv6Flags(pub u8);

impl Ipv6Flags {
    /// `IFA_F_TEMPORARY`: an RFC 8981 temporary (privacy) address.
    pub const TEMPORARY: u8 = 0x01;
    /// `IFA_F_NODAD`: duplicate address detection was skipped.
    pub const NODAD: u8 = 0x02;
    /// `IFA_F_OPTIMISTIC`: RFC 4429 optimistic DAD, usable while checked.
    pub const OPTIMISTIC: u8 = 0x04;
    /// `IFA_F_DADFAILED`: another host on the link has this address.
    pub const DADFAILED: u8 = 0x08;
    /// `IFA_F_HOMEADDRESS`: a Mobile IPv6 home address.
    pub const HOMEADDRESS: u8 = 0x10;
    /// `IFA_F_DEPRECATED`: the preferred lifetime ran out; the address
    /// still receives but new connections should not use it.
    pub const DEPRECATED: u8 = 0x20;
    /// `IFA_F_TENTATIVE`: duplicate address detection is still running;
    /// the address cannot be used yet.
    pub const TENTATIVE: u8 = 0x40;
    /// `IFA_F_PERMANENT`: configured by hand (or a static config), with no
    /// lifetime.
    pub const PERMANENT: u8 = 0x80;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// A temporary (privacy) address.
    pub fn temporary(self) -> bool {
        self.has(Self::TEMPORARY)
    }

    /// Past its preferred lifetime.
    pub fn deprecated(self) -> bool {
        self.has(Self::DEPRECATED)
    }

    /// Not usable yet (DAD running) or never (DAD failed).
    pub fn unusable(self) -> bool {
        self.has(Self::TENTATIVE) || self.has(Self::DADFAILED)
    }

    /// Configured statically, with no lifetime.
    pub fn permanent(self) -> bool {
        self.has(Self::PERMANENT)
    }
}

/// What an IPv6 address of this host is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Ipv6Kind {
    /// A global address that stays (SLAAC EUI-64 or stable-privacy,
    /// DHCPv6, or static): the one a pinhole should use.
    GlobalStable,
    /// A global RFC 8981 temporary (privacy) address: preferred for
    /// outbound connections, retired within about a day.
    GlobalTemporary,
    /// A global address whose preferred lifetime ran out (stable or
    /// temporary): it still receives, but is on its way out.
    Deprecated,
    /// A global address that cannot be used yet (duplicate address
    /// detection running) or at all (DAD failed).
    Tentative,
    /// A global address whose kind the OS did not tell (platforms without
    /// `/proc/net/if_inet6`).
    GlobalUnknown,
    /// `fe80::/10`: reachable only on the link.
    LinkLocal,
    /// A unique local address, `fc00::/7` (RFC 4193): never reachable from
    /// the internet.
    UniqueLocal,
    /// `::1`.
    Loopback,
    /// Anything else (documentation, reserved, IPv4-mapped ranges).
    Other,
}

impl Ipv6Kind {
    /// The kind of `address` given its flags (`None` when the OS did not
    /// report any).
    pub fn of(address: Ipv6Addr, flags: Option<Ipv6Flags>) -> Ipv6Kind {
        match AddressScope::of(IpAddr::V6(address)) {
            AddressScope::Global => match flags {
                None => Ipv6Kind::GlobalUnknown,
                Some(f) if f.unusable() => Ipv6Kind::Tentative,
                Some(f) if f.deprecated() => Ipv6Kind::Deprecated,
                Some(f) if f.temporary() => Ipv6Kind::GlobalTemporary,
                Some(_) => Ipv6Kind::GlobalStable,
            },
            AddressScope::LinkLocal => Ipv6Kind::LinkLocal,
            AddressScope::Private => Ipv6Kind::UniqueLocal,
            AddressScope::Loopback => Ipv6Kind::Loopback,
            _ => Ipv6Kind::Other,
        }
    }

    /// The snake_case machine name, e.g. `global_temporary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ipv6Kind::GlobalStable => "global_stable",
            Ipv6Kind::GlobalTemporary => "global_temporary",
            Ipv6Kind::Deprecated => "deprecated",
            Ipv6Kind::Tentative => "tentative",
            Ipv6Kind::GlobalUnknown => "global_unknown",
            Ipv6Kind::LinkLocal => "link_local",
            Ipv6Kind::UniqueLocal => "unique_local",
            Ipv6Kind::Loopback => "loopback",
            Ipv6Kind::Other => "other",
        }
    }

    /// Global and usable for new connections (stable, temporary or of
    /// unknown kind).
    pub fn is_usable_global(self) -> bool {
        matches!(
            self,
            Ipv6Kind::GlobalStable | Ipv6Kind::GlobalTemporary | Ipv6Kind::GlobalUnknown
        )
    }
}

impl fmt::Display for Ipv6Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One IPv6 address of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HostIpv6 {
    /// The address.
    pub address: Ipv6Addr,
    /// Its prefix length (128 when unknown).
    pub prefix_len: u8,
    /// The interface holding it, e.g. `eth0`; `None` when the OS did not
    /// say (the non-Linux fallback).
    pub interface: Option<String>,
    /// The interface index (0 when unknown): the scope id a link-local
    /// address needs in a socket address.
    pub if_index: u32,
    /// The kind, from the scope and the flags.
    pub kind: Ipv6Kind,
    /// The OS's flags, where it reports them (Linux).
    pub flags: Option<Ipv6Flags>,
}

impl fmt::Display for HostIpv6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({}", self.address, self.prefix_len, self.kind)?;
        if let Some(name) = &self.interface {
            write!(f, " on {name}")?;
        }
        f.write_str(")")
    }
}

/// Why this host's IPv6 addresses could not be listed, or no stable one
/// chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Ipv6AddressError {
    /// A line of `/proc/net/if_inet6` did not have the expected shape.
    #[error("line {line} of /proc/net/if_inet6 is malformed: {reason}")]
    Malformed {
        /// The 1-based line number.
        line: usize,
        /// Which field was wrong.
        reason: &'static str,
    },
    /// Reading the OS's address table failed.
    #[error("cannot list IPv6 addresses: {0}")]
    Io(#[from] io::Error),
    /// No IPv6 route towards the destination: the host has no IPv6
    /// connectivity (or no default IPv6 route).
    #[error("no IPv6 route towards {toward}")]
    NoRoute {
        /// The destination of the route lookup.
        toward: Ipv6Addr,
    },
    /// The interface has global addresses, but none that is stable and
    /// usable.
    #[error(
        "no stable global IPv6 address on {interface}: {temporary} temporary, \
         {deprecated} deprecated, {tentative} tentative"
    )]
    NoStableAddress {
        /// The interface searched.
        interface: String,
        /// How many temporary (privacy) addresses it has: a host with only
        /// these can open a pinhole that dies with the address.
        temporary: usize,
        /// How many deprecated global addresses it has.
        deprecated: usize,
        /// How many global addresses are still in (or failed) DAD.
        tentative: usize,
    },
    /// The OS does not report address kinds, so a stable address cannot be
    /// told from a temporary one (non-Linux fallback).
    #[error(
        "this platform does not report IPv6 address kinds; the kernel's source {source_address} may be temporary"
    )]
    KindUnknown {
        /// The kernel's chosen source address.
        source_address: Ipv6Addr,
    },
}

/// Parses the text of `/proc/net/if_inet6`.
///
/// Each line is `ADDRESS IFINDEX PREFIXLEN SCOPE FLAGS NAME`, the first five
/// in hex, e.g. `2a0d0088007700770000000000000002 04 40 00 80 eth0`.
/// The index is `%02x` and grows past two digits on hosts with many
/// interfaces, so every field is read up to the next space.
pub fn parse_if_inet6(text: &str) -> Result<Vec<HostIpv6>, Ipv6AddressError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let malformed = |reason| Ipv6AddressError::Malformed {
            line: i + 1,
            reason,
        };
        let mut fields = line.split_whitespace();
        let Some(hex) = fields.next() else {
            continue;
        };
        if hex.len() != 32 {
            return Err(malformed("address is not 32 hex digits"));
        }
        let bits = u128::from_str_radix(hex, 16).map_err(|_| malformed("address is not hex"))?;
        let mut hex_field = |reason| {
            fields
                .next()
                .and_then(|f| u32::from_str_radix(f, 16).ok())
                .ok_or_else(|| malformed(reason))
        };
        let if_index = hex_field("interface index")?;
        let prefix_len = u8::try_from(hex_field("prefix length")?)
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| malformed("prefix length"))?;
        let _scope = hex_field("scope")?;
        let flags = u8::try_from(hex_field("flags")?).map_err(|_| malformed("flags"))?;
        let name = fields.next().ok_or_else(|| malformed("interface name"))?;
        let address = Ipv6Addr::from(bits);
        let flags = Some(Ipv6Flags(flags));
        out.push(HostIpv6 {
            address,
            prefix_len,
            interface: Some(name.to_owned()),
            if_index,
            kind: Ipv6Kind::of(address, flags),
            flags,
        });
    }
    Ok(out)
}

/// The source address the kernel would use towards `toward`, found by
/// connecting a UDP socket (a route lookup; no packet is sent). `None` when
/// there is no IPv6 route (or IPv6 is disabled).
///
/// `toward` must not be link-local: those need a scope id.
pub fn kernel_source_v6(toward: Ipv6Addr) -> io::Result<Option<Ipv6Addr>> {
    // Binding `[::]:0` fails only when the kernel has no IPv6 at all.
    let Ok(socket) = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)) else {
        return Ok(None);
    };
    match socket.connect(SocketAddrV6::new(toward, 9, 0, 0)) {
        Ok(()) => {}
        Err(e) if no_route(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    match socket.local_addr()? {
        SocketAddr::V6(local) if !local.ip().is_unspecified() => Ok(Some(*local.ip())),
        _ => Ok(None),
    }
}

fn no_route(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable
    )
}

/// This host's IPv6 addresses, every interface.
///
/// On Linux from `/proc/net/if_inet6` (an absent file means IPv6 is
/// disabled: an empty list). Elsewhere only the kernel's source towards
/// [`ROUTE_LOOKUP_V6`], with a kind from its scope alone
/// ([`Ipv6Kind::GlobalUnknown`] when global).
pub fn host_ipv6_addresses() -> Result<Vec<HostIpv6>, Ipv6AddressError> {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string("/proc/net/if_inet6") {
            Ok(text) => parse_if_inet6(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(kernel_source_v6(ROUTE_LOOKUP_V6)?
            .map(|address| HostIpv6 {
                address,
                prefix_len: 128,
                interface: None,
                if_index: 0,
                kind: Ipv6Kind::of(address, None),
                flags: None,
            })
            .into_iter()
            .collect())
    }
}

/// Why [`choose_stable_ipv6`] picked its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum StableReason {
    /// The kernel's own source address is stable: the address outbound
    /// connections already use.
    KernelSource,
    /// A statically configured address (no lifetime), preferred because it
    /// does not change even when the router's prefix does not either.
    Static,
    /// A stable SLAAC or DHCPv6 address (the kernel's source was temporary
    /// or on another interface).
    Autoconfigured,
}

impl StableReason {
    /// The snake_case machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            StableReason::KernelSource => "kernel_source",
            StableReason::Static => "static",
            StableReason::Autoconfigured => "autoconfigured",
        }
    }
}

/// The stable global address chosen for a pinhole, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StableIpv6 {
    /// The address chosen.
    pub address: Ipv6Addr,
    /// The interface it is on.
    pub interface: String,
    /// Why this one.
    pub reason: StableReason,
    /// The kernel's own source address towards the destination, when it
    /// differs from [`address`](Self::address) (typically a temporary
    /// address that outbound connections use).
    pub kernel_source: Option<Ipv6Addr>,
    /// The temporary addresses on the interface that were passed over.
    pub skipped_temporary: Vec<Ipv6Addr>,
}

impl fmt::Display for StableIpv6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            StableReason::KernelSource => "stable, the kernel's own source",
            StableReason::Static => "stable, static",
            StableReason::Autoconfigured => "stable, autoconfigured",
        };
        write!(f, "{} on {} ({why}", self.address, self.interface)?;
        if let Some(src) = self.kernel_source {
            write!(f, "; outbound traffic uses {src}")?;
        }
        if !self.skipped_temporary.is_empty() {
            write!(
                f,
                "; {} temporary address(es) not used",
                self.skipped_temporary.len()
            )?;
        }
        f.write_str(")")
    }
}

/// Chooses the stable global address a pinhole should use, among `addrs`
/// on `interface`. Never a temporary, deprecated or tentative one.
///
/// Preference: the kernel's source address (`kernel_source`) when it is
/// stable (outbound traffic then comes from the pinhole's address), then a
/// static address, then the first autoconfigured stable one.
pub fn choose_stable_ipv6(
    addrs: &[HostIpv6],
    interface: &str,
    kernel_source: Option<Ipv6Addr>,
) -> Result<StableIpv6, Ipv6AddressError> {
    let on_if: Vec<&HostIpv6> = addrs
        .iter()
        .filter(|a| a.interface.as_deref() == Some(interface))
        .collect();
    let count = |k: Ipv6Kind| on_if.iter().filter(|a| a.kind == k).count();
    let stable: Vec<&HostIpv6> = on_if
        .iter()
        .copied()
        .filter(|a| a.kind == Ipv6Kind::GlobalStable)
        .collect();
    let pick = |address: Ipv6Addr, reason| StableIpv6 {
        address,
        interface: interface.to_owned(),
        reason,
        kernel_source: kernel_source.filter(|s| *s != address),
        skipped_temporary: on_if
            .iter()
            .filter(|a| a.kind == Ipv6Kind::GlobalTemporary)
            .map(|a| a.address)
            .collect(),
    };
    if let Some(a) = stable.iter().find(|a| Some(a.address) == kernel_source) {
        return Ok(pick(a.address, StableReason::KernelSource));
    }
    if let Some(a) = stable
        .iter()
        .find(|a| a.flags.is_some_and(Ipv6Flags::permanent))
    {
        return Ok(pick(a.address, StableReason::Static));
    }
    if let Some(a) = stable.first() {
        return Ok(pick(a.address, StableReason::Autoconfigured));
    }
    // The fallback platforms list no interface and no flags: whatever the
    // interface asked for, no stable address can be told from a temporary one.
    if let Some(a) = addrs.iter().find(|a| a.kind == Ipv6Kind::GlobalUnknown) {
        return Err(Ipv6AddressError::KindUnknown {
            source_address: kernel_source.unwrap_or(a.address),
        });
    }
    Err(Ipv6AddressError::NoStableAddress {
        interface: interface.to_owned(),
        temporary: count(Ipv6Kind::GlobalTemporary),
        deprecated: count(Ipv6Kind::Deprecated),
        tentative: count(Ipv6Kind::Tentative),
    })
}

/// The stable global address of the interface that routes towards
/// `toward` (the router's global IPv6 address, a peer, or
/// [`ROUTE_LOOKUP_V6`] for the default route), and why it was chosen.
///
/// `interface` overrides the route lookup's interface (e.g. the IPv4
/// default gateway's interface from `default_gateway()`). On platforms
/// without address kinds this fails with
/// [`Ipv6AddressError::KindUnknown`] rather than guess.
pub fn stable_ipv6_for(
    toward: Ipv6Addr,
    interface: Option<&str>,
) -> Result<StableIpv6, Ipv6AddressError> {
    let addrs = host_ipv6_addresses()?;
    let source = kernel_source_v6(toward)?;
    let interface = match interface {
        Some(name) => name.to_owned(),
        None => {
            let src = source.ok_or(Ipv6AddressError::NoRoute { toward })?;
            match addrs.iter().find(|a| a.address == src) {
                Some(HostIpv6 {
                    interface: Some(name),
                    ..
                }) => name.clone(),
                _ => {
                    return Err(Ipv6AddressError::KindUnknown {
                        source_address: src,
                    });
                }
            }
        }
    };
    choose_stable_ipv6(&addrs, &interface, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SLAAC host with `use_tempaddr=2` on the lab's LAN: a static
    /// address, a stable-privacy SLAAC one, two temporaries (one
    /// deprecated), one in DAD, a link-local, a ULA, and loopback. The
    /// interface index of `veth-lan` is past two hex digits.
    const FIXTURE: &str = "\
2a0d0088007700770000000000000002 1a3 40 00 80 veth-lan
2a0d00880077007738f25dd0c1a8b42e 1a3 40 00 00 veth-lan
2a0d0088007700779c0e1b4d77a3e021 1a3 40 00 01 veth-lan
2a0d008800770077d1d1d1d1d1d1d1d1 1a3 40 00 21 veth-lan
2a0d00880077007700000000000000aa 1a3 40 00 40 veth-lan
fe80000000000000a8c1abfffe2f6e01 1a3 40 20 80 veth-lan
fd0000000000000000000000000000c3 1a3 40 00 80 veth-lan
00000000000000000000000000000001 01 80 10 80       lo
";

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let addrs = parse_if_inet6(FIXTURE).unwrap();
        let kinds: Vec<(Ipv6Addr, Ipv6Kind)> = addrs.iter().map(|a| (a.address, a.kind)).collect();
        assert_eq!(
            kinds,
            [
                (ip("2a0d:88:77:77::2"), Ipv6Kind::GlobalStable),
                (
                    ip("2a0d:88:77:77:38f2:5dd0:c1a8:b42e"),
                    Ipv6Kind::GlobalStable
                ),
                (
                    ip("2a0d:88:77:77:9c0e:1b4d:77a3:e021"),
                    Ipv6Kind::GlobalTemporary
                ),
                (
                    ip("2a0d:88:77:77:d1d1:d1d1:d1d1:d1d1"),
                    Ipv6Kind::Deprecated
                ),
                (ip("2a0d:88:77:77::aa"), Ipv6Kind::Tentative),
                (ip("fe80::a8c1:abff:fe2f:6e01"), Ipv6Kind::LinkLocal),
                (ip("fd00::c3"), Ipv6Kind::UniqueLocal),
                (ip("::1"), Ipv6Kind::Loopback),
            ]
        );
        assert_eq!(addrs[0].if_index, 0x1a3);
        assert_eq!(addrs[0].prefix_len, 64);
        assert_eq!(addrs[7].interface.as_deref(), Some("lo"));
        assert_eq!(addrs[7].prefix_len, 128);
        assert!(addrs[3].flags.unwrap().temporary());
        assert_eq!(
            addrs[2].to_string(),
            "2a0d:88:77:77:9c0e:1b4d:77a3:e021/64 (global_temporary on veth-lan)"
        );
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        let cases = [
            ("2a0d 04 40 00 80 eth0", "address is not 32 hex digits"),
            (
                "2a0d008800770077000000000000zz02 04 40 00 80 eth0",
                "address is not hex",
            ),
            (
                "2a0d0088007700770000000000000002 04 81 00 80 eth0",
                "prefix length",
            ),
            (
                "2a0d0088007700770000000000000002 04 40 00 100 eth0",
                "flags",
            ),
            (
                "2a0d0088007700770000000000000002 04 40 00 80",
                "interface name",
            ),
            (
                "2a0d0088007700770000000000000002 xx 40 00 80 eth0",
                "interface index",
            ),
        ];
        for (text, want) in cases {
            let text = format!("\n{text}\n");
            match parse_if_inet6(&text) {
                Err(Ipv6AddressError::Malformed { line: 2, reason }) => {
                    assert_eq!(reason, want, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(parse_if_inet6("").unwrap(), []);
    }

    #[test]
    fn the_kernels_stable_source_wins() {
        let addrs = parse_if_inet6(FIXTURE).unwrap();
        let src = ip("2a0d:88:77:77:38f2:5dd0:c1a8:b42e");
        let c = choose_stable_ipv6(&addrs, "veth-lan", Some(src)).unwrap();
        assert_eq!(c.address, src);
        assert_eq!(c.reason, StableReason::KernelSource);
        assert_eq!(c.kernel_source, None);
    }

    #[test]
    fn a_temporary_source_is_never_used() {
        let addrs = parse_if_inet6(FIXTURE).unwrap();
        let temp = ip("2a0d:88:77:77:9c0e:1b4d:77a3:e021");
        let c = choose_stable_ipv6(&addrs, "veth-lan", Some(temp)).unwrap();
        assert_eq!(c.address, ip("2a0d:88:77:77::2"));
        assert_eq!(c.reason, StableReason::Static);
        assert_eq!(c.kernel_source, Some(temp));
        assert_eq!(c.skipped_temporary, [temp]);
        assert_eq!(
            c.to_string(),
            "2a0d:88:77:77::2 on veth-lan (stable, static; outbound traffic uses \
             2a0d:88:77:77:9c0e:1b4d:77a3:e021; 1 temporary address(es) not used)"
        );
        // Without the static address: the SLAAC stable one.
        let slaac_only: Vec<HostIpv6> = addrs[1..].to_vec();
        let c = choose_stable_ipv6(&slaac_only, "veth-lan", Some(temp)).unwrap();
        assert_eq!(c.address, ip("2a0d:88:77:77:38f2:5dd0:c1a8:b42e"));
        assert_eq!(c.reason, StableReason::Autoconfigured);
    }

    #[test]
    fn temporary_only_is_an_error_that_counts() {
        let addrs = parse_if_inet6(FIXTURE).unwrap();
        let rest: Vec<HostIpv6> = addrs[2..].to_vec();
        match choose_stable_ipv6(&rest, "veth-lan", None) {
            Err(Ipv6AddressError::NoStableAddress {
                interface,
                temporary: 1,
                deprecated: 1,
                tentative: 1,
            }) => assert_eq!(interface, "veth-lan"),
            other => panic!("{other:?}"),
        }
        // Another interface's stable address is not taken.
        assert!(matches!(
            choose_stable_ipv6(&addrs, "eth1", None),
            Err(Ipv6AddressError::NoStableAddress { temporary: 0, .. })
        ));
    }

    #[test]
    fn without_flags_the_kind_is_unknown() {
        let a = ip("2a0d:88:77:77::9");
        assert_eq!(Ipv6Kind::of(a, None), Ipv6Kind::GlobalUnknown);
        assert_eq!(Ipv6Kind::of(ip("fe80::1"), None), Ipv6Kind::LinkLocal);
        assert_eq!(
            Ipv6Kind::of(ip("2001:db8::1"), Some(Ipv6Flags(0))),
            Ipv6Kind::Other
        );
        // The non-Linux fallback: the kernel's source, no interface, no flags.
        let fallback = [HostIpv6 {
            address: a,
            prefix_len: 128,
            interface: None,
            if_index: 0,
            kind: Ipv6Kind::GlobalUnknown,
            flags: None,
        }];
        for src in [Some(a), None] {
            assert!(matches!(
                choose_stable_ipv6(&fallback, "en0", src),
                Err(Ipv6AddressError::KindUnknown { source_address }) if source_address == a
            ));
        }
    }

    /// On any machine: the live lookups either answer consistently or say
    /// why not; they never panic.
    #[test]
    fn live_lookup_is_consistent_or_explains() {
        let addrs = host_ipv6_addresses().unwrap();
        for a in &addrs {
            assert_eq!(a.kind, Ipv6Kind::of(a.address, a.flags));
        }
        match stable_ipv6_for(ROUTE_LOOKUP_V6, None) {
            Ok(c) => assert!(
                addrs
                    .iter()
                    .any(|a| a.address == c.address && a.kind == Ipv6Kind::GlobalStable)
            ),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
