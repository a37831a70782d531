//! The driver: binds the sockets and serves each on its own thread with batched I/O
//! (`recvmmsg`/`sendmmsg` on Linux), all sharing one [`ServerCore`]; an async
//! [`Server::run`] waits for them and stops them on request.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::batch::Batch;
use super::config::ServerConfig;
use super::core::ServerCore;
use super::counters::ServerCounters;
use super::sockets::SocketMap;
use crate::Error;

/// How many times a pair of random ports is tried when the config asks for port 0.
const BIND_ATTEMPTS: usize = 16;
/// How long a socket thread waits for a datagram before it looks at the stop flag again.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Receive buffer asked of the kernel per socket (capped by `net.core.rmem_max`): room
/// for bursts while the thread is descheduled.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SOCKET_RCVBUF: usize = 1 << 20;

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
    families: Vec<Family>,
    stop: Arc<AtomicBool>,
}

/// One configuration's sockets and the core that answers on them: an IPv4 server and
/// an IPv6 server run side by side as two of these, each with its own RFC 5780
/// addresses (OTHER-ADDRESS never names the other family) and rate-limit table.
#[derive(Debug)]
struct Family {
    sockets: Vec<UdpSocket>,
    core: ServerCore,
}

/// Stops a [`Server`]: [`run`](Server::run) returns after the packets in hand (within
/// about 50 ms).
#[derive(Debug, Clone)]
pub struct ServerStopHandle(Arc<AtomicBool>);

impl ServerStopHandle {
    /// Asks the server to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Stops the socket threads when [`Server::run`]'s future ends or is dropped (a task
/// aborted, a runtime shut down), so they never outlive it.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A socket thread's end: `Ok` when stopped, the error that made it give up otherwise.
type ThreadResult = Result<(), Error>;

const PANICKED: Error = Error::Panicked {
    what: "a server thread",
};

impl Server {
    /// Binds the server's sockets: one, or four with an alternate address. Ports 0 are
    /// replaced by free ports (the same primary port on both IPs, the same alternate
    /// port on both IPs).
    pub async fn bind(config: ServerConfig) -> Result<Server, Error> {
        Self::bind_many([config]).await
    }

    /// Binds several servers served as one, typically an IPv4 and an IPv6 one (a
    /// dual-stack RFC 5780 server: two IPv4 and two IPv6 addresses). Each
    /// configuration is bound as by [`bind`](Self::bind) and answered by its own core;
    /// [`run`](Self::run) serves them all and adds their counters up.
    pub async fn bind_many(
        configs: impl IntoIterator<Item = ServerConfig>,
    ) -> Result<Server, Error> {
        let families = configs
            .into_iter()
            .map(bind_family)
            .collect::<Result<Vec<_>, _>>()?;
        if families.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "a server needs at least one address",
            });
        }
        Ok(Server {
            families,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The bound addresses, by socket index (see [`SocketMap`]), one configuration
    /// after the other.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.families
            .iter()
            .flat_map(|f| {
                let map = f.core.sockets();
                (0..map.len()).filter_map(|i| map.local(i))
            })
            .collect()
    }

    /// The socket layout of the first configuration.
    pub fn sockets(&self) -> &SocketMap {
        self.families[0].core.sockets()
    }

    /// The socket layout of each configuration, in the order given to
    /// [`bind_many`](Self::bind_many).
    pub fn socket_maps(&self) -> Vec<&SocketMap> {
        self.families.iter().map(|f| f.core.sockets()).collect()
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> ServerStopHandle {
        ServerStopHandle(self.stop.clone())
    }

    /// Serves until stopped; returns what the server saw. Each socket is served by its
    /// own thread (batches of datagrams per system call); dropping this future stops
    /// them too. Fails only if a socket can no longer receive or a thread cannot start.
    pub async fn run(self) -> Result<ServerCounters, Error> {
        let guard = StopOnDrop(self.stop.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ThreadResult>();
        let mut started = 0;
        let mut result = Ok(());
        let mut cores = Vec::with_capacity(self.families.len());
        'start: for family in self.families {
            let core = Arc::new(Mutex::new(family.core));
            cores.push(core.clone());
            let v6 = family
                .sockets
                .iter()
                .map(|s| s.local_addr().is_ok_and(|a| a.is_ipv6()))
                .collect();
            let sockets = Arc::new(Sockets {
                all: family.sockets,
                v6,
            });
            for i in 0..sockets.all.len() {
                let (sockets, core, stop, tx) =
                    (sockets.clone(), core.clone(), self.stop.clone(), tx.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("natkit-stun-{started}"))
                    .spawn(move || {
                        let r = serve(i, &sockets, &core, &stop);
                        if r.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        let _ = tx.send(r);
                    });
                match spawned {
                    Ok(_) => started += 1,
                    Err(e) => {
                        self.stop.store(true, Ordering::Relaxed);
                        result = Err(Error::io("start a server thread", &e));
                        break 'start;
                    }
                }
            }
        }
        drop(tx);
        let mut ended = 0;
        while let Some(r) = rx.recv().await {
            ended += 1;
            if let Err(e) = r
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        drop(guard);
        if ended < started && result.is_ok() {
            result = Err(PANICKED);
        }
        result?;
        let mut total = ServerCounters::default();
        for core in cores {
            total += core.lock().map(|c| c.counters()).map_err(|_| PANICKED)?;
        }
        Ok(total)
    }
}

/// One configuration's sockets, by index, and which of them are IPv6.
struct Sockets {
    all: Vec<UdpSocket>,
    v6: Vec<bool>,
}

/// Binds one configuration's sockets and makes its core.
fn bind_family(config: ServerConfig) -> Result<Family, Error> {
    config.validate()?;
    let (sockets, map) = match config.alternate {
        None => {
            let s = bind(config.primary)?;
            let local = s.local_addr().map_err(|e| Error::io("local address", &e))?;
            (
                vec![s],
                SocketMap::single(local, config.advertised_primary_ip),
            )
        }
        Some(alt) => {
            let (sockets, primary, alternate) = bind_four(config.primary, alt)?;
            let map = SocketMap::four(
                primary,
                alternate,
                config.advertised_primary_ip,
                config.advertised_alternate_ip,
            );
            (sockets, map)
        }
    };
    for s in &sockets {
        s.set_read_timeout(Some(STOP_POLL))
            .map_err(|e| Error::io("set the read timeout", &e))?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Best effort: a smaller buffer only means earlier drops under overload.
            let _ =
                nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBuf, &SOCKET_RCVBUF);
            super::batch::set_dont_fragment(s);
        }
    }
    let core = ServerCore::new(&config, map)?;
    Ok(Family { sockets, core })
}

/// Serves socket `i` until `stop`: receive a batch, answer it under the core's lock,
/// send the replies from whichever sockets they must leave by.
fn serve(i: usize, sockets: &Sockets, core: &Mutex<ServerCore>, stop: &AtomicBool) -> ThreadResult {
    let sock = &sockets.all[i];
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let n = batch.recv(sock).map_err(|e| Error::io("receive", &e))?;
        if n == 0 {
            continue;
        }
        batch.handle(&mut *core.lock().map_err(|_| PANICKED)?, i);
        for (index, (s, &v6)) in sockets.all.iter().zip(&sockets.v6).enumerate() {
            batch.send_from(s, index, v6);
        }
    }
    Ok(())
}

fn bind(a: SocketAddr) -> Result<UdpSocket, Error> {
    UdpSocket::bind(a).map_err(|e| Error::io("bind", &e))
}

/// Binds primary IP × {primary port, alternate port} and alternate IP × the same,
/// picking free ports where the config says 0.
fn bind_four(
    primary: SocketAddr,
    alternate: SocketAddr,
) -> Result<(Vec<UdpSocket>, SocketAddr, SocketAddr), Error> {
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        match try_bind_four(primary, alternate) {
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

fn try_bind_four(
    primary: SocketAddr,
    alternate: SocketAddr,
) -> Result<(Vec<UdpSocket>, SocketAddr, SocketAddr), Error> {
    let local = |s: &UdpSocket| s.local_addr().map_err(|e| Error::io("local address", &e));
    let pp = bind(primary)?;
    let pport = local(&pp)?.port();
    let pa = bind(SocketAddr::new(primary.ip(), alternate.port()))?;
    let aport = local(&pa)?.port();
    if aport == pport {
        return Err(Error::InvalidConfig {
            reason: "the alternate port must differ from the primary port",
        });
    }
    let ap = bind(SocketAddr::new(alternate.ip(), pport))?;
    let aa = bind(SocketAddr::new(alternate.ip(), aport))?;
    Ok((
        vec![pp, pa, ap, aa],
        SocketAddr::new(primary.ip(), pport),
        SocketAddr::new(alternate.ip(), aport),
    ))
}
