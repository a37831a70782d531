//! The STUN server's per-request work outside the kernel: `ServerCore::handle` on the
//! request the load generator sends (Binding + FINGERPRINT, 28 bytes), answered with
//! XOR-MAPPED-ADDRESS + SOFTWARE + FINGERPRINT, the rate limiter's bucket taken; and the
//! RFC 5780 variant (four sockets: OTHER-ADDRESS and RESPONSE-ORIGIN, CHANGE-REQUEST
//! in the request). Sources rotate over 1024 IPs so the limiter's table is not one hot
//! entry. This is the part of the server's cost natkit's own code controls; the rest is
//! the kernel's UDP path (see benches/RESULTS.md, "STUN server vs coturn").

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use natkit_stun::attr::ChangeRequest;
use natkit_stun::server::{RateLimit, ServerConfig, ServerCore, SocketMap};
use natkit_stun::{Class, MessageBuilder, Method, TransactionId};

const SOURCES: usize = 1024;

fn request(change: bool) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let mut b = MessageBuilder::new(
        &mut buf,
        Class::Request,
        Method::BINDING,
        TransactionId::new([7; 12]),
    )
    .expect("header");
    if change {
        b.add_attr(&ChangeRequest {
            change_ip: false,
            change_port: true,
        })
        .expect("change");
    }
    let n = b.finish_with_fingerprint().expect("fingerprint");
    buf.truncate(n);
    buf
}

fn sources() -> Vec<SocketAddr> {
    (0..SOURCES)
        .map(|i| {
            let [_, _, a, b] = u32::try_from(i).expect("small").to_be_bytes();
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, a, b)), 40_000)
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, mut core: ServerCore, req: &[u8]) {
    let srcs = sources();
    let mut out = [0u8; 2048];
    let now = Instant::now();
    let mut k = 0;
    let mut g = c.benchmark_group("stun_server_core");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter(|| {
            k = (k + 1) % SOURCES;
            let r = core.handle(now, 0, srcs[k], black_box(req), &mut out);
            black_box(r.expect("answered"))
        });
    });
    g.finish();
}

fn plain(c: &mut Criterion) {
    let primary: SocketAddr = "192.0.2.1:3478".parse().expect("addr");
    let mut config = ServerConfig::new(primary);
    config.rate_limit = RateLimit::unlimited();
    let core = ServerCore::new(&config, SocketMap::single(primary, None)).expect("core");
    run(c, "binding", core, &request(false));
}

fn rfc5780(c: &mut Criterion) {
    let primary: SocketAddr = "192.0.2.1:3478".parse().expect("addr");
    let alternate: SocketAddr = "192.0.2.2:3479".parse().expect("addr");
    let mut config = ServerConfig::with_alternate(primary, alternate);
    config.rate_limit = RateLimit::unlimited();
    let map = SocketMap::four(primary, alternate, None, None);
    let core = ServerCore::new(&config, map).expect("core");
    run(c, "binding_change_port", core, &request(true));
}

criterion_group!(benches, plain, rfc5780);
criterion_main!(benches);
