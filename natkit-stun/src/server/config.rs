//! The server's configuration.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::Error;

/// What a STUN server listens on and how it answers.
///
/// With only [`primary`](Self::primary) it is a plain Binding server (the SNATMAP role).
/// With an [`alternate`](Self::alternate) address — another IP *and* another port — it
/// listens on the four combinations and serves RFC 5780 NAT behaviour discovery
/// (OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST, RESPONSE-PORT) and RFC 3489 clients
/// (CHANGED-ADDRESS, SOURCE-ADDRESS).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The primary address and port. Port 0 picks a free port (the same one on both
    /// IPs when there is an alternate).
    pub primary: SocketAddr,
    /// The alternate IP and port; both must differ from the primary's. Port 0 picks a
    /// free port.
    pub alternate: Option<SocketAddr>,
    /// For a server behind a 1:1 NAT: the public IP that stands for the primary IP
    /// (what OTHER-ADDRESS and RESPONSE-ORIGIN say). Ports are assumed unchanged.
    pub advertised_primary_ip: Option<IpAddr>,
    /// The public IP that stands for the alternate IP.
    pub advertised_alternate_ip: Option<IpAddr>,
    /// SOFTWARE to send when the response has room for it (`None`: never).
    pub software: Option<String>,
    /// The per-source rate limit.
    pub rate_limit: RateLimit,
}

impl ServerConfig {
    /// A plain Binding server on `primary`.
    pub fn new(primary: SocketAddr) -> Self {
        ServerConfig {
            primary,
            alternate: None,
            advertised_primary_ip: None,
            advertised_alternate_ip: None,
            software: Some(concat!("natkit ", env!("CARGO_PKG_VERSION")).to_owned()),
            rate_limit: RateLimit::default(),
        }
    }

    /// An RFC 5780 server on `primary` with `alternate` as its other IP and port.
    pub fn with_alternate(primary: SocketAddr, alternate: SocketAddr) -> Self {
        ServerConfig {
            alternate: Some(alternate),
            ..Self::new(primary)
        }
    }

    /// Checks that the alternate differs from the primary in both IP and port (ports 0
    /// excepted: they are picked at bind time) and has the same family, and that the
    /// SOFTWARE text and rate limit are valid.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if let Some(alt) = self.alternate {
            if alt.ip() == self.primary.ip() {
                return invalid("the alternate IP must differ from the primary IP");
            }
            if alt.port() == self.primary.port() && alt.port() != 0 {
                return invalid("the alternate port must differ from the primary port");
            }
            if alt.is_ipv4() != self.primary.is_ipv4() {
                return invalid("primary and alternate must be of the same address family");
            }
        } else if self.advertised_alternate_ip.is_some() {
            return invalid("an advertised alternate IP needs an alternate address");
        }
        if let Some(sw) = &self.software {
            crate::attr::Software::new(sw)?;
        }
        self.rate_limit.validate()
    }
}

/// A token bucket per source IP (an IPv6 source's whole /64, which one network holds):
/// `burst` requests at once, refilled at `per_second`.
/// The table holds at most `max_sources` IPs; while it is full, requests from new
/// sources are dropped (never answered), so a flood of spoofed sources cannot reset
/// anyone's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second per source IP.
    pub per_second: f64,
    /// Requests a source may send at once.
    pub burst: u32,
    /// How many source IPs are tracked at most.
    pub max_sources: usize,
    /// How often idle (full) buckets are swept out when the table is full.
    pub sweep_interval: Duration,
}

impl Default for RateLimit {
    /// 20 requests per second, bursts of 128, 16384 sources.
    ///
    /// The burst lets one source run two full NAT classifications back to back (about 25
    /// requests each, more with retransmissions) without a drop; a flood still gets no
    /// more than 128 answers at once and 20 a second after that.
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 128,
            max_sources: 16_384,
            sweep_interval: Duration::from_secs(1),
        }
    }
}

impl RateLimit {
    /// A limit so high it never drops anything a single host can send (10⁹ requests a
    /// second, bursts of 2³²−1): for benchmarks and soak tests on loopback, where every
    /// request comes from one IP. The buckets are still kept, so the cost is measured.
    pub fn unlimited() -> Self {
        RateLimit {
            per_second: 1e9,
            burst: u32::MAX,
            ..RateLimit::default()
        }
    }

    /// Checks that the rate is positive and finite and the burst and table non-empty.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return invalid("the rate limit must be a positive number of requests per second");
        }
        if self.burst == 0 || self.max_sources == 0 {
            return invalid("the rate limit burst and table size must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn alternate_must_differ_in_ip_and_port() {
        assert!(ServerConfig::new(sa("127.0.0.1:3478")).validate().is_ok());
        let ok = ServerConfig::with_alternate(sa("127.0.0.1:3478"), sa("127.0.0.2:3479"));
        assert!(ok.validate().is_ok());
        let same_ip = ServerConfig::with_alternate(sa("127.0.0.1:3478"), sa("127.0.0.1:3479"));
        assert!(same_ip.validate().is_err());
        let same_port = ServerConfig::with_alternate(sa("127.0.0.1:3478"), sa("127.0.0.2:3478"));
        assert!(same_port.validate().is_err());
        let mixed = ServerConfig::with_alternate(sa("127.0.0.1:3478"), sa("[::1]:3479"));
        assert!(mixed.validate().is_err());
        let random = ServerConfig::with_alternate(sa("127.0.0.1:0"), sa("127.0.0.2:0"));
        assert!(random.validate().is_ok());
        let mut bad_rate = ServerConfig::new(sa("127.0.0.1:0"));
        bad_rate.rate_limit.per_second = f64::NAN;
        assert!(bad_rate.validate().is_err());
    }
}
