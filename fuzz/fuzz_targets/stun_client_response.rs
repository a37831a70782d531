//! Feeds arbitrary bytes to a STUN client transaction as the answer to its Binding
//! request, the way the client and the NAT classifier receive them. The first input byte
//! chooses whether the datagram is stamped with the transaction's own id (so the fuzzer
//! reaches the response decoding) and whether it is RFC 3489. The same datagram comes
//! first from a host that is not the server, then from the server. Invariants: a
//! datagram from another address is never accepted; nothing without our id is ever
//! accepted; every datagram is the answer or counted as dropped; an accepted answer is
//! from the server and carries a mapped address or an error code.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use natkit_stun::client::{AcceptFrom, BindingRequest, BindingTransaction, InputVerdict, RtoPlan};
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    let server: SocketAddr = "88.77.66.10:3478".parse().unwrap();
    let spoofer: SocketAddr = "88.77.66.11:3478".parse().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(selector));
    let request = BindingRequest {
        rfc3489: selector & 2 != 0,
        ..BindingRequest::new()
    };
    let mut txn = BindingTransaction::new(
        &request,
        server,
        AcceptFrom::Destination,
        RtoPlan::RFC8489,
        &mut rng,
    )
    .expect("a valid plan");
    let now = Instant::now();
    let _ = txn.poll_transmit(now);

    let mut bytes = datagram.to_vec();
    if selector & 1 != 0 && bytes.len() >= 20 {
        bytes[4..20].copy_from_slice(&txn.full_id());
    }
    let ours = txn.matches_id(&bytes);

    let v = txn.handle_input(now, spoofer, &bytes);
    assert!(
        matches!(v, InputVerdict::Dropped(_)),
        "never from another address"
    );
    assert_eq!(txn.counters().dropped(), 1);
    assert!(!txn.is_done());

    let v = txn.handle_input(now, server, &bytes);
    let c = txn.counters();
    match v {
        InputVerdict::Accepted => {
            assert!(ours, "never without our transaction id");
            assert_eq!((c.accepted, c.dropped()), (1, 1));
            let resp = txn
                .outcome()
                .expect("done")
                .as_ref()
                .expect("an accepted answer");
            assert_eq!(resp.from, server);
            assert!(resp.mapped.is_none() || resp.error_code.is_none());
            let _ = resp.mapped_or_error();
            // Later copies are late, not answers.
            assert!(matches!(
                txn.handle_input(now, server, &bytes),
                InputVerdict::Dropped(_)
            ));
        }
        InputVerdict::Dropped(_) => {
            assert_eq!((c.accepted, c.dropped()), (0, 2));
            assert!(!txn.is_done());
        }
    }
});
