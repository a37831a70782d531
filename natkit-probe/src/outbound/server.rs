//! The outbound echo: answers a 16-byte request on each configured port with
//! a reply of the same length (see the module docs for its limits).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use natkit_core::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{MAX_ECHO_PORTS, MESSAGE_LEN, reply_to};
use crate::dialback::{DialbackError, StopHandle, TargetPolicy};
use crate::rate::RateLimit;
use crate::sip::{EchoGate, GateRefusal, SipEchoConfig};

/// How an outbound echo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEchoConfig {
    /// The address to listen on.
    pub ip: IpAddr,
    /// The ports, each with its protocol (at most [`MAX_ECHO_PORTS`]).
    pub ports: Vec<(u16, Protocol)>,
    /// Replies per source address per second (IPv6: per /64).
    pub per_source: RateLimit,
    /// Replies per second to everyone together.
    pub total: RateLimit,
    /// Where UDP replies may go.
    pub targets: TargetPolicy,
    /// TCP connections open at once, over all ports; more are closed unread.
    pub max_connections: usize,
    /// The time a TCP client has to send its request.
    pub read_timeout: Duration,
}

impl OutboundEchoConfig {
    /// Defaults: per source 20 replies a second, burst 40 (a check asks each
    /// port of a profile once, and sends UDP again every 200 ms only while
    /// it goes unanswered, so loss, not the profile, decides how many
    /// more); 400 a second in all,
    /// burst 800; 64 TCP connections; 2 s to send a request.
    pub fn new(ip: IpAddr, ports: Vec<(u16, Protocol)>) -> Self {
        OutboundEchoConfig {
            ip,
            ports,
            per_source: RateLimit {
                per_second: 20,
                burst: 40,
            },
            total: RateLimit {
                per_second: 400,
                burst: 800,
            },
            targets: TargetPolicy::default(),
            max_connections: 64,
            read_timeout: Duration::from_secs(2),
        }
    }

    fn gate(&self, now: Instant) -> EchoGate {
        // The SIP echo's gate: per-source and server-wide buckets, target
        // policy for datagrams, no answer to low ports.
        let mut c = SipEchoConfig::new(self.ip, None);
        c.per_source = self.per_source;
        c.total = self.total;
        c.targets = self.targets.clone();
        EchoGate::new(&c, now)
    }
}

/// What an outbound echo has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OutboundEchoCounters {
    /// Datagrams received.
    pub datagrams: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Requests answered.
    pub answered: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent: never more than `bytes_in`.
    pub bytes_out: u64,
    /// Not answered: not a request.
    pub not_answered: u64,
    /// Not answered: over a rate limit, or too many connections.
    pub rate_limited: u64,
    /// Not answered: a source the target policy forbids, or a low port.
    pub refused_source: u64,
}

#[derive(Debug)]
struct Shared {
    config: OutboundEchoConfig,
    gate: Mutex<EchoGate>,
    counters: Mutex<OutboundEchoCounters>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut OutboundEchoCounters)) {
        f(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The gate's decision, counted when it says no.
    fn admit(&self, from: SocketAddr, own_port: u16, datagram: bool) -> bool {
        let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let refusal = gate.admit(Instant::now(), from, own_port, datagram).err();
        drop(gate);
        self.count(|c| match refusal {
            None => {}
            Some(GateRefusal::RateLimited) => c.rate_limited += 1,
            Some(GateRefusal::Source) => c.refused_source += 1,
        });
        refusal.is_none()
    }
}

/// The outbound echo server.
#[derive(Debug)]
pub struct OutboundEcho {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
}

impl OutboundEcho {
    /// Binds every configured port.
    pub async fn bind(config: OutboundEchoConfig) -> Result<Self, DialbackError> {
        let n = config.ports.len();
        if n == 0 || n > MAX_ECHO_PORTS || config.ports.iter().any(|&(p, _)| p == 0) {
            return Err(DialbackError::EchoPorts(n));
        }
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for &(port, proto) in &config.ports {
            let addr = SocketAddr::new(config.ip, port);
            let bind = |source| DialbackError::Bind { addr, source };
            match proto {
                Protocol::Udp => udp.push(UdpSocket::bind(addr).await.map_err(bind)?),
                Protocol::Tcp => tcp.push(TcpListener::bind(addr).await.map_err(bind)?),
            }
        }
        let (stop_tx, _) = watch::channel(false);
        Ok(OutboundEcho {
            udp,
            tcp,
            shared: Arc::new(Shared {
                gate: Mutex::new(config.gate(Instant::now())),
                config,
                counters: Mutex::default(),
            }),
            stop_tx,
        })
    }

    /// The ports it listens on.
    pub fn ports(&self) -> &[(u16, Protocol)] {
        &self.shared.config.ports
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(self.stop_tx.clone())
    }

    /// Answers until stopped; returns the counters.
    pub async fn run(self) -> OutboundEchoCounters {
        let mut stop = self.stop_tx.subscribe();
        let mut tasks = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.shared.config.max_connections));
        for s in self.udp {
            tasks.spawn(udp_loop(s, self.shared.clone()));
        }
        for l in self.tcp {
            tasks.spawn(tcp_loop(l, self.shared.clone(), slots.clone()));
        }
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        tasks.shutdown().await;
        *self
            .shared
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn udp_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let own_port = socket.local_addr().map_or(0, |a| a.port());
    // One byte more than a message tells a too-long datagram.
    let mut buf = [0u8; MESSAGE_LEN + 1];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let answer = reply_to(&buf[..n]);
        shared.count(|c| {
            c.datagrams += 1;
            c.bytes_in += n as u64;
            c.not_answered += u64::from(answer.is_none());
        });
        let Some(answer) = answer else { continue };
        if !shared.admit(from, own_port, true) {
            continue;
        }
        if let Ok(sent) = socket.send_to(&answer, from).await {
            shared.count(|c| {
                c.bytes_out += sent as u64;
                c.answered += 1;
            });
        }
    }
}

async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>, slots: Arc<Semaphore>) {
    let own_port = listener.local_addr().map_or(0, |a| a.port());
    let mut conns = JoinSet::new();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: let it pass.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        shared.count(|c| c.connections += 1);
        // A free slot first (no token spent on a connection closed unread).
        match slots.clone().try_acquire_owned() {
            Ok(slot) if shared.admit(from, own_port, false) => {
                let s = shared.clone();
                conns.spawn(async move {
                    answer_stream(stream, &s).await;
                    drop(slot);
                });
            }
            Ok(_) => {}
            Err(_) => shared.count(|c| c.rate_limited += 1),
        }
        while conns.try_join_next().is_some() {}
    }
}

/// Reads one message (16 bytes, bounded in time), answers it, closes.
async fn answer_stream(mut stream: TcpStream, shared: &Shared) {
    let mut buf = [0u8; MESSAGE_LEN];
    let read = tokio::time::timeout(shared.config.read_timeout, stream.read_exact(&mut buf)).await;
    let answer = match read {
        Ok(Ok(_)) => {
            shared.count(|c| c.bytes_in += MESSAGE_LEN as u64);
            reply_to(&buf)
        }
        _ => None,
    };
    let Some(answer) = answer else {
        shared.count(|c| c.not_answered += 1);
        return;
    };
    let written = tokio::time::timeout(shared.config.read_timeout, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
    if let Ok(Ok(())) = written {
        shared.count(|c| {
            c.bytes_out += MESSAGE_LEN as u64;
            c.answered += 1;
        });
    }
}
