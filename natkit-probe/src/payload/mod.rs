//! UDP probe payloads: what to send so that a service answers.
//!
//! Many UDP services drop an empty datagram silently, which makes an open
//! port look like `open_filtered`. For well-known ports the engine sends a
//! minimal valid request instead:
//!
//! | port | payload |
//! |------|---------|
//! | 53 | DNS query for the root's NS records |
//! | 123 | NTPv4 client request |
//! | 500 | IKEv2 `IKE_SA_INIT` request |
//! | 3478 | STUN Binding request |
//! | 4500 | IKEv2 `IKE_SA_INIT` after the 4-byte non-ESP marker (RFC 3948) |
//! | 5060 | SIP `OPTIONS` |
//! | 5353 | mDNS legacy unicast query for `_services._dns-sd._udp.local` |
//!
//! Any other port gets an empty datagram. (5678, Apple's SNATMAP, has no
//! published format, so it gets an empty datagram too.) Transaction ids,
//! SPIs and nonces come from the generator passed in, so payloads are
//! reproducible from the scan's seed.

mod dns;
mod ike;
mod sip;
mod stun;

use std::fmt;
use std::net::SocketAddr;

use crate::order::SplitMix64;

/// Which payload a UDP probe carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum PayloadKind {
    /// An empty datagram.
    Empty,
    /// A DNS query (root NS, recursion desired).
    Dns,
    /// An mDNS legacy unicast query (RFC 6762 §6.7).
    Mdns,
    /// An NTPv4 client request (RFC 5905).
    Ntp,
    /// A STUN Binding request (RFC 8489).
    Stun,
    /// A SIP `OPTIONS` request (RFC 3261 §11).
    Sip,
    /// An IKEv2 `IKE_SA_INIT` request (RFC 7296).
    Ike,
    /// An IKEv2 `IKE_SA_INIT` request behind the non-ESP marker, for the
    /// NAT-traversal port 4500 (RFC 3948 §2.2).
    IkeNatT,
}

impl PayloadKind {
    /// The payload natkit sends to `port` when built-in payloads are on.
    pub fn for_port(port: u16) -> PayloadKind {
        match port {
            53 => PayloadKind::Dns,
            123 => PayloadKind::Ntp,
            500 => PayloadKind::Ike,
            3478 => PayloadKind::Stun,
            4500 => PayloadKind::IkeNatT,
            5060 => PayloadKind::Sip,
            5353 => PayloadKind::Mdns,
            _ => PayloadKind::Empty,
        }
    }

    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Empty => "empty",
            PayloadKind::Dns => "dns",
            PayloadKind::Mdns => "mdns",
            PayloadKind::Ntp => "ntp",
            PayloadKind::Stun => "stun",
            PayloadKind::Sip => "sip",
            PayloadKind::Ike => "ike",
            PayloadKind::IkeNatT => "ike_nat_t",
        }
    }

    /// Builds the payload for a probe from `local` to `target`, drawing ids
    /// and nonces from `rng`.
    pub fn build(self, local: SocketAddr, target: SocketAddr, rng: &mut SplitMix64) -> Vec<u8> {
        match self {
            PayloadKind::Empty => Vec::new(),
            PayloadKind::Dns => dns::root_ns_query(rng),
            PayloadKind::Mdns => dns::mdns_services_query(rng),
            PayloadKind::Ntp => ntp_request(rng),
            PayloadKind::Stun => stun::binding_request(rng),
            PayloadKind::Sip => sip::options(local, target, rng),
            PayloadKind::Ike => ike::sa_init(rng),
            PayloadKind::IkeNatT => {
                let mut v = vec![0u8; 4];
                v.extend(ike::sa_init(rng));
                v
            }
        }
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which payloads UDP probes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum UdpPayloads {
    /// Service requests for well-known ports, empty elsewhere.
    #[default]
    BuiltIn,
    /// Always an empty datagram.
    Empty,
}

impl UdpPayloads {
    /// The payload kind for `port` under this choice.
    pub fn kind_for(self, port: u16) -> PayloadKind {
        match self {
            UdpPayloads::BuiltIn => PayloadKind::for_port(port),
            UdpPayloads::Empty => PayloadKind::Empty,
        }
    }
}

/// NTPv4 client request: LI 0, version 4, mode 3 (client); a random transmit
/// timestamp, as draft-ietf-ntp-data-minimization advises, which a server
/// echoes back as the origin timestamp.
fn ntp_request(rng: &mut SplitMix64) -> Vec<u8> {
    let mut v = vec![0u8; 48];
    v[0] = 0b00_100_011;
    rng.fill(&mut v[40..48]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
        )
    }

    #[test]
    fn well_known_ports_get_their_payload() {
        let table = [
            (53, PayloadKind::Dns),
            (123, PayloadKind::Ntp),
            (500, PayloadKind::Ike),
            (3478, PayloadKind::Stun),
            (4500, PayloadKind::IkeNatT),
            (5060, PayloadKind::Sip),
            (5353, PayloadKind::Mdns),
            (5678, PayloadKind::Empty),
            (16384, PayloadKind::Empty),
            (1, PayloadKind::Empty),
        ];
        for (port, kind) in table {
            assert_eq!(UdpPayloads::BuiltIn.kind_for(port), kind, "port {port}");
            assert_eq!(UdpPayloads::Empty.kind_for(port), PayloadKind::Empty);
        }
    }

    #[test]
    fn payloads_are_reproducible_from_the_seed() {
        let (local, target) = addrs();
        for kind in [
            PayloadKind::Dns,
            PayloadKind::Mdns,
            PayloadKind::Ntp,
            PayloadKind::Stun,
            PayloadKind::Sip,
            PayloadKind::Ike,
            PayloadKind::IkeNatT,
        ] {
            let a = kind.build(local, target, &mut SplitMix64::new(5));
            let b = kind.build(local, target, &mut SplitMix64::new(5));
            let c = kind.build(local, target, &mut SplitMix64::new(6));
            assert_eq!(a, b, "{kind}");
            assert_ne!(a, c, "{kind}: ids must come from the generator");
            assert!(!a.is_empty(), "{kind}");
        }
        assert!(
            PayloadKind::Empty
                .build(local, target, &mut SplitMix64::new(1))
                .is_empty()
        );
    }

    #[test]
    fn nat_t_is_ike_behind_the_non_esp_marker() {
        let (local, target) = addrs();
        let ike = PayloadKind::Ike.build(local, target, &mut SplitMix64::new(9));
        let natt = PayloadKind::IkeNatT.build(local, target, &mut SplitMix64::new(9));
        assert_eq!(&natt[..4], &[0, 0, 0, 0]);
        assert_eq!(&natt[4..], &ike[..]);
    }

    #[test]
    fn ntp_is_a_v4_client_request() {
        let v = ntp_request(&mut SplitMix64::new(3));
        assert_eq!(v.len(), 48);
        assert_eq!(v[0] >> 6, 0, "leap indicator");
        assert_eq!((v[0] >> 3) & 7, 4, "version");
        assert_eq!(v[0] & 7, 3, "mode client");
        assert!(v[40..].iter().any(|&b| b != 0));
    }

    #[test]
    fn names_are_snake_case() {
        assert_eq!(
            serde_json::to_string(&PayloadKind::IkeNatT).unwrap(),
            "\"ike_nat_t\""
        );
        assert_eq!(PayloadKind::Stun.to_string(), "stun");
    }
}
