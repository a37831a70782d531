//! Test support shared by the natkit crates' tests (a dev-dependency only;
//! never published).
//!
//! - [`pmp`]: a fake NAT-PMP/PCP server on loopback, scripted per test;
//! - [`stun`]: the checks every decoded STUN message must pass (the fuzz
//!   target and the property tests share them);
//! - [`loopback_gateway`]: a gateway on `lo`, so nothing a test maps or probes
//!   leaves the host.
//!
//! Errors in these tests are quoted with `natkit_core::error_line`, the
//! formatter the tools use, so a test sees the text a user would.
//!
//! The fake UPnP IGD lives in natkit-upnp's `tests/fake_igd/`, its only
//! user.
#![forbid(unsafe_code)]

pub mod pmp;
pub mod stun;

/// A gateway on the loopback interface (127.0.0.1/8, no IPv6): what a test hands
/// a mapper in place of the real default route, so every request goes to a
/// fake on this host.
pub fn loopback_gateway() -> natkit_core::Gateway {
    natkit_core::Gateway {
        interface: "lo".into(),
        address: std::net::Ipv4Addr::LOCALHOST,
        local_address: std::net::Ipv4Addr::LOCALHOST,
        prefix_len: 8,
        address_v6: None,
        local_v6: Vec::new(),
    }
}
