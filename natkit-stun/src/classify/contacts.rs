//! Every address this host has sent to during a classification, and when.
//!
//! A NAT's filter lets a packet in if the host "had previously sent a packet to" its
//! source (RFC 3489 §5, RFC 4787 §5). Real NATs keep that state at different grains:
//! per mapping (only the socket that sent may receive), or per internal host (any
//! socket of the host may receive from an address that *some* socket of the host sent
//! to), keyed by remote address or by remote address and port. Under a per-host
//! filter, a request that this run sends to the server's alternate address opens the
//! filter that the filtering tests then measure, and a restricted cone looks like a
//! full cone. The plan orders its tests so that it never does, and this ledger lets
//! it check: an answer from an address that the host had already sent to, in the
//! same wave or before, proves nothing about filtering.

use std::net::{IpAddr, SocketAddr};

/// The destinations of every request sent so far, by wave.
#[derive(Debug, Clone, Default)]
pub(crate) struct Contacts {
    sent: Vec<(SocketAddr, u32)>,
}

impl Contacts {
    /// Records that a request went to `destination` in wave `wave` (from any socket).
    pub(crate) fn record(&mut self, destination: SocketAddr, wave: u32) {
        if !self.sent.contains(&(destination, wave)) {
            self.sent.push((destination, wave));
        }
    }

    /// Whether any request to `ip` (any port) went out in wave `wave` or before: then
    /// a filter kept per host and remote address may admit `ip` without the NAT being
    /// endpoint-independent. Requests of the same wave count, since they are all in
    /// flight (with their retransmissions) while the answers come back.
    pub(crate) fn ip_by(&self, ip: IpAddr, wave: u32) -> bool {
        self.sent.iter().any(|(d, w)| d.ip() == ip && *w <= wave)
    }

    /// Whether any request to exactly `endpoint` went out in wave `wave` or before.
    pub(crate) fn endpoint_by(&self, endpoint: SocketAddr, wave: u32) -> bool {
        self.sent.iter().any(|(d, w)| *d == endpoint && *w <= wave)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_counts_from_its_wave_on() {
        let a: SocketAddr = "192.0.2.2:3478".parse().expect("addr");
        let b: SocketAddr = "192.0.2.1:3479".parse().expect("addr");
        let mut c = Contacts::default();
        c.record(a, 2);
        c.record(a, 2);
        assert!(!c.ip_by(a.ip(), 1));
        assert!(c.ip_by(a.ip(), 2));
        assert!(c.ip_by(a.ip(), 3));
        assert!(!c.endpoint_by(b, 5));
        assert!(c.ip_by("192.0.2.2".parse().expect("ip"), 2));
        c.record(b, 4);
        assert!(c.endpoint_by(b, 4));
        assert!(!c.endpoint_by(b, 3));
        assert!(!c.endpoint_by("192.0.2.1:3478".parse().expect("addr"), 9));
    }
}
