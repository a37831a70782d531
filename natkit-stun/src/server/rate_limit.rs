//! A bounded table of token buckets, one per source IP (per /64 for IPv6).
//!
//! An IPv6 host, or a home network, holds a whole /64: SLAAC and privacy addresses
//! (RFC 8981) come and go inside it, and one machine can send from as many of its
//! 2⁶⁴ addresses as it likes. Keyed per address, one network could take every bucket
//! of the table and lock everyone else out; keyed per /64 it gets one, like an IPv4
//! home behind its one NAT address.
//!
//! The table hashes with foldhash, seeded at random per table, rather than std's
//! SipHash-1-3: on the server's hot path the lookup was a fifth of natkit's own
//! per-request work (benches/benches/stun_server_core.rs). Flooding the table with
//! colliding sources would need the seed, which never leaves the process; the table is
//! bounded anyway (`max_sources`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use super::config::RateLimit;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-source token buckets (see [`RateLimit`]). Time is an input.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<IpAddr, Bucket, foldhash::fast::RandomState>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// An empty table.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: HashMap::default(),
            last_sweep: None,
        }
    }

    /// How many sources are tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn refill(limit: &RateLimit, b: &mut Bucket, now: Instant) {
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * limit.per_second).min(f64::from(limit.burst));
        b.last = now;
    }

    /// Takes a token for `ip` (its /64 for IPv6); `false` means drop the request.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = source_key(ip);
        // One hash lookup for a known source (the server's hot path).
        if let Some(b) = self.buckets.get_mut(&ip) {
            Self::refill(&self.limit, b, now);
            let ok = b.tokens >= 1.0;
            if ok {
                b.tokens -= 1.0;
            }
            return ok;
        }
        if self.buckets.len() >= self.limit.max_sources {
            self.sweep(now);
            if self.buckets.len() >= self.limit.max_sources {
                return false;
            }
        }
        let burst = f64::from(self.limit.burst);
        self.buckets.insert(
            ip,
            Bucket {
                tokens: burst - 1.0,
                last: now,
            },
        );
        true
    }

    /// Forgets sources whose bucket has refilled completely (they are as good as new),
    /// at most once per sweep interval.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < self.limit.sweep_interval)
        {
            return;
        }
        self.last_sweep = Some(now);
        let (rate, burst) = (self.limit.per_second, f64::from(self.limit.burst));
        self.buckets.retain(|_, b| {
            let dt = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + dt * rate < burst
        });
    }
}

/// The bucket a source IP draws from: the IPv4 address, or the IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limit() -> RateLimit {
        RateLimit {
            per_second: 10.0,
            burst: 3,
            max_sources: 2,
            sweep_interval: Duration::from_secs(1),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limit());
        let a = ip("192.0.2.1");
        assert!((0..3).all(|_| r.allow(a, t0)));
        assert!(!r.allow(a, t0));
        assert!(!r.allow(a, t0 + Duration::from_millis(50)));
        assert!(r.allow(a, t0 + Duration::from_millis(160)));
        assert!(!r.allow(a, t0 + Duration::from_millis(160)));
    }

    #[test]
    fn an_ipv6_network_has_one_bucket_for_its_64() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limit());
        // Three privacy addresses of one /64 share the burst of 3.
        for a in [
            "2a0d:88:77:77::2",
            "2a0d:88:77:77:aaaa::1",
            "2a0d:88:77:77:ffff::9",
        ] {
            assert!(r.allow(ip(a), t0), "{a}");
        }
        assert!(!r.allow(ip("2a0d:88:77:77:1234::5"), t0));
        assert_eq!(r.len(), 1);
        // Another /64 is another source.
        assert!(r.allow(ip("2a0d:88:77:78::2"), t0));
        // A v4-mapped address is its IPv4 source.
        assert!(r.allow(ip("192.0.2.9"), t0 + Duration::from_secs(1)));
        assert!(r.allow(ip("::ffff:192.0.2.9"), t0 + Duration::from_secs(1)));
        assert_eq!(source_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn table_is_bounded_and_new_sources_wait_for_idle_ones() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limit());
        assert!(r.allow(ip("192.0.2.1"), t0));
        assert!(r.allow(ip("192.0.2.2"), t0));
        assert!(
            !r.allow(ip("192.0.2.3"), t0),
            "table full of active sources"
        );
        assert_eq!(r.len(), 2);
        // A second later both buckets are full again and are swept out.
        let t1 = t0 + Duration::from_secs(1);
        assert!(r.allow(ip("192.0.2.3"), t1));
        assert_eq!(r.len(), 1);
    }
}
