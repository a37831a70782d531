//! The client side: one request per port, all at once, within one timeout.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    MAX_ECHO_PORTS, MESSAGE_LEN, OutboundLeg, OutboundOutcome, OutboundVerdict, decide, reply,
    request,
};

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCheckConfig {
    /// The echo's address (the dial-back server's).
    pub server: IpAddr,
    /// The ports to try (the first [`MAX_ECHO_PORTS`] are tried).
    pub ports: Vec<(u16, Protocol)>,
    /// A TCP port that should answer a plain connect (the dial-back server's
    /// own): the control.
    pub control: Option<u16>,
    /// The whole check ends within this.
    pub timeout: Duration,
    /// How often an unanswered UDP request is sent again (loss).
    pub udp_resend: Duration,
}

impl OutboundCheckConfig {
    /// For the dial-back server at `dialback`: its address, its port as the
    /// control, 2 s, UDP sent again every 200 ms (ten sends: on a path that
    /// loses 20 % of packets each way an open port stays silent for the
    /// whole check with a chance of 0.36¹⁰, about 4 in a million).
    pub fn for_dialback(dialback: SocketAddr, ports: Vec<(u16, Protocol)>) -> Self {
        OutboundCheckConfig {
            server: dialback.ip(),
            ports,
            control: Some(dialback.port()),
            timeout: Duration::from_secs(2),
            udp_resend: Duration::from_millis(200),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCheck {
    /// The verdict over all legs.
    pub verdict: OutboundVerdict,
    /// Each port's request and what came of it: the control first, then the
    /// ports in the order given.
    pub legs: Vec<OutboundLeg>,
}

/// Tries every port at once; returns within the configured timeout (plus
/// scheduling).
pub async fn check_outbound(config: &OutboundCheckConfig) -> OutboundCheck {
    let deadline = Instant::now() + config.timeout;
    let mut tasks = JoinSet::new();
    let control = config.control.map(|p| (p, Protocol::Tcp, true));
    let ports = config
        .ports
        .iter()
        .take(MAX_ECHO_PORTS)
        .map(|&(p, proto)| (p, proto, false));
    for (i, (port, protocol, is_control)) in control.into_iter().chain(ports).enumerate() {
        let to = SocketAddr::new(config.server, port);
        let resend = config.udp_resend;
        tasks.spawn(async move {
            let start = Instant::now();
            let outcome = match (protocol, is_control) {
                (Protocol::Tcp, true) => tcp_connect(to, deadline).await.map(|_| ()),
                (Protocol::Tcp, false) => tcp_leg(to, deadline).await,
                (Protocol::Udp, _) => udp_leg(to, deadline, resend).await,
            };
            let leg = OutboundLeg {
                port,
                protocol,
                control: is_control,
                rtt_ms: outcome
                    .is_ok()
                    .then(|| u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)),
                outcome: outcome.err().unwrap_or(OutboundOutcome::Answered),
            };
            (i, leg)
        });
    }
    let mut legs: Vec<(usize, OutboundLeg)> = tasks.join_all().await;
    legs.sort_by_key(|&(i, _)| i);
    let legs: Vec<OutboundLeg> = legs.into_iter().map(|(_, l)| l).collect();
    OutboundCheck {
        verdict: decide(&legs),
        legs,
    }
}

fn nonce() -> [u8; 11] {
    let mut n = [0u8; 11];
    if getrandom::fill(&mut n).is_err() {
        // Without OS randomness the clock still tells our reply from a stale one.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        n.copy_from_slice(&t.to_be_bytes()[5..]);
    }
    n
}

/// An OS error on the way as an outcome: resets and port unreachables are
/// refusals, host/network unreachables (ICMP, also "administratively
/// prohibited") are a firewall's rejection.
fn io_outcome(kind: ErrorKind) -> OutboundOutcome {
    match kind {
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => OutboundOutcome::Refused,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => OutboundOutcome::Unreachable,
        ErrorKind::TimedOut => OutboundOutcome::Silent,
        _ => OutboundOutcome::Failed,
    }
}

/// When the hedged connects start: with the kernel's own SYN retransmit
/// after 1 s, eight SYNs within 2 s instead of two, so a lossy path is not
/// taken for a firewall (at 20 % loss each way an open port stays silent with
/// a chance of 0.36⁸, about 3 in 100 000; with one connect, 13 in 100).
const CONNECT_HEDGES: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(750),
];

/// Connects started at [`CONNECT_HEDGES`], the first to connect wins (the
/// others are dropped: the server sees them close at once).
async fn tcp_connect(to: SocketAddr, deadline: Instant) -> Result<TcpStream, OutboundOutcome> {
    let mut tries = JoinSet::new();
    for delay in CONNECT_HEDGES {
        tries.spawn(async move {
            tokio::time::sleep(delay).await;
            TcpStream::connect(to).await
        });
    }
    let mut outcome = OutboundOutcome::Silent;
    loop {
        match tokio::time::timeout_at(deadline, tries.join_next()).await {
            Err(_) | Ok(None) => return Err(outcome),
            Ok(Some(Ok(Ok(s)))) => return Ok(s),
            Ok(Some(Ok(Err(e)))) => outcome = io_outcome(e.kind()),
            Ok(Some(Err(_))) => outcome = OutboundOutcome::Failed,
        }
    }
}

async fn tcp_leg(to: SocketAddr, deadline: Instant) -> Result<(), OutboundOutcome> {
    let mut stream = tcp_connect(to, deadline).await?;
    let n = nonce();
    let exchange = async {
        stream.write_all(&request(n)).await?;
        let mut buf = [0u8; MESSAGE_LEN];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(buf)) if buf == reply(n) => Ok(()),
        _ => Err(OutboundOutcome::NoReply),
    }
}

async fn udp_leg(
    to: SocketAddr,
    deadline: Instant,
    resend: Duration,
) -> Result<(), OutboundOutcome> {
    let any = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0))
        .await
        .map_err(|_| OutboundOutcome::Failed)?;
    // Connected, so the kernel hands us ICMP errors for this destination.
    socket.connect(to).await.map_err(|e| io_outcome(e.kind()))?;
    let n = nonce();
    let want = reply(n);
    let mut buf = [0u8; MESSAGE_LEN + 1];
    loop {
        if let Err(e) = socket.send(&request(n)).await {
            return Err(io_outcome(e.kind()));
        }
        let next = (Instant::now() + resend).min(deadline);
        loop {
            match tokio::time::timeout_at(next, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(len)) if buf[..len] == want => return Ok(()),
                // A stray datagram: keep listening.
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_outcome(e.kind())),
            }
        }
        if Instant::now() >= deadline {
            return Err(OutboundOutcome::Silent);
        }
    }
}
