//! The STUN client: a sans-IO Binding [`Transaction`] with RFC 8489 retransmission, tokio
//! drivers for UDP ([`run_transactions`], [`binding`]) and TCP ([`binding_tcp`]), and
//! external-address discovery against several servers ([`StunDiscoverer`], a
//! [`natkit_core::AddressDiscoverer`]).
//!
//! ```no_run
//! # async fn f() -> Result<(), natkit_stun::Error> {
//! use natkit_stun::client::{binding, BindingRequest, RetransmitPlan};
//! let resp = binding("192.0.2.1:3478".parse().unwrap(), &BindingRequest::new(),
//!                    RetransmitPlan::RFC8489).await?;
//! println!("the server sees us as {:?}", resp.mapped);
//! # Ok(()) }
//! ```

mod counters;
#[cfg(feature = "tokio")]
mod discover;
mod plan;
mod request;
mod response;
#[cfg(feature = "tokio")]
mod tcp;
mod transaction;
#[cfg(feature = "tokio")]
mod udp;

pub use counters::Counters;
#[cfg(feature = "tokio")]
pub use discover::StunDiscoverer;
pub use plan::RetransmitPlan;
pub use request::BindingRequest;
pub use response::{BindingResponse, MappedKind};
#[cfg(feature = "tokio")]
pub use tcp::{TCP_TIMEOUT, binding_tcp, read_frame};
pub use transaction::{AcceptFrom, DropReason, Transaction, Transmit, Verdict};
#[cfg(feature = "tokio")]
pub use udp::{bind_for, binding, binding_on, run_transactions};

/// The STUN port a server name without one is given (RFC 8489 §18.6).
pub const DEFAULT_PORT: u16 = 3478;
