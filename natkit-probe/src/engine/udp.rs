//! One UDP try: a connected socket sends the payload and waits for a reply
//! or for an ICMP error, which the error queue names (type, code, sender).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::errno::{ErrorClass, classify};
use super::errqueue::{self, Queued};
use crate::order::SplitMix64;
use crate::payload::PayloadKind;
use crate::scheduler::{AttemptOutcome, Launch};

pub(crate) fn fresh_socket(target: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::DGRAM.nonblocking(),
        Some(SockProtocol::UDP),
    )?;
    errqueue::enable(&socket, target.is_ipv6())?;
    Ok(socket)
}

fn from_error(err: &io::Error, rtt: Duration) -> AttemptOutcome {
    match classify(err) {
        ErrorClass::Refused => AttemptOutcome::Refused { rtt },
        ErrorClass::TimedOut => AttemptOutcome::Silence,
        ErrorClass::Exhausted(errno) => AttemptOutcome::Exhausted { errno },
        ErrorClass::Local(errno) => AttemptOutcome::LocalError { errno },
    }
}

/// The length of the next datagram (its real length, even when longer than
/// the buffer), or `WouldBlock`.
pub(super) fn receive(socket: &UdpSocket) -> io::Result<usize> {
    socket.try_io(Interest::READABLE, || {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::socket::{MsgFlags, recv};
            use std::os::fd::AsRawFd;
            let mut buf = [0u8; 512];
            let flags = MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT;
            recv(socket.as_raw_fd(), &mut buf, flags).map_err(io::Error::from)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut buf = [0u8; 2048];
            socket.try_recv(&mut buf)
        }
    })
}

/// The next error-queue entry, clearing the error readiness when empty.
pub(crate) fn queued(socket: &UdpSocket) -> Option<Queued> {
    let r = socket.try_io(Interest::ERROR, || match errqueue::take(socket) {
        Ok(Some(q)) => Ok(q),
        Ok(None) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        Err(e) => Err(e),
    });
    r.ok()
}

/// Runs one UDP try.
pub(crate) async fn attempt(launch: Launch) -> AttemptOutcome {
    let target = launch.probe.addr;
    let socket = match fresh_socket(target) {
        Ok(s) => s,
        Err(e) => return from_error(&e, Duration::ZERO),
    };
    if let Err(e) = socket.connect(&target.into()) {
        return from_error(&e, Duration::ZERO);
    }
    let socket = match UdpSocket::from_std(socket.into()) {
        Ok(s) => s,
        Err(e) => return from_error(&e, Duration::ZERO),
    };
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return from_error(&e, Duration::ZERO),
    };
    let kind = launch.payload.unwrap_or(PayloadKind::Empty);
    let payload = kind.build(local, target, &mut SplitMix64::new(launch.nonce));
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + launch.timeout);
    match tokio::time::timeout_at(deadline, socket.send(&payload)).await {
        Err(_) => return AttemptOutcome::Silence,
        Ok(Err(e)) => return from_error(&e, start.elapsed()),
        Ok(Ok(_)) => {}
    }
    loop {
        let wait = socket.ready(Interest::READABLE | Interest::ERROR);
        match tokio::time::timeout_at(deadline, wait).await {
            Err(_) => return AttemptOutcome::Silence,
            Ok(Err(e)) => return from_error(&e, start.elapsed()),
            Ok(Ok(_)) => {}
        }
        let rtt = start.elapsed();
        // The error queue first: reading it also clears the pending socket
        // error, so a later receive does not report it a second time.
        match queued(&socket) {
            Some(Queued::Icmp(report)) if report.conclude(target.ip()).is_some() => {
                return AttemptOutcome::Icmp { report, rtt };
            }
            Some(Queued::Local { errno }) => return AttemptOutcome::LocalError { errno },
            // Packet too big and the like say nothing: keep waiting.
            Some(_) | None => {}
        }
        match receive(&socket) {
            Ok(bytes) => return AttemptOutcome::Reply { rtt, bytes },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return from_error(&e, rtt),
        }
    }
}
