//! natkit-pmp: NAT-PMP (RFC 6886) and PCP (RFC 6887) port mappers.
//!
//! - [`natpmp::NatPmpMapper`] and [`pcp::PcpMapper`] implement
//!   [`natkit_core::PortMapper`]; construct them with the gateway address
//!   (from [`natkit_core::default_gateway`]) and a config with defaults.
//!   Each has a fast `probe()` / `is_available()` check.
//! - The protocol cores are sans-IO: [`natpmp::NatPmpRequest`] /
//!   [`natpmp::NatPmpResponse`] and [`pcp::PcpRequest`] /
//!   [`pcp::PcpResponse`] encode and check bytes; [`Transaction`] runs one
//!   request/response exchange (retransmission, source and nonce checks)
//!   on the caller's clock; [`EpochTracker`] detects gateway reboots.
//! - Errors are [`Error`], wrapped in [`natkit_core::Error::Mechanism`] at
//!   the trait boundary.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod counters;
mod driver;
mod epoch;
mod error;
pub mod natpmp;
pub mod pcp;
mod request;
mod schedule;
mod transaction;

pub use counters::Counters;
pub use epoch::{EpochObservation, EpochTracker};
pub use error::{Error, Result};
pub use schedule::{
    FIRST_WAIT, LONGEST_WAIT, PCP_IRT, PCP_RAND, PROBE_WINDOW, RELEASE_BUDGET,
    RELEASE_MAX_INTERVAL, RetransmitPlan, Retransmitter, STEADY_DURATION, STEADY_MAX_INTERVAL,
    TimerAction,
};
pub use transaction::{DropReason, Event, Exchange, Outcome, Transaction, Transmit, Verdict};
