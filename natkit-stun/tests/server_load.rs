//! natkit's STUN server under load and abuse, on loopback: back-to-back classifications
//! stay under the default rate limit, a few seconds at full rate with malformed packets
//! mixed in leave no valid request unanswered, and a flooding source is held to its
//! bucket while others are still served.
//!
//! (The 60 s soak with RSS figures is `benches/stun_soak.sh`; throughput against coturn is
//! `benches/stun_server_vs_coturn.sh`.)

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use natkit_stun::attr::AttrType;
use natkit_stun::classify::{ClassifyConfig, classify};
use natkit_stun::client::RtoPlan;
use natkit_stun::server::{RateLimit, Server, ServerConfig, ServerCounters};
use natkit_stun::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

async fn start(
    cfg: ServerConfig,
) -> (
    Vec<SocketAddr>,
    natkit_stun::server::ServerStopHandle,
    tokio::task::JoinHandle<Result<ServerCounters, natkit_stun::Error>>,
) {
    let server = Server::bind(cfg).await.expect("bind");
    let addrs = server.local_addrs();
    let stop = server.stop_handle();
    (addrs, stop, tokio::spawn(server.run()))
}

fn tid(n: u64, marker: u8) -> TransactionId {
    let mut b = [marker; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    TransactionId::new(b)
}

fn request(t: TransactionId) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = MessageBuilder::new(&mut buf, Class::Request, Method::BINDING, t)
        .expect("fits")
        .finish_with_fingerprint()
        .expect("fits");
    buf[..n].to_vec()
}

/// The `k`-th malformed packet and the counter it must land in.
fn malformed(k: u64) -> (Vec<u8>, &'static str) {
    let t = tid(k, 0xee);
    match k % 4 {
        0 => {
            let mut r = request(t);
            r.truncate(r.len() - 4);
            (r, "malformed")
        }
        1 => {
            let mut r = request(t);
            let last = r.len() - 1;
            r[last] ^= 0x5a;
            (r, "bad_fingerprint")
        }
        2 => {
            let mut buf = [0u8; 64];
            let n = MessageBuilder::with_cookie(
                &mut buf,
                MessageType::BINDING_SUCCESS,
                natkit_stun::MAGIC_COOKIE,
                t,
            )
            .expect("fits")
            .finish();
            (buf[..n].to_vec(), "not_binding_request")
        }
        _ => {
            let mut buf = [0u8; 64];
            let mut b =
                MessageBuilder::new(&mut buf, Class::Request, Method::BINDING, t).expect("fits");
            b.add_raw(AttrType::CHANGE_REQUEST, &[0, 0, 6])
                .expect("fits");
            let n = b.finish();
            (buf[..n].to_vec(), "malformed")
        }
    }
}

/// In the lab, a classification behind a port-restricted NAT sends about 25 requests
/// (the filtering tests' answers are dropped by the NAT and retransmitted), so two in a
/// row overran the old default burst of 40. On loopback nothing is dropped and one run
/// sends 16, so this runs classifications back to back until at least 2 × 25 + 10
/// requests came from the one source, then checks none was throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_classifications_are_not_throttled_by_default() {
    let cfg = ServerConfig::with_alternate(sa("127.0.0.1:0"), sa("127.0.0.2:0"));
    assert_eq!(cfg.rate_limit, RateLimit::default());
    let (addrs, stop, task) = start(cfg).await;
    let started = Instant::now();
    for run in 0..4 {
        let mut config = ClassifyConfig::new([addrs[0].to_string()]);
        config.plan = RtoPlan::LAB;
        config.hairpinning = true;
        let c = classify(config).await.expect("classify");
        assert_eq!(
            c.legacy,
            natkit_core::LegacyNatType::Open,
            "run {run}: {c:#?}"
        );
    }
    let elapsed = started.elapsed();
    stop.stop();
    let counters = task.await.expect("join").expect("run");
    println!("four classifications in {elapsed:?}: {counters:?}");
    assert!(
        counters.received >= 60,
        "enough requests for two lab classifications: {counters:?}"
    );
    assert_eq!(counters.dropped_rate_limited, 0, "{counters:?}");
    assert_eq!(counters.dropped(), 0, "{counters:?}");
}

/// The sending side of [`closed_loop`]: its sockets, what is outstanding on each, and what
/// was sent.
struct Loop {
    socks: Vec<UdpSocket>,
    window: usize,
    outstanding: Vec<HashMap<TransactionId, ()>>,
    next: u64,
    valid: u64,
    bad_sent: Vec<u64>,
    bad_k: u64,
}

impl Loop {
    /// Tops socket `i` up to `window` valid requests outstanding, sending one malformed
    /// packet after every nine valid ones.
    fn fill(&mut self, i: usize) {
        while self.outstanding[i].len() < self.window {
            self.next += 1;
            if self.next.is_multiple_of(10) {
                let (p, _) = malformed(self.bad_k);
                self.socks[i].send(&p).expect("send malformed");
                self.bad_sent[(self.bad_k % 4) as usize] += 1;
                self.bad_k += 1;
            } else {
                let t = tid(self.next, 0x11);
                self.socks[i].send(&request(t)).expect("send");
                self.outstanding[i].insert(t, ());
                self.valid += 1;
            }
        }
    }
}

/// Closed loop: `window` requests outstanding per socket, one malformed packet after every
/// nine valid ones, for `secs`; then every outstanding request must be answered.
fn closed_loop(target: SocketAddr, sockets: usize, window: usize, secs: f64) -> (u64, Vec<u64>) {
    let socks: Vec<UdpSocket> = (0..sockets)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.connect(target).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            s
        })
        .collect();
    let locals: Vec<SocketAddr> = socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let mut l = Loop {
        socks,
        window,
        outstanding: vec![HashMap::new(); sockets],
        next: 0,
        valid: 0,
        bad_sent: vec![0; 4],
        bad_k: 0,
    };
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = [0u8; 1500];
    for i in 0..sockets {
        l.fill(i);
    }
    let mut answered = 0u64;
    loop {
        let mut left = 0;
        for (i, local) in locals.iter().enumerate() {
            if l.outstanding[i].is_empty() {
                continue;
            }
            let n = l.socks[i]
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("socket {i}: no answer within 2 s: {e}"));
            let m = Message::new_checked(&buf[..n]).expect("valid response");
            assert_eq!(m.message_type(), MessageType::BINDING_SUCCESS);
            assert_eq!(m.check_fingerprint(), Ok(()));
            assert_eq!(m.xor_mapped_address(), Ok(Some(*local)));
            assert!(
                l.outstanding[i].remove(&m.transaction_id()).is_some(),
                "an answer to a request not outstanding (or to a malformed packet)"
            );
            answered += 1;
            if Instant::now() < deadline {
                l.fill(i);
            }
            left += l.outstanding[i].len();
        }
        if left == 0 && Instant::now() >= deadline {
            break;
        }
    }
    assert_eq!(answered, l.valid, "every valid request answered");
    (l.valid, l.bad_sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rate_with_malformed_packets_answers_every_valid_request() {
    let mut cfg = ServerConfig::new(sa("127.0.0.1:0"));
    // Every request comes from 127.0.0.1: the limit is not what this test is about.
    cfg.rate_limit = RateLimit::unlimited();
    let (addrs, stop, task) = start(cfg).await;
    let target = addrs[0];
    let (valid, bad) = tokio::task::spawn_blocking(move || closed_loop(target, 4, 8, 3.0))
        .await
        .expect("client");
    // Give the server a moment to take the last malformed packets off its socket.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.stop();
    let c = task.await.expect("join").expect("run");
    println!("{valid} valid, malformed by kind {bad:?}: {c:?}");
    assert!(valid > 1000, "the loop ran: {valid}");
    let malformed: u64 = bad.iter().sum();
    assert_eq!(c.received, valid + malformed, "{c:?}");
    assert_eq!(c.answered, valid, "{c:?}");
    assert_eq!(c.dropped(), malformed, "{c:?}");
    assert_eq!(c.dropped_malformed, bad[0] + bad[3], "{c:?}");
    assert_eq!(c.dropped_bad_fingerprint, bad[1], "{c:?}");
    assert_eq!(c.dropped_not_binding_request, bad[2], "{c:?}");
    assert_eq!(c.dropped_rate_limited, 0, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_source_is_held_to_its_bucket_while_others_are_served() {
    let cfg = ServerConfig::new(sa("127.0.0.1:0"));
    let limit = cfg.rate_limit;
    let (addrs, stop, task) = start(cfg).await;
    let target = addrs[0];
    let flood = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.3:0").expect("bind");
        s.connect(target).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let start = Instant::now();
        let mut sent = 0u64;
        let mut answers = 0u64;
        let mut buf = [0u8; 1500];
        // 10 000 requests in bursts of 50, reading answers in between (so neither side's
        // socket buffer overflows and every drop is the server's decision).
        for burst in 0..200u64 {
            for k in 0..50 {
                s.send(&request(tid(burst * 50 + k, 0x22))).expect("send");
                sent += 1;
            }
            s.set_nonblocking(true).expect("nonblocking");
            while s.recv(&mut buf).is_ok() {
                answers += 1;
            }
            s.set_nonblocking(false).expect("blocking");
            std::thread::sleep(Duration::from_millis(1));
        }
        while s.recv(&mut buf).is_ok() {
            answers += 1;
        }
        (sent, answers, start.elapsed())
    });
    // A well-behaved client from another address, during the flood.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let good = natkit_stun::client::binding(
        target,
        &natkit_stun::client::BindingRequest::new(),
        RtoPlan::LAB,
    )
    .await
    .expect("another source is still answered during the flood");
    assert!(good.mapped.is_some());
    let (sent, answers, elapsed) = flood.await.expect("flood");
    stop.stop();
    let c = task.await.expect("join").expect("run");
    println!("flood: {sent} sent, {answers} answered in {elapsed:?}; {c:?}");
    let allowed = f64::from(limit.burst) + limit.per_second * elapsed.as_secs_f64() + 1.0;
    assert!(
        (answers as f64) <= allowed,
        "{answers} answers > burst + rate × time = {allowed}"
    );
    assert!(
        answers >= u64::from(limit.burst),
        "the burst is honoured: {answers}"
    );
    // Every flood packet reached the server and each was either answered or rate-limited.
    assert_eq!(c.received, sent + c.answered - answers, "{c:?}");
    assert_eq!(c.dropped_rate_limited, sent - answers, "{c:?}");
}
