//! The dial-back server: a tokio driver around [`Admission`] and the dials.
//!
//! Control connections are TCP. The server reads one [`Message::Request`]
//! (at most [`MAX_MESSAGE_LEN`] bytes, within
//! [`request_timeout`](DialbackServerConfig::request_timeout)), decides with
//! [`Admission`], dials every port of the address the connection comes
//! from — never any other, the request cannot name one — and answers with a
//! [`Message::Report`] or a [`Message::Refusal`], then closes.
//!
//! Abuse limits:
//! - the TCP handshake proves the source address before the server reads a
//!   byte, and the server never writes more than it has read on a control
//!   connection: garbage shorter than a refusal (28 bytes) is closed
//!   without an answer, an oversized length stops the read after the
//!   8-byte header;
//! - dials go to the source's address only, and only if [`TargetPolicy`]
//!   permits it (global addresses by default);
//! - ports per request, requests per source per second, requests in flight
//!   and open control connections are capped ([`Limits`],
//!   [`max_connections`](DialbackServerConfig::max_connections));
//! - every dial ends within [`DialTimeouts::longest`]; a UDP dial sends
//!   `udp_tries` 28-byte datagrams, a TCP dial sends its 28-byte probe only
//!   once the dialled port completed a handshake.
//!
//! [`TargetPolicy`]: super::TargetPolicy

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::admission::{Admission, Limits};
use super::dial::{DialTimeouts, dial};
use super::error::DialbackError;
use super::list::List;
use super::message::{DialResult, HEADER_LEN, MAX_MESSAGE_LEN, Message, Nonce, RefusalCode};
use super::policy::canonical;
use super::stream::{ReadError, read_message, write_message};

/// The size of a refusal on the wire.
const REFUSAL_LEN: usize = HEADER_LEN + 4;

/// How a dial-back server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialbackServerConfig {
    /// Where to listen for control connections (TCP). `[::]:PORT` listens
    /// for IPv4 and IPv6 clients alike, whatever the system's default.
    pub bind: SocketAddr,
    /// Admission limits: ports per request, rate per source, capacity,
    /// which targets and ports may be dialled.
    pub limits: Limits,
    /// Dial timing.
    pub timeouts: DialTimeouts,
    /// The time a client has to send its request after connecting.
    pub request_timeout: Duration,
    /// Control connections open at once; more are closed at once, unread
    /// and unanswered.
    pub max_connections: usize,
}

impl DialbackServerConfig {
    /// Defaults, listening on `bind`.
    pub fn new(bind: SocketAddr) -> Self {
        DialbackServerConfig {
            bind,
            limits: Limits::default(),
            timeouts: DialTimeouts::default(),
            request_timeout: Duration::from_secs(5),
            max_connections: 256,
        }
    }
}

/// What a server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DialbackCounters {
    /// Control connections accepted.
    pub connections: u64,
    /// Connections closed at once because too many were open.
    pub connections_dropped: u64,
    /// Requests answered with a report.
    pub served: u64,
    /// Refusals sent, by reason.
    pub refused_bad_request: u64,
    /// …
    pub refused_rate_limited: u64,
    /// …
    pub refused_busy: u64,
    /// …
    pub refused_port_not_allowed: u64,
    /// …
    pub refused_too_many_ports: u64,
    /// …
    pub refused_target_not_allowed: u64,
    /// Connections closed without an answer: timeouts, early ends, and
    /// garbage shorter than a refusal (answering would send more than
    /// was received).
    pub closed_unanswered: u64,
    /// Ports dialled.
    pub dials: u64,
    /// Bytes read from control connections.
    pub control_bytes_in: u64,
    /// Bytes written to control connections.
    pub control_bytes_out: u64,
}

impl DialbackCounters {
    /// Refusals sent for `reason`.
    pub fn refused(&self, reason: RefusalCode) -> u64 {
        match reason {
            RefusalCode::BadRequest => self.refused_bad_request,
            RefusalCode::RateLimited => self.refused_rate_limited,
            RefusalCode::Busy => self.refused_busy,
            RefusalCode::PortNotAllowed => self.refused_port_not_allowed,
            RefusalCode::TooManyPorts => self.refused_too_many_ports,
            RefusalCode::TargetNotAllowed => self.refused_target_not_allowed,
        }
    }
}

/// The live tallies behind [`DialbackCounters`], updated from every connection task.
#[derive(Debug, Default)]
struct LiveCounters {
    connections: AtomicU64,
    connections_dropped: AtomicU64,
    served: AtomicU64,
    refused: [AtomicU64; RefusalCode::ALL.len()],
    closed_unanswered: AtomicU64,
    dials: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

impl LiveCounters {
    fn snapshot(&self) -> DialbackCounters {
        let r = |code: RefusalCode| {
            let i = RefusalCode::ALL
                .iter()
                .position(|c| *c == code)
                .unwrap_or(0);
            self.refused[i].load(Ordering::Relaxed)
        };
        DialbackCounters {
            connections: self.connections.load(Ordering::Relaxed),
            connections_dropped: self.connections_dropped.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
            refused_bad_request: r(RefusalCode::BadRequest),
            refused_rate_limited: r(RefusalCode::RateLimited),
            refused_busy: r(RefusalCode::Busy),
            refused_port_not_allowed: r(RefusalCode::PortNotAllowed),
            refused_too_many_ports: r(RefusalCode::TooManyPorts),
            refused_target_not_allowed: r(RefusalCode::TargetNotAllowed),
            closed_unanswered: self.closed_unanswered.load(Ordering::Relaxed),
            dials: self.dials.load(Ordering::Relaxed),
            control_bytes_in: self.bytes_in.load(Ordering::Relaxed),
            control_bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }

    fn refusal(&self, code: RefusalCode) {
        if let Some(i) = RefusalCode::ALL.iter().position(|c| *c == code) {
            add(&self.refused[i], 1);
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: DialbackServerConfig,
    admission: Mutex<Admission>,
    counters: LiveCounters,
    open: AtomicUsize,
}

/// A running dial-back server's counters, readable from anywhere.
#[derive(Debug, Clone)]
pub struct DialbackCountersHandle(Arc<Shared>);

impl DialbackCountersHandle {
    /// The counters now.
    pub fn get(&self) -> DialbackCounters {
        self.0.counters.snapshot()
    }
}

/// Stops a running [`DialbackServer`] (or [`SipEcho`](crate::sip::SipEcho)).
#[derive(Debug, Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    pub(crate) fn new(tx: watch::Sender<bool>) -> Self {
        StopHandle(tx)
    }

    /// Stops the server: it accepts nothing more and abandons the requests
    /// in progress (their control connections close unanswered).
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// The dial-back server.
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit_probe::dialback::DialbackError> {
/// use natkit_probe::dialback::{DialbackServer, DialbackServerConfig};
/// let server = DialbackServer::bind(DialbackServerConfig::new("0.0.0.0:7007".parse().unwrap())).await?;
/// let stop = server.stop_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     stop.stop();
/// });
/// let counters = server.run().await?;
/// println!("served {}", counters.served);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DialbackServer {
    listener: TcpListener,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
}

impl DialbackServer {
    /// Binds the control listener.
    pub async fn bind(config: DialbackServerConfig) -> Result<Self, DialbackError> {
        let listener = listen(config.bind).map_err(|source| DialbackError::Bind {
            addr: config.bind,
            source,
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(DialbackServer {
            listener,
            shared: Arc::new(Shared {
                admission: Mutex::new(Admission::new(config.limits.clone())),
                config,
                counters: LiveCounters::default(),
                open: AtomicUsize::new(0),
            }),
            stop_tx,
            stop_rx,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.bind)
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop_tx.clone())
    }

    /// A handle to read the counters while it runs.
    pub fn counters(&self) -> DialbackCountersHandle {
        DialbackCountersHandle(self.shared.clone())
    }

    /// Serves until stopped; returns the counters.
    pub async fn run(self) -> Result<DialbackCounters, DialbackError> {
        let DialbackServer {
            listener,
            shared,
            stop_tx: _keep,
            mut stop_rx,
        } = self;
        let mut tasks = JoinSet::new();
        let mut accept_errors = 0u32;
        loop {
            if *stop_rx.borrow() {
                break;
            }
            tokio::select! {
                _ = stop_rx.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        accept_errors = 0;
                        add(&shared.counters.connections, 1);
                        if shared.open.load(Ordering::Relaxed) >= shared.config.max_connections {
                            add(&shared.counters.connections_dropped, 1);
                            drop(stream);
                            continue;
                        }
                        shared.open.fetch_add(1, Ordering::Relaxed);
                        let s = shared.clone();
                        tasks.spawn(async move {
                            serve(&s, stream, peer).await;
                            s.open.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    // Out of descriptors and the like: wait and go on;
                    // give up only if it never recovers.
                    Err(e) => {
                        accept_errors += 1;
                        if accept_errors > 100 {
                            return Err(DialbackError::Accept(e));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        tasks.shutdown().await;
        Ok(shared.counters.snapshot())
    }
}

/// Releases an admitted request's slot however the request ends.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.admission).finish();
    }
}

fn lock(m: &Mutex<Admission>) -> std::sync::MutexGuard<'_, Admission> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    let counters = &shared.counters;
    let config = &shared.config;
    let source = canonical(peer.ip());
    let mut received = 0usize;
    let read = tokio::time::timeout(
        config.request_timeout,
        read_message(&mut stream, &mut received),
    )
    .await;
    add(&counters.bytes_in, received);
    let refuse = |nonce: Nonce, reason: RefusalCode| Message::Refusal { nonce, reason };
    let (nonce, ports) = match read {
        Ok(Ok(Message::Request { nonce, ports })) => (nonce, ports),
        Ok(Ok(other)) => {
            let r = refuse(other.nonce(), bad_request(shared, source));
            answer(shared, &mut stream, &r, received).await;
            return;
        }
        Ok(Err(ReadError::Malformed { nonce, .. })) => {
            let r = refuse(nonce.unwrap_or_default(), bad_request(shared, source));
            answer(shared, &mut stream, &r, received).await;
            return;
        }
        Ok(Err(ReadError::Io(_))) | Err(_) => {
            add(&counters.closed_unanswered, 1);
            return;
        }
    };
    let admitted = lock(&shared.admission).admit(Instant::now(), source, ports.as_slice());
    if let Err(reason) = admitted {
        answer(shared, &mut stream, &refuse(nonce, reason), received).await;
        return;
    }
    let _slot = InFlight(shared);
    // A dial task that dies reports silence.
    let mut out: Vec<DialResult> = ports
        .as_slice()
        .iter()
        .map(|&port| DialResult {
            port,
            ..Default::default()
        })
        .collect();
    let target = dial_target(peer);
    let mut dials = JoinSet::new();
    for (i, &port) in ports.as_slice().iter().enumerate() {
        add(&counters.dials, 1);
        let t = config.timeouts;
        dials.spawn(async move { (i, dial(target, port, nonce, t).await) });
    }
    while let Some(joined) = dials.join_next().await {
        if let Ok((i, r)) = joined
            && let Some(slot) = out.get_mut(i)
        {
            *slot = r;
        }
    }
    let list = List::from_slice(&out).unwrap_or_default();
    let report = Message::Report {
        nonce,
        observed: SocketAddr::new(source, peer.port()),
        results: list,
    };
    // The report may be longer than the request: the handshake validated
    // the address, and the client asked for exactly this.
    if let Ok(n) = write_message(&mut stream, &report).await {
        add(&counters.bytes_out, n);
        add(&counters.served, 1);
    }
}

/// The address every dial of a request goes to: the control connection's
/// source, the one address the TCP handshake proved — a request has no
/// field to name another. An IPv4 client of a dual-stack listener comes as
/// `::ffff:a.b.c.d` and is dialled over IPv4; an IPv6 link-local source
/// (dialled only where the policy allows non-global targets) keeps its
/// zone, without which it could not be dialled.
fn dial_target(peer: SocketAddr) -> SocketAddr {
    match (peer, canonical(peer.ip())) {
        (SocketAddr::V6(v6), IpAddr::V6(ip)) => SocketAddrV6::new(ip, 0, 0, v6.scope_id()).into(),
        (_, ip) => SocketAddr::new(ip, 0),
    }
}

/// The control listener. An unspecified IPv6 `bind` (`[::]`) is made
/// dual-stack explicitly, whatever the system's default
/// (`net.ipv6.bindv6only` on Linux; the BSDs and Windows default to
/// IPv6 only), so one server answers IPv4 and IPv6 clients; any other
/// address listens on its own family only.
fn listen(bind: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if let SocketAddr::V6(v6) = bind
        && v6.ip().is_unspecified()
    {
        socket.set_only_v6(false)?;
    }
    // As std and tokio do on Unix: a restarted server rebinds a port whose
    // old connections linger in TIME_WAIT (Windows' SO_REUSEADDR would let
    // two servers share the port instead).
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&bind.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// A malformed request still spends a token of its source, so garbage
/// floods are throttled like requests; the answer says which limit hit.
fn bad_request(shared: &Shared, source: IpAddr) -> RefusalCode {
    match lock(&shared.admission).take_token(Instant::now(), source) {
        Ok(()) => RefusalCode::BadRequest,
        Err(code) => code,
    }
}

/// Sends a refusal, but never more bytes than were received on the
/// connection: a shorter scrap of garbage is closed unanswered.
async fn answer(shared: &Shared, stream: &mut TcpStream, refusal: &Message, received: usize) {
    let c = &shared.counters;
    if received < REFUSAL_LEN {
        add(&c.closed_unanswered, 1);
        return;
    }
    debug_assert!(refusal.buffer_len() == REFUSAL_LEN && REFUSAL_LEN <= MAX_MESSAGE_LEN);
    if let Message::Refusal { reason, .. } = refusal {
        match write_message(stream, refusal).await {
            Ok(n) => {
                add(&c.bytes_out, n);
                c.refusal(*reason);
            }
            Err(_) => add(&c.closed_unanswered, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Whatever the request says, the dial goes to the source: its IPv4
    /// form when it came mapped, its zone when link-local, its port never.
    #[test]
    fn the_dial_target_is_the_source() {
        assert_eq!(dial_target(sa("88.77.66.2:40000")), sa("88.77.66.2:0"));
        assert_eq!(
            dial_target(sa("[::ffff:88.77.66.2]:40000")),
            sa("88.77.66.2:0")
        );
        assert_eq!(
            dial_target(sa("[2a0d:88:77:77::2]:40000")),
            sa("[2a0d:88:77:77::2]:0")
        );
        let SocketAddr::V6(zoned) = dial_target(sa("[fe80::1%7]:40000")) else {
            panic!("stays IPv6");
        };
        assert_eq!((zoned.scope_id(), zoned.port()), (7, 0));
    }
}
