#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - [`MappingRequest`] and [`Mapping`] (with [`Protocol`] and
//!   [`GatewayEpoch`]): what is asked of a router and what it grants;
//! - [`PortMapper`] and [`AddressDiscoverer`] (with [`consensus`]): the traits
//!   protocol crates implement;
//! - [`NatBehaviour`], named by [`NatBehaviour::legacy_type`];
//! - [`AddressScope::of`], behind every double-NAT conclusion;
//! - [`addresses`]: this host's IPv6 addresses by kind, and the stable one
//!   a pinhole uses ([`stable_ipv6_for`]);
//! - [`PortSpec`] and [`ServiceProfile`]: which ports a service needs;
//! - [`gateway`] (feature `gateway`) and [`LeaseKeeper`] (feature `keeper`).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addresses;
mod behaviour;
mod discover;
mod error;
mod error_line;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "keeper")]
pub mod keeper;
mod mapper;
mod mapping;
mod mechanism;
mod ports;
mod profiles;
mod protocol;
mod scope;
mod well_known;

pub use addresses::{
    HostIpv6, Ipv6AddressError, Ipv6Flags, Ipv6Kind, StableIpv6, StableReason, choose_stable_ipv6,
    host_ipv6_addresses, kernel_source_v6, stable_ipv6_for,
};
pub use behaviour::{
    Connectivity, FilteringBehaviour, LegacyNatType, MappingBehaviour, NatBehaviour,
};
pub use discover::{
    AddressDiscoverer, DiscoveryFailure, Evidence, ExternalAddress, Outcome, consensus,
};
pub use error::{BoxError, Error, FailureKind, IntoCore, Result};
pub use error_line::error_line;
#[cfg(feature = "gateway")]
pub use gateway::{Gateway, default_gateway};
#[cfg(feature = "keeper")]
pub use keeper::{
    KeeperConfig, KeeperEvent, KeeperEvents, LeaseKeeper, MappingId, RemapReason, ShutdownReport,
};
pub use mapper::PortMapper;
pub use mapping::{DESCRIPTION_TAG, GatewayEpoch, Mapping, MappingRequest, MappingToken};
pub use mechanism::Mechanism;
pub use ports::{
    MAX_ITEMS, MAX_SPEC_LEN, PortRange, PortSpec, PortSpecError, PortSpecErrorReason, Protocols,
};
pub use profiles::{PROFILES, ProfilePort, ServiceProfile};
pub use protocol::Protocol;
pub use scope::{AddressScope, upstream_nat_note};
pub use well_known::{WELL_KNOWN, WellKnownPort, profile_of, purpose};
