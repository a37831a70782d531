//! The STUN client: a sans-IO Binding [`BindingTransaction`] with RFC 8489 retransmission, tokio
//! drivers for UDP ([`run_transactions`], [`binding`]) and TCP ([`binding_tcp`]), and
//! external-address discovery against several servers ([`StunDiscoverer`], a
//! [`natkit_core::AddressDiscoverer`]).
//!
//! ```no_run
//! # #[cfg(feature = "tokio")] // `binding` is the tokio driver
//! # async fn f() -> Result<(), natkit_stun::Error> {
//! use natkit_stun::client::{binding, BindingRequest, RtoPlan};
//! let resp = binding("192.0.2.1:3478".parse().unwrap(), &BindingRequest::new(),
//!                    RtoPlan::RFC8489).await?;
//! println!("the server sees us as {:?}", resp.mapped);
//! # Ok(()) }
//! ```

use std::time::Duration;

mod counters;
#[cfg(feature = "tokio")]
mod discover;
mod family;
mod name;
mod plan;
mod request;
#[cfg(feature = "tokio")]
mod resolve;
mod response;
#[cfg(feature = "tokio")]
mod tcp;
mod transaction;
#[cfg(feature = "tokio")]
mod udp;

pub use counters::BindingCounters;
#[cfg(feature = "tokio")]
pub(crate) use discover::route_to;
#[cfg(feature = "tokio")]
pub use discover::{ExternalAddresses, NoAddress, StunDiscoverer, external_addresses};
pub use family::IpFamily;
pub use name::{ResolveFailure, ServerName};
pub use plan::RtoPlan;
pub use request::BindingRequest;
#[cfg(feature = "tokio")]
pub use resolve::{
    resolve, resolve_all, resolve_all_every, resolve_all_in, resolve_every, resolve_in,
};
pub use response::{BindingResponse, MappedKind};
#[cfg(feature = "tokio")]
pub use tcp::{TCP_TIMEOUT, binding_tcp, read_frame};
pub use transaction::{AcceptFrom, BindingTransaction, InputDropReason, InputVerdict, Transmit};
#[cfg(feature = "tokio")]
pub use udp::{bind_for, binding, binding_on, run_transactions};

/// The STUN port a server name without one is given (RFC 8489 §18.6).
pub const DEFAULT_PORT: u16 = 3478;

/// How long one name may take to resolve. The system resolver's own retries (five
/// seconds per server, twice, with glibc's defaults) would otherwise make a dead
/// uplink look like a hang.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The one clock of the tokio drivers (the UDP and TCP clients, discovery, the
/// classifier's runner): tokio's, so that a test on tokio's paused clock runs them in
/// simulated time, and their waits (`sleep_until` a transaction's deadline, `timeout`)
/// and their `now` agree. The sans-IO cores take std `Instant`s: tokio's converts to
/// one exactly, and outside a paused test it is std's clock.
#[cfg(feature = "tokio")]
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
