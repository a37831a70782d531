//! The tokio driver: binds the sockets, runs [`ServerCore`] on them, stops on request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::config::ServerConfig;
use super::core::ServerCore;
use super::counters::ServerCounters;
use super::sockets::SocketMap;
use crate::Error;

/// How many times a pair of random ports is tried when the config asks for port 0.
const BIND_ATTEMPTS: usize = 16;
/// Receive buffer: a datagram longer than this is truncated and then dropped as
/// malformed.
const RECV_BUF: usize = 2048;

/// A running-to-be STUN server: sockets bound, not yet serving.
///
/// ```no_run
/// # async fn f() -> Result<(), natkit_stun::Error> {
/// use natkit_stun::server::{Server, ServerConfig};
/// let server = Server::bind(ServerConfig::with_alternate(
///     "192.0.2.1:3478".parse().unwrap(), "192.0.2.2:3479".parse().unwrap())).await?;
/// let stop = server.stop_handle();
/// tokio::spawn(async move { tokio::signal::ctrl_c().await.ok(); stop.stop(); });
/// let counters = server.run().await?;
/// println!("answered {}", counters.answered);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    sockets: Vec<Arc<UdpSocket>>,
    core: ServerCore,
    stop_tx: watch::Sender<bool>,
}

/// Stops a [`Server`]: [`run`](Server::run) returns after the packets in hand.
#[derive(Debug, Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    /// Asks the server to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Server {
    /// Binds the server's sockets: one, or four with an alternate address. Ports 0 are
    /// replaced by free ports (the same primary port on both IPs, the same alternate
    /// port on both IPs).
    pub async fn bind(config: ServerConfig) -> Result<Server, Error> {
        config.validate()?;
        let (sockets, map) = match config.alternate {
            None => {
                let s = UdpSocket::bind(config.primary)
                    .await
                    .map_err(|e| Error::io("bind", &e))?;
                let local = s.local_addr().map_err(|e| Error::io("local address", &e))?;
                (
                    vec![Arc::new(s)],
                    SocketMap::single(local, config.advertised_primary_ip),
                )
            }
            Some(alt) => {
                let (sockets, primary, alternate) = bind_four(config.primary, alt).await?;
                let map = SocketMap::four(
                    primary,
                    alternate,
                    config.advertised_primary_ip,
                    config.advertised_alternate_ip,
                );
                (sockets, map)
            }
        };
        let core = ServerCore::new(&config, map)?;
        let (stop_tx, _) = watch::channel(false);
        Ok(Server {
            sockets,
            core,
            stop_tx,
        })
    }

    /// The bound addresses, by socket index (see [`SocketMap`]).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let map = self.core.sockets();
        (0..map.len()).filter_map(|i| map.local(i)).collect()
    }

    /// The socket layout.
    pub fn sockets(&self) -> &SocketMap {
        self.core.sockets()
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop_tx.clone())
    }

    /// Serves until stopped; returns what the server saw. Fails only if a socket can no
    /// longer receive.
    pub async fn run(self) -> Result<ServerCounters, Error> {
        let core = Arc::new(Mutex::new(self.core));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, socket) in self.sockets.iter().enumerate() {
            let sockets = self.sockets.clone();
            let core = core.clone();
            let mut stop = self.stop_tx.subscribe();
            let socket = socket.clone();
            tasks.spawn(async move {
                let mut buf = vec![0u8; RECV_BUF];
                let mut out = vec![0u8; RECV_BUF];
                loop {
                    if *stop.borrow() {
                        return Ok(());
                    }
                    tokio::select! {
                        r = socket.recv_from(&mut buf) => {
                            let (n, src) = match r {
                                Ok(v) => v,
                                // ICMP errors reported on the socket: not fatal.
                                Err(e) if matches!(e.kind(),
                                    std::io::ErrorKind::ConnectionReset
                                    | std::io::ErrorKind::ConnectionRefused) => continue,
                                Err(e) => return Err(Error::io("receive", &e)),
                            };
                            let reply = core
                                .lock()
                                .map(|mut c| c.handle(Instant::now(), i, src, &buf[..n], &mut out))
                                .unwrap_or(None);
                            if let Some((from, dst, len)) = reply
                                && let Some(s) = sockets.get(from)
                            {
                                // A failed send (no route to a spoofed source) is not
                                // the server's problem.
                                let _ = s.send_to(&out[..len], dst).await;
                            }
                        }
                        _ = stop.changed() => {}
                    }
                }
            });
        }
        let mut result = Ok(());
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.stop_tx.send_replace(true);
                    result = Err(e);
                }
                Err(_) => {
                    self.stop_tx.send_replace(true);
                    result = Err(Error::InvalidConfig {
                        reason: "a server task panicked",
                    });
                }
            }
        }
        result?;
        let counters = core.lock().map(|c| c.counters()).unwrap_or_default();
        Ok(counters)
    }
}

/// Binds primary IP × {primary port, alternate port} and alternate IP × the same,
/// picking free ports where the config says 0.
async fn bind_four(
    primary: SocketAddr,
    alternate: SocketAddr,
) -> Result<(Vec<Arc<UdpSocket>>, SocketAddr, SocketAddr), Error> {
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        match try_bind_four(primary, alternate).await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let retry = primary.port() == 0 || alternate.port() == 0;
                if !retry {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(Error::InvalidConfig {
        reason: "could not bind the four server sockets",
    }))
}

async fn try_bind_four(
    primary: SocketAddr,
    alternate: SocketAddr,
) -> Result<(Vec<Arc<UdpSocket>>, SocketAddr, SocketAddr), Error> {
    let bind =
        |a: SocketAddr| async move { UdpSocket::bind(a).await.map_err(|e| Error::io("bind", &e)) };
    let local = |s: &UdpSocket| s.local_addr().map_err(|e| Error::io("local address", &e));
    let pp = bind(primary).await?;
    let pport = local(&pp)?.port();
    let pa = bind(SocketAddr::new(primary.ip(), alternate.port())).await?;
    let aport = local(&pa)?.port();
    if aport == pport {
        return Err(Error::InvalidConfig {
            reason: "the alternate port must differ from the primary port",
        });
    }
    let ap = bind(SocketAddr::new(alternate.ip(), pport)).await?;
    let aa = bind(SocketAddr::new(alternate.ip(), aport)).await?;
    Ok((
        vec![Arc::new(pp), Arc::new(pa), Arc::new(ap), Arc::new(aa)],
        SocketAddr::new(primary.ip(), pport),
        SocketAddr::new(alternate.ip(), aport),
    ))
}
