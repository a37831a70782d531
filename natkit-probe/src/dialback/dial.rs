//! The server's dials: one TCP connection or a few UDP datagrams per port,
//! each carrying the request's nonce, each bounded in time.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use natkit_core::Protocol;
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

/// Dials `port` of `ip` and says what it saw.
pub(crate) async fn dial(ip: IpAddr, port: DialPort, nonce: Nonce, t: DialTimeouts) -> DialResult {
    let (outcome, rtt) = match port.protocol {
        Protocol::Tcp => dial_tcp(SocketAddr::new(ip, port.port), port, nonce, t).await,
        Protocol::Udp => dial_udp(SocketAddr::new(ip, port.port), port, nonce, t).await,
    };
    DialResult { port, outcome, rtt }
}

/// What a connect or receive error means. `ECONNREFUSED` is a TCP reset or
/// an ICMP port unreachable (Linux reports both so); other unreachables
/// (host, network, administratively prohibited) come from routers.
fn error_outcome(e: &io::Error) -> DialOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => DialOutcome::Refused,
        io::ErrorKind::TimedOut => DialOutcome::Silence,
        _ => DialOutcome::Unreachable,
    }
}

fn is_ack(m: &Message, nonce: Nonce, port: DialPort) -> bool {
    matches!(m, Message::ProbeAck { nonce: n, port: p } if *n == nonce && *p == port)
}

async fn dial_tcp(
    to: SocketAddr,
    port: DialPort,
    nonce: Nonce,
    t: DialTimeouts,
) -> (DialOutcome, Duration) {
    let start = Instant::now();
    let mut stream = match timeout(t.connect, TcpStream::connect(to)).await {
        Err(_) => return (DialOutcome::Silence, Duration::ZERO),
        Ok(Err(e)) => return (error_outcome(&e), start.elapsed()),
        Ok(Ok(s)) => s,
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

async fn dial_udp(
    to: SocketAddr,
    port: DialPort,
    nonce: Nonce,
    t: DialTimeouts,
) -> (DialOutcome, Duration) {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = match UdpSocket::bind((any, 0)).await {
        Ok(s) => s,
        Err(e) => return (error_outcome(&e), Duration::ZERO),
    };
    // Connected: only datagrams from the dialled port are read, and the
    // kernel reports ICMP errors for it as ECONNREFUSED etc.
    if let Err(e) = socket.connect(to).await {
        return (error_outcome(&e), Duration::ZERO);
    }
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let Ok(n) = (Message::Probe { nonce, port }).emit(&mut out) else {
        return (DialOutcome::Unreachable, Duration::ZERO);
    };
    let mut buf = [0u8; MAX_MESSAGE_LEN + 1];
    let start = Instant::now();
    for _ in 0..t.udp_tries.max(1) {
        if let Err(e) = socket.send(&out[..n]).await {
            return (error_outcome(&e), start.elapsed());
        }
        match timeout(t.udp_try, socket.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return (error_outcome(&e), start.elapsed()),
            Ok(Ok(len)) => {
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

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn tcp_closed_and_a_banner_service() {
        let closed = TcpListener::bind((LO, 0)).await.unwrap();
        let p = closed.local_addr().unwrap().port();
        drop(closed);
        let r = dial(LO, DialPort::tcp(p), Nonce([1; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::Refused);

        // A service that greets and waits: connected, no echo.
        let l = TcpListener::bind((LO, 0)).await.unwrap();
        let p = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let r = dial(LO, DialPort::tcp(p), Nonce([1; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::AnsweredByOther);
    }

    #[tokio::test]
    async fn udp_closed_echo_and_silent() {
        let s = UdpSocket::bind((LO, 0)).await.unwrap();
        let p = s.local_addr().unwrap().port();
        drop(s);
        let r = dial(LO, DialPort::udp(p), Nonce([2; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::Refused);

        let echo = UdpSocket::bind((LO, 0)).await.unwrap();
        let p = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut b = [0u8; 512];
            let (n, from) = echo.recv_from(&mut b).await.unwrap();
            echo.send_to(&b[..n], from).await.unwrap();
        });
        let r = dial(LO, DialPort::udp(p), Nonce([2; 16]), quick()).await;
        assert_eq!(
            r.outcome,
            DialOutcome::AnsweredByOther,
            "an echo is not an ack"
        );

        let silent = UdpSocket::bind((LO, 0)).await.unwrap();
        let p = silent.local_addr().unwrap().port();
        let r = dial(LO, DialPort::udp(p), Nonce([2; 16]), quick()).await;
        assert_eq!(r.outcome, DialOutcome::Silence);
        let mut b = [0u8; 512];
        // Both tries arrived, each a 28-byte probe.
        for _ in 0..2 {
            let n = silent.recv(&mut b).await.unwrap();
            assert_eq!(n, 28);
        }
    }
}
