//! Decodes arbitrary bytes as a NAT-PMP response (RFC 6886) the way natkit-pmp's mapper
//! does: the checked view, the owned answer, and the matcher of a MAP or
//! external-address request, inside a transaction that also sees the same bytes from a
//! host that is not the gateway. Invariants: the view and the answer agree on what
//! parses and on every field; the result code survives its typed form; a datagram from
//! the wrong source is never accepted; every datagram is either the answer or counted
//! as dropped.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use natkit_core::Protocol;
use natkit_pmp::natpmp::{NatPmpAnswer, NatPmpExchange, NatPmpRequest, NatPmpResponse};
use natkit_pmp::{Exchange, Judgement, Outcome, RetransmitPlan, Transaction};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    let view = NatPmpResponse::new_checked(datagram);
    let answer = NatPmpAnswer::parse(datagram);
    assert_eq!(view.is_ok(), answer.is_ok(), "view and answer agree");
    if let (Ok(v), Ok(a)) = (view, &answer) {
        let a = *a;
        assert_eq!(v.epoch(), a.epoch());
        assert_eq!(v.opcode(), a.opcode());
        let raw_code = u16::from_be_bytes([datagram[2], datagram[3]]);
        assert_eq!(v.result_code().as_u16(), raw_code);
        let _ = (
            v.result_code().is_retryable(),
            v.result_code().failure_kind(),
        );
        match a {
            NatPmpAnswer::ExternalAddress { address, .. } => {
                assert_eq!(v.external_address(), Some(address));
                assert_eq!(raw_code, 0);
            }
            NatPmpAnswer::Mapping {
                internal_port,
                external_port,
                lifetime,
                ..
            } => {
                assert_eq!(v.internal_port(), Some(internal_port));
                assert_eq!(v.external_port(), Some(external_port));
                assert_eq!(v.lifetime(), Some(lifetime));
                assert_eq!(raw_code, 0);
            }
            NatPmpAnswer::Failure { internal_port, .. } => {
                assert_ne!(raw_code, 0);
                assert_eq!(v.internal_port(), internal_port);
            }
        }
    }

    // The request this datagram is judged against.
    let request = match selector % 3 {
        0 => NatPmpRequest::ExternalAddress,
        n => NatPmpRequest::Map {
            protocol: if n == 1 { Protocol::Tcp } else { Protocol::Udp },
            internal_port: u16::from(selector),
            suggested_external_port: 0,
            lifetime: 7200,
        },
    };
    let exchange = NatPmpExchange::new(request);
    let verdict = exchange.judge(datagram);
    if let Judgement::Accept(a) = &verdict {
        assert_eq!(Some(a), answer.as_ref().ok());
        assert_eq!(a.opcode(), request.opcode());
    }

    let gateway: SocketAddr = "192.168.77.1:5351".parse().unwrap();
    let spoofer: SocketAddr = "192.168.77.9:5351".parse().unwrap();
    let now = Instant::now();
    let mut txn = Transaction::new(
        exchange,
        request.to_vec(),
        gateway,
        RetransmitPlan::natpmp(),
        now,
        u64::from(selector),
    )
    .expect("the RFC plan is valid");
    txn.handle_input(now, spoofer, datagram);
    assert!(
        !txn.is_finished(),
        "an answer from another host is never taken"
    );
    assert_eq!(txn.counters().dropped_wrong_source, 1);
    txn.handle_input(now, gateway, datagram);
    let c = txn.counters();
    match verdict {
        Judgement::Accept(a) => {
            assert_eq!(c.answered, 1);
            assert!(
                matches!(txn.outcome(), Some(Outcome::Answered { answer, .. }) if *answer == a)
            );
        }
        Judgement::Drop(_) => {
            assert!(!txn.is_finished());
            assert_eq!(c.dropped(), 2);
        }
    }
});
