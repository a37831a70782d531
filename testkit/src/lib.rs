//! Test support shared by the natkit crates' tests (a dev-dependency only;
//! never published).
//!
//! - `igd` (the feature `igd`): a fake UPnP IGD on loopback (SSDP,
//!   description, WANIPConnection and WANIPv6FirewallControl SOAP), scripted
//!   per test;
//! - [`pmp`]: a fake NAT-PMP/PCP server on loopback, scripted per test;
//! - [`stun`]: the checks every decoded STUN message must pass (the fuzz
//!   target and the property tests share them);
//! - [`loopback_gateway`]: a gateway on `lo`, so nothing a test maps or probes
//!   leaves the host;
//! - `lab_helper` (the feature `lab`): the start of a NAT lab helper body.
//!
//! Errors in these tests are quoted with `natkit_core::error_line`, the
//! formatter the tools use, so a test sees the text a user would.
#![forbid(unsafe_code)]

#[cfg(feature = "igd")]
pub mod igd;
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

/// The start of a NAT lab helper body (a test `#[ignore]`d on the host, run
/// in a lab node by `Lab::test_helper`): the lab's addresses and a runtime with
/// I/O and time on two workers, as many as the lab machine has cores.
///
/// # Panics
///
/// Outside the lab (e.g. `cargo test -- --ignored` on the host), as
/// `natkit_lab::helper_addrs` does: a helper body that returned early there
/// would pass having tested nothing.
#[cfg(feature = "lab")]
pub fn lab_helper(test_name: &str) -> (natkit_lab::LabAddrs, tokio::runtime::Runtime) {
    let addrs = natkit_lab::helper_addrs(test_name)
        .expect("lab env")
        .expect("in the lab");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    (addrs, rt)
}
