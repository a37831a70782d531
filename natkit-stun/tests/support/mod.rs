//! natkit's STUN server core served by tokio tasks on the test's own runtime, for
//! tests on tokio's paused clock.
//!
//! [`Server`](natkit_stun::server::Server) serves each socket on a thread of its own;
//! tokio's paused clock cannot see a thread working, and moves to the client's next
//! retransmission while the answer is on its way. Here the core answers from a task:
//! loopback puts a datagram in the receiving socket before `send_to` returns, so every
//! answer is in before tokio finds all its tasks idle and moves the clock, and each
//! timer of the client fires at its exact simulated time.
// Only some of the test binaries that include this module use every item.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use natkit_stun::server::{ServerConfig, ServerCore, SocketMap};
use tokio::net::UdpSocket;

/// The server's sockets, by socket index (see [`SocketMap`]), and what each datagram
/// a socket received came from, in order.
pub(crate) struct TaskServer {
    /// The bound addresses, by socket index.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Every request's source, as the sockets received them.
    pub(crate) seen: Arc<Mutex<Vec<SocketAddr>>>,
}

/// A one-socket server on `ip`, on a free port.
pub(crate) async fn single(ip: IpAddr) -> TaskServer {
    let socket = UdpSocket::bind((ip, 0)).await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let cfg = ServerConfig::new(addr);
    serve(&cfg, SocketMap::single(addr, None), vec![socket])
}

/// An RFC 5780 server with four sockets: `primary_ip` and `alternate_ip`, each on the
/// same two free ports.
pub(crate) async fn four(primary_ip: IpAddr, alternate_ip: IpAddr) -> TaskServer {
    loop {
        let pp = UdpSocket::bind((primary_ip, 0)).await.expect("bind");
        let pa = UdpSocket::bind((primary_ip, 0)).await.expect("bind");
        let (p, a) = (
            pp.local_addr().expect("addr").port(),
            pa.local_addr().expect("addr").port(),
        );
        // The ports may be taken on the other IP: try another pair.
        let (Ok(ap), Ok(aa)) = (
            UdpSocket::bind((alternate_ip, p)).await,
            UdpSocket::bind((alternate_ip, a)).await,
        ) else {
            continue;
        };
        let (primary, alternate) = (
            SocketAddr::new(primary_ip, p),
            SocketAddr::new(alternate_ip, a),
        );
        let cfg = ServerConfig::with_alternate(primary, alternate);
        let map = SocketMap::four(primary, alternate, None, None);
        return serve(&cfg, map, vec![pp, pa, ap, aa]);
    }
}

/// Serves `sockets` (in `map`'s order) with one core, a task per socket, on tokio's
/// clock, until the runtime ends.
fn serve(cfg: &ServerConfig, map: SocketMap, sockets: Vec<UdpSocket>) -> TaskServer {
    let core = Arc::new(Mutex::new(ServerCore::new(cfg, map).expect("core")));
    let addrs = (0..sockets.len())
        .filter_map(|i| core.lock().expect("core").sockets().local(i))
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sockets: Arc<Vec<UdpSocket>> = Arc::new(sockets);
    for i in 0..sockets.len() {
        let (sockets, core, seen) = (sockets.clone(), core.clone(), seen.clone());
        tokio::spawn(async move {
            let (mut buf, mut out) = ([0u8; 2048], [0u8; 2048]);
            while let Ok((n, src)) = sockets[i].recv_from(&mut buf).await {
                seen.lock().expect("seen").push(src);
                let now = tokio::time::Instant::now().into_std();
                let reply = core
                    .lock()
                    .expect("core")
                    .handle(now, i, src, &buf[..n], &mut out);
                if let Some((from, dst, len)) = reply {
                    sockets[from].send_to(&out[..len], dst).await.expect("send");
                }
            }
        });
    }
    TaskServer { addrs, seen }
}
