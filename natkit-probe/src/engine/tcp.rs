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

fn fresh_socket(addr: SocketAddr, icmp_details: bool) -> io::Result<Socket> {
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

/// What a failed connect means, consulting the error queue first.
fn failure<F: std::os::fd::AsFd>(
    fd: &F,
    icmp_details: bool,
    target: SocketAddr,
    err: &io::Error,
    rtt: Duration,
) -> AttemptOutcome {
    // Without IP_RECVERR nothing is queued: spare the system call.
    if icmp_details
        && let Ok(Some(Queued::Icmp(report))) = errqueue::take(fd)
        && report.conclude(target.ip()).is_some()
    {
        return AttemptOutcome::Icmp { report, rtt };
    }
    match classify(err) {
        ErrorClass::Refused => AttemptOutcome::Reset { rtt },
        ErrorClass::TimedOut => AttemptOutcome::Silence,
        ErrorClass::Exhausted(errno) => AttemptOutcome::Exhausted { errno },
        ErrorClass::Local(errno) => AttemptOutcome::LocalError { errno },
    }
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

/// The first half of a try, without waiting: create the socket and call
/// `connect()`. On loopback (and whenever the answer is already in) the
/// kernel has processed the reset or the handshake before `connect()`
/// returns, so the outcome is known at once and no reactor registration is
/// needed; otherwise the connect is handed back to wait for.
pub(crate) fn begin(launch: &Launch, icmp_details: bool) -> Result<AttemptOutcome, Connecting> {
    let target = launch.probe.addr;
    let socket = match fresh_socket(target, icmp_details) {
        Ok(s) => s,
        Err(e) => return Ok(setup_failure(&e)),
    };
    let start = Instant::now();
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if in_progress(&e) => {}
        Err(e) => return Ok(failure(&socket, icmp_details, target, &e, start.elapsed())),
    }
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => {
            return Ok(failure(&socket, icmp_details, target, &e, start.elapsed()));
        }
        Ok(None) => {}
    }
    let rtt = start.elapsed();
    match (socket.peer_addr(), socket.local_addr()) {
        (Ok(peer), Ok(local)) => {
            reset_on_close(SockRef::from(&socket));
            if peer == local {
                Ok(AttemptOutcome::SelfConnected)
            } else {
                Ok(AttemptOutcome::Connected { rtt })
            }
        }
        _ => Err(Connecting {
            socket,
            start,
            icmp_details,
        }),
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
    loop {
        match tokio::time::timeout_at(deadline, stream.writable()).await {
            Err(_) => return AttemptOutcome::Silence,
            Ok(Err(e)) => return failure(&stream, icmp_details, target, &e, start.elapsed()),
            Ok(Ok(())) => {}
        }
        let rtt = start.elapsed();
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return failure(&stream, icmp_details, target, &e, rtt),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => {
                reset_on_close(SockRef::from(&stream));
                if is_self_connection(&stream) {
                    return AttemptOutcome::SelfConnected;
                }
                return AttemptOutcome::Connected { rtt };
            }
            // Woken before the handshake finished: wait again.
            Err(e) if not_connected(&e) => {
                // Clear the stale readiness so the next wait really waits.
                let _ = stream.try_io(Interest::WRITABLE, || {
                    Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                });
                continue;
            }
            Err(e) => return failure(&stream, icmp_details, target, &e, rtt),
        }
    }
}
