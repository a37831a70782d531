#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - [`natpmp::NatPmpMapper`] and [`pcp::PcpMapper`], each a
//!   [`natkit_core::PortMapper`] with a fast `detect()` / `is_available()`.
//! - The sans-IO cores: [`natpmp::NatPmpRequest`] / [`natpmp::NatPmpResponse`]
//!   and [`pcp::PcpRequest`] / [`pcp::PcpResponse`] encode and check bytes;
//!   [`Transaction`] runs one exchange on the caller's clock, on a
//!   [`RetransmitPlan`]; [`EpochTracker`] detects gateway reboots.
//! - Errors are [`Error`], wrapped in [`natkit_core::Error::Mechanism`] at the
//!   trait boundary.
#![cfg_attr(docsrs, feature(doc_cfg))]
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
    DETECT_WINDOW, FIRST_WAIT, LONGEST_WAIT, PCP_IRT, PCP_RAND, RELEASE_BUDGET,
    RELEASE_MAX_INTERVAL, RetransmitPlan, Retransmitter, STEADY_DURATION, STEADY_MAX_INTERVAL,
    TimerAction,
};
pub use transaction::{DropReason, Event, Exchange, Judgement, Outcome, Transaction, Transmit};

/// The old name of [`Judgement`] ("verdict" also names a port probe's
/// conclusion in natkit-probe and a router's in natkit-portmap).
#[deprecated(note = "renamed `Judgement`")]
pub type Verdict<T> = Judgement<T>;
