//! NAT behaviour discovery and classification (RFC 5780 §4, RFC 4787 terms; classic
//! RFC 3489 servers such as stund work too).
//!
//! [`classify`] runs the sans-IO [`TestPlan`] against real servers and returns a
//! [`Classification`]: core's [`NatBehaviour`](natkit_core::NatBehaviour) (connectivity,
//! mapping, filtering, hairpinning, port preservation), the legacy name derived from it,
//! and the evidence — every request, which server, which addresses were seen — with
//! notes on whatever could not be concluded. Conclusions need positive evidence: under
//! packet loss the answer may be "inconclusive", never a wrong type.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")] // `classify` is the tokio driver
//! # async fn f() -> Result<(), natkit_stun::Error> {
//! use natkit_stun::classify::{classify, ClassifyConfig};
//! let c = classify(ClassifyConfig::new(["stun.example.net:3478"])).await?;
//! println!("{} ({})", c.legacy, c.legacy.meaning());
//! # Ok(()) }
//! ```

mod config;
mod contacts;
mod evidence;
mod firewall;
mod lifetime;
mod plan;
#[cfg(feature = "tokio")]
mod ports;
#[cfg(feature = "tokio")]
mod runner;
mod servers;
#[cfg(test)]
mod sim;

pub use config::{ClassifyConfig, NO_ANSWER_RTO_CEILING};
pub use evidence::{
    Classification, ServerCheck, ServerFlavor, ServerProblem, TestEvidence, TestFailure, TestKind,
    TestOutcome,
};
pub use firewall::Firewall;
pub use lifetime::{
    BindingLifetime, LifetimeConfig, LifetimeStep, MAX_LIFETIME, MAX_LIFETIME_STEPS,
};
pub use plan::{TestPlan, TestRequest, TestResult};
#[cfg(feature = "tokio")]
pub use runner::classify;
