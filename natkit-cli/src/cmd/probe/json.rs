//! `--json`: one JSON line per port, then `{"summary": …}`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_probe::dialback::{PortReachability, Reachability, ReachabilityReport, canonical};
use natkit_probe::{Backoff, PortState, PortVerdict, Reason, Stats};
use serde::Serialize;

use super::human::describe;
use super::{Request, Sink, millis};

/// One JSON line per port.
#[derive(Serialize)]
pub(super) struct PortLine<'a> {
    target: IpAddr,
    port: u16,
    protocol: Protocol,
    state: PortState,
    /// What was seen, in words.
    reason: String,
    /// The same, structured: `seen`, `rtt_us`, the ICMP report and sender …
    evidence: &'a Reason,
    rtt_ms: Option<f64>,
    tries: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<natkit_probe::PayloadKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'static str>,
}

/// The closing JSON line.
#[derive(Serialize)]
pub(super) struct SummaryLine<'a> {
    host: &'a str,
    addresses: &'a [IpAddr],
    probes: usize,
    open: usize,
    closed: usize,
    filtered: usize,
    open_filtered: usize,
    tries: u64,
    backoffs: u32,
    concurrency: usize,
    elapsed_ms: f64,
}

/// `{"summary": …}`, keeping the fields in order.
#[derive(Serialize)]
pub(super) struct SummaryWrap<T> {
    summary: T,
}

/// One JSON line per port checked with `--dialback`.
#[derive(Serialize)]
pub(super) struct ReachLine<'a> {
    port: u16,
    protocol: Protocol,
    /// The verdict.
    state: Reachability,
    /// Why, in words.
    reason: String,
    /// The decision rule's name.
    why: natkit_probe::dialback::Why,
    /// Whether our nonce proved the dial reached this host's port.
    proven: bool,
    server_saw: natkit_probe::dialback::DialOutcome,
    rtt_ms: Option<f64>,
    responder: &'a natkit_probe::dialback::ResponderSaw,
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'static str>,
}

/// The closing JSON line of a `--dialback` check.
#[derive(Serialize)]
pub(super) struct ReachSummary<'a> {
    dialback: SocketAddr,
    /// This host's public address as the server saw it (the address and
    /// port of the control connection).
    observed: SocketAddr,
    public_address: IpAddr,
    /// Our end of the control connection.
    local: SocketAddr,
    behind_nat: bool,
    ports: usize,
    reachable: usize,
    wrong_host: usize,
    closed: usize,
    filtered: usize,
    not_forwarded: usize,
    /// The unforwarded control ports dialled, one per protocol.
    controls: &'a [natkit_probe::dialback::ControlPort],
    elapsed_ms: f64,
}

/// How many ports got `verdict`.
pub(super) fn count(report: &ReachabilityReport, verdict: Reachability) -> usize {
    report.ports.iter().filter(|p| p.verdict == verdict).count()
}

/// A port's round-trip time, if the server saw an answer.
pub(super) fn reach_rtt(p: &PortReachability) -> Option<Duration> {
    (!p.rtt.is_zero()).then_some(p.rtt)
}

/// `--json`: JSON lines on stdout, one per port, then `{"summary": …}`.
pub(super) struct Json<W: Write> {
    out: W,
}

impl<W: Write> Sink for Json<W> {
    fn verdict(&mut self, request: &Request, v: PortVerdict) {
        let line = PortLine {
            target: v.probe.addr.ip(),
            port: v.probe.addr.port(),
            protocol: v.probe.protocol,
            state: v.state,
            reason: describe(&v),
            evidence: &v.reason,
            rtt_ms: v.reason.rtt().map(millis),
            tries: v.tries,
            payload: v.payload,
            purpose: request.purpose(v.probe.addr.port(), v.probe.protocol),
        };
        self.line(&line);
    }

    fn backoff(&mut self, b: Backoff) {
        report_backoff(b);
    }

    fn finish(&mut self, request: &Request, stats: &Stats) {
        let summary = SummaryLine {
            host: &request.host,
            addresses: &request.addresses,
            probes: stats.probes,
            open: stats.counts.open,
            closed: stats.counts.closed,
            filtered: stats.counts.filtered,
            open_filtered: stats.counts.open_filtered,
            tries: stats.attempts,
            backoffs: stats.backoffs,
            concurrency: stats.concurrency_max,
            elapsed_ms: millis(stats.elapsed),
        };
        self.line(&SummaryWrap { summary });
        let _ = self.out.flush();
    }

    fn reachability(&mut self, request: &Request, report: &ReachabilityReport, elapsed: Duration) {
        for p in &report.ports {
            let line = ReachLine {
                port: p.port.external,
                protocol: p.port.protocol,
                state: p.verdict,
                reason: p.why.to_string(),
                why: p.why,
                proven: p.proven,
                server_saw: p.server_saw,
                rtt_ms: reach_rtt(p).map(millis),
                responder: &p.responder,
                purpose: request.purpose(p.port.external, p.port.protocol),
            };
            self.line(&line);
        }
        let summary = ReachSummary {
            dialback: report.server,
            observed: report.observed,
            public_address: canonical(report.observed.ip()),
            local: report.local,
            behind_nat: report.behind_nat,
            ports: report.ports.len(),
            reachable: count(report, Reachability::Reachable),
            wrong_host: count(report, Reachability::WrongHost),
            closed: count(report, Reachability::Closed),
            filtered: count(report, Reachability::Filtered),
            not_forwarded: count(report, Reachability::NotForwarded),
            controls: &report.controls,
            elapsed_ms: millis(elapsed),
        };
        self.line(&SummaryWrap { summary });
        let _ = self.out.flush();
    }
}

impl Json<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    pub(super) fn stdout() -> Self {
        Json {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
        }
    }
}

impl<W: Write> Json<W> {
    fn line(&mut self, value: &impl Serialize) {
        if serde_json::to_writer(&mut self.out, value).is_ok() {
            let _ = self.out.write_all(b"\n");
        }
    }
}

pub(super) fn report_backoff(b: Backoff) {
    tracing::warn!(
        "out of sockets ({}) with {} in flight: limit lowered to {}",
        std::io::Error::from_raw_os_error(b.errno),
        b.in_flight,
        b.limit
    );
}
