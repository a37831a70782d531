//! The bandwidth server (see the module docs for its limits).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{MAX_BYTES, MAX_TIME, REQUEST_LEN, Summary, parse_request};
use crate::dialback::{DialbackError, StopHandle};
use crate::rate::RateLimit;
use crate::sip::{EchoGate, SipEchoConfig};

/// How a bandwidth server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandwidthServerConfig {
    /// The TCP address to listen on.
    pub bind: SocketAddr,
    /// Requests per source address per second (IPv6: per /64).
    pub per_source: RateLimit,
    /// Requests per second from everyone together.
    pub total: RateLimit,
    /// Connections open at once.
    pub max_connections: usize,
}

impl BandwidthServerConfig {
    /// Defaults: per source 1 request a second, burst 4 (a check makes 2);
    /// 20 a second in all, burst 40; 16 connections at once (each at most
    /// 256 KiB and 1.5 s).
    pub fn new(bind: SocketAddr) -> Self {
        BandwidthServerConfig {
            bind,
            per_source: RateLimit {
                per_second: 1,
                burst: 4,
            },
            total: RateLimit {
                per_second: 20,
                burst: 40,
            },
            max_connections: 16,
        }
    }
}

/// What a bandwidth server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BandwidthCounters {
    /// Connections accepted.
    pub connections: u64,
    /// Requests served.
    pub served: u64,
    /// Bytes received (requests and uploads).
    pub bytes_in: u64,
    /// Bytes sent (downloads and summaries).
    pub bytes_out: u64,
    /// Closed unserved: no request in time, or not a request.
    pub bad_request: u64,
    /// Closed unserved: over a rate limit or too many connections.
    pub rate_limited: u64,
}

#[derive(Debug)]
struct Shared {
    gate: Mutex<EchoGate>,
    counters: Mutex<BandwidthCounters>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut BandwidthCounters)) {
        f(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The bandwidth server.
#[derive(Debug)]
pub struct BandwidthServer {
    listener: TcpListener,
    max_connections: usize,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
}

impl BandwidthServer {
    /// Binds the listening socket.
    pub async fn bind(config: BandwidthServerConfig) -> Result<Self, DialbackError> {
        let addr = config.bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DialbackError::Bind { addr, source })?;
        // The SIP echo's gate: per-source and server-wide buckets (a TCP
        // source is proven, so no target policy applies).
        let mut gate = SipEchoConfig::new(addr.ip(), None);
        gate.per_source = config.per_source;
        gate.total = config.total;
        let (stop_tx, _) = watch::channel(false);
        Ok(BandwidthServer {
            listener,
            max_connections: config.max_connections,
            shared: Arc::new(Shared {
                gate: Mutex::new(EchoGate::new(&gate, Instant::now())),
                counters: Mutex::default(),
            }),
            stop_tx,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(self.stop_tx.clone())
    }

    /// Serves until stopped; returns the counters.
    pub async fn run(self) -> BandwidthCounters {
        let mut stop = self.stop_tx.subscribe();
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let own_port = self.listener.local_addr().map_or(0, |a| a.port());
        let mut conns = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.changed() => break,
            };
            let Ok((stream, from)) = accepted else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let shared = self.shared.clone();
            shared.count(|c| c.connections += 1);
            let admitted = shared
                .gate
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(Instant::now(), from, own_port, false)
                .is_ok();
            match slots.clone().try_acquire_owned() {
                Ok(slot) if admitted => {
                    conns.spawn(async move {
                        serve(stream, &shared).await;
                        drop(slot);
                    });
                }
                _ => shared.count(|c| c.rate_limited += 1),
            }
            while conns.try_join_next().is_some() {}
        }
        conns.shutdown().await;
        *self
            .shared
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request: read it (2 s), then send or receive within [`MAX_TIME`].
async fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut req = [0u8; REQUEST_LEN];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut req)).await;
    let Some((up, bytes)) = read
        .ok()
        .and_then(Result::ok)
        .and_then(|_| parse_request(&req))
    else {
        shared.count(|c| c.bad_request += 1);
        return;
    };
    shared.count(|c| c.bytes_in += REQUEST_LEN as u64);
    let deadline = tokio::time::Instant::now() + MAX_TIME;
    if up {
        let mut buf = vec![0u8; 16 * 1024];
        let mut got: u32 = 0;
        // The first read's bytes arrived before the clock started.
        let mut first: Option<(Instant, u32)> = None;
        let mut last = Instant::now();
        while got < bytes.min(MAX_BYTES) {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                    last = Instant::now();
                    first.get_or_insert((last, n));
                    got = got.saturating_add(n);
                }
                _ => break,
            }
        }
        let (timed, micros) = first.map_or((0, 0), |(at, n)| {
            let micros = u64::try_from(last.duration_since(at).as_micros()).unwrap_or(u64::MAX);
            (got - n, micros)
        });
        let summary = Summary {
            bytes: timed,
            micros,
        }
        .to_bytes();
        let sent = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&summary)).await;
        shared.count(|c| {
            c.bytes_in += u64::from(got);
            c.bytes_out += if matches!(sent, Ok(Ok(()))) {
                summary.len() as u64
            } else {
                0
            };
            c.served += 1;
        });
        // Closing with the client's bytes still arriving would reset the
        // connection and could take the summary with it: FIN, then drain
        // briefly (not counted in the summary).
        let _ = stream.shutdown().await;
        let drain = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(n)) = tokio::time::timeout_at(drain, stream.read(&mut buf)).await {
            if n == 0 {
                break;
            }
        }
    } else {
        let chunk = vec![0x5au8; 16 * 1024];
        let mut left = bytes.min(MAX_BYTES) as usize;
        let mut sent = 0u64;
        while left > 0 {
            let n = left.min(chunk.len());
            match tokio::time::timeout_at(deadline, stream.write_all(&chunk[..n])).await {
                Ok(Ok(())) => {
                    left -= n;
                    sent += n as u64;
                }
                _ => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.shutdown()).await;
        shared.count(|c| {
            c.bytes_out += sent;
            c.served += 1;
        });
    }
}
