#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! natkit-core cannot depend on the protocol crates, so the combinator of
//! all three lives here.
//!
//! - [`AutoMapper`] detects PCP, NAT-PMP and UPnP at once
//!   ([`AutoMapper::detect`] → [`Detection`]: per mechanism
//!   availability, the typed error kind, external address and its scope,
//!   epoch, time taken), maps through the best available (PCP, then
//!   NAT-PMP, then UPnP unless [`PortMapConfig::order`] says otherwise),
//!   and implements [`natkit_core::PortMapper`] so the
//!   [`LeaseKeeper`](natkit_core::LeaseKeeper) runs on it.
//! - A router without any of them is [`RouterVerdict::NoProtocol`] ("no port
//!   mapping protocol") within [`PortMapConfig::detect_deadline`] (900 ms)
//!   when it refuses the ports, within two deadlines when it drops them
//!   (a second window keeps loss alone from giving that verdict).
//! - Double NAT: a non-global external address is reported
//!   ([`UpstreamNat`], [`mapping_upstream_note`]: "the router's external
//!   address is 100.64.0.2 …: another NAT is upstream; this mapping does
//!   not reach the internet").
//! - [`Journal`] records every mapping on disk before it is returned;
//!   [`AutoMapper::cleanup`] deletes what a killed run left behind, and
//!   nothing of anyone else's.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auto;
mod cleanup;
mod config;
mod error;
pub mod journal;
mod report;

pub use auto::{AutoMapper, PINHOLE_SKIP_NATPMP};
pub use cleanup::{CleanupOptions, CleanupReport};
pub use config::{
    DEFAULT_ORDER, DETECT_PLAN, ONLY_DETECT_DEADLINE, ONLY_UPNP_DETECT_DEADLINE, PortMapConfig,
    parse_mechanism,
};
pub use error::{Error, Result};
pub use journal::{Journal, JournalEntry};
pub use report::{
    Detection, MechanismError, MechanismReport, RouterVerdict, UpstreamNat, mapping_upstream_note,
};

/// The old name of [`RouterVerdict`] ("verdict" also names a port's in
/// natkit-probe and a datagram's judgement in natkit-pmp).
#[deprecated(note = "renamed `RouterVerdict`")]
pub type Verdict = RouterVerdict;
