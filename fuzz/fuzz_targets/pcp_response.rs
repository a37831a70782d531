//! Decodes arbitrary bytes as a PCP response (RFC 6887) the way natkit-pmp's mapper
//! does: the checked view (every accessor, every option), and the matcher of a MAP or
//! ANNOUNCE request with a known nonce, inside a transaction that also sees the same
//! bytes from a host that is not the gateway. Invariants: options stay inside the
//! message; an accepted MAP answer carries our nonce, protocol and port; a datagram from
//! the wrong source is never accepted; every datagram is the answer or counted.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use natkit_core::Protocol;
use natkit_pmp::pcp::{
    MapRequest, Nonce, PCP_VERSION, PcpAnswer, PcpExchange, PcpOpcode, PcpRequest, PcpResponse,
    PcpResultCode, is_natpmp_unsupported_version,
};
use natkit_pmp::{DropReason, Exchange, Judgement, RetransmitPlan, Transaction};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    if let Ok(r) = PcpResponse::new_checked(datagram) {
        let _ = (r.version(), r.opcode(), r.lifetime(), r.epoch());
        let code = r.result_code();
        assert_eq!(code.as_u8(), datagram[3]);
        assert_eq!(PcpResultCode::from_u8(code.as_u8()), code);
        let _ = (code.name(), code.is_retryable(), code.failure_kind());
        let mut used = 0usize;
        for o in r.options() {
            used += 4 + o.data.len().next_multiple_of(4);
            assert!(used <= datagram.len());
        }
        if let Some(m) = r.map() {
            assert_eq!(r.version(), PCP_VERSION);
            assert_eq!(r.opcode(), Some(PcpOpcode::Map));
            assert_eq!(&m.nonce.0[..], &datagram[24..36]);
        }
    }

    let nonce = Nonce([selector; 12]);
    let client = IpAddr::V4(Ipv4Addr::new(192, 168, 77, 2));
    let (request, map) = if selector & 1 == 0 {
        (PcpRequest::announce(client), None)
    } else {
        let m = MapRequest {
            nonce,
            protocol: if selector & 2 == 0 {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            internal_port: u16::from(selector) << 4,
            suggested_external: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        };
        (PcpRequest::map(client, 3600, m), Some(m))
    };
    let exchange = PcpExchange::new(request);
    let verdict = exchange.judge(datagram);
    match &verdict {
        Judgement::Accept(PcpAnswer::Mapped { .. }) => {
            let m = map.expect("only a MAP request gets a mapping");
            let r = PcpResponse::new_checked(datagram).expect("accepted answers parse");
            let data = r.map().expect("a mapping carries MAP data");
            assert_eq!(data.nonce, m.nonce, "never a mapping with another nonce");
            assert_eq!(data.internal_port, m.internal_port);
            assert_eq!(r.result_code(), PcpResultCode::Success);
        }
        Judgement::Accept(PcpAnswer::NatPmpOnly { .. }) => {
            assert!(is_natpmp_unsupported_version(datagram));
        }
        Judgement::Accept(PcpAnswer::Announced { .. }) => assert!(map.is_none()),
        Judgement::Accept(PcpAnswer::Failure { .. }) => {}
        Judgement::Drop(DropReason::WrongNonce) => {
            let r = PcpResponse::new_checked(datagram).expect("judged answers parse");
            assert_ne!(r.map().map(|d| d.nonce), map.map(|m| m.nonce));
        }
        Judgement::Drop(_) => {}
    }

    let gateway: SocketAddr = "192.168.77.1:5351".parse().unwrap();
    let spoofer: SocketAddr = "192.168.77.1:5352".parse().unwrap();
    let now = Instant::now();
    let mut txn = Transaction::new(
        exchange,
        request.to_vec(),
        gateway,
        RetransmitPlan::pcp(),
        now,
        u64::from(selector),
    )
    .expect("the plan is valid");
    txn.handle_input(now, spoofer, datagram);
    assert!(
        !txn.is_finished(),
        "an answer from another port is never taken"
    );
    txn.handle_input(now, gateway, datagram);
    let c = txn.counters();
    assert_eq!(c.dropped_wrong_source, 1);
    match verdict {
        Judgement::Accept(_) => assert_eq!(c.answered, 1),
        Judgement::Drop(DropReason::WrongNonce) => assert_eq!(c.dropped_wrong_nonce, 1),
        Judgement::Drop(_) => assert_eq!(c.dropped(), 2),
    }
});
