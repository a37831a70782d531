//! The bandwidth check (with a dial-back server that runs `--bandwidth`): a
//! short measurement down, then up, over TCP against the server's bandwidth
//! port (the dial-back port + 1), each capped at 256 KiB and 1.5 s by the
//! server; under 300 kbit/s either way (what Apple gives for screen sharing)
//! is a `low_bandwidth` finding. See [`natkit_probe::bandwidth`].

use std::net::SocketAddr;

use natkit_probe::bandwidth::{BandwidthConfig, BandwidthMeasurement, measure_bandwidth};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::findings::FindingCode;
use crate::report::{Finding, Report, Severity};

/// Below this, either way, screen sharing suffers.
pub const LOW_BANDWIDTH_KBPS: u64 = 300;

/// What the bandwidth check measured.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BandwidthReport {
    /// The bandwidth server (the dial-back server's address, its port + 1).
    pub server: SocketAddr,
    /// From the server to this host.
    pub down: BandwidthWay,
    /// From this host to the server (as the server counted it).
    pub up: BandwidthWay,
}

/// One direction.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BandwidthWay {
    /// Kilobits per second; `None` when not measured.
    pub kbps: Option<u64>,
    /// Bytes timed.
    pub bytes: u64,
    /// Milliseconds from the first timed byte to the last.
    pub ms: u64,
    /// Why there is no figure: `connect_failed`, `refused` (the server runs
    /// no bandwidth service), `no_data`, `no_summary`; `None` when measured.
    pub error: Option<&'static str>,
}

fn way(m: &BandwidthMeasurement) -> BandwidthWay {
    BandwidthWay {
        kbps: m.kbps,
        bytes: m.bytes,
        ms: m.micros / 1000,
        error: m.error,
    }
}

/// Starts the measurement on its own task when there is a dial-back server.
pub(crate) fn start(dialback: Option<SocketAddr>) -> Option<JoinHandle<BandwidthReport>> {
    let d = dialback?;
    let server = SocketAddr::new(d.ip(), d.port().checked_add(1)?);
    Some(tokio::spawn(async move {
        let (down, up) = measure_bandwidth(&BandwidthConfig::new(server)).await;
        BandwidthReport {
            server,
            down: way(&down),
            up: way(&up),
        }
    }))
}

/// The measurement once done (`None` when not run or cancelled).
pub(crate) async fn finish(
    started: Option<JoinHandle<BandwidthReport>>,
) -> Option<BandwidthReport> {
    crate::section(started?).await
}

/// One line for the text report: each way's figure, or why there is none.
pub(crate) fn describe(b: &BandwidthReport) -> String {
    let figure = |w: &BandwidthWay| match (w.kbps, w.error) {
        (Some(k), _) => format!("{k} kbit/s ({} bytes in {} ms)", w.bytes, w.ms),
        (None, Some(e)) => format!("not measured ({})", e.replace('_', " ")),
        (None, None) => "not measured".to_owned(),
    };
    format!("down {}, up {}", figure(&b.down), figure(&b.up))
}

/// The `low_bandwidth` finding, when a way measured under 300 kbit/s.
pub(crate) fn findings(r: &Report) -> Option<Finding> {
    let b = r.bandwidth.as_ref()?;
    let low: Vec<&str> = [("down", &b.down), ("up", &b.up)]
        .iter()
        .filter(|(_, w)| w.kbps.is_some_and(|k| k < LOW_BANDWIDTH_KBPS))
        .map(|&(name, _)| name)
        .collect();
    if low.is_empty() {
        return None;
    }
    let figure = |w: &BandwidthWay| {
        w.kbps
            .map_or_else(|| "not measured".to_owned(), |k| format!("{k} kbit/s"))
    };
    Some(Finding {
        code: FindingCode::LowBandwidth,
        severity: Severity::Warning,
        message: format!(
            "measured against {}: down {}, up {}; {} under the {LOW_BANDWIDTH_KBPS} kbit/s \
             each way that screen sharing needs",
            b.server,
            figure(&b.down),
            figure(&b.up),
            low.join(" and ")
        ),
        fix: "something on this network or its uplink is slow or busy: stop other large \
              transfers, move closer to the Wi-Fi access point or use a cable, or ask the \
              provider about the line's speed"
            .to_owned(),
        port: None,
        protocol: None,
        caused_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(down: Option<u64>, up: Option<u64>) -> Report {
        let w = |k: Option<u64>| BandwidthWay {
            kbps: k,
            bytes: 40_000,
            ms: 1400,
            error: k.is_none().then_some("refused"),
        };
        let mut r = Report::empty();
        r.bandwidth = Some(BandwidthReport {
            server: "88.77.66.20:7008".parse().expect("addr"),
            down: w(down),
            up: w(up),
        });
        r
    }

    #[test]
    fn under_300_either_way_is_a_finding_with_the_figures() {
        let f = findings(&with(Some(5000), Some(190))).expect("a finding");
        assert_eq!(f.code, FindingCode::LowBandwidth);
        assert!(
            f.message.starts_with(
                "measured against 88.77.66.20:7008: down 5000 kbit/s, up 190 kbit/s; up under \
                 the 300 kbit/s"
            ),
            "{}",
            f.message
        );
        let both = findings(&with(Some(180), Some(170))).expect("a finding");
        assert!(
            both.message.contains("; down and up under"),
            "{}",
            both.message
        );
        assert!(findings(&with(Some(300), Some(301))).is_none());
        assert_eq!(
            describe(with(Some(5000), None).bandwidth.as_ref().expect("b")),
            "down 5000 kbit/s (40000 bytes in 1400 ms), up not measured (refused)"
        );
        // Not measured is no claim.
        assert!(findings(&with(None, None)).is_none());
        assert!(findings(&Report::empty()).is_none());
    }
}
