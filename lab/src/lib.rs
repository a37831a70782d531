//! The natkit NAT lab: real Linux NAT topologies in network namespaces, for tests.
//!
//! `natlab.sh` (next to this crate's manifest) builds a topology — a LAN host, a home
//! router doing one [`NatKind`] of NAT with nftables, optionally a carrier-grade NAT,
//! and "the internet" holding a STUN server's two addresses and outside peers — and
//! runs the real reference daemons in it (miniupnpd for UPnP IGD, NAT-PMP and PCP;
//! stund for RFC 3489 STUN). This crate drives it from tests:
//!
//! ```no_run
//! use natkit_lab::{Lab, NatKind, Node};
//!
//! natkit_lab::require_root(); // lab tests fail, never skip, without root
//! let lab = Lab::builder().nat(NatKind::PortRestricted).miniupnpd(true).stund(true).build()?;
//! let stun1 = lab.addrs().stun1.to_string();
//! let out = lab.exec(Node::Lan, &["stun", stun1.as_str()])?;
//! // Run any program inside the LAN, e.g. this test binary's own helper test
//! // (see `helper_addrs` for the pattern):
//! let status = lab.command(Node::Lan, "upnpc").arg("-l").status()?;
//! let status = lab.test_helper(Node::Lan, "lan_side")?.status()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! // Dropping `lab` kills its daemons and deletes its namespaces, also on panic.
//! ```
//!
//! Everything needs root (namespaces, nftables). Each lab has its own id, its own
//! namespaces (`nk-ID-lan`, `nk-ID-rtr`, `nk-ID-wan`, `nk-ID-lan2`, `nk-ID-isp`) and
//! its own run directory, so tests may build labs in parallel. No namespace is ever
//! linked to the host's network. [`LabBuilder::ipv6`] makes a lab dual-stack (a
//! routed LAN /64 with SLAAC, the router's stateful IPv6 firewall, miniupnpd's IPv6
//! pinholes; addresses in [`LabAddrs::v6`]). See `lab/README.md` for the addresses
//! and quirks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod child;
mod env;
mod error;
mod example;
mod helper;
mod lab;
mod parallel;
mod peer;
mod preflight;
mod proof;
mod reference;
mod renumber;
mod router;
mod session;
mod spec;

pub use builder::LabBuilder;
pub use child::LabChild;
pub use env::{LabAddrs, LabAddrs6};
pub use error::LabError;
pub use example::{dump_output, natkit_bin};
pub use helper::{HELPER_LAB_ENV, HELPER_TEST_ENV, helper_addrs};
pub use lab::{DEFAULT_EXEC_TIMEOUT, Lab};
pub use parallel::all_at_once;
pub use peer::{ECHO_PREFIX, EchoServers, spawn_echo};
pub use preflight::{REQUIRED_TOOLS, preflight, require_root, script_path, tool_path};
pub use proof::{
    LifecycleReport, MappedLine, PROOF_TCP_PORT, PROOF_UDP_PORT, assert_reaches, prove_lifecycle,
    router_row, serve_commands,
};
pub use reference::{
    COTURN_PORT, MappingReport, NatDiscoveryVerdict, NatFiltering, NatMapping, NatProfile,
    ReferenceVerdicts, StundVerdict, every_topology, parse_natdiscovery_filtering,
    parse_natdiscovery_hairpinning,
};
pub use router::{RouterMapping, parse_upnpc_list};
pub use session::HelperSession;
pub use spec::{Daemon, Ipv6Quirk, Link, NatKind, Node, Proto};
