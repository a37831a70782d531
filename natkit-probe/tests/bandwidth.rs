//! The bandwidth server and client over loopback: both directions measured
//! within the byte cap, the per-source rate limit, and what a non-request gets.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use natkit_probe::bandwidth::{
    BandwidthConfig, BandwidthServer, BandwidthServerConfig, Direction, MAX_BYTES,
    measure_bandwidth,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn measures_both_ways_within_the_caps_then_rate_limits() {
    let server = BandwidthServer::bind(BandwidthServerConfig::new(SocketAddr::new(LO, 0)))
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let stop = server.stop_handle();
    let run = tokio::spawn(server.run());

    let (down, up) = measure_bandwidth(&BandwidthConfig::new(addr)).await;
    assert_eq!(down.direction, Direction::Down);
    assert_eq!(up.direction, Direction::Up);
    for m in [down, up] {
        assert_eq!(m.error, None, "{m:?}");
        assert!(m.bytes > 0 && m.bytes <= u64::from(MAX_BYTES), "{m:?}");
        // Loopback moves far more than screen sharing's 300 kbps.
        assert!(m.kbps.unwrap() > 300, "{m:?}");
    }

    // Not a request: closed without a byte.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);

    // The burst of 4 per source is spent (2 measurements, 1 bad request):
    // the next measurements find the door closed.
    let (down, up) = measure_bandwidth(&BandwidthConfig::new(addr)).await;
    assert!(
        down.error.is_none() || up.error.is_some(),
        "{down:?} {up:?}"
    );
    let (down2, up2) = measure_bandwidth(&BandwidthConfig::new(addr)).await;
    assert!(
        down2.error.is_some() && up2.error.is_some(),
        "{down2:?} {up2:?}"
    );

    stop.stop();
    let c = run.await.unwrap();
    assert!(c.rate_limited >= 2, "{c:?}");
    assert_eq!(c.bad_request, 1, "{c:?}");
    assert!(c.served >= 2 && c.served <= 4, "{c:?}");
}
