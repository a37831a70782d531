//! The client: sends the check's OPTIONS over UDP and TCP to the SIP echo and
//! over UDP to its control port, all at once, and decides.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::time::Instant;

use super::verdict::{LegOutcome, LegRole, SipAlgVerdict, SipLeg, SipWhy, decide};
use super::wire::{MAX_SIP_LEN, SIP_PORT, SipTransport, compare, options_request};

/// How a SIP ALG check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCheckConfig {
    /// The echo server's address.
    pub server: IpAddr,
    /// Its SIP port (5060: the port ALGs act on).
    pub sip_port: u16,
    /// Its UDP control port (the dial-back server's port).
    pub control_port: u16,
    /// The whole check ends within this.
    pub timeout: Duration,
    /// UDP requests are sent this often until an echo comes back (loss).
    pub resend: Duration,
}

impl SipCheckConfig {
    /// The echo on `dialback`'s address: SIP on 5060, control on `dialback`'s
    /// port; 2 s in all, UDP resent every 200 ms: ten tries, so a router that
    /// drops 30 % of the packets each way (a round trip lost 51 % of the time)
    /// loses all ten about once in 800 checks.
    pub fn for_dialback(dialback: SocketAddr) -> Self {
        SipCheckConfig {
            server: dialback.ip(),
            sip_port: SIP_PORT,
            control_port: dialback.port(),
            timeout: Duration::from_secs(2),
            resend: Duration::from_millis(200),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SipCheck {
    /// Whether something on the path acts on SIP.
    pub verdict: SipAlgVerdict,
    /// The rule behind it.
    pub why: SipWhy,
    /// Each request and what came of it: control (UDP), SIP over UDP, SIP
    /// over TCP.
    pub legs: Vec<SipLeg>,
}

/// Runs the check: the three legs at once, each bounded by the timeout.
pub async fn check_sip_alg(config: &SipCheckConfig) -> SipCheck {
    let deadline = Instant::now() + config.timeout;
    let token = token();
    let sip = SocketAddr::new(config.server, config.sip_port);
    let control = SocketAddr::new(config.server, config.control_port);
    let (c, u, t) = tokio::join!(
        udp_leg(control, LegRole::Control, &token, config.resend, deadline),
        udp_leg(sip, LegRole::Sip, &token, config.resend, deadline),
        tcp_leg(sip, &token, deadline),
    );
    let legs = vec![c, u, t];
    let (verdict, why) = decide(&legs);
    SipCheck { verdict, why, legs }
}

/// 16 hex digits from the OS's randomness (a fixed one if it has none: the
/// token only keeps concurrent checks' requests apart).
fn token() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = *b"natkit00";
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

fn outcome(sent: &[u8], received: &[u8]) -> LegOutcome {
    let changes = compare(sent, received);
    if changes.is_empty() {
        LegOutcome::Intact
    } else {
        LegOutcome::Changed(changes)
    }
}

fn unspecified(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Runs one leg: `exchange` sends the request from the local address it
/// reports through `local` and says what came back; a local error is a failed
/// leg.
async fn leg<F>(transport: SipTransport, server: SocketAddr, role: LegRole, exchange: F) -> SipLeg
where
    F: AsyncFnOnce(&mut Option<SocketAddr>) -> io::Result<LegOutcome>,
{
    let mut local = None;
    let outcome = match exchange(&mut local).await {
        Ok(o) => o,
        Err(e) if refused(&e) => LegOutcome::Refused,
        Err(e) => LegOutcome::Failed {
            os_error: e.raw_os_error(),
        },
    };
    SipLeg {
        transport,
        port: server.port(),
        role,
        local,
        outcome,
    }
}

async fn udp_leg(
    server: SocketAddr,
    role: LegRole,
    token: &str,
    resend: Duration,
    deadline: Instant,
) -> SipLeg {
    leg(SipTransport::Udp, server, role, async |local| {
        // Connected: the local address is the one the route picks (the one
        // the request must carry), and only the server's datagrams come in.
        let socket = UdpSocket::bind(unspecified(server)).await?;
        socket.connect(server).await?;
        let from = socket.local_addr()?;
        *local = Some(from);
        let request = options_request(SipTransport::Udp, from, server, token);
        let mut buf = vec![0u8; MAX_SIP_LEN + 1];
        let mut next_send = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(LegOutcome::Silent);
            }
            if now >= next_send {
                // A send error (ICMP for an earlier try) is read below.
                let _ = socket.send(&request).await;
                next_send = now + resend.max(Duration::from_millis(10));
            }
            if let Ok(got) =
                tokio::time::timeout_at(next_send.min(deadline), socket.recv(&mut buf)).await
            {
                return Ok(outcome(&request, &buf[..got?]));
            }
        }
    })
    .await
}

async fn tcp_leg(server: SocketAddr, token: &str, deadline: Instant) -> SipLeg {
    leg(SipTransport::Tcp, server, LegRole::Sip, async |local| {
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        let Ok(connected) = tokio::time::timeout_at(deadline, socket.connect(server)).await else {
            return Ok(LegOutcome::NoHandshake);
        };
        let mut stream = connected?;
        let from = stream.local_addr()?;
        *local = Some(from);
        let request = options_request(SipTransport::Tcp, from, server, token);
        let mut got = Vec::new();
        let exchange = tokio::time::timeout_at(deadline, async {
            stream.write_all(&request).await?;
            // The echo closes after one request; read until then, bounded.
            let mut chunk = [0u8; 1024];
            while got.len() <= MAX_SIP_LEN {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            Ok::<(), io::Error>(())
        })
        .await;
        Ok(match exchange {
            // Cut off by the deadline (a segment lost and not yet resent): not
            // a change.
            Err(_) if request.starts_with(&got) => LegOutcome::Silent,
            // Whatever came back before the end is compared.
            _ if !got.is_empty() => outcome(&request, &got),
            // Closed or reset after the request, nothing echoed.
            Ok(Ok(())) | Ok(Err(_)) => LegOutcome::Closed,
            // Nothing by the deadline.
            Err(_) => LegOutcome::Silent,
        })
    })
    .await
}
