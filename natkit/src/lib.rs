//! natkit: get through NATs.
//!
//! One call each for what most programs need, and the crates behind them for the
//! rest:
//!
//! - [`PortLease::open`] opens a port on the router (PCP, NAT-PMP or UPnP IGD,
//!   whichever it speaks) and keeps it open: renewed, re-made after a router reboot,
//!   deleted on [`close`](PortLease::close) or drop, and cleaned up by the next run if
//!   the process is killed (feature `portmap`); with
//!   [`.ipv6()`](PortLeaseBuilder::ipv6) it opens a pinhole in the router's IPv6
//!   firewall for this host's stable address instead, and moves it when the LAN's
//!   prefix changes ([`PinholeFollower`] does that for a keeper of your own);
//! - [`external_address`] tells this host's public address, from STUN servers and the
//!   router's own report, with the evidence, and [`external_addresses`] the IPv4 and
//!   the IPv6 one side by side (feature `stun`);
//! - [`nat_type`] tells what kind of NAT is in the way: full cone, restricted,
//!   port-restricted, symmetric, from RFC 5780 tests that are never guessed
//!   (feature `stun`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), natkit::Error> {
//! use natkit::{PortLease, Protocol};
//!
//! let lease = PortLease::open(Protocol::Udp, 4500).await?;
//! println!("mapped: {:?}", lease.external().map(|m| m.external));
//! println!("address: {}", natkit::external_address().await?.ip);
//! println!("NAT: {}", natkit::nat_type().await?.legacy);
//! lease.close().await?;
//! # Ok(()) }
//! ```
//!
//! Everything else has a builder ([`PortLease::builder`], [`AddressQuery`],
//! [`NatTypeQuery`]) or lives in the re-exported crates: [`core`], [`portmap`],
//! [`upnp`], [`pmp`], [`stun`], [`probe`], and [`doctor`] (the whole diagnosis of
//! why this host is unreachable from outside, as the `natkit doctor` tool runs it:
//! `natkit::doctor::diagnose(natkit::doctor::Config::default())`). Nothing here blocks inside async code, and
//! no channel in the API grows without bound: a lease's state is a
//! [`tokio::sync::watch`], the keeper's events a bounded broadcast.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "stun")]
mod address;
mod error;
#[cfg(feature = "portmap")]
mod lease;
#[cfg(feature = "portmap")]
mod renumber;

pub use error::Error;
pub use natkit_core as core;
pub use natkit_core::{
    AddressScope, Evidence, ExternalAddress, FilteringBehaviour, KeeperConfig, LegacyNatType,
    Mapping, MappingBehaviour, Mechanism, NatBehaviour, Protocol,
};

#[cfg(feature = "stun")]
pub use address::{
    ADDRESS_TIMEOUT, AddressQuery, ExternalAddresses, NatTypeQuery, external_address,
    external_addresses, nat_type,
};
#[cfg(feature = "portmap")]
pub use lease::{DEFAULT_LIFETIME, PortLease, PortLeaseBuilder};
#[cfg(feature = "stun")]
pub use natkit_stun::classify::Classification;
#[cfg(feature = "portmap")]
pub use renumber::{ADDRESS_CHECK_INTERVAL, LeaseEvent, PinholeFollower, RenumberError};

#[cfg(feature = "doctor")]
pub use natkit_doctor as doctor;
#[cfg(feature = "portmap")]
pub use natkit_pmp as pmp;
#[cfg(feature = "portmap")]
pub use natkit_portmap as portmap;
#[cfg(feature = "probe")]
pub use natkit_probe as probe;
#[cfg(feature = "stun")]
pub use natkit_stun as stun;
#[cfg(feature = "portmap")]
pub use natkit_upnp as upnp;
