//! Where the classifier's sockets live, so that one run cannot leave a filter open
//! for the next.
//!
//! A socket that sends to the server's alternate address (the mapping tests, the
//! binding lifetime's probing socket) leaves a NAT mapping whose filter admits that
//! address for the NAT's timeout (30 s to minutes), and the mapping outlives the
//! socket. If a later run's filtering socket happens to get the same local port, it
//! gets that mapping back, with the filter already open, and a restricted cone reads
//! as a full cone (seen in the lab: once in a few hundred back-to-back runs, when the
//! system handed out a recently used ephemeral port again). So the sockets that
//! contact the alternate address are bound to a port outside the system's ephemeral
//! range, and the filtering sockets keep ephemeral ports: the two never share one.

use std::net::{IpAddr, SocketAddr};

use rand::RngExt;
use tokio::net::UdpSocket;

use crate::Error;

/// The ports chosen from when the system's ephemeral range is unknown or does not
/// overlap them: below every system's default ephemeral range (Linux 32768–60999,
/// macOS and Windows 49152–65535) and above the registered services that crowd the
/// low thousands.
const OUTSIDE: (u16, u16) = (20_000, 32_767);

/// How many random ports are tried before giving up on placing the socket.
const TRIES: u32 = 32;

/// The system's ephemeral port range, where it can be read.
fn ephemeral_range() -> Option<(u16, u16)> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
        Some((it.next()??, it.next()??))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The range to pick from: [`OUTSIDE`], or the larger gap around a system range
/// that overlaps it.
pub(crate) fn outside_range(ephemeral: Option<(u16, u16)>) -> (u16, u16) {
    match ephemeral {
        Some((lo, hi)) if lo <= OUTSIDE.1 && hi >= OUTSIDE.0 => {
            let below = (1024, lo.saturating_sub(1));
            let above = (hi.saturating_add(1), u16::MAX);
            let size = |(a, b): (u16, u16)| u32::from(b).saturating_sub(u32::from(a));
            if size(below) >= size(above) {
                below
            } else {
                above
            }
        }
        _ => OUTSIDE,
    }
}

/// A UDP socket on `ip` at a random port outside the ephemeral range; `Ok(None)`
/// if no such port could be had (every try in use, or a range too small).
pub(crate) async fn bind_outside_ephemeral(ip: IpAddr) -> Result<Option<UdpSocket>, Error> {
    let (lo, hi) = outside_range(ephemeral_range());
    if hi <= lo {
        return Ok(None);
    }
    for _ in 0..TRIES {
        let port = rand::rng().random_range(lo..=hi);
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(Error::io("bind", &e)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_never_overlaps_the_ephemeral_one() {
        assert_eq!(outside_range(None), OUTSIDE);
        assert_eq!(outside_range(Some((32_768, 60_999))), OUTSIDE);
        assert_eq!(outside_range(Some((49_152, 65_535))), OUTSIDE);
        // A system that hands out ports from 10000 up: the gap above it, or below.
        assert_eq!(outside_range(Some((10_000, 40_000))), (40_001, 65_535));
        assert_eq!(outside_range(Some((25_000, 65_535))), (1024, 24_999));
        for eph in [(1024, 65_535), (15_000, 30_000), (32_000, 33_000)] {
            let (lo, hi) = outside_range(Some(eph));
            assert!(
                hi < eph.0 || lo > eph.1 || hi <= lo,
                "{eph:?} -> {lo}..{hi}"
            );
        }
    }

    #[tokio::test]
    async fn a_socket_is_placed_outside_the_ephemeral_range() {
        let s = bind_outside_ephemeral(IpAddr::from([127, 0, 0, 1]))
            .await
            .expect("bind")
            .expect("a free port");
        let port = s.local_addr().expect("addr").port();
        let (lo, hi) = outside_range(ephemeral_range());
        assert!((lo..=hi).contains(&port), "{port} not in {lo}..{hi}");
    }
}
