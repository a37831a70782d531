//! Whether a dial-back server serves a request (sans-IO: the caller passes
//! the clock).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::rate::{RateLimit, TokenBucket};

use super::message::{DialPort, MAX_PORTS, RefusalCode};
use super::policy::{PortPolicy, TargetPolicy, canonical};

/// The limits a server admits requests under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Ports dialled for one request, at most [`MAX_PORTS`].
    pub max_ports: usize,
    /// Requests per source address (an IPv6 source counts per /64).
    pub per_source: RateLimit,
    /// Sources remembered for rate limiting; when all are recent, new
    /// sources are refused as [`RefusalCode::Busy`] rather than forgotten.
    pub max_sources: usize,
    /// Requests being dialled at once, from everyone.
    pub max_in_flight: usize,
    /// The addresses the server may dial.
    pub targets: TargetPolicy,
    /// The ports the server may dial.
    pub ports: PortPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ports: MAX_PORTS,
            per_source: RateLimit {
                per_second: 1,
                burst: 4,
            },
            max_sources: 65_536,
            max_in_flight: 32,
            targets: TargetPolicy::default(),
            ports: PortPolicy::default(),
        }
    }
}

#[derive(Debug)]
struct Source {
    bucket: TokenBucket,
    last: Instant,
}

/// The admission state: one token bucket per recent source and the number
/// of requests in flight.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    sources: HashMap<IpAddr, Source>,
    in_flight: usize,
}

impl Admission {
    /// Nothing admitted yet.
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            sources: HashMap::new(),
            in_flight: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Requests admitted and not yet [`finish`](Self::finish)ed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Decides on a request from `source` for `ports` at `now`. On `Ok`
    /// the request counts as in flight until [`finish`](Self::finish).
    ///
    /// Order: the target (never dial a forbidden address, whatever else),
    /// the source's rate (every request from a permitted address spends a
    /// token, refused or not, so a flood of bad requests is throttled
    /// too), the port count and policy, then capacity.
    pub fn admit(
        &mut self,
        now: Instant,
        source: IpAddr,
        ports: &[DialPort],
    ) -> Result<(), RefusalCode> {
        if !self.limits.targets.permits(source) {
            return Err(RefusalCode::TargetNotAllowed);
        }
        self.take_token(now, source)?;
        if ports.len() > self.limits.max_ports.min(MAX_PORTS) {
            return Err(RefusalCode::TooManyPorts);
        }
        if ports.is_empty() {
            return Err(RefusalCode::BadRequest);
        }
        if !ports.iter().all(|p| self.limits.ports.permits(*p)) {
            return Err(RefusalCode::PortNotAllowed);
        }
        if self.in_flight >= self.limits.max_in_flight {
            return Err(RefusalCode::Busy);
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Spends one token of `source`'s bucket (for a request that is
    /// refused before [`admit`](Self::admit), e.g. a malformed one).
    pub fn take_token(&mut self, now: Instant, source: IpAddr) -> Result<(), RefusalCode> {
        let key = rate_key(source);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.limits.max_sources {
            self.forget_idle(now);
            if self.sources.len() >= self.limits.max_sources {
                return Err(RefusalCode::Busy);
            }
        }
        let limit = self.limits.per_source;
        let src = self.sources.entry(key).or_insert_with(|| Source {
            bucket: TokenBucket::new(limit, now),
            last: now,
        });
        src.last = now;
        src.bucket
            .try_take(now)
            .map_err(|_| RefusalCode::RateLimited)
    }

    /// An admitted request is done.
    pub fn finish(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Sources remembered.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Forgets sources whose bucket has refilled completely: remembering
    /// them would change nothing.
    fn forget_idle(&mut self, now: Instant) {
        let limit = self.limits.per_source;
        let full_after = Duration::from_secs_f64(
            f64::from(limit.burst.max(1)) / f64::from(limit.per_second.max(1)),
        );
        self.sources
            .retain(|_, s| now.saturating_duration_since(s.last) < full_after);
    }
}

/// The rate-limit key: IPv4 addresses as they are, IPv6 per /64 (one
/// host usually has a whole /64).
fn rate_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn open_limits() -> Limits {
        Limits {
            targets: TargetPolicy {
                allow_non_global: true,
                allow: vec![],
            },
            ..Limits::default()
        }
    }

    #[test]
    fn rate_per_source_holds_under_a_flood_and_refills() {
        let t0 = Instant::now();
        let mut a = Admission::new(open_limits());
        let src = ip("88.77.66.2");
        let mut served = 0;
        for i in 0..1000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            match a.admit(now, src, &[DialPort::tcp(80)]) {
                Ok(()) => {
                    served += 1;
                    a.finish();
                }
                Err(code) => assert_eq!(code, RefusalCode::RateLimited),
            }
        }
        assert_eq!(served, 4, "the burst, nothing more");
        // Another source is not affected.
        assert_eq!(a.admit(t0, ip("88.77.66.3"), &[DialPort::tcp(80)]), Ok(()));
        a.finish();
        // One second later exactly one more token.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(a.admit(later, src, &[DialPort::tcp(80)]), Ok(()));
        a.finish();
        assert_eq!(
            a.admit(later, src, &[DialPort::tcp(80)]),
            Err(RefusalCode::RateLimited)
        );
        // The IPv4-mapped form is the same source.
        assert_eq!(
            a.admit(later, ip("::ffff:88.77.66.2"), &[DialPort::tcp(80)]),
            Err(RefusalCode::RateLimited)
        );
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let t0 = Instant::now();
        let mut a = Admission::new(open_limits());
        for i in 0..4u16 {
            let src: IpAddr = format!("2a00:1::{i:x}").parse().unwrap();
            assert_eq!(a.admit(t0, src, &[DialPort::tcp(80)]), Ok(()));
            a.finish();
        }
        assert_eq!(
            a.admit(t0, ip("2a00:1::ffff"), &[DialPort::tcp(80)]),
            Err(RefusalCode::RateLimited)
        );
        assert_eq!(
            a.admit(t0, ip("2a00:1:0:1::1"), &[DialPort::tcp(80)]),
            Ok(())
        );
    }

    #[test]
    fn every_refusal() {
        let t0 = Instant::now();
        let mut a = Admission::new(Limits {
            max_ports: 4,
            max_in_flight: 1,
            per_source: RateLimit {
                per_second: 1000,
                burst: 1000,
            },
            ports: PortPolicy {
                only: Some("1-1000/tcp".parse().unwrap()),
            },
            ..Limits::default()
        });
        // Default targets: global only.
        for private in ["192.168.77.2", "10.0.0.1", "127.0.0.1", "100.64.0.2", "::1"] {
            assert_eq!(
                a.admit(t0, ip(private), &[DialPort::tcp(80)]),
                Err(RefusalCode::TargetNotAllowed),
                "{private}"
            );
        }
        let src = ip("88.77.66.2");
        let five: Vec<_> = (1..=5).map(DialPort::tcp).collect();
        assert_eq!(a.admit(t0, src, &five), Err(RefusalCode::TooManyPorts));
        assert_eq!(a.admit(t0, src, &[]), Err(RefusalCode::BadRequest));
        assert_eq!(
            a.admit(t0, src, &[DialPort::tcp(80), DialPort::tcp(2000)]),
            Err(RefusalCode::PortNotAllowed)
        );
        assert_eq!(a.admit(t0, src, &five[..4]), Ok(()));
        assert_eq!(a.in_flight(), 1);
        assert_eq!(
            a.admit(t0, src, &[DialPort::tcp(80)]),
            Err(RefusalCode::Busy)
        );
        a.finish();
        assert_eq!(a.admit(t0, src, &[DialPort::tcp(80)]), Ok(()));
    }

    #[test]
    fn source_table_is_bounded() {
        let t0 = Instant::now();
        let mut a = Admission::new(Limits {
            max_sources: 2,
            ..open_limits()
        });
        assert_eq!(a.admit(t0, ip("88.0.0.1"), &[DialPort::tcp(1)]), Ok(()));
        assert_eq!(a.admit(t0, ip("88.0.0.2"), &[DialPort::tcp(1)]), Ok(()));
        // Both still recent: a third source is turned away, not let in by
        // forgetting someone's spent tokens.
        assert_eq!(
            a.admit(t0, ip("88.0.0.3"), &[DialPort::tcp(1)]),
            Err(RefusalCode::Busy)
        );
        assert_eq!(a.sources(), 2);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(a.admit(later, ip("88.0.0.3"), &[DialPort::tcp(1)]), Ok(()));
        assert_eq!(a.sources(), 1);
    }
}
