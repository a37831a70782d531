//! Spoofed STUN answers over loopback: a server that is raced by forgers. Before its
//! real answer, the client receives answers with another transaction id (from the
//! server's own address), with its transaction id from another address (127.0.0.3) and
//! from the server's IP on another port. Every forgery is ignored and counted, and the
//! real answer, arriving after them (or only on a retransmission), still wins, at the
//! time the plan's schedule says: the forgeries neither end the transaction nor move
//! its retransmissions. The tests run on tokio's paused clock (the server and the
//! forgers are tasks on the test's runtime, so each datagram is in before the clock
//! moves).
// Test helpers outside #[test] fns: a broken fake should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use natkit_stun::attr::XorMappedAddress;
use natkit_stun::client::{
    AcceptFrom, BindingRequest, BindingTransaction, RtoPlan, run_transactions,
};
use natkit_stun::{Class, Message, MessageBuilder};
use tokio::net::UdpSocket;

/// What every forged answer claims the client's address is.
const FORGED: &str = "6.6.6.6:6666";

fn answer(request: &[u8], mapped: SocketAddr, flip_id: bool) -> Vec<u8> {
    let req = Message::new_checked(request).expect("a request");
    let mut out = vec![0u8; 128];
    let mut b = MessageBuilder::response_to(&mut out, &req, Class::SuccessResponse).unwrap();
    b.add_attr(&XorMappedAddress(mapped)).unwrap();
    let n = b.finish();
    out.truncate(n);
    if flip_id {
        out[19] ^= 0xff;
    }
    out
}

/// How long after the forgeries the server answers.
const ANSWER_DELAY: Duration = Duration::from_millis(5);

/// The forgers answer every request; the server answers from request number
/// `real_from` on (1 = the first).
async fn raced_server(real_from: usize) -> SocketAddr {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other_ip = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let other_port = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let mut seen = 0;
        while let Ok((n, from)) = server.recv_from(&mut buf).await {
            seen += 1;
            let forged: SocketAddr = FORGED.parse().unwrap();
            let req = &buf[..n];
            server
                .send_to(&answer(req, forged, true), from)
                .await
                .unwrap();
            other_ip
                .send_to(&answer(req, forged, false), from)
                .await
                .unwrap();
            other_port
                .send_to(&answer(req, forged, false), from)
                .await
                .unwrap();
            // Let the forgeries arrive first.
            tokio::time::sleep(ANSWER_DELAY).await;
            if seen >= real_from {
                server
                    .send_to(&answer(req, from, false), from)
                    .await
                    .unwrap();
            }
        }
    });
    addr
}

async fn run(real_from: usize) {
    let server = raced_server(real_from).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = socket.local_addr().unwrap();
    let plan = RtoPlan {
        rto: Duration::from_millis(100),
        max_sends: 4,
        final_wait_factor: 4,
    };
    let mut txns = [BindingTransaction::new(
        &BindingRequest::new(),
        server,
        AcceptFrom::Destination,
        plan,
        &mut rand::rng(),
    )
    .unwrap()];
    let unmatched = run_transactions(&socket, &mut txns).await.unwrap();
    let t = &txns[0];
    let resp = t
        .outcome()
        .expect("done")
        .as_ref()
        .expect("the real answer wins");
    assert_eq!(resp.mapped, Some(me), "the forged {FORGED} was never taken");
    assert_eq!(resp.from, server);
    assert_eq!(resp.sends as usize, real_from);
    // Answered ANSWER_DELAY after the send it answers, which went out on the plan's
    // schedule; a round-trip time only for an answer to the first send.
    let send_at = plan.send_offsets().nth(real_from - 1).expect("a send");
    assert_eq!(resp.elapsed, send_at + ANSWER_DELAY);
    assert_eq!(resp.rtt, (real_from == 1).then_some(ANSWER_DELAY));
    let c = t.counters();
    let sends = real_from as u64;
    // Per request: one answer with another id (dropped before it reaches the
    // transaction), two with our id from other sources.
    assert_eq!(unmatched.dropped_wrong_transaction, sends, "{unmatched:?}");
    assert_eq!(c.dropped_wrong_source, 2 * sends, "{c:?}");
    assert_eq!(c.accepted, 1);
    let mut wrong = t.wrong_sources().to_vec();
    wrong.sort();
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(wrong.iter().all(|a| *a != server));
    assert!(wrong.iter().any(|a| a.ip().to_string() == "127.0.0.3"));
    eprintln!(
        "real answer on send {real_from}: {} forgeries dropped and counted ({} wrong id, {} wrong source)",
        unmatched.dropped_wrong_transaction + c.dropped_wrong_source,
        unmatched.dropped_wrong_transaction,
        c.dropped_wrong_source
    );
}

#[tokio::test(start_paused = true)]
async fn forged_answers_are_dropped_and_the_real_one_wins() {
    run(1).await;
}

#[tokio::test(start_paused = true)]
async fn forgeries_do_not_end_the_transaction_before_a_late_real_answer() {
    run(3).await;
}
