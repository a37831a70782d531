//! The hop trace's sockets (Linux): one connected UDP socket per try with its
//! TTL set; the ICMP time exceeded, and its sender, come from the socket's
//! error queue, the target's own answer as a datagram or a port unreachable.

use std::net::SocketAddr;
use std::time::Instant;

use socket2::Socket;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use super::errqueue::Queued;
use super::udp::{fresh_socket, queued, receive};
use crate::hops::{Hop, HopConfig, HopReply, HopSchedule, HopStep, HopTry, HopsNotChecked};
use crate::order::SplitMix64;
use crate::payload::PayloadKind;

fn errno(e: &std::io::Error) -> HopsNotChecked {
    HopsNotChecked::Socket {
        errno: e.raw_os_error().unwrap_or(nix::libc::EIO),
    }
}

/// A socket for one try: TTL set, connected, its datagram sent.
fn send_try(
    target: SocketAddr,
    ttl: u8,
    payload: PayloadKind,
    rng: &mut SplitMix64,
) -> std::io::Result<Socket> {
    let socket = fresh_socket(target)?;
    if target.is_ipv4() {
        socket.set_ttl_v4(u32::from(ttl))?;
    } else {
        socket.set_unicast_hops_v6(u32::from(ttl))?;
    }
    socket.connect(&target.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::from_raw_os_error(nix::libc::EAFNOSUPPORT))?;
    socket.send(&payload.build(local, target, rng))?;
    Ok(socket)
}

/// Waits on one try's socket for what it draws, until `deadline`.
async fn listen(
    socket: Socket,
    target: SocketAddr,
    deadline: Instant,
) -> Option<(HopReply, Instant)> {
    let socket = UdpSocket::from_std(socket.into()).ok()?;
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        let ready = socket.ready(Interest::READABLE | Interest::ERROR);
        match tokio::time::timeout_at(deadline, ready).await {
            Ok(Ok(_)) => {}
            Err(_) | Ok(Err(_)) => return None,
        }
        let now = Instant::now();
        // The error queue first: reading it also clears the socket error.
        if let Some(Queued::Icmp(report)) = queued(&socket)
            && let Some(reply) = HopReply::from_icmp(&report, target.ip())
        {
            return Some((reply, now));
        }
        // A connected socket only receives from the target.
        if receive(&socket).is_ok() {
            return Some((HopReply::Reached, now));
        }
    }
}

/// Runs the [`HopSchedule`] toward `target` on real sockets.
pub(crate) async fn trace(
    target: SocketAddr,
    config: HopConfig,
) -> Result<Vec<Hop>, HopsNotChecked> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(HopsNotChecked::NoRuntime);
    }
    let mut schedule = HopSchedule::new(config, target.ip(), Instant::now());
    let deadline = schedule.deadline();
    let mut seed = [0u8; 8];
    // Transaction ids need no secrecy: without the OS's randomness the clock will do.
    if getrandom::fill(&mut seed).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        seed = u64::from(nanos).to_le_bytes();
    }
    let mut rng = SplitMix64::new(u64::from_le_bytes(seed));
    let mut tasks: JoinSet<(HopTry, Option<(HopReply, Instant)>)> = JoinSet::new();
    loop {
        match schedule.poll(Instant::now()) {
            HopStep::Send(at) => {
                let socket =
                    send_try(target, at.ttl, config.payload, &mut rng).map_err(|e| errno(&e))?;
                tasks.spawn(async move { (at, listen(socket, target, deadline).await) });
            }
            HopStep::WaitUntil(at) => {
                let at = tokio::time::Instant::from_std(at);
                tokio::select! {
                    joined = tasks.join_next(), if !tasks.is_empty() => {
                        if let Some(Ok((at, Some((reply, when))))) = joined {
                            schedule.on_reply(at, reply, when);
                        }
                    }
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            HopStep::Done => break,
        }
    }
    // Dropping the set stops the listeners still waiting and closes their sockets.
    Ok(schedule.hops())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hops::HopAnswer;
    use std::time::Duration;

    #[tokio::test]
    async fn loopback_target_is_reached_at_the_first_hop() {
        // A port that was just free: the loopback target's port unreachable
        // ends the path at TTL 1, long before the bound.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = HopConfig {
            try_timeout: Duration::from_secs(5),
            ..HopConfig::default()
        };
        let hops = trace(target, config).await.unwrap();
        assert_eq!(hops.len(), 1, "{hops:?}");
        assert_eq!(hops[0].ttl, 1);
        assert_eq!(hops[0].address, Some(target.ip()));
        assert!(
            matches!(hops[0].answer, HopAnswer::Target { .. }),
            "{hops:?}"
        );
    }
}
