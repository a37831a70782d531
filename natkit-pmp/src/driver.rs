//! The thin tokio driver: a UDP socket, the clock, and a [`Transaction`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::transaction::{Event, Exchange, Outcome, Transaction};

/// Room for the largest PCP message (1100 bytes) and one byte more, so an
/// oversized datagram shows as such instead of being cut to a valid size.
const RECV_BUF: usize = 1101;

/// Binds an unconnected UDP socket on the address that talks to `server`.
///
/// The socket is not connected so that datagrams from other sources reach
/// us and can be counted as spoofed instead of being dropped unseen by the
/// kernel. `local` picks the source address (which NAT-PMP and PCP servers
/// map to); `None` or an unspecified address means the one the routing
/// table uses towards `server`.
pub(crate) async fn bind_towards(server: SocketAddr, local: Option<IpAddr>) -> Result<UdpSocket> {
    let local = match local.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => ip,
        None => route_source(server)?,
    };
    if local.is_ipv4() != server.is_ipv4() {
        return Err(Error::AddressFamily {
            detail: "local address and server are of different families",
        });
    }
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|source| Error::Io { op: "bind", source })?;
    hear_icmp_errors(&socket, server);
    Ok(socket)
}

/// Asks Linux to report ICMP errors on this unconnected socket (it does
/// only for connected ones otherwise): the gateway's port unreachable then
/// ends an exchange at once instead of after the whole plan. Best effort:
/// without it the plan still ends the exchange.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn hear_icmp_errors(socket: &UdpSocket, server: SocketAddr) {
    use nix::sys::socket::{setsockopt, sockopt};
    let set = match server {
        SocketAddr::V4(_) => setsockopt(socket, sockopt::Ipv4RecvErr, &true),
        SocketAddr::V6(_) => setsockopt(socket, sockopt::Ipv6RecvErr, &true),
    };
    if let Err(e) = set {
        tracing::debug!(error = %e, "IP_RECVERR not set; ICMP errors go unheard");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn hear_icmp_errors(_socket: &UdpSocket, _server: SocketAddr) {}

/// The source address the OS would use to reach `server` (a UDP "connect"
/// sends nothing; it only picks a route).
fn route_source(server: SocketAddr) -> Result<IpAddr> {
    let any = match server {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let route = std::net::UdpSocket::bind(any).map_err(|source| Error::Io {
        op: "route",
        source,
    })?;
    route.connect(server).map_err(|source| Error::Io {
        op: "route",
        source,
    })?;
    let local = route.local_addr().map_err(|source| Error::Io {
        op: "route",
        source,
    })?;
    Ok(local.ip())
}

/// The drivers' one clock: tokio's, handed to the sans-IO cores as a std
/// `Instant`. The timers the driver sleeps on are tokio's too, so on a paused
/// test clock a transaction's time and its timers move together.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs `txn` to its end on `socket` with the drivers' clock ([`now`]).
/// Returns the outcome (or a socket error) and what the transaction counted.
pub(crate) async fn run<E: Exchange>(
    socket: &UdpSocket,
    mut txn: Transaction<E>,
) -> (Result<Outcome<E::Answer>>, Counters) {
    let result = drive(socket, &mut txn).await;
    (result, txn.counters())
}

async fn drive<E: Exchange>(
    socket: &UdpSocket,
    txn: &mut Transaction<E>,
) -> Result<Outcome<E::Answer>> {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        while let Some(t) = txn.poll_transmit() {
            socket
                .send_to(t.payload, t.destination)
                .await
                .map_err(|source| Error::Io { op: "send", source })?;
        }
        while let Some(event) = txn.poll_event() {
            if let Event::Dropped { from, reason } = event {
                tracing::debug!(%from, ?reason, server = %txn.server(), "dropped datagram");
            }
        }
        if let Some(outcome) = txn.take_outcome() {
            return Ok(outcome);
        }
        let Some(deadline) = txn.poll_timeout() else {
            // A finished transaction always has an outcome; be safe anyway.
            return Err(Error::InvalidPlan {
                reason: "transaction ended without an outcome",
            });
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let n = n.min(buf.len());
                    txn.handle_input(now(), from, &buf[..n]);
                }
                // ICMP port unreachable for a request: only the server was
                // sent to from this socket, so nothing listens on its port.
                // RFC 6886 §3.1: conclude at once; PCP shares the port, and
                // a closed port answers neither.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                ) => {
                    tracing::debug!(error = %e, server = %txn.server(), "ICMP port unreachable");
                    return Err(Error::PortUnreachable {
                        server: txn.server(),
                        sends: u32::try_from(txn.counters().sent).unwrap_or(u32::MAX),
                    });
                }
                Err(source) => return Err(Error::Io { op: "recv", source }),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                txn.handle_timeout(now());
            }
        }
    }
}

/// Turns a timed-out outcome into [`Error::Timeout`].
pub(crate) fn answered<T>(outcome: Outcome<T>, server: SocketAddr) -> Result<(T, Instant)> {
    match outcome {
        Outcome::Answered { answer, at, .. } => Ok((answer, at)),
        Outcome::TimedOut { sends, elapsed } => Err(Error::Timeout {
            server,
            sends,
            elapsed,
        }),
    }
}
