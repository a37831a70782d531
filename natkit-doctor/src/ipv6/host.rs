//! The host part of the section: which of this host's IPv6 addresses the
//! report lists, whether IPv6 is available at all, and the stable address a
//! pinhole uses.

use std::net::{IpAddr, Ipv6Addr};

use natkit_core::{HostIpv6, Ipv6AddressError, Ipv6Kind, StableIpv6};

use super::report::{Ipv6HostAddress, PinholeAddress};

/// This host's addresses as the report lists them: global ones only (a
/// link-local or unique local address is never reachable from outside).
fn listed(addrs: &[HostIpv6]) -> Vec<Ipv6HostAddress> {
    addrs
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                Ipv6Kind::GlobalStable
                    | Ipv6Kind::GlobalTemporary
                    | Ipv6Kind::Deprecated
                    | Ipv6Kind::Tentative
                    | Ipv6Kind::GlobalUnknown
            )
        })
        .map(|a| Ipv6HostAddress {
            address: a.address,
            kind: a.kind.as_str(),
            is_static: a.flags.is_some_and(natkit_core::Ipv6Flags::permanent),
            interface: a.interface.clone(),
        })
        .collect()
}

/// The host part of the section, decided from the address table, the kernel's
/// source address towards the IPv6 internet (`None`: no route) and the
/// stable-address choice.
pub(super) struct HostIpv6State {
    pub(super) available: bool,
    pub(super) detail: String,
    pub(super) addresses: Vec<Ipv6HostAddress>,
    pub(super) stable: Option<StableIpv6>,
}

/// Decides the host part: available only with a usable global address and a
/// route to the IPv6 internet.
pub(super) fn host_state(
    addrs: Result<Vec<HostIpv6>, Ipv6AddressError>,
    source: Option<Ipv6Addr>,
    chosen: Option<Result<StableIpv6, Ipv6AddressError>>,
) -> HostIpv6State {
    let addrs = match addrs {
        Ok(a) => a,
        Err(e) => {
            return HostIpv6State {
                available: false,
                detail: crate::render::error_line(&e),
                addresses: Vec::new(),
                stable: None,
            };
        }
    };
    let addresses = listed(&addrs);
    let ula: Vec<String> = (addrs.iter())
        .filter(|a| a.kind == Ipv6Kind::UniqueLocal)
        .map(|a| a.address.to_string())
        .collect();
    let usable = addrs.iter().any(|a| a.kind.is_usable_global());
    let source_global =
        source.filter(|s| natkit_core::AddressScope::of(IpAddr::V6(*s)).is_global());
    let (available, detail) = match (usable, source, source_global) {
        (false, _, _) if addresses.is_empty() && !ula.is_empty() => (
            false,
            format!(
                "this host has only unique local IPv6 addresses ({}), which the internet \
                 never reaches: the network has IPv6 inside but none to the internet",
                ula.join(", ")
            ),
        ),
        (false, _, _) if addresses.is_empty() => (
            false,
            "this host has no global IPv6 address (the network gives it none: no router \
             advertisement with a prefix, no DHCPv6)"
                .to_owned(),
        ),
        (false, _, _) => (
            false,
            "this host's global IPv6 addresses are all deprecated or not usable yet".to_owned(),
        ),
        (true, None, _) => (
            false,
            "this host has a global IPv6 address but no IPv6 route to the internet (no \
             default route from the router's advertisements)"
                .to_owned(),
        ),
        (true, Some(s), None) => (
            false,
            format!(
                "the IPv6 route to the internet leaves from {s}, which is not a global address"
            ),
        ),
        (true, Some(_), Some(s)) => {
            let on = addrs
                .iter()
                .find(|a| a.address == s)
                .and_then(|a| a.interface.clone())
                .map(|i| format!(" on {i}"))
                .unwrap_or_default();
            (true, format!("outbound IPv6 leaves from {s}{on}"))
        }
    };
    let stable = if available {
        chosen.and_then(Result::ok)
    } else {
        None
    };
    HostIpv6State {
        available,
        detail,
        addresses,
        stable,
    }
}

/// The report's view of the stable-address choice.
pub(super) fn pinhole_address(s: &StableIpv6) -> PinholeAddress {
    PinholeAddress {
        address: s.address,
        reason: s.reason.as_str(),
        outbound_source: s.kernel_source,
    }
}
