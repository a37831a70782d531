//! Feeds arbitrary bytes to natkit's STUN server core (RFC 5780 layout: two IPs, two
//! ports) as a request arriving on one of its four sockets. Invariants: an answer is a
//! well-formed Binding response (success or error) echoing the request's cookie and
//! transaction id; it goes to the requester's address (its own port or RESPONSE-PORT);
//! and it is never larger than the request plus the attributes the RFCs require in it
//! (XOR-MAPPED-ADDRESS, OTHER-ADDRESS and RESPONSE-ORIGIN, each at most 24 bytes, and
//! FINGERPRINT, 8 bytes), so the server cannot be used to amplify traffic.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use natkit_stun::server::{ServerConfig, ServerCore, SocketMap};
use natkit_stun::{Message, Method};

/// The attributes a response may add beyond the request's own size.
const REQUIRED_GROWTH: usize = 3 * 24 + 8;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, request)) = data.split_first() else {
        return;
    };
    let primary: SocketAddr = "88.77.66.10:3478".parse().unwrap();
    let alternate: SocketAddr = "88.77.66.11:3479".parse().unwrap();
    let config = ServerConfig::with_alternate(primary, alternate);
    let map = SocketMap::four(primary, alternate, None, None);
    let mut core = ServerCore::new(&config, map).expect("a valid config");
    let src: SocketAddr = if selector & 4 == 0 {
        "192.0.2.7:40000".parse().unwrap()
    } else {
        "[2001:db8::7]:40000".parse().unwrap()
    };
    let local = usize::from(selector & 3);
    let mut out = vec![0u8; 1500];
    let reply = core.handle(Instant::now(), local, src, request, &mut out);
    let c = core.counters();
    assert_eq!(c.received, 1);
    let Some((from, to, len)) = reply else {
        return;
    };
    assert!(from < 4);
    assert_eq!(to.ip(), src.ip());
    assert!(
        len <= request.len() + REQUIRED_GROWTH,
        "a {len}-byte answer to a {}-byte request",
        request.len()
    );
    let req = Message::new_checked(request).expect("only requests that parse are answered");
    let resp = Message::new_checked(&out[..len]).expect("the answer is well-formed");
    assert_eq!(resp.method(), Method::BINDING);
    assert!(resp.class().is_response());
    assert_eq!(resp.legacy_transaction_id(), req.legacy_transaction_id());
    if resp.has_fingerprint() {
        assert!(resp.check_fingerprint().is_ok());
    }
});
