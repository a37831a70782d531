//! The client side: down, then up, each bounded in bytes and time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{MAX_BYTES, MAX_TIME, SUMMARY_LEN, Summary, kbps, request};

/// Which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Direction {
    /// From this host to the server.
    Up,
    /// From the server to this host.
    Down,
}

/// What to measure against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthConfig {
    /// The bandwidth server.
    pub server: SocketAddr,
    /// Bytes asked for each way (at most [`MAX_BYTES`]).
    pub bytes: u32,
    /// The time to connect.
    pub connect_timeout: Duration,
}

impl BandwidthConfig {
    /// 256 KiB each way, 1 s to connect.
    pub fn new(server: SocketAddr) -> Self {
        BandwidthConfig {
            server,
            bytes: MAX_BYTES,
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// One direction's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthMeasurement {
    /// Which way.
    pub direction: Direction,
    /// Bytes moved between the first byte and the last that were timed.
    pub bytes: u64,
    /// Microseconds from the first byte to the last.
    pub micros: u64,
    /// Kilobits per second; `None` when too little moved to tell.
    pub kbps: Option<u64>,
    /// Why there is no figure: `connect_failed`, `refused`, `no_data`,
    /// `no_summary`; `None` when measured.
    pub error: Option<&'static str>,
}

impl BandwidthMeasurement {
    fn failed(direction: Direction, error: &'static str) -> Self {
        BandwidthMeasurement {
            direction,
            bytes: 0,
            micros: 0,
            kbps: None,
            error: Some(error),
        }
    }

    fn measured(direction: Direction, bytes: u64, micros: u64) -> Self {
        let kbps = kbps(bytes, micros);
        BandwidthMeasurement {
            direction,
            bytes,
            micros,
            kbps,
            error: kbps.is_none().then_some("no_data"),
        }
    }
}

/// Measures down, then up (one at a time, so neither's acknowledgements
/// crowd the other): at most about 2 × ([`MAX_TIME`] + 0.5 s) plus the
/// connects.
pub async fn measure_bandwidth(
    config: &BandwidthConfig,
) -> (BandwidthMeasurement, BandwidthMeasurement) {
    let down = down(config).await;
    let up = up(config).await;
    (down, up)
}

async fn connect(
    config: &BandwidthConfig,
    d: Direction,
) -> Result<TcpStream, BandwidthMeasurement> {
    match tokio::time::timeout(config.connect_timeout, TcpStream::connect(config.server)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(BandwidthMeasurement::failed(d, "refused"))
        }
        _ => Err(BandwidthMeasurement::failed(d, "connect_failed")),
    }
}

fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

async fn down(config: &BandwidthConfig) -> BandwidthMeasurement {
    let d = Direction::Down;
    let mut s = match connect(config, d).await {
        Ok(s) => s,
        Err(m) => return m,
    };
    if s.write_all(&request(false, config.bytes)).await.is_err() {
        return BandwidthMeasurement::failed(d, "connect_failed");
    }
    // The server stops sending at MAX_TIME; what it queued still arrives.
    let deadline = Instant::now() + MAX_TIME + Duration::from_millis(500);
    let mut buf = vec![0u8; 16 * 1024];
    let mut first: Option<(Instant, usize)> = None;
    let mut last = Instant::now();
    let mut total = 0u64;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        last = Instant::now();
        first.get_or_insert((last, n));
        total += n as u64;
    }
    match first {
        // The first read's bytes arrived before the clock started.
        Some((at, n)) => BandwidthMeasurement::measured(d, total - n as u64, micros(at, last)),
        None => BandwidthMeasurement::failed(d, "no_data"),
    }
}

async fn up(config: &BandwidthConfig) -> BandwidthMeasurement {
    let d = Direction::Up;
    let mut s = match connect(config, d).await {
        Ok(s) => s,
        Err(m) => return m,
    };
    let bytes = config.bytes.min(MAX_BYTES);
    if s.write_all(&request(true, bytes)).await.is_err() {
        return BandwidthMeasurement::failed(d, "connect_failed");
    }
    // Stop writing before the server stops reading, so it sees our end.
    let stop_writing = Instant::now() + MAX_TIME - Duration::from_millis(200);
    let chunk = vec![0xa5u8; 16 * 1024];
    let mut left = bytes as usize;
    while left > 0 {
        let n = left.min(chunk.len());
        match tokio::time::timeout_at(stop_writing, s.write_all(&chunk[..n])).await {
            Ok(Ok(())) => left -= n,
            _ => break,
        }
    }
    let _ = s.shutdown().await;
    let mut summary = [0u8; SUMMARY_LEN];
    let read = tokio::time::timeout(
        Duration::from_secs(1) + Duration::from_millis(500),
        s.read_exact(&mut summary),
    )
    .await;
    match read
        .ok()
        .and_then(Result::ok)
        .and_then(|_| Summary::parse(&summary))
    {
        Some(sum) => BandwidthMeasurement::measured(d, u64::from(sum.bytes), sum.micros),
        None => BandwidthMeasurement::failed(d, "no_summary"),
    }
}
