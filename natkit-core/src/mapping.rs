//! What an application asks a router for, and what it gets.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use crate::mechanism::Mechanism;
use crate::protocol::Protocol;

/// The tag every natkit mapping description starts with, so that a later run
/// can find its own stale mappings and never touches anyone else's.
pub const DESCRIPTION_TAG: &str = "natkit";

/// A request to open a port on the router.
///
/// A request whose [`internal`](Self::internal) IP is IPv6 asks for a
/// *pinhole*: IPv6 has no NAT, so the router's firewall is asked to let
/// inbound traffic reach that address and port unchanged (UPnP IGDv2
/// `WANIPv6FirewallControl`, PCP MAP for an IPv6 address). NAT-PMP cannot
/// and answers with a typed "unsupported" error. See [`is_pinhole`](Self::is_pinhole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRequest {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The address and port on this host that inbound traffic should reach.
    ///
    /// The IP may be unspecified (`0.0.0.0`); mappers then use the local
    /// address that routes to the gateway.
    pub internal: SocketAddr,
    /// The external port the caller would like; `None` lets the router pick
    /// (mappers then suggest the internal port).
    pub external_port: Option<u16>,
    /// The lease the caller asks for. Routers may grant less (or, for UPnP
    /// routers that only do permanent leases, "forever", which natkit then
    /// renews and deletes on its own schedule).
    pub lifetime: Duration,
    /// A human description; mappers that store one (UPnP) prefix it with
    /// [`DESCRIPTION_TAG`] and the host's address.
    pub description: String,
}

impl MappingRequest {
    /// A request for `protocol` on `internal`, asking for the same external
    /// port, a two-hour lease and the description `natkit`.
    pub fn new(protocol: Protocol, internal: SocketAddr) -> Self {
        MappingRequest {
            protocol,
            internal,
            external_port: Some(internal.port()),
            lifetime: Duration::from_secs(7200),
            description: DESCRIPTION_TAG.to_owned(),
        }
    }

    /// A pinhole request for `internal` (an IPv6 address of this host,
    /// normally its stable one: see
    /// [`stable_ipv6_for`](crate::addresses::stable_ipv6_for)), with a
    /// two-hour lease and the description `natkit`.
    pub fn pinhole(protocol: Protocol, internal: SocketAddrV6) -> Self {
        Self::new(protocol, SocketAddr::V6(internal))
    }

    /// Whether this asks for an IPv6 pinhole rather than a NAT mapping:
    /// the internal IP is IPv6 (an IPv4-mapped `::ffff:a.b.c.d` counts as
    /// IPv4).
    pub fn is_pinhole(&self) -> bool {
        is_ipv6(self.internal.ip())
    }

    /// Sets the suggested external port.
    pub fn with_external_port(mut self, port: Option<u16>) -> Self {
        self.external_port = port;
        self
    }

    /// Sets the requested lifetime.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// A mapping the router granted.
///
/// A *pinhole* (IPv6: [`is_pinhole`](Self::is_pinhole)) is a mapping
/// whose [`internal`](Self::internal) is an IPv6 address and whose
/// [`external`](Self::external) is that same address and port: nothing is
/// translated, the router's firewall lets inbound traffic through. The
/// mapper's own handle for it is in [`token`](Self::token) (UPnP: the
/// pinhole's UniqueID; PCP: the nonce), so renew, unmap and a later run's
/// cleanup work as for any other mapping. Build one with
/// [`Mapping::pinhole`].
///
/// Build one with [`Mapping::new`] and the `with_*` setters: the struct is
/// `#[non_exhaustive]` so that fields added later do not break callers.
/// Every field stays public to read and to change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mapping {
    /// The address and port the internet can reach (the router's external
    /// address and the granted external port).
    pub external: SocketAddr,
    /// The host address and port the router forwards to.
    pub internal: SocketAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The lease granted. [`Duration::ZERO`] means a permanent mapping that
    /// the holder must delete itself.
    pub lifetime: Duration,
    /// When the grant was received (the caller's clock).
    pub obtained: Instant,
    /// Which mechanism made it.
    pub mechanism: Mechanism,
    /// The gateway's epoch when the grant was received (NAT-PMP and PCP).
    pub epoch: Option<GatewayEpoch>,
    /// What the mapper needs, besides the fields above, to renew or delete
    /// this mapping later, possibly from another process (PCP: the MAP
    /// nonce that owns the mapping on the server). Opaque to everyone else;
    /// store it as [`MappingToken::to_hex`] and read it back with
    /// [`MappingToken::from_hex`].
    pub token: Option<MappingToken>,
}

impl Mapping {
    /// A mapping with no epoch and no token.
    pub fn new(
        mechanism: Mechanism,
        protocol: Protocol,
        external: SocketAddr,
        internal: SocketAddr,
        lifetime: Duration,
        obtained: Instant,
    ) -> Self {
        Mapping {
            external,
            internal,
            protocol,
            lifetime,
            obtained,
            mechanism,
            epoch: None,
            token: None,
        }
    }

    /// A pinhole for `internal` (external = internal), with no epoch and
    /// no token.
    pub fn pinhole(
        mechanism: Mechanism,
        protocol: Protocol,
        internal: SocketAddr,
        lifetime: Duration,
        obtained: Instant,
    ) -> Self {
        Self::new(mechanism, protocol, internal, internal, lifetime, obtained)
    }

    /// Whether this is an IPv6 pinhole (the internal IP is IPv6; an
    /// IPv4-mapped address counts as IPv4). Its external endpoint is the
    /// internal one.
    pub fn is_pinhole(&self) -> bool {
        is_ipv6(self.internal.ip())
    }

    /// Sets the gateway epoch.
    pub fn with_epoch(mut self, epoch: Option<GatewayEpoch>) -> Self {
        self.epoch = epoch;
        self
    }

    /// Sets the mapper's token.
    pub fn with_token(mut self, token: Option<MappingToken>) -> Self {
        self.token = token;
        self
    }

    /// True when the router granted a different external port than asked.
    pub fn port_substituted(&self, request: &MappingRequest) -> bool {
        request
            .external_port
            .is_some_and(|asked| asked != self.external.port())
    }

    /// When the lease ends, or `None` for a permanent mapping.
    pub fn expires(&self) -> Option<Instant> {
        (!self.lifetime.is_zero()).then(|| self.obtained + self.lifetime)
    }
}

/// `pinhole [2a0d:88:77:77::2]:8080/tcp via PCP` for a pinhole,
/// `external 198.51.100.1:50443 -> 192.168.1.2:443/tcp via UPnP IGD` for a
/// NAT mapping.
impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_pinhole() {
            write!(f, "pinhole {}", self.internal)?;
        } else {
            write!(f, "external {} -> {}", self.external, self.internal)?;
        }
        write!(
            f,
            "/{} via {}",
            self.protocol,
            self.mechanism.display_name()
        )
    }
}

fn is_ipv6(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => false,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
    }
}

/// An opaque token of at most [`MappingToken::MAX_LEN`] bytes that a
/// mapper attaches to a [`Mapping`] so the mapping can be renewed or
/// deleted by a later process (a PCP mapping belongs to the nonce that made
/// it: miniupnpd refuses a delete with any other nonce).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MappingToken {
    len: u8,
    bytes: [u8; MappingToken::MAX_LEN],
}

impl MappingToken {
    /// The longest token, in bytes.
    pub const MAX_LEN: usize = 32;

    /// A token holding `bytes`; `None` when longer than [`Self::MAX_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let len = u8::try_from(bytes.len())
            .ok()
            .filter(|&l| usize::from(l) <= Self::MAX_LEN)?;
        let mut buf = [0; Self::MAX_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(MappingToken { len, bytes: buf })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Lower-case hex, two digits per byte.
    pub fn to_hex(&self) -> String {
        self.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`to_hex`](Self::to_hex)'s output (either case); `None` for
    /// odd lengths, non-hex digits or more than [`Self::MAX_LEN`] bytes.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if !digits.len().is_multiple_of(2) || digits.len() > 2 * Self::MAX_LEN {
            return None;
        }
        let mut buf = [0u8; Self::MAX_LEN];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            buf[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Self::new(&buf[..digits.len() / 2])
    }
}

impl fmt::Debug for MappingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappingToken({})", self.to_hex())
    }
}

/// A gateway's epoch: the "seconds since start of epoch" a NAT-PMP or PCP
/// server reports in every answer, with the client time it was seen at.
///
/// A router that reboots loses its mappings and restarts its epoch; a client
/// that notices re-creates its mappings (RFC 6886 §3.6, RFC 6887 §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayEpoch {
    /// The server's seconds since its epoch started.
    pub server_seconds: u32,
    /// When the client received that value.
    pub observed_at: Instant,
}

impl GatewayEpoch {
    /// Whether `next` is a plausible successor of `self`, by the rule of
    /// RFC 6887 §8.5 (which is stricter than RFC 6886 §3.6):
    ///
    /// - the server time may go backwards by at most one second;
    /// - otherwise the server and client deltas must agree within
    ///   2 s + 1/16 of the larger of them.
    ///
    /// `false` means the gateway lost its state (rebooted, or its mapping
    /// daemon restarted) and every mapping must be made again.
    pub fn is_continued_by(&self, next: &GatewayEpoch) -> bool {
        let prev_server = u64::from(self.server_seconds);
        let curr_server = u64::from(next.server_seconds);
        if curr_server + 1 < prev_server {
            return false;
        }
        let server_delta = curr_server.saturating_sub(prev_server);
        let client_delta = next
            .observed_at
            .saturating_duration_since(self.observed_at)
            .as_secs();
        let too_fast = client_delta + 2 < server_delta - server_delta / 16;
        let too_slow = server_delta + 2 < client_delta - client_delta / 16;
        !(too_fast || too_slow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn epoch(base: Instant, client_s: u64, server_s: u32) -> GatewayEpoch {
        GatewayEpoch {
            server_seconds: server_s,
            observed_at: base + Duration::from_secs(client_s),
        }
    }

    #[test]
    fn epoch_continues_when_clocks_agree() {
        let t = Instant::now();
        assert!(epoch(t, 0, 1000).is_continued_by(&epoch(t, 60, 1060)));
        assert!(epoch(t, 0, 1000).is_continued_by(&epoch(t, 3600, 3600 + 1000 - 100)));
        // Going back by one second is tolerated (network jitter).
        assert!(epoch(t, 0, 1000).is_continued_by(&epoch(t, 0, 999)));
    }

    #[test]
    fn epoch_reset_detected() {
        let t = Instant::now();
        // Router rebooted: its clock restarted near zero.
        assert!(!epoch(t, 0, 1000).is_continued_by(&epoch(t, 60, 5)));
        // Router restarted 30 s ago while we waited 600 s.
        assert!(!epoch(t, 0, 100_000).is_continued_by(&epoch(t, 600, 30)));
        // Server time ran far faster than ours: not the same epoch either.
        assert!(!epoch(t, 0, 10).is_continued_by(&epoch(t, 10, 5000)));
        // Server time stood still for ten minutes: a restart to the same value.
        assert!(!epoch(t, 0, 1000).is_continued_by(&epoch(t, 600, 1000)));
    }

    #[test]
    fn substitution_and_expiry() {
        let internal = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 2), 443));
        let req = MappingRequest::new(Protocol::Tcp, internal);
        let now = Instant::now();
        let mut m = Mapping::new(
            Mechanism::NatPmp,
            Protocol::Tcp,
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 443)),
            internal,
            Duration::from_secs(60),
            now,
        );
        assert!(!m.port_substituted(&req));
        assert_eq!(m.expires(), Some(now + Duration::from_secs(60)));
        m.external.set_port(50443);
        assert!(m.port_substituted(&req));
        m.lifetime = Duration::ZERO;
        assert_eq!(m.expires(), None);
    }

    #[test]
    fn pinholes_are_ipv6_mappings_onto_themselves() {
        let v6: SocketAddrV6 = "[2a0d:88:77:77::2]:8080".parse().unwrap();
        let req = MappingRequest::pinhole(Protocol::Tcp, v6);
        assert!(req.is_pinhole());
        assert_eq!(req.external_port, Some(8080));
        let mapped: SocketAddr = "[::ffff:192.168.1.2]:80".parse().unwrap();
        assert!(!MappingRequest::new(Protocol::Tcp, mapped).is_pinhole());
        let v4: SocketAddr = "192.168.1.2:443".parse().unwrap();
        assert!(!MappingRequest::new(Protocol::Udp, v4).is_pinhole());

        let now = Instant::now();
        let hole = Mapping::pinhole(
            Mechanism::Pcp,
            Protocol::Tcp,
            SocketAddr::V6(v6),
            Duration::from_secs(600),
            now,
        );
        assert!(hole.is_pinhole());
        assert_eq!(hole.external, hole.internal);
        assert!(!hole.port_substituted(&req));
        assert_eq!(
            hole.to_string(),
            "pinhole [2a0d:88:77:77::2]:8080/tcp via PCP"
        );
        let nat = Mapping::new(
            Mechanism::Upnp,
            Protocol::Udp,
            "198.51.100.1:50443".parse().unwrap(),
            v4,
            Duration::ZERO,
            now,
        );
        assert!(!nat.is_pinhole());
        assert_eq!(
            nat.to_string(),
            "external 198.51.100.1:50443 -> 192.168.1.2:443/udp via UPnP IGD"
        );
    }

    #[test]
    fn token_round_trips_and_refuses_bad_input() {
        let t = MappingToken::new(&[0xde, 0xad, 0x01]).unwrap();
        assert_eq!(t.to_hex(), "dead01");
        assert_eq!(MappingToken::from_hex("DEAD01"), Some(t));
        assert_eq!(t.as_bytes(), [0xde, 0xad, 0x01]);
        assert_eq!(MappingToken::from_hex(""), MappingToken::new(&[]));
        assert_eq!(MappingToken::from_hex("abc"), None);
        assert_eq!(MappingToken::from_hex("zz"), None);
        assert_eq!(MappingToken::from_hex("+1"), None);
        assert_eq!(MappingToken::from_hex(&"00".repeat(33)), None);
        assert!(MappingToken::new(&[7; 32]).is_some());
        assert!(MappingToken::new(&[7; 33]).is_none());
        assert_eq!(format!("{t:?}"), "MappingToken(dead01)");
    }
}
