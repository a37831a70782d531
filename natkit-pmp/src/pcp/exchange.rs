//! Which datagrams answer a PCP request, including a NAT-PMP server's
//! "unsupported version" answer that triggers the fallback to NAT-PMP.

use std::net::SocketAddr;

use crate::pcp::PcpResultCode;
use crate::pcp::wire::{
    MapRequest, PCP_VERSION, PcpRequest, PcpRequestBody, PcpResponse, protocol_number,
};
use crate::transaction::{DropReason, Exchange, Judgement};

/// A PCP server's (or a NAT-PMP server's) answer to a PCP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpAnswer {
    /// ANNOUNCE answered with SUCCESS.
    Announced {
        /// The server's epoch time.
        epoch: u32,
    },
    /// MAP answered with SUCCESS.
    Mapped {
        /// The lifetime granted, in seconds (0 after a delete).
        lifetime: u32,
        /// The server's epoch time.
        epoch: u32,
        /// The assigned external address and port.
        external: SocketAddr,
    },
    /// A non-success result code.
    Failure {
        /// The result code.
        code: PcpResultCode,
        /// How long the error is expected to last, in seconds.
        lifetime: u32,
        /// The server's epoch time.
        epoch: u32,
        /// The version in the answer: for UNSUPP_VERSION, one the server
        /// speaks.
        version: u8,
    },
    /// The server speaks only NAT-PMP: it answered version 0 with result
    /// code 1, UNSUPP_VERSION (RFC 6887 §9, RFC 6886 §3.5).
    NatPmpOnly {
        /// The NAT-PMP epoch in the answer, if it had one.
        epoch: Option<u32>,
    },
}

/// Matches answers to one PCP request: the opcode, and for MAP the nonce
/// (a different nonce is dropped as [`DropReason::WrongNonce`]), the
/// protocol and the internal port (RFC 6887 §8.3, §11.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpExchange {
    request: PcpRequest,
}

impl PcpExchange {
    /// The matcher for `request`.
    pub fn new(request: PcpRequest) -> Self {
        PcpExchange { request }
    }
}

/// Whether `d` is a NAT-PMP server's "unsupported version" answer: version
/// 0, the response bit, result code 1 (16 bits in NAT-PMP; PCP's 8-bit
/// result field sits in the low byte, so a PCP-format UNSUPP_VERSION with
/// version 0 looks the same).
pub fn is_natpmp_unsupported_version(d: &[u8]) -> bool {
    matches!(d, [0, op, 0, 1, ..] if op & 0x80 != 0)
}

impl Exchange for PcpExchange {
    type Answer = PcpAnswer;

    fn judge(&self, d: &[u8]) -> Judgement<PcpAnswer> {
        if is_natpmp_unsupported_version(d) {
            let epoch = d
                .get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            return Judgement::Accept(PcpAnswer::NatPmpOnly { epoch });
        }
        let Ok(r) = PcpResponse::new_checked(d) else {
            return Judgement::Drop(DropReason::Malformed);
        };
        if r.opcode_raw() != self.request.opcode().as_u8() {
            return Judgement::Drop(DropReason::Unmatched);
        }
        let code = r.result_code();
        let failure = PcpAnswer::Failure {
            code,
            lifetime: r.lifetime(),
            epoch: r.epoch(),
            version: r.version(),
        };
        if r.version() != PCP_VERSION {
            // Another version's layout is unknown; only its UNSUPP_VERSION
            // answer (naming a version it speaks) means anything to us.
            return if code == PcpResultCode::UnsuppVersion {
                Judgement::Accept(failure)
            } else {
                Judgement::Drop(DropReason::Malformed)
            };
        }
        match self.request.body {
            PcpRequestBody::Announce => Judgement::Accept(if code == PcpResultCode::Success {
                PcpAnswer::Announced { epoch: r.epoch() }
            } else {
                failure
            }),
            PcpRequestBody::Map(m) => judge_map(&m, &r, failure),
        }
    }
}

fn judge_map(m: &MapRequest, r: &PcpResponse<'_>, failure: PcpAnswer) -> Judgement<PcpAnswer> {
    let code = r.result_code();
    let Some(data) = r.map() else {
        // A header-only error: the server did not get as far as the MAP
        // data. Only codes about the message as a whole can mean that.
        return match code {
            PcpResultCode::UnsuppVersion
            | PcpResultCode::UnsuppOpcode
            | PcpResultCode::MalformedRequest => Judgement::Accept(failure),
            _ => Judgement::Drop(DropReason::Malformed),
        };
    };
    if data.nonce != m.nonce {
        return Judgement::Drop(DropReason::WrongNonce);
    }
    if data.protocol != protocol_number(m.protocol) || data.internal_port != m.internal_port {
        return Judgement::Drop(DropReason::Unmatched);
    }
    if code != PcpResultCode::Success {
        return Judgement::Accept(failure);
    }
    Judgement::Accept(PcpAnswer::Mapped {
        lifetime: r.lifetime(),
        epoch: r.epoch(),
        external: data.external,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcp::wire::{Nonce, ip_to_wire};
    use natkit_core::Protocol;
    use std::net::{IpAddr, Ipv4Addr};

    const NONCE: Nonce = Nonce([7; 12]);

    fn map_exchange() -> PcpExchange {
        PcpExchange::new(PcpRequest::map(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            3600,
            MapRequest {
                nonce: NONCE,
                protocol: Protocol::Tcp,
                internal_port: 8080,
                suggested_external: "0.0.0.0:8080".parse().unwrap(),
            },
        ))
    }

    fn answer(version: u8, result: u8, nonce: Nonce, proto: u8, port: u16) -> Vec<u8> {
        let mut b = vec![version, 0x81, 0, result];
        b.extend(600u32.to_be_bytes());
        b.extend(77u32.to_be_bytes());
        b.extend([0u8; 12]);
        b.extend(nonce.0);
        b.extend([proto, 0, 0, 0]);
        b.extend(port.to_be_bytes());
        b.extend(18080u16.to_be_bytes());
        b.extend(ip_to_wire(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2))));
        b
    }

    #[test]
    fn accepts_only_our_nonce_protocol_and_port() {
        let x = map_exchange();
        assert_eq!(
            x.judge(&answer(2, 0, NONCE, 6, 8080)),
            Judgement::Accept(PcpAnswer::Mapped {
                lifetime: 600,
                epoch: 77,
                external: "198.51.100.2:18080".parse().unwrap()
            })
        );
        assert_eq!(
            x.judge(&answer(2, 0, Nonce([8; 12]), 6, 8080)),
            Judgement::Drop(DropReason::WrongNonce)
        );
        // An error answer with another nonce is not ours either.
        assert_eq!(
            x.judge(&answer(2, 2, Nonce([8; 12]), 6, 8080)),
            Judgement::Drop(DropReason::WrongNonce)
        );
        assert_eq!(
            x.judge(&answer(2, 0, NONCE, 17, 8080)),
            Judgement::Drop(DropReason::Unmatched)
        );
        assert_eq!(
            x.judge(&answer(2, 0, NONCE, 6, 8081)),
            Judgement::Drop(DropReason::Unmatched)
        );
        assert_eq!(x.judge(&[2, 0x81]), Judgement::Drop(DropReason::Malformed));
    }

    /// A 600 s pinhole MAP of 8080/tcp for `host`, and the server's answer
    /// granting it with `nonce` and result code `result`.
    fn pinhole_map(host: std::net::Ipv6Addr) -> PcpExchange {
        PcpExchange::new(PcpRequest::map(
            IpAddr::V6(host),
            600,
            MapRequest {
                nonce: NONCE,
                protocol: Protocol::Tcp,
                internal_port: 8080,
                suggested_external: "[::]:8080".parse().unwrap(),
            },
        ))
    }

    fn pinhole_answer(host: std::net::Ipv6Addr, nonce: Nonce, result: u8) -> Vec<u8> {
        let mut b = answer(2, result, nonce, 6, 8080);
        b[42..44].copy_from_slice(&8080u16.to_be_bytes());
        b[44..60].copy_from_slice(&host.octets());
        b
    }

    /// An IPv6 MAP is judged as an IPv4 one: the nonce, protocol and
    /// internal port must match, and the external address is the IPv6 one
    /// the server assigned.
    #[test]
    fn ipv6_pinhole_answers() {
        let host: std::net::Ipv6Addr = "2a0d:88:77:77::2".parse().unwrap();
        let x = pinhole_map(host);
        let with_ext = |nonce, result| pinhole_answer(host, nonce, result);
        assert_eq!(
            x.judge(&with_ext(NONCE, 0)),
            Judgement::Accept(PcpAnswer::Mapped {
                lifetime: 600,
                epoch: 77,
                external: SocketAddr::from((host, 8080)),
            })
        );
        assert_eq!(
            x.judge(&with_ext(Nonce([8; 12]), 0)),
            Judgement::Drop(DropReason::WrongNonce)
        );
        // miniupnpd's refusal of a delete by another nonce.
        assert!(matches!(
            x.judge(&with_ext(NONCE, 2)),
            Judgement::Accept(PcpAnswer::Failure {
                code: PcpResultCode::NotAuthorized,
                ..
            })
        ));
    }

    /// A pinhole MAP to the router's link-local address on a simulated
    /// clock: RFC 6887's schedule as for IPv4, and an answer from the same
    /// address on another interface (scope id) is not the server's.
    #[test]
    fn ipv6_link_local_transaction_on_a_simulated_clock() {
        use crate::schedule::RetransmitPlan;
        use crate::transaction::{Outcome, Transaction};
        use std::net::SocketAddrV6;
        use std::time::{Duration, Instant};

        let host: std::net::Ipv6Addr = "2a0d:88:77:77::2".parse().unwrap();
        let router: std::net::Ipv6Addr = "fe80::1".parse().unwrap();
        let server = SocketAddr::V6(SocketAddrV6::new(router, 5351, 0, 4));
        let x = pinhole_map(host);
        let t0 = Instant::now();
        let mut tx =
            Transaction::new(x, x.request.to_vec(), server, RetransmitPlan::pcp(), t0, 7).unwrap();
        assert_eq!(tx.poll_transmit().unwrap().destination, server);
        let first_rt = tx.poll_timeout().unwrap() - t0;
        assert!(first_rt >= Duration::from_millis(2700) && first_rt <= Duration::from_millis(3300));
        tx.handle_timeout(t0 + first_rt);
        assert!(tx.poll_transmit().is_some(), "retransmission due");
        let real = pinhole_answer(host, NONCE, 0);
        let at = t0 + Duration::from_secs(4);
        let other_link = SocketAddr::V6(SocketAddrV6::new(router, 5351, 0, 5));
        tx.handle_input(at, other_link, &real);
        assert!(tx.outcome().is_none());
        tx.handle_input(at, server, &real);
        let Some(Outcome::Answered { answer, sends, .. }) = tx.take_outcome() else {
            panic!("not answered")
        };
        assert_eq!(sends, 2);
        assert_eq!(
            answer,
            PcpAnswer::Mapped {
                lifetime: 600,
                epoch: 77,
                external: SocketAddr::from((host, 8080)),
            }
        );
        assert_eq!(tx.counters().dropped_wrong_source, 1);
    }

    #[test]
    fn typed_failures() {
        let x = map_exchange();
        assert_eq!(
            x.judge(&answer(2, 8, NONCE, 6, 8080)),
            Judgement::Accept(PcpAnswer::Failure {
                code: PcpResultCode::NoResources,
                lifetime: 600,
                epoch: 77,
                version: 2
            })
        );
        // A server that speaks only PCP version 1 says so.
        let mut v1 = vec![1, 0x81, 0, 1];
        v1.extend([0u8; 20]);
        assert!(matches!(
            x.judge(&v1),
            Judgement::Accept(PcpAnswer::Failure {
                code: PcpResultCode::UnsuppVersion,
                version: 1,
                ..
            })
        ));
    }

    #[test]
    fn natpmp_only_servers_are_recognised() {
        let x = map_exchange();
        // RFC 6886 §3.5 answer to a version-2 packet: 8 bytes.
        assert_eq!(
            x.judge(&[0, 129, 0, 1, 0, 0, 0x10, 0]),
            Judgement::Accept(PcpAnswer::NatPmpOnly { epoch: Some(4096) })
        );
        // A PCP-format UNSUPP_VERSION naming version 0.
        let mut pcp_form = vec![0, 0x81, 0, 1];
        pcp_form.extend([0u8; 20]);
        assert_eq!(
            x.judge(&pcp_form),
            Judgement::Accept(PcpAnswer::NatPmpOnly { epoch: Some(0) })
        );
        assert!(!is_natpmp_unsupported_version(&[0, 129, 0, 2]));
        assert!(!is_natpmp_unsupported_version(&[0, 1, 0, 1]));
    }

    /// The whole PCP exchange on a simulated clock: retransmission, a
    /// spoofed answer, a wrong nonce and the real answer.
    #[test]
    fn transaction_on_a_simulated_clock() {
        use crate::schedule::RetransmitPlan;
        use crate::transaction::{Outcome, Transaction};
        use std::time::{Duration, Instant};

        let server: SocketAddr = "192.168.1.1:5351".parse().unwrap();
        let x = map_exchange();
        let t0 = Instant::now();
        let mut tx =
            Transaction::new(x, x.request.to_vec(), server, RetransmitPlan::pcp(), t0, 99).unwrap();
        assert_eq!(tx.poll_transmit().unwrap().payload.len(), 60);
        // Nothing before the first RT (3 s ± 10 %).
        tx.handle_timeout(t0 + Duration::from_millis(2699));
        assert!(tx.poll_transmit().is_none());
        let first_rt = tx.poll_timeout().unwrap() - t0;
        assert!(first_rt >= Duration::from_millis(2700) && first_rt <= Duration::from_millis(3300));
        tx.handle_timeout(t0 + first_rt);
        assert!(tx.poll_transmit().is_some(), "retransmission due");
        let at = t0 + Duration::from_secs(4);
        let real = answer(2, 0, NONCE, 6, 8080);
        tx.handle_input(at, "192.168.1.66:5351".parse().unwrap(), &real);
        tx.handle_input(at, "192.168.1.1:5350".parse().unwrap(), &real);
        tx.handle_input(at, server, &answer(2, 0, Nonce([9; 12]), 6, 8080));
        assert!(tx.outcome().is_none());
        tx.handle_input(at, server, &real);
        let Some(Outcome::Answered { answer, sends, .. }) = tx.take_outcome() else {
            panic!("not answered")
        };
        assert_eq!(sends, 2);
        assert!(matches!(answer, PcpAnswer::Mapped { lifetime: 600, .. }));
        let c = tx.counters();
        assert_eq!(
            (
                c.dropped_wrong_source,
                c.dropped_wrong_nonce,
                c.sent,
                c.retransmitted
            ),
            (2, 1, 2, 1)
        );
    }
}
