//! The server's dials: one TCP connection or a few UDP datagrams per port,
//! each carrying the request's nonce, each bounded in time.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use natkit_core::Protocol;
use tokio::io::Interest;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::message::{DialOutcome, DialPort, DialResult, MAX_MESSAGE_LEN, Message, Nonce};
use super::stream::{read_message, write_message};

/// How long the server waits at each step of a dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialTimeouts {
    /// For a TCP connection to complete (the kernel retries the SYN at 1 s
    /// and 3 s within it).
    pub connect: Duration,
    /// For the nonce echo once connected.
    pub ack: Duration,
    /// UDP: datagrams sent to a silent port.
    pub udp_tries: u8,
    /// UDP: the wait after each datagram.
    pub udp_try: Duration,
}

impl Default for DialTimeouts {
    fn default() -> Self {
        DialTimeouts {
            connect: Duration::from_secs(3),
            ack: Duration::from_secs(2),
            udp_tries: 2,
            udp_try: Duration::from_millis(1500),
        }
    }
}

impl DialTimeouts {
    /// The longest one dial can take.
    pub fn longest(&self) -> Duration {
        let udp = self.udp_try * u32::from(self.udp_tries.max(1));
        (self.connect + self.ack).max(udp)
    }
}

/// Dials `port` at `target`'s address (its port is ignored; an IPv6
/// link-local target keeps its zone) and says what it saw.
pub(crate) async fn dial(
    target: SocketAddr,
    port: DialPort,
    nonce: Nonce,
    t: DialTimeouts,
) -> DialResult {
    let mut to = target;
    to.set_port(port.port);
    let (outcome, rtt) = match port.protocol {
        Protocol::Tcp => dial_tcp(to, port, nonce, t).await,
        Protocol::Udp => dial_udp(to, port, nonce, t).await,
    };
    DialResult { port, outcome, rtt }
}

/// What a connect or receive error means when no ICMP details are at hand.
/// `ECONNREFUSED` is a TCP reset or an ICMP port unreachable (Linux and the
/// BSDs report both so); other unreachables (host, network,
/// administratively prohibited: `EHOSTUNREACH`, `ENETUNREACH`, and for
/// ICMPv6 `EACCES`) come from routers.
fn error_outcome(e: &io::Error) -> DialOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => DialOutcome::Refused,
        io::ErrorKind::TimedOut => DialOutcome::Silence,
        _ => DialOutcome::Unreachable,
    }
}

/// What the ICMP errors in the socket's error queue (Linux
/// `IP_RECVERR`/`IPV6_RECVERR`) say about a dial of `target`, read by the
/// probe engine's own rules ([`IcmpReport::conclude`]) so that ICMP and
/// ICMPv6 mean the same: a port unreachable *from the target* is a refusal;
/// one from any other host (a router or firewall rejecting on the target's
/// behalf, as nftables' plain `reject` does for IPv6) and every other
/// unreachable, administratively prohibited included, is `Unreachable`.
/// Entries that conclude nothing (packet too big, …) are taken and
/// skipped, so the queue is empty when this returns `None` (then the errno
/// decides).
///
/// [`IcmpReport::conclude`]: crate::IcmpReport::conclude
#[cfg(unix)]
fn icmp_outcome<F: SocketFd>(fd: &F, target: IpAddr) -> Option<DialOutcome> {
    use crate::engine::errqueue::{Queued, take};
    // The queue is bounded by the receive buffer; this bounds the loop
    // whatever a peer sends.
    for _ in 0..64 {
        match take(fd) {
            Ok(Some(Queued::Icmp(report))) => {
                if let Some(c) = report.conclude(target) {
                    return Some(match c.state {
                        crate::PortState::Closed => DialOutcome::Refused,
                        _ => DialOutcome::Unreachable,
                    });
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
    None
}

/// Without an error queue only the errno tells.
#[cfg(not(unix))]
fn icmp_outcome<F: SocketFd>(_socket: &F, _target: IpAddr) -> Option<DialOutcome> {
    None
}

/// What a failed connect or receive on `socket` means: the queued ICMP
/// error when there is one, else the errno.
fn failure<F: SocketFd>(socket: &F, target: SocketAddr, e: &io::Error) -> DialOutcome {
    icmp_outcome(socket, target.ip()).unwrap_or_else(|| error_outcome(e))
}

/// A socket, with a descriptor whose error queue can be read where the
/// platform has one.
#[cfg(unix)]
trait SocketFd: std::os::fd::AsFd {}
#[cfg(unix)]
impl<T: std::os::fd::AsFd> SocketFd for T {}
#[cfg(not(unix))]
trait SocketFd {}
#[cfg(not(unix))]
impl<T> SocketFd for T {}

fn is_ack(m: &Message, nonce: Nonce, port: DialPort) -> bool {
    matches!(m, Message::ProbeAck { nonce: n, port: p } if *n == nonce && *p == port)
}

/// A TCP connection to `to`, or what stopped it, within `limit`. The
/// socket has its error queue on, so an ICMP error that ends the connect
/// is read with its type, code and sender.
#[cfg(unix)]
async fn connect(to: SocketAddr, limit: Duration) -> Result<TcpStream, DialOutcome> {
    use crate::engine::errno::in_progress;
    use crate::engine::tcp::{Handshake, fresh_socket, handshake};
    let deadline = tokio::time::Instant::now() + limit;
    let socket = fresh_socket(to, true).map_err(|e| error_outcome(&e))?;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if in_progress(&e) => {}
        Err(e) => return Err(failure(&socket, to, &e)),
    }
    let stream = TcpStream::from_std(socket.into()).map_err(|e| error_outcome(&e))?;
    match handshake(&stream, deadline).await {
        Handshake::Established => Ok(stream),
        Handshake::TimedOut => Err(DialOutcome::Silence),
        Handshake::Failed(e) => Err(failure(&stream, to, &e)),
    }
}

#[cfg(not(unix))]
async fn connect(to: SocketAddr, limit: Duration) -> Result<TcpStream, DialOutcome> {
    match timeout(limit, TcpStream::connect(to)).await {
        Err(_) => Err(DialOutcome::Silence),
        Ok(Err(e)) => Err(error_outcome(&e)),
        Ok(Ok(s)) => Ok(s),
    }
}

async fn dial_tcp(
    to: SocketAddr,
    port: DialPort,
    nonce: Nonce,
    t: DialTimeouts,
) -> (DialOutcome, Duration) {
    let start = Instant::now();
    let mut stream = match connect(to, t.connect).await {
        Err(DialOutcome::Silence) => return (DialOutcome::Silence, Duration::ZERO),
        Err(outcome) => return (outcome, start.elapsed()),
        Ok(s) => s,
    };
    let rtt = start.elapsed();
    // The handshake completed: this address and port answer, so the probe
    // (28 bytes) goes to a validated endpoint.
    let probe = Message::Probe { nonce, port };
    let echoed = timeout(t.ack, async {
        write_message(&mut stream, &probe).await.ok()?;
        let mut received = 0;
        read_message(&mut stream, &mut received).await.ok()
    })
    .await;
    match echoed {
        Ok(Some(m)) if is_ack(&m, nonce, port) => (DialOutcome::Verified, rtt),
        _ => (DialOutcome::AnsweredByOther, rtt),
    }
}

/// A UDP socket connected to `to` (only datagrams from the dialled port
/// are read), with its error queue on where there is one.
#[cfg(unix)]
fn udp_socket(to: SocketAddr) -> io::Result<UdpSocket> {
    let socket = crate::engine::udp::fresh_socket(to)?;
    socket.connect(&to.into())?;
    UdpSocket::from_std(socket.into())
}

#[cfg(not(unix))]
fn udp_socket(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind((any, 0))?;
    socket.connect(to)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// What a UDP dial waits for: a datagram, or (where the error queue
/// exists) an ICMP error.
#[cfg(unix)]
const UDP_WAIT: Interest = Interest::READABLE.add(Interest::ERROR);
#[cfg(not(unix))]
const UDP_WAIT: Interest = Interest::READABLE;

/// One answer to a UDP probe, or `None` if none came before `deadline`.
async fn udp_answer(
    socket: &UdpSocket,
    to: SocketAddr,
    buf: &mut [u8],
    deadline: tokio::time::Instant,
) -> Option<Result<usize, DialOutcome>> {
    loop {
        match tokio::time::timeout_at(deadline, socket.ready(UDP_WAIT)).await {
            Err(_) => return None,
            Ok(Err(e)) => return Some(Err(failure(socket, to, &e))),
            Ok(Ok(_)) => {}
        }
        // The error queue first: reading it also clears the pending socket
        // error, so the receive below does not report it a second time.
        let queued = socket.try_io(Interest::ERROR, || {
            icmp_outcome(socket, to.ip()).ok_or(io::ErrorKind::WouldBlock.into())
        });
        if let Ok(outcome) = queued {
            return Some(Err(outcome));
        }
        match socket.try_recv(buf) {
            Ok(len) => return Some(Ok(len)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Some(Err(failure(socket, to, &e))),
        }
    }
}

async fn dial_udp(
    to: SocketAddr,
    port: DialPort,
    nonce: Nonce,
    t: DialTimeouts,
) -> (DialOutcome, Duration) {
    let socket = match udp_socket(to) {
        Ok(s) => s,
        Err(e) => return (error_outcome(&e), Duration::ZERO),
    };
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let Ok(n) = (Message::Probe { nonce, port }).emit(&mut out) else {
        return (DialOutcome::Unreachable, Duration::ZERO);
    };
    let mut buf = [0u8; MAX_MESSAGE_LEN + 1];
    let start = Instant::now();
    for _ in 0..t.udp_tries.max(1) {
        if let Err(e) = socket.send(&out[..n]).await {
            return (failure(&socket, to, &e), start.elapsed());
        }
        let deadline = tokio::time::Instant::now() + t.udp_try;
        match udp_answer(&socket, to, &mut buf, deadline).await {
            None => continue,
            Some(Err(outcome)) => return (outcome, start.elapsed()),
            Some(Ok(len)) => {
                let rtt = start.elapsed();
                let reply = buf.get(..len).and_then(|b| Message::parse(b).ok());
                return match reply {
                    Some(m) if is_ack(&m, nonce, port) => (DialOutcome::Verified, rtt),
                    // An echo service sends our probe straight back: an
                    // answer, but not our responder's.
                    _ => (DialOutcome::AnsweredByOther, rtt),
                };
            }
        }
    }
    (DialOutcome::Silence, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn quick() -> DialTimeouts {
        DialTimeouts {
            connect: Duration::from_millis(500),
            ack: Duration::from_millis(300),
            udp_tries: 2,
            udp_try: Duration::from_millis(150),
        }
    }

    const LO4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    fn at(ip: IpAddr) -> SocketAddr {
        SocketAddr::new(ip, 0)
    }

    #[tokio::test]
    async fn tcp_closed_and_a_banner_service() {
        for lo in [LO4, LO6] {
            tcp_closed_and_a_banner_service_on(lo).await;
        }
    }

    async fn tcp_closed_and_a_banner_service_on(lo: IpAddr) {
        let closed = TcpListener::bind((lo, 0)).await.unwrap();
        let p = closed.local_addr().unwrap().port();
        drop(closed);
        let r = dial(at(lo), DialPort::tcp(p), Nonce([1; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::Refused);

        // A service that greets and waits: connected, no echo.
        let l = TcpListener::bind((lo, 0)).await.unwrap();
        let p = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let r = dial(at(lo), DialPort::tcp(p), Nonce([1; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::AnsweredByOther);
    }

    #[tokio::test]
    async fn udp_closed_echo_and_silent() {
        for lo in [LO4, LO6] {
            udp_closed_echo_and_silent_on(lo).await;
        }
    }

    /// On both families the closed port's answer is an ICMP port
    /// unreachable from the target itself (read from the error queue on
    /// Linux, from the errno elsewhere): a refusal.
    async fn udp_closed_echo_and_silent_on(lo: IpAddr) {
        let s = UdpSocket::bind((lo, 0)).await.unwrap();
        let p = s.local_addr().unwrap().port();
        drop(s);
        let r = dial(at(lo), DialPort::udp(p), Nonce([2; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::Refused);

        let echo = UdpSocket::bind((lo, 0)).await.unwrap();
        let p = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut b = [0u8; 512];
            let (n, from) = echo.recv_from(&mut b).await.unwrap();
            echo.send_to(&b[..n], from).await.unwrap();
        });
        let r = dial(at(lo), DialPort::udp(p), Nonce([2; 16]), quick()).await;
        assert_eq!(
            r.outcome,
            DialOutcome::AnsweredByOther,
            "an echo is not an ack"
        );

        let silent = UdpSocket::bind((lo, 0)).await.unwrap();
        let p = silent.local_addr().unwrap().port();
        let r = dial(at(lo), DialPort::udp(p), Nonce([2; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::Silence);
        let mut b = [0u8; 512];
        // Both tries arrived, each a 28-byte probe.
        for _ in 0..2 {
            let n = silent.recv(&mut b).await.unwrap();
            assert_eq!(n, 28);
        }
    }
}
