//! The client's temporary responders: one listener (TCP) or socket (UDP)
//! per local port being checked, answering the server's probe with the
//! nonce and logging everything else that arrives.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use natkit_core::Protocol;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::message::{DialPort, MAX_MESSAGE_LEN, Message, Nonce};
use super::stream::{read_message, write_message};

/// Connections one TCP responder handles at once; more are closed (and
/// counted as foreign).
const MAX_CONNECTIONS: usize = 16;

/// What arrived at one responder.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    /// External ports whose probe (with our nonce) arrived here.
    pub(crate) nonce_for: Vec<u16>,
    /// Connections or datagrams without our probe.
    pub(crate) foreign: u32,
}

type Log = Arc<Mutex<HashMap<(Protocol, u16), Seen>>>;

fn record(log: &Log, key: (Protocol, u16), f: impl FnOnce(&mut Seen)) {
    let mut map = log.lock().unwrap_or_else(PoisonError::into_inner);
    f(map.entry(key).or_default());
}

/// Why a port has no responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotHeld {
    /// `EADDRINUSE`: a local service holds it.
    InUse,
    /// Another error (errno).
    Other(i32),
}

/// The running responders of one check.
#[derive(Debug)]
pub(crate) struct Responders {
    tasks: JoinSet<()>,
    log: Log,
    not_held: HashMap<(Protocol, u16), NotHeld>,
}

impl Responders {
    /// Binds a responder on every `(protocol, local port)` in `ports`
    /// (each with the external ports it answers for) on `ip`, and starts
    /// them.
    pub(crate) fn start(
        ip: IpAddr,
        ports: &HashMap<(Protocol, u16), Vec<u16>>,
        nonce: Nonce,
        ack_timeout: Duration,
    ) -> Self {
        let mut r = Responders {
            tasks: JoinSet::new(),
            log: Log::default(),
            not_held: HashMap::new(),
        };
        for (&(protocol, local), externals) in ports {
            let key = (protocol, local);
            let externals = externals.clone();
            let log = r.log.clone();
            let addr = SocketAddr::new(ip, local);
            let bound = match protocol {
                Protocol::Tcp => bind_tcp(addr).map(|l| {
                    r.tasks
                        .spawn(run_tcp(l, key, externals, nonce, log, ack_timeout));
                }),
                Protocol::Udp => bind_udp(addr).map(|s| {
                    r.tasks.spawn(run_udp(s, key, externals, nonce, log));
                }),
            };
            if let Err(e) = bound {
                let why = if e.kind() == io::ErrorKind::AddrInUse {
                    NotHeld::InUse
                } else {
                    NotHeld::Other(e.raw_os_error().unwrap_or(0))
                };
                r.not_held.insert(key, why);
            }
        }
        r
    }

    /// Why `(protocol, local)` has no responder, if it has none.
    pub(crate) fn not_held(&self, protocol: Protocol, local: u16) -> Option<NotHeld> {
        self.not_held.get(&(protocol, local)).copied()
    }

    /// Stops every responder (closing its sockets) and returns what they
    /// saw.
    pub(crate) async fn finish(mut self) -> HashMap<(Protocol, u16), Seen> {
        self.tasks.shutdown().await;
        let map = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        map.clone()
    }
}

/// A listening socket without `SO_REUSEADDR`'s leniency towards a port
/// another program listens on: `EADDRINUSE` then means "held".
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // Lets us rebind a port our own previous check left in TIME_WAIT; a
    // port another socket *listens* on still fails with EADDRINUSE.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Whether `m` is our probe, and for which external port.
fn our_probe(m: &Message, nonce: Nonce, protocol: Protocol) -> Option<u16> {
    match m {
        Message::Probe { nonce: n, port } if *n == nonce && port.protocol == protocol => {
            Some(port.port)
        }
        _ => None,
    }
}

/// Logs what arrived at the responder `key` and returns the ack to send:
/// only for our probe of a port this responder stands for.
fn on_arrival(
    log: &Log,
    key: (Protocol, u16),
    externals: &[u16],
    nonce: Nonce,
    m: Option<Message>,
) -> Option<Message> {
    let Some(external) = m.and_then(|m| our_probe(&m, nonce, key.0)) else {
        record(log, key, |s| s.foreign += 1);
        return None;
    };
    record(log, key, |s| {
        if !s.nonce_for.contains(&external) {
            s.nonce_for.push(external);
        }
    });
    externals.contains(&external).then_some(Message::ProbeAck {
        nonce,
        port: DialPort {
            port: external,
            protocol: key.0,
        },
    })
}

async fn run_tcp(
    listener: TcpListener,
    key: (Protocol, u16),
    externals: Vec<u16>,
    nonce: Nonce,
    log: Log,
    ack_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let externals = Arc::new(externals);
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            record(&log, key, |s| s.foreign += 1);
            continue;
        };
        let (log, externals) = (log.clone(), externals.clone());
        conns.spawn(async move {
            let _permit = permit;
            answer_tcp(stream, key, &externals, nonce, &log, ack_timeout).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn answer_tcp(
    mut stream: TcpStream,
    key: (Protocol, u16),
    externals: &[u16],
    nonce: Nonce,
    log: &Log,
    ack_timeout: Duration,
) {
    let mut received = 0;
    let read = tokio::time::timeout(ack_timeout, read_message(&mut stream, &mut received)).await;
    let m = match read {
        Ok(Ok(m)) => Some(m),
        _ => None,
    };
    if let Some(ack) = on_arrival(log, key, externals, nonce, m) {
        let _ = tokio::time::timeout(ack_timeout, write_message(&mut stream, &ack)).await;
    }
}

async fn run_udp(
    socket: UdpSocket,
    key: (Protocol, u16),
    externals: Vec<u16>,
    nonce: Nonce,
    log: Log,
) {
    let mut buf = [0u8; MAX_MESSAGE_LEN + 1];
    let mut out = [0u8; MAX_MESSAGE_LEN];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // An ICMP error for an earlier ack, or the like: keep going.
            continue;
        };
        let m = buf.get(..n).and_then(|b| Message::parse(b).ok());
        if let Some(ack) = on_arrival(&log, key, &externals, nonce, m) {
            // An ack is never longer than the probe it answers (28 bytes
            // each): the responder amplifies nothing.
            if let Ok(len) = ack.emit(&mut out) {
                let _ = socket.send_to(&out[..len], from).await;
            }
        }
    }
}
