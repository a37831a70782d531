//! Is there bandwidth enough? (Apple: screen sharing needs 300 kbps each way.)
//!
//! The dial-back server runs a [`BandwidthServer`] on a TCP port (by
//! convention the dial-back port + 1: `natkit dialback-server --bandwidth`).
//! A client ([`measure_bandwidth`]) opens one connection per direction and
//! sends a 16-byte request ([`request`]):
//! - **down**: the server sends up to the bytes asked for, capped at
//!   [`MAX_BYTES`] and [`MAX_TIME`], then closes; the client times the bytes
//!   from the first to the last.
//! - **up**: the client sends up to the bytes it announced; the server reads
//!   at most [`MAX_BYTES`] within [`MAX_TIME`], then answers with what it got
//!   and how long it took between the first and the last byte ([`Summary`]),
//!   the figure the client reports (its own send timing would measure its
//!   socket buffer).
//!
//! The server's limits: bytes and time per request as above, requests per
//! source address (IPv6 per /64) and in all by token buckets, and a cap on
//! connections open at once; every connection needs a completed TCP handshake
//! (no forged sources), and a request must arrive within 2 s.

mod client;
mod server;

pub use client::{BandwidthConfig, BandwidthMeasurement, Direction, measure_bandwidth};
pub use server::{BandwidthCounters, BandwidthServer, BandwidthServerConfig};

use std::time::Duration;

/// The most bytes one request moves.
pub const MAX_BYTES: u32 = 256 * 1024;
/// The longest one request runs on the server.
pub const MAX_TIME: Duration = Duration::from_millis(1500);
/// A request's length.
pub const REQUEST_LEN: usize = 16;
/// An upload summary's length.
pub const SUMMARY_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"NKbw";

/// A request: `up` (the client sends) or down, and the bytes wanted.
pub fn request(up: bool, bytes: u32) -> [u8; REQUEST_LEN] {
    let mut m = [0u8; REQUEST_LEN];
    m[..4].copy_from_slice(MAGIC);
    m[4] = if up { b'U' } else { b'D' };
    m[8..12].copy_from_slice(&bytes.to_be_bytes());
    m
}

/// A parsed request: `(up, bytes)` with the bytes capped at [`MAX_BYTES`];
/// `None` for anything that is not a request.
pub fn parse_request(m: &[u8]) -> Option<(bool, u32)> {
    if m.len() != REQUEST_LEN || &m[..4] != MAGIC || m[5..8] != [0; 3] || m[12..] != [0; 4] {
        return None;
    }
    let up = match m[4] {
        b'U' => true,
        b'D' => false,
        _ => return None,
    };
    let bytes = u32::from_be_bytes([m[8], m[9], m[10], m[11]]);
    Some((up, bytes.min(MAX_BYTES)))
}

/// What the server got of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Bytes received.
    pub bytes: u32,
    /// Microseconds from the first byte to the last.
    pub micros: u64,
}

impl Summary {
    /// The wire form: magic, `S`, 3 zero bytes, bytes (u32), micros (u32).
    pub fn to_bytes(self) -> [u8; SUMMARY_LEN] {
        let mut m = [0u8; SUMMARY_LEN];
        m[..4].copy_from_slice(MAGIC);
        m[4] = b'S';
        m[8..12].copy_from_slice(&self.bytes.to_be_bytes());
        let micros = u32::try_from(self.micros).unwrap_or(u32::MAX);
        m[12..].copy_from_slice(&micros.to_be_bytes());
        m
    }

    /// Parses the wire form.
    pub fn parse(m: &[u8]) -> Option<Summary> {
        if m.len() != SUMMARY_LEN || &m[..4] != MAGIC || m[4] != b'S' {
            return None;
        }
        Some(Summary {
            bytes: u32::from_be_bytes([m[8], m[9], m[10], m[11]]),
            micros: u64::from(u32::from_be_bytes([m[12], m[13], m[14], m[15]])),
        })
    }

    /// Kilobits per second (`None` for too little to tell: under 2 segments'
    /// worth or no time between the first byte and the last).
    pub fn kbps(self) -> Option<u64> {
        kbps(u64::from(self.bytes), self.micros)
    }
}

/// Kilobits per second of `bytes` over `micros`; `None` when too little
/// moved to tell (under 4 KiB or no time).
pub fn kbps(bytes: u64, micros: u64) -> Option<u64> {
    (bytes >= 4096 && micros > 0).then(|| bytes * 8 * 1000 / micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_summaries_round_trip_and_cap() {
        assert_eq!(parse_request(&request(true, 1000)), Some((true, 1000)));
        assert_eq!(
            parse_request(&request(false, u32::MAX)),
            Some((false, MAX_BYTES))
        );
        let mut bad = request(true, 1);
        bad[4] = b'X';
        assert_eq!(parse_request(&bad), None);
        assert_eq!(parse_request(&request(true, 1)[..15]), None);
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n"), None);
        let s = Summary {
            bytes: 65536,
            micros: 1_000_000,
        };
        assert_eq!(Summary::parse(&s.to_bytes()), Some(s));
        assert_eq!(s.kbps(), Some(524));
        assert_eq!(kbps(100, 10), None);
        assert_eq!(kbps(1 << 20, 0), None);
    }
}
