//! natkit-core: the shared vocabulary of natkit.
//!
//! - [`Protocol`], [`MappingRequest`], [`Mapping`], [`GatewayEpoch`]: what is
//!   asked of a router and what it grants;
//! - [`PortMapper`] and [`AddressDiscoverer`]: the two traits protocol crates
//!   implement (UPnP IGD, NAT-PMP, PCP; STUN);
//! - [`NatBehaviour`]: RFC 4787 mapping and filtering behaviour, with the
//!   legacy RFC 3489 name derived from it;
//! - [`AddressScope`]: private, shared (CGNAT), global … — the one function
//!   behind every double-NAT conclusion;
//! - [`PortSpec`] and [`ServiceProfile`]: which ports a service needs;
//! - [`gateway`]: the default gateway and the local address routing to it;
//! - [`LeaseKeeper`]: holds mappings through any [`PortMapper`], renews them,
//!   re-maps after a router reboot and deletes them on shutdown.
//!
//! natkit-core has no protocol code of its own.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod behaviour;
mod discover;
mod error;
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

pub use behaviour::{
    Connectivity, FilteringBehaviour, LegacyNatType, MappingBehaviour, NatBehaviour,
};
pub use discover::{AddressDiscoverer, Evidence, ExternalAddress, Outcome, consensus};
pub use error::{BoxError, Error, FailureKind, Result};
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
