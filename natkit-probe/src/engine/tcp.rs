//! One TCP connect try: non-blocking `connect()`, wait for the answer, read
//! it from `SO_ERROR` (and the error queue for ICMP details). No root needed.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProtocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::errno::{ErrorClass, classify, in_progress, not_connected};
use super::errqueue::{self, Queued};
use crate::scheduler::{AttemptOutcome, Launch};

pub(crate) fn fresh_socket(addr: SocketAddr, icmp_details: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(SockProtocol::TCP),
    )?;
    if icmp_details {
        errqueue::enable(&socket, addr.is_ipv6())?;
    }
    Ok(socket)
}

/// Arranges for an established connection to close with a reset, not a
/// FIN: a sweep of 65535 ports must not leave sockets in TIME_WAIT holding
/// local ports. (A connect that never completed leaves no TIME_WAIT, so
/// the option is set only once connected: one system call fewer per closed
/// port.)
fn reset_on_close(socket: SockRef<'_>) {
    // If this fails the socket closes gracefully: still correct.
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// What a failed connect means, consulting the error queue first; and
/// whether the queue was seen empty (so that nothing of this try is left
/// in the socket).
fn failure<F: std::os::fd::AsFd>(
    fd: &F,
    icmp_details: bool,
    target: SocketAddr,
    err: &io::Error,
    rtt: Duration,
) -> (AttemptOutcome, bool) {
    // Without IP_RECVERR nothing is queued: spare the system call.
    let mut drained = true;
    if icmp_details {
        match errqueue::take(fd) {
            Ok(None) => {}
            Ok(Some(Queued::Icmp(report))) if report.conclude(target.ip()).is_some() => {
                return (AttemptOutcome::Icmp { report, rtt }, false);
            }
            Ok(Some(_)) | Err(_) => drained = false,
        }
    }
    let outcome = match classify(err) {
        ErrorClass::Refused => AttemptOutcome::Reset { rtt },
        ErrorClass::TimedOut => AttemptOutcome::Silence,
        ErrorClass::Exhausted(errno) => AttemptOutcome::Exhausted { errno },
        ErrorClass::Local(errno) => AttemptOutcome::LocalError { errno },
    };
    (outcome, drained)
}

fn setup_failure(err: &io::Error) -> AttemptOutcome {
    match classify(err) {
        ErrorClass::Exhausted(errno) => AttemptOutcome::Exhausted { errno },
        ErrorClass::Local(errno) => AttemptOutcome::LocalError { errno },
        ErrorClass::Refused => AttemptOutcome::Reset {
            rtt: Duration::ZERO,
        },
        ErrorClass::TimedOut => AttemptOutcome::Silence,
    }
}

/// Whether the established connection went to the probing socket itself.
fn is_self_connection(stream: &TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(l), Ok(p)) if l == p)
}

/// A connect under way, waiting for its answer.
#[derive(Debug)]
pub(crate) struct Connecting {
    socket: Socket,
    start: Instant,
    icmp_details: bool,
}

/// Sockets whose connect was refused, kept for the next try of the same
/// address family (Linux only, see [`answer`]): on a fast target most tries
/// end in a reset, and reusing the socket spares its creation, the
/// `IP_RECVERR` option and its closing — half the system calls of a try.
/// Each holds at most one socket per family; they close when dropped.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    v4: Option<Socket>,
    v6: Option<Socket>,
    /// Whether the sockets have `IP_RECVERR` on.
    icmp_details: bool,
}

impl Spares {
    /// An empty set for tries with (or without) ICMP details.
    pub(crate) fn new(icmp_details: bool) -> Self {
        Spares {
            v4: None,
            v6: None,
            icmp_details,
        }
    }

    fn slot(&mut self, target: SocketAddr) -> &mut Option<Socket> {
        if target.is_ipv6() {
            &mut self.v6
        } else {
            &mut self.v4
        }
    }

    /// A socket for a try of `target`: a spare, or a fresh one.
    fn socket(&mut self, target: SocketAddr) -> io::Result<Socket> {
        match self.slot(target).take() {
            Some(s) => Ok(s),
            None => fresh_socket(target, self.icmp_details),
        }
    }
}

/// What a second look at a connect says.
enum Answer {
    /// The handshake completed.
    Connected,
    /// No answer yet.
    Pending,
    /// The connect failed with this error.
    Failed(io::Error),
}

/// Whether the connect just started on `socket` has its answer.
///
/// Linux: a second `connect()` to the same address. It returns `EALREADY`
/// while the handshake is under way, success (or `EISCONN`) once it
/// completed, and the error once it failed — and in that case it also
/// takes the error and returns the socket to the unconnected state, so the
/// socket can start another connect (see `__inet_stream_connect`). One
/// system call does the work of `getsockopt(SO_ERROR)` and makes reuse
/// possible. Elsewhere: `SO_ERROR`, then the peer address.
#[cfg(target_os = "linux")]
fn answer(socket: &Socket, target: SocketAddr) -> Answer {
    use nix::errno::Errno;
    match socket.connect(&target.into()) {
        Ok(()) => Answer::Connected,
        Err(e) => match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::EISCONN) => Answer::Connected,
            Some(Errno::EALREADY | Errno::EINPROGRESS) => Answer::Pending,
            _ => Answer::Failed(e),
        },
    }
}

#[cfg(not(target_os = "linux"))]
fn answer(socket: &Socket, _target: SocketAddr) -> Answer {
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => Answer::Failed(e),
        Ok(None) if socket.peer_addr().is_ok() => Answer::Connected,
        Ok(None) => Answer::Pending,
    }
}

/// The first half of a try, without waiting: take a socket and call
/// `connect()`. On loopback (and whenever the answer is already in) the
/// kernel has processed the reset or the handshake before `connect()`
/// returns, so the outcome is known at once and no reactor registration is
/// needed; otherwise the connect is handed back to wait for. A socket whose
/// connect was refused, with nothing left in its error queue, goes back to
/// `spares`.
pub(crate) fn begin(launch: &Launch, spares: &mut Spares) -> Result<AttemptOutcome, Connecting> {
    let target = launch.probe.addr;
    let icmp_details = spares.icmp_details;
    let socket = match spares.socket(target) {
        Ok(s) => s,
        Err(e) => return Ok(setup_failure(&e)),
    };
    let start = Instant::now();
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if in_progress(&e) => {}
        Err(e) => return Ok(failure(&socket, icmp_details, target, &e, start.elapsed()).0),
    }
    match answer(&socket, target) {
        Answer::Failed(e) => {
            let (outcome, drained) = failure(&socket, icmp_details, target, &e, start.elapsed());
            if cfg!(target_os = "linux")
                && drained
                && matches!(outcome, AttemptOutcome::Reset { .. })
            {
                *spares.slot(target) = Some(socket);
            }
            Ok(outcome)
        }
        Answer::Pending => Err(Connecting {
            socket,
            start,
            icmp_details,
        }),
        Answer::Connected => {
            let rtt = start.elapsed();
            reset_on_close(SockRef::from(&socket));
            match (socket.peer_addr(), socket.local_addr()) {
                (Ok(peer), Ok(local)) if peer == local => Ok(AttemptOutcome::SelfConnected),
                _ => Ok(AttemptOutcome::Connected { rtt }),
            }
        }
    }
}

/// How a connect under way ended.
pub(crate) enum Handshake {
    /// The connection is established.
    Established,
    /// The connect failed with this error.
    Failed(io::Error),
    /// No answer before the deadline.
    TimedOut,
}

/// Waits for the answer to the connect under way on `stream`, until
/// `deadline`. Readiness alone does not prove the handshake completed (a
/// wake-up may come early), so the peer address confirms it.
pub(crate) async fn handshake(stream: &TcpStream, deadline: tokio::time::Instant) -> Handshake {
    loop {
        match tokio::time::timeout_at(deadline, stream.writable()).await {
            Err(_) => return Handshake::TimedOut,
            Ok(Err(e)) => return Handshake::Failed(e),
            Ok(Ok(())) => {}
        }
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return Handshake::Failed(e),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => return Handshake::Established,
            // Woken before the handshake finished: wait again.
            Err(e) if not_connected(&e) => {
                // Clear the stale readiness so the next wait really waits.
                let _ = stream.try_io(Interest::WRITABLE, || {
                    Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                });
            }
            Err(e) => return Handshake::Failed(e),
        }
    }
}

/// The second half: wait for the answer to a connect under way.
pub(crate) async fn finish(launch: Launch, connecting: Connecting) -> AttemptOutcome {
    let target = launch.probe.addr;
    let Connecting {
        socket,
        start,
        icmp_details,
    } = connecting;
    let stream = match TcpStream::from_std(socket.into()) {
        Ok(s) => s,
        Err(e) => return setup_failure(&e),
    };
    let deadline = tokio::time::Instant::from_std(start + launch.timeout);
    let ended = handshake(&stream, deadline).await;
    let rtt = start.elapsed();
    match ended {
        Handshake::TimedOut => AttemptOutcome::Silence,
        Handshake::Failed(e) => failure(&stream, icmp_details, target, &e, rtt).0,
        Handshake::Established => {
            reset_on_close(SockRef::from(&stream));
            if is_self_connection(&stream) {
                AttemptOutcome::SelfConnected
            } else {
                AttemptOutcome::Connected { rtt }
            }
        }
    }
}
