//! The classifier's configuration.

use std::net::IpAddr;
use std::time::Duration;

use super::lifetime::LifetimeConfig;
use crate::Error;
use crate::client::{IpFamily, RtoPlan};

/// The largest RTO of requests whose absence of answer is evidence, however slow the
/// measured round trip (RFC 8489's initial RTO).
pub const NO_ANSWER_RTO_CEILING: Duration = Duration::from_millis(500);

/// What to test against and how patiently.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyConfig {
    /// STUN servers (`host:port`, or `host` for 3478). The first that gives a valid
    /// alternate address (RFC 5780 OTHER-ADDRESS or RFC 3489 CHANGED-ADDRESS) runs the
    /// behaviour tests; with two or more servers the mapping is also compared across
    /// them.
    pub servers: Vec<String>,
    /// The plan for requests that should be answered (test I, mapping tests, controls).
    pub plan: RtoPlan,
    /// The shortest retransmission timeout for requests whose *absence* of answer is
    /// evidence (filtering tests, hairpinning, binding lifetime). Their RTO is derived
    /// from the round-trip time `R` measured in test I as RFC 6298 §2.2 does from a
    /// first sample (`SRTT + 4 × RTTVAR = 3R`), bounded below by this floor (timer and
    /// scheduling granularity) and above by [`NO_ANSWER_RTO_CEILING`]. With
    /// [`no_answer_sends`](Self::no_answer_sends) = 4 the wait is 9 × RTO (sends at 0,
    /// 1, 3 and 7 RTO, then 2 RTO).
    ///
    /// A short wait cannot turn a late answer into a wrong type: an absence counts only
    /// in a round whose control request (same socket, sent right after the tests) was
    /// answered at its first send within half of that wait.
    pub no_answer_floor: Duration,
    /// How many times a request whose absence of answer is evidence is sent.
    pub no_answer_sends: u32,
    /// The most filtering rounds (each on a fresh socket; four run at once, then
    /// more four at a time while needed); at least 4, since an absence of answer must
    /// be seen in three rounds with a clean control to count.
    pub max_filtering_rounds: u8,
    /// Also test hairpinning (RFC 5780 §4.6).
    pub hairpinning: bool,
    /// Also measure the binding lifetime (RFC 5780 binding lifetime discovery): how
    /// long an idle mapping keeps letting the server's answers in, up to a caller-given
    /// maximum. Off by default; when on, it adds about that maximum in wall time.
    pub lifetime: Option<LifetimeConfig>,
    /// The local IP to test from; by default the one the host routes to the first
    /// server from.
    pub bind_ip: Option<IpAddr>,
    /// The address family to test: server names are resolved to addresses of it
    /// (AAAA records for IPv6). `None`: the family of the first server that
    /// resolves, names resolving to IPv4 first. Over IPv6 there is no NAT to find,
    /// and the tests measure the router's firewall
    /// ([`Classification::firewall`](super::Classification::firewall)).
    pub family: Option<IpFamily>,
}

impl ClassifyConfig {
    /// Tests against `servers` with the [`RtoPlan::FAST`] plan.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClassifyConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            plan: RtoPlan::FAST,
            no_answer_floor: Duration::from_millis(10),
            no_answer_sends: 4,
            max_filtering_rounds: 12,
            hairpinning: false,
            lifetime: None,
            bind_ip: None,
            family: None,
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
        if self.max_filtering_rounds < 4 || self.max_filtering_rounds > 16 {
            return invalid("max_filtering_rounds must be between 4 and 16");
        }
        if let Some(l) = &self.lifetime {
            l.validate()?;
        }
        if let (Some(ip), Some(family)) = (self.bind_ip, self.family)
            && IpFamily::of(ip) != family
        {
            return invalid("bind_ip is not of the family asked for");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_and_the_bind_ip_must_agree() {
        let mut c = ClassifyConfig::new(["[2a0d:88:77:66::10]:3478"]);
        c.family = Some(IpFamily::V6);
        assert!(c.validate().is_ok());
        c.bind_ip = Some("2a0d:88:77:77::2".parse().expect("ip"));
        assert!(c.validate().is_ok());
        c.bind_ip = Some("192.168.77.2".parse().expect("ip"));
        assert!(matches!(c.validate(), Err(Error::InvalidConfig { .. })));
    }
}
