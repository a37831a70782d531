#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - A [`ProbePlan`] (from a [`natkit_core::PortSpec`], a service profile or
//!   a list of [`PortProbe`]s) goes to [`Prober::run`] for a [`Summary`], or
//!   to [`Prober::start`] for a stream of [`ProbeEvent`]s.
//! - Each [`PortVerdict`] has a [`PortState`] and its [`Reason`]; UDP requests
//!   per service are [`PayloadKind`]s.
//! - Timing: [`RttEstimator`], [`Concurrency`], [`RateLimit`], [`PortOrder`];
//!   the decisions: the sans-IO [`Scheduler`].
//! - Outside-in reachability: [`dialback`]; whether a SIP ALG rewrites or
//!   drops SIP: [`sip`]; whether a firewall blocks ports on the way out:
//!   [`outbound`]; whether there is bandwidth enough each way: [`bandwidth`].
//! - Another NAT upstream of the router, from the first hops:
//!   [`check_upstream_nat`] ([`trace_hops`], then the sans-IO [`conclude_hops`]).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bandwidth;
mod concurrency;
mod config;
pub mod dialback;
#[cfg(unix)]
mod engine;
mod error;
mod event;
pub mod fdlimit;
mod hops;
mod icmp;
#[cfg(feature = "serde")]
mod micros;
mod order;
pub mod outbound;
mod payload;
mod plan;
mod port_verdict;
mod rate;
mod rtt;
mod scheduler;
pub mod sip;

pub use concurrency::Concurrency;
pub use config::{MAX_TRIES, ProbeConfig};
#[cfg(unix)]
pub use engine::{ProbeStream, Prober};
pub use error::{ConfigError, Error};
pub use event::{Backoff, ProbeEvent, StateCounts, Stats, Summary};
pub use hops::{
    Hop, HopAnswer, HopConclusion, HopConfig, HopReply, HopSchedule, HopStep, HopTry,
    HopsNotChecked, HopsUndecided, RouterFacts, UpstreamNat, UpstreamSeen, check_upstream_nat,
    conclude_hops, trace_hops,
};
pub use icmp::{IcmpConclusion, IcmpKind, IcmpReport, IcmpVersion};
pub use order::{PortOrder, SplitMix64};
pub use payload::{PayloadKind, UdpPayloads};
pub use plan::{MAX_PROBES, ProbePlan};
pub use port_verdict::{PortProbe, PortState, PortVerdict, Reason};
pub use rate::{RateLimit, TokenBucket};
pub use rtt::{RttConfig, RttEstimator};
pub use scheduler::{Action, AttemptId, AttemptOutcome, Launch, Scheduler};

/// The old name of [`PortVerdict`]: "verdict" alone also names the dial-back
/// reachability and the SIP ALG answers.
#[deprecated(note = "renamed `PortVerdict`")]
pub type Verdict = PortVerdict;
