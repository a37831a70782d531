//! The classifier's configuration.

use std::net::IpAddr;
use std::time::Duration;

use crate::Error;
use crate::client::RetransmitPlan;

/// What to test against and how patiently.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyConfig {
    /// STUN servers (`host:port`, or `host` for 3478). The first that gives a valid
    /// alternate address (RFC 5780 OTHER-ADDRESS or RFC 3489 CHANGED-ADDRESS) runs the
    /// behaviour tests; with two or more servers the mapping is also compared across
    /// them.
    pub servers: Vec<String>,
    /// The plan for requests that should be answered (test I, mapping tests, controls).
    pub plan: RetransmitPlan,
    /// The shortest retransmission timeout for requests whose *absence* of answer is
    /// evidence (filtering tests, hairpinning); the RTO is `max(2 × RTT, floor)`, so
    /// with [`no_answer_sends`](Self::no_answer_sends) = 3 the wait is 5 × RTO.
    pub no_answer_floor: Duration,
    /// How many times a request whose absence of answer is evidence is sent.
    pub no_answer_sends: u32,
    /// The most filtering rounds (each on a fresh socket); at least 3, since an
    /// absence of answer must be seen in three rounds (run at once) to count.
    pub max_filtering_rounds: u8,
    /// Also test hairpinning (RFC 5780 §4.6).
    pub hairpinning: bool,
    /// The local IP to test from; by default the one the host routes to the first
    /// server from.
    pub bind_ip: Option<IpAddr>,
}

impl ClassifyConfig {
    /// Tests against `servers` with the [`RetransmitPlan::FAST`] plan.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClassifyConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            plan: RetransmitPlan::FAST,
            no_answer_floor: Duration::from_millis(50),
            no_answer_sends: 3,
            max_filtering_rounds: 5,
            hairpinning: false,
            bind_ip: None,
        }
    }

    /// Checks the plan, the counts and that there is a server.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.servers.is_empty() {
            return invalid("no STUN servers to classify against");
        }
        self.plan.validate()?;
        if self.no_answer_sends == 0 || self.no_answer_sends > 8 {
            return invalid("no_answer_sends must be between 1 and 8");
        }
        if self.no_answer_floor.is_zero() || self.no_answer_floor > Duration::from_secs(10) {
            return invalid("no_answer_floor must be between 0 and 10 s");
        }
        if self.max_filtering_rounds < 3 || self.max_filtering_rounds > 10 {
            return invalid("max_filtering_rounds must be between 3 and 10");
        }
        Ok(())
    }
}
