use super::*;
use crate::order::SplitMix64;

fn nonce(seed: u64) -> Nonce {
    let mut n = Nonce::default();
    SplitMix64::new(seed).fill(&mut n.0);
    n
}

fn samples() -> Vec<Message> {
    let n = nonce(1);
    let full: Vec<DialResult> = (1..=MAX_PORTS as u16)
        .map(|p| DialResult {
            port: DialPort::udp(16000 + p),
            outcome: DialOutcome::Silence,
            rtt: Duration::ZERO,
        })
        .collect();
    vec![
        Message::Request {
            nonce: n,
            ports: List::from_slice(&[
                DialPort::tcp(443),
                DialPort::udp(4500),
                DialPort::udp(5353),
            ])
            .unwrap(),
        },
        Message::Probe {
            nonce: n,
            port: DialPort::tcp(443),
        },
        Message::ProbeAck {
            nonce: n,
            port: DialPort::udp(4500),
        },
        Message::Report {
            nonce: n,
            observed: "203.0.113.9:51515".parse().unwrap(),
            results: List::from_slice(&[
                DialResult {
                    port: DialPort::tcp(443),
                    outcome: DialOutcome::Verified,
                    rtt: Duration::from_micros(23_456),
                },
                DialResult {
                    port: DialPort::udp(4500),
                    outcome: DialOutcome::AnsweredByOther,
                    rtt: Duration::from_micros(1),
                },
            ])
            .unwrap(),
        },
        Message::Report {
            nonce: n,
            observed: "[2001:db8::9]:40000".parse().unwrap(),
            results: List::from_slice(&full).unwrap(),
        },
        Message::Refusal {
            nonce: n,
            reason: RefusalCode::RateLimited,
        },
    ]
}

fn bytes(m: &Message) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn every_kind_round_trips() {
    for m in samples() {
        let b = bytes(&m);
        assert_eq!(b.len(), m.buffer_len());
        assert!(b.len() <= MAX_MESSAGE_LEN);
        assert_eq!(Message::parse(&b), Ok(m), "{m:?}");
    }
}

#[test]
fn probe_layout_is_fixed() {
    let m = Message::Probe {
        nonce: Nonce([7; 16]),
        port: DialPort::tcp(443),
    };
    let mut want = b"NKDB".to_vec();
    want.extend_from_slice(&[1, 2, 0, 28]);
    want.extend_from_slice(&[7; 16]);
    want.extend_from_slice(&[0x01, 0xBB, 6, 0]);
    assert_eq!(bytes(&m), want);
    assert_eq!(MAX_MESSAGE_LEN, bytes(&samples()[4]).len());
}

#[test]
fn header_errors_are_named() {
    let good = bytes(&samples()[1]);
    let with = |at: usize, v: u8| {
        let mut b = good.clone();
        b[at] = v;
        Message::parse(&b)
    };
    assert_eq!(with(0, b'X'), Err(WireError::BadMagic));
    assert_eq!(with(4, 2), Err(WireError::UnsupportedVersion(2)));
    assert_eq!(with(5, 9), Err(WireError::UnknownKind(9)));
    assert_eq!(
        with(7, 29),
        Err(WireError::LengthMismatch {
            declared: 29,
            actual: 28
        })
    );
    assert_eq!(with(26, 1), Err(WireError::BadProtocol(1)));
    assert_eq!(with(27, 1), Err(WireError::Reserved(27)));
    let mut zero = good.clone();
    zero[24] = 0;
    zero[25] = 0;
    assert_eq!(Message::parse(&zero), Err(WireError::PortZero));
    assert_eq!(
        Message::parse(&good[..3]),
        Err(WireError::Truncated { needed: 4, got: 3 })
    );
}

#[test]
fn counts_and_codes_are_checked() {
    let req = bytes(&samples()[0]);
    let mut b = req.clone();
    b[24] = 0;
    assert_eq!(Message::parse(&b), Err(WireError::BadPortCount(0)));
    // A count that claims more items than the length holds.
    let mut b = req.clone();
    b[24] = 4;
    assert!(matches!(
        Message::parse(&b),
        Err(WireError::Truncated { .. })
    ));
    // A count that claims fewer: bytes left over.
    let mut b = req.clone();
    b[24] = 2;
    assert!(matches!(
        Message::parse(&b),
        Err(WireError::LengthMismatch { .. })
    ));
    let report = bytes(&samples()[3]);
    let mut b = report.clone();
    b[24] = 5;
    assert_eq!(Message::parse(&b), Err(WireError::BadFamily(5)));
    let mut b = report.clone();
    // First result's outcome byte: header 24 + 4 + addr 4 + 2, then +3.
    b[24 + 4 + 4 + 2 + 3] = 77;
    assert_eq!(Message::parse(&b), Err(WireError::UnknownOutcome(77)));
    let refusal = bytes(&samples()[5]);
    let mut b = refusal.clone();
    b[25] = 99;
    assert_eq!(Message::parse(&b), Err(WireError::UnknownRefusal(99)));
}

#[test]
fn emit_refuses_what_would_not_parse() {
    let empty = Message::Request {
        nonce: nonce(2),
        ports: List::new(),
    };
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    assert_eq!(empty.emit(&mut buf), Err(WireError::BadPortCount(0)));
    let zero = Message::Probe {
        nonce: nonce(2),
        port: DialPort::tcp(0),
    };
    assert_eq!(zero.emit(&mut buf), Err(WireError::PortZero));
    let m = &samples()[0];
    assert_eq!(
        m.emit(&mut buf[..10]),
        Err(WireError::BufferTooSmall {
            needed: m.buffer_len(),
            got: 10
        })
    );
}

#[test]
fn rtt_saturates_at_the_wire_width() {
    let m = Message::Report {
        nonce: nonce(3),
        observed: "192.0.2.1:1".parse().unwrap(),
        results: List::from_slice(&[DialResult {
            port: DialPort::tcp(22),
            outcome: DialOutcome::Verified,
            rtt: Duration::from_secs(100_000),
        }])
        .unwrap(),
    };
    let Ok(Message::Report { results, .. }) = Message::parse(&bytes(&m)) else {
        panic!("did not parse back");
    };
    assert_eq!(
        results.as_slice()[0].rtt,
        Duration::from_micros(u64::from(u32::MAX))
    );
}

#[test]
fn every_truncation_and_random_bytes_fail_cleanly() {
    for m in samples() {
        let b = bytes(&m);
        for cut in 0..b.len() {
            assert!(Message::parse(&b[..cut]).is_err(), "{m:?} cut at {cut}");
        }
    }
    // Random garbage, and valid headers over random bodies: parse
    // returns, never panics.
    let mut rng = SplitMix64::new(99);
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    for i in 0..20_000 {
        let len = rng.below(MAX_MESSAGE_LEN as u64 + 1) as usize;
        rng.fill(&mut buf[..len]);
        if i % 2 == 0 && len >= 8 {
            buf[..4].copy_from_slice(&MAGIC);
            buf[4] = VERSION;
            buf[5] = 1 + (rng.below(5) as u8);
            buf[6..8].copy_from_slice(&(len as u16).to_be_bytes());
        }
        if let Ok(m) = Message::parse(&buf[..len]) {
            // Whatever parses emits back to the same bytes.
            assert_eq!(bytes(&m), &buf[..len]);
        }
    }
}

#[test]
fn refusal_retryability() {
    assert!(RefusalCode::RateLimited.is_retryable());
    assert!(RefusalCode::Busy.is_retryable());
    assert!(!RefusalCode::PortNotAllowed.is_retryable());
    assert!(!RefusalCode::BadRequest.is_retryable());
    assert!(!RefusalCode::TooManyPorts.is_retryable());
    assert!(!RefusalCode::TargetNotAllowed.is_retryable());
}

#[test]
fn every_refusal_code_round_trips() {
    for reason in RefusalCode::ALL {
        let m = Message::Refusal {
            nonce: nonce(4),
            reason,
        };
        assert_eq!(Message::parse(&bytes(&m)), Ok(m));
        assert!(!reason.as_str().is_empty());
    }
}
