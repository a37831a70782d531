//! The SIP echo: sends back exactly the SIP request it received, so a client
//! can see what the path did to it.
//!
//! It listens on UDP and TCP on the SIP port (5060) and on UDP on a control
//! port (the dial-back server's port number: no ALG watches it). Limits, and
//! why:
//! - **Never more out than in.** UDP: one datagram back per datagram in, the
//!   same bytes. TCP: one request per connection, read up to
//!   [`MAX_SIP_LEN`] bytes within [`read_timeout`](SipEchoConfig::read_timeout),
//!   echoed once, then the connection closes. A forged UDP source thus gets at
//!   most what the forger sent: amplification 1×.
//! - **Only `OPTIONS` requests** ([`echoable_datagram`], [`frame_stream`]):
//!   the victim of a forged source receives a SIP capabilities query, never
//!   an INVITE that rings a phone, a REGISTER, or another protocol's bytes
//!   reflected under our address. Responses are never echoed, so two echo
//!   servers forged at each other cannot loop on answers.
//! - **No echo to ports below 1024 or to the echo's own port**: a forged
//!   source at another echo service (port 7, or another SIP echo's 5060)
//!   would otherwise bounce the request back and forth.
//! - **Rate limits**: a token bucket per source address (IPv6 per /64) and one
//!   for the whole server; what is over either is dropped silently.
//! - UDP echoes go only to addresses the target policy permits (global ones
//!   by default, like the dial-back server's dials): a forged source on the
//!   server's own network is not answered. TCP needs no such rule (the
//!   handshake proves the source) but spends the same per-source tokens, and
//!   the connections open at once are capped.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::wire::{Framing, MAX_SIP_LEN, SIP_PORT, echoable_datagram, frame_stream};
use crate::dialback::{Admission, DialbackError, Limits, StopHandle, TargetPolicy, canonical};
use crate::rate::{RateLimit, TokenBucket};

/// How a SIP echo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipEchoConfig {
    /// The SIP port's address (UDP and TCP); port 5060 for the check to mean
    /// anything, since ALGs act on it.
    pub sip: SocketAddr,
    /// The control port's address (UDP only), usually the dial-back server's
    /// address: the same port number, the other protocol.
    pub control: Option<SocketAddr>,
    /// Echoes per source address per second (IPv6: per /64).
    pub per_source: RateLimit,
    /// Echoes per second from everyone together.
    pub total: RateLimit,
    /// Sources remembered for rate limiting (older idle ones are forgotten;
    /// when all are recent, new sources get no echo).
    pub max_sources: usize,
    /// Where UDP echoes may go.
    pub targets: TargetPolicy,
    /// TCP connections open at once; more are closed unread.
    pub max_connections: usize,
    /// The time a TCP client has to send its request.
    pub read_timeout: Duration,
}

impl SipEchoConfig {
    /// Defaults: SIP on `ip`:5060, control on `control`; per source 10 echoes
    /// a second, burst 30 (a check takes 3 on a clean path and at most 21: ten
    /// tries on each UDP leg and one over TCP, so a lossy path that loses the
    /// echoes is not also rate limited); 200 a second in all, burst
    /// 400; 64 TCP connections; 3 s to send a request.
    pub fn new(ip: IpAddr, control: Option<SocketAddr>) -> Self {
        SipEchoConfig {
            sip: SocketAddr::new(ip, SIP_PORT),
            control,
            per_source: RateLimit {
                per_second: 10,
                burst: 30,
            },
            total: RateLimit {
                per_second: 200,
                burst: 400,
            },
            max_sources: 65_536,
            targets: TargetPolicy::default(),
            max_connections: 64,
            read_timeout: Duration::from_secs(3),
        }
    }
}

/// What a SIP echo has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SipEchoCounters {
    /// Datagrams received (SIP and control ports).
    pub datagrams: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Requests echoed (UDP and TCP).
    pub echoed: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent: never more than `bytes_in`.
    pub bytes_out: u64,
    /// Not echoed: not an OPTIONS request, too long, or incomplete in time.
    pub not_echoed: u64,
    /// Not echoed: over a rate limit, or too many sources or connections.
    pub rate_limited: u64,
    /// Not echoed: a source the target policy forbids, or a port below 1024
    /// or the echo's own (loop guard).
    pub refused_source: u64,
}

/// The echo's decisions on a request's source, sans-IO (the caller passes the
/// clock): the per-source buckets (the dial-back server's [`Admission`]) and
/// the server-wide one.
#[derive(Debug)]
pub struct EchoGate {
    sources: Admission,
    total: TokenBucket,
}

/// Why the [`EchoGate`] turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRefusal {
    /// Over the source's or the server's rate, or the source table is full.
    RateLimited,
    /// The target policy forbids the source (UDP), or its port is below 1024
    /// or the echo's own.
    Source,
}

impl EchoGate {
    /// A gate with full buckets at `now`.
    pub fn new(config: &SipEchoConfig, now: Instant) -> Self {
        EchoGate {
            sources: Admission::new(Limits {
                per_source: config.per_source,
                max_sources: config.max_sources,
                targets: config.targets.clone(),
                ..Limits::default()
            }),
            total: TokenBucket::new(config.total, now),
        }
    }

    /// Whether a request from `from` to the echo's port `own_port` gets an
    /// echo at `now`. `datagram`: the source is unproven (UDP), so the target
    /// policy applies. A request turned away for its source spends no token.
    pub fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        own_port: u16,
        datagram: bool,
    ) -> Result<(), GateRefusal> {
        let ip = canonical(from.ip());
        if from.port() < 1024 || from.port() == own_port {
            return Err(GateRefusal::Source);
        }
        if datagram && !self.sources.limits().targets.permits(ip) {
            return Err(GateRefusal::Source);
        }
        self.sources
            .take_token(now, ip)
            .map_err(|_| GateRefusal::RateLimited)?;
        self.total
            .try_take(now)
            .map_err(|_| GateRefusal::RateLimited)
    }
}

#[derive(Debug)]
struct Shared {
    config: SipEchoConfig,
    gate: Mutex<EchoGate>,
    counters: Mutex<SipEchoCounters>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut SipEchoCounters)) {
        f(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn snapshot(&self) -> SipEchoCounters {
        *self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(&self, from: SocketAddr, own_port: u16, datagram: bool) -> bool {
        let verdict = self
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(Instant::now(), from, own_port, datagram);
        match verdict {
            Ok(()) => true,
            Err(GateRefusal::RateLimited) => {
                self.count(|c| c.rate_limited += 1);
                false
            }
            Err(GateRefusal::Source) => {
                self.count(|c| c.refused_source += 1);
                false
            }
        }
    }
}

/// A running SIP echo's counters, readable from anywhere.
#[derive(Debug, Clone)]
pub struct SipEchoCountersHandle(Arc<Shared>);

impl SipEchoCountersHandle {
    /// The counters now.
    pub fn get(&self) -> SipEchoCounters {
        self.0.snapshot()
    }
}

/// The SIP echo server.
#[derive(Debug)]
pub struct SipEcho {
    udp: UdpSocket,
    tcp: TcpListener,
    control: Option<UdpSocket>,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
}

fn bind_error(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> DialbackError {
    move |source| DialbackError::Bind { addr, source }
}

impl SipEcho {
    /// Binds the SIP port (UDP and TCP) and the control port (UDP).
    pub async fn bind(config: SipEchoConfig) -> Result<Self, DialbackError> {
        let udp = UdpSocket::bind(config.sip)
            .await
            .map_err(bind_error(config.sip))?;
        // The same port for TCP, also when the configuration says "any" (0).
        let sip = udp.local_addr().map_err(bind_error(config.sip))?;
        let tcp = TcpListener::bind(sip).await.map_err(bind_error(sip))?;
        let control = match config.control {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(bind_error(addr))?),
            None => None,
        };
        let (stop_tx, _) = watch::channel(false);
        Ok(SipEcho {
            udp,
            tcp,
            control,
            shared: Arc::new(Shared {
                gate: Mutex::new(EchoGate::new(&config, Instant::now())),
                config,
                counters: Mutex::default(),
            }),
            stop_tx,
        })
    }

    /// The SIP port's address (the same for UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        self.udp.local_addr().unwrap_or(self.shared.config.sip)
    }

    /// The control port's address, if there is one.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(self.stop_tx.clone())
    }

    /// A handle to read the counters while it runs.
    pub fn counters(&self) -> SipEchoCountersHandle {
        SipEchoCountersHandle(self.shared.clone())
    }

    /// Echoes until stopped; returns the counters.
    pub async fn run(self) -> SipEchoCounters {
        let mut stop = self.stop_tx.subscribe();
        let mut tasks = JoinSet::new();
        tasks.spawn(udp_loop(self.udp, self.shared.clone()));
        if let Some(c) = self.control {
            tasks.spawn(udp_loop(c, self.shared.clone()));
        }
        tasks.spawn(tcp_loop(self.tcp, self.shared.clone()));
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        tasks.shutdown().await;
        self.shared.snapshot()
    }
}

async fn udp_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let own_port = socket.local_addr().map_or(0, |a| a.port());
    // One byte more than the limit tells a too-long datagram from one that
    // fills the limit exactly.
    let mut buf = vec![0u8; MAX_SIP_LEN + 1];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // ICMP errors for earlier echoes and the like: keep going.
            continue;
        };
        let d = &buf[..n];
        let echoable = echoable_datagram(d).is_ok();
        shared.count(|c| {
            c.datagrams += 1;
            c.bytes_in += n as u64;
            c.not_echoed += u64::from(!echoable);
        });
        if !echoable {
            continue;
        }
        if !shared.admit(from, own_port, true) {
            continue;
        }
        if let Ok(sent) = socket.send_to(d, from).await {
            shared.count(|c| {
                c.bytes_out += sent as u64;
                c.echoed += 1;
            });
        }
    }
}

async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    let own_port = listener.local_addr().map_or(0, |a| a.port());
    let slots = Arc::new(Semaphore::new(shared.config.max_connections));
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let permit = slots.clone().try_acquire_owned();
        shared.count(|c| {
            c.connections += 1;
            c.rate_limited += u64::from(permit.is_err());
        });
        let Ok(permit) = permit else {
            continue;
        };
        if !shared.admit(from, own_port, false) {
            continue;
        }
        let s = shared.clone();
        conns.spawn(async move {
            let _permit = permit;
            echo_stream(stream, &s).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Reads one request (bounded in bytes and time), echoes exactly it, closes.
async fn echo_stream(mut stream: TcpStream, shared: &Shared) {
    let mut buf = Vec::with_capacity(1024);
    let read = tokio::time::timeout(shared.config.read_timeout, async {
        let mut chunk = [0u8; 1024];
        loop {
            match frame_stream(&buf) {
                Framing::Complete(len) => return Some(len),
                Framing::Rejected(_) => return None,
                Framing::Incomplete => {}
            }
            let room = MAX_SIP_LEN.saturating_sub(buf.len()).clamp(1, chunk.len());
            match stream.read(&mut chunk[..room]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    shared.count(|c| c.bytes_in += n as u64);
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    })
    .await;
    let Ok(Some(len)) = read else {
        shared.count(|c| c.not_echoed += 1);
        return;
    };
    let echo = &buf[..len];
    let written = tokio::time::timeout(shared.config.read_timeout, async {
        stream.write_all(echo).await?;
        stream.shutdown().await
    })
    .await;
    if let Ok(Ok(())) = written {
        shared.count(|c| {
            c.bytes_out += len as u64;
            c.echoed += 1;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gate_per_source_total_and_loop_guard() {
        let t0 = Instant::now();
        let mut config = SipEchoConfig::new(addr("0.0.0.0:0").ip(), None);
        config.per_source = RateLimit {
            per_second: 5,
            burst: 10,
        };
        config.total = RateLimit {
            per_second: 20,
            burst: 25,
        };
        let mut g = EchoGate::new(&config, t0);
        let a = addr("88.77.66.2:40000");
        let echoed = (0..100)
            .filter(|_| g.admit(t0, a, 5060, true).is_ok())
            .count();
        assert_eq!(echoed, 10, "one source: its burst and no more");
        assert_eq!(g.admit(t0, a, 5060, true), Err(GateRefusal::RateLimited));
        // A second source has its own bucket; then the server-wide one runs out.
        let b = addr("88.77.66.3:40000");
        assert_eq!(
            (0..100)
                .filter(|_| g.admit(t0, b, 5060, true).is_ok())
                .count(),
            10
        );
        let c = addr("88.77.66.4:40000");
        assert_eq!(
            (0..100)
                .filter(|_| g.admit(t0, c, 5060, true).is_ok())
                .count(),
            5,
            "the total burst of 25 is spent"
        );
        // Refills at the configured rates.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(g.admit(later, a, 5060, true), Ok(()));
        // Loop guard and target policy, without spending tokens.
        let mut g = EchoGate::new(&config, t0);
        for (from, datagram) in [
            ("88.77.66.2:7", true),
            ("88.77.66.2:5060", true),
            ("88.77.66.2:1023", false),
            ("192.168.1.10:40000", true),
            ("127.0.0.1:40000", true),
        ] {
            assert_eq!(
                g.admit(t0, addr(from), 5060, datagram),
                Err(GateRefusal::Source),
                "{from}"
            );
        }
        // TCP proves its source: a private one is echoed.
        assert_eq!(g.admit(t0, addr("192.168.1.10:40000"), 5060, false), Ok(()));
        for _ in 0..10 {
            let _ = g.admit(t0, a, 5060, true);
        }
        assert_eq!(g.admit(t0, a, 5060, true), Err(GateRefusal::RateLimited));
    }
}
