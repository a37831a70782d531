//! The tokio driver for STUN over UDP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::counters::BindingCounters;
use super::plan::RtoPlan;
use super::request::BindingRequest;
use super::response::BindingResponse;
use super::transaction::{AcceptFrom, BindingTransaction};
use crate::Error;

/// Largest datagram read; larger ones are truncated and then dropped as malformed.
const RECV_BUF: usize = 4096;

/// Runs `transactions` on one socket until every one has ended, dispatching each
/// received datagram to the transaction whose id it carries.
///
/// Returns what was received that belonged to none of them (other ids, non-STUN
/// datagrams). A failed send ends only that transaction (with [`Error::Io`]); a failed
/// receive (other than a reported ICMP error) ends the run.
///
/// Time is tokio's: on a paused clock the retransmissions and the give-up happen at
/// their exact simulated times.
pub async fn run_transactions(
    socket: &UdpSocket,
    transactions: &mut [BindingTransaction],
) -> Result<BindingCounters, Error> {
    let mut unmatched = BindingCounters::default();
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let now = super::now();
        for t in transactions.iter_mut() {
            t.handle_timeout(now);
            while let Some(tx) = t.poll_transmit(now) {
                let (dest, payload) = (tx.destination, tx.payload.to_vec());
                if let Err(e) = socket.send_to(&payload, dest).await {
                    t.abort(Error::io("send", &e));
                }
            }
        }
        let Some(deadline) = transactions
            .iter()
            .filter_map(BindingTransaction::poll_timeout)
            .min()
        else {
            return Ok(unmatched);
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let now = super::now();
                    let bytes = &buf[..n];
                    match transactions.iter_mut().find(|t| t.matches_id(bytes)) {
                        Some(t) => {
                            t.handle_input(now, from, bytes);
                        }
                        None if crate::Message::new_checked(bytes).is_ok() => {
                            unmatched.dropped_wrong_transaction += 1;
                        }
                        None => unmatched.dropped_malformed += 1,
                    }
                }
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                ) => {}
                Err(e) => return Err(Error::io("receive", &e)),
            },
            () = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// Binds an unspecified-address UDP socket of `server`'s family on an ephemeral port.
pub async fn bind_for(server: SocketAddr) -> Result<UdpSocket, Error> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    UdpSocket::bind(local)
        .await
        .map_err(|e| Error::io("bind", &e))
}

/// One Binding transaction to `server` on `socket`, following `plan`, with a
/// transaction id from the thread's CSPRNG.
pub async fn binding_on(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &BindingRequest,
    plan: RtoPlan,
) -> Result<BindingResponse, Error> {
    let t = BindingTransaction::new(
        request,
        server,
        AcceptFrom::Destination,
        plan,
        &mut rand::rng(),
    )?;
    let mut ts = [t];
    run_transactions(socket, &mut ts).await?;
    let [mut t] = ts;
    // `run_transactions` returns only once every transaction has ended, and an ended
    // one holds its outcome: the fallback is for the type, never taken.
    t.take_outcome().unwrap_or(Err(Error::InvalidConfig {
        reason: "transaction ended without an outcome",
    }))
}

/// One Binding transaction to `server` from a fresh ephemeral socket: the simplest way
/// to learn the mapped address.
pub async fn binding(
    server: SocketAddr,
    request: &BindingRequest,
    plan: RtoPlan,
) -> Result<BindingResponse, Error> {
    let socket = bind_for(server).await?;
    binding_on(&socket, server, request, plan).await
}
