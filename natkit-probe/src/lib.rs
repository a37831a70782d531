//! natkit-probe: which ports answer, and why we think so.
//!
//! A port probe engine for TCP and UDP over IPv4 and IPv6 that needs no
//! privileges:
//!
//! - **TCP** connect probes: `open` on a completed handshake, `closed` on a
//!   reset, `filtered` on silence or on an ICMP unreachable (whose type,
//!   code and sender the Linux error queue reveals);
//! - **UDP** probes on connected sockets, with a real request for
//!   well-known services ([`PayloadKind`]): `open` on any reply, `closed` on
//!   an ICMP port unreachable *from the target*, `filtered` on other ICMP
//!   errors (or a port unreachable from a router on the way),
//!   `open_filtered` on silence after every try.
//!
//! Every [`Verdict`] carries its [`Reason`]: what was seen, from whom, after
//! how many tries, and the round-trip time.
//!
//! Timing adapts: each target's RTT ([`RttEstimator`], RFC 6298) sets its
//! timeouts; silent ports are retried with doubled timeouts; the number of
//! probes in flight stays within the process's descriptor budget and is cut
//! when sockets run out ([`Concurrency`]); an optional [`RateLimit`] caps
//! packets per second. Port order is shuffled by a seed ([`PortOrder`]).
//!
//! The decisions live in the sans-IO [`Scheduler`], driven by the caller's
//! clock; [`Prober`] runs it on tokio and streams [`ProbeEvent`]s.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod concurrency;
mod config;
pub mod dialback;
#[cfg(unix)]
mod engine;
mod error;
mod event;
pub mod fdlimit;
mod icmp;
#[cfg(feature = "serde")]
mod micros;
mod order;
mod payload;
mod plan;
mod rate;
mod rtt;
mod scheduler;
mod verdict;

pub use concurrency::Concurrency;
pub use config::{MAX_TRIES, ProbeConfig};
#[cfg(unix)]
pub use engine::{ProbeStream, Prober};
pub use error::{ConfigError, Error};
pub use event::{Backoff, ProbeEvent, StateCounts, Stats, Summary};
pub use icmp::{IcmpConclusion, IcmpKind, IcmpReport, IcmpVersion};
pub use order::{PortOrder, SplitMix64};
pub use payload::{PayloadKind, UdpPayloads};
pub use plan::{MAX_PROBES, ProbePlan};
pub use rate::{RateLimit, TokenBucket};
pub use rtt::{RttConfig, RttEstimator};
pub use scheduler::{Action, AttemptId, AttemptOutcome, Launch, Scheduler};
pub use verdict::{PortProbe, PortState, Reason, Verdict};
