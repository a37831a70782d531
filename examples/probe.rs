//! probe: which ports of a host answer, and what was seen that says so.
//!
//! Runs natkit-probe's local engine (TCP connect and UDP probes, no root)
//! against one host and prints every verdict with its evidence: a reset, an
//! ICMP error and who sent it, silence after N tries, the round-trip time.
//!
//! ```text
//! cargo run --release --example probe -- --target HOST (--ports SPEC | --profile NAME)
//!     [--udp] [--json] [--rate PPS] [--seed N] [--tries N] [--concurrency N]
//!     [-4 | -6] [--all-addresses] [--all]
//! ```
//!
//! Port specs are natkit-core's: `22,80,443/tcp,4500/udp,16384-16403/udp`.
//! An item without a protocol is probed over TCP, and over UDP too with
//! `--udp`; profiles say themselves which protocol each port uses.
//!
//! Output modes are separate functions over one stream of verdicts
//! ([`Human`] and [`Json`] implement [`Sink`]); the resolution of the host
//! and the port list ([`Request`]) are shared, so an outside-in mode that
//! reports reachability verdicts fits next to [`run_local`].
//!
//! Only probe hosts you are allowed to scan.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natkit_core::{PortSpec, Protocol, Protocols, ServiceProfile};
use natkit_probe::{
    Backoff, PortOrder, PortState, ProbeConfig, ProbeEvent, ProbePlan, Prober, RateLimit, Reason,
    Stats, Verdict,
};
use serde::Serialize;

/// Probe the TCP and UDP ports of a host and say what was seen.
#[derive(Parser, Debug)]
#[command(version, about)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["ports", "profile"]))]
struct Args {
    /// The host to probe: an IPv4 or IPv6 address or a host name.
    #[arg(long, value_name = "HOST")]
    target: String,
    /// Ports, e.g. `1-65535`, `22,80,443/tcp,4500/udp,16384-16403/udp`.
    /// Items without a protocol are TCP (and UDP with --udp).
    #[arg(long, value_name = "SPEC")]
    ports: Option<String>,
    /// A service profile: back-to-my-mac, ichat, jabber, file-sharing,
    /// screen-sharing, ssh, web. Its ports carry their own protocols.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Probe the --ports items that name no protocol over UDP as well.
    #[arg(long, conflicts_with = "profile")]
    udp: bool,
    /// At most this many probe packets per second.
    #[arg(long, value_name = "PPS", value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// Seed of the port order and of the UDP payloads' ids: the same seed
    /// probes in the same order.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Probes sent to a silent port before concluding (1-16).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=16))]
    tries: u8,
    /// The most probes in flight (also kept within the descriptor limit).
    #[arg(long, value_name = "N", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Use the host name's IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use the host name's IPv6 addresses only.
    #[arg(short = '6')]
    ipv6: bool,
    /// Probe every address the host name resolves to, not just the first.
    #[arg(long)]
    all_addresses: bool,
    /// List closed ports in the table too (always done for 32 probes or
    /// fewer; JSON always has every port).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    common: natkit_examples::CommonArgs,
}

/// What to probe: the host as given, its addresses, the ports.
struct Request {
    host: String,
    addresses: Vec<IpAddr>,
    pairs: Vec<(u16, Protocol)>,
    profile: Option<&'static ServiceProfile>,
}

impl Request {
    fn plan(&self) -> Result<ProbePlan, natkit_probe::Error> {
        ProbePlan::from_pairs(&self.addresses, &self.pairs)
    }

    fn purpose(&self, port: u16, protocol: Protocol) -> Option<&'static str> {
        self.profile.and_then(|p| p.purpose_of(port, protocol))
    }
}

/// The ports to probe, and the profile they came from.
type Ports = (Vec<(u16, Protocol)>, Option<&'static ServiceProfile>);

/// The (port, protocol) pairs of `--ports` or `--profile`.
fn port_pairs(args: &Args) -> Result<Ports, String> {
    if let Some(name) = &args.profile {
        let profile = ServiceProfile::by_name(name).map_err(|e| e.to_string())?;
        return Ok((profile.port_spec().pairs(), Some(profile)));
    }
    let text = args.ports.as_deref().unwrap_or_default();
    let mut spec: PortSpec = text.parse().map_err(|e| format!("--ports: {e}"))?;
    if !args.udp {
        for r in &mut spec.ranges {
            if r.protocols == Protocols::Both {
                r.protocols = Protocols::Tcp;
            }
        }
    }
    Ok((spec.pairs(), None))
}

/// The host's addresses: an address literal as is (`[::1]` too), a name
/// through the system resolver, filtered by -4/-6, the first one unless
/// `--all-addresses`.
async fn resolve(args: &Args) -> Result<Vec<IpAddr>, String> {
    let host = args.target.trim();
    if host.is_empty() {
        return Err("--target: empty host".into());
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let found: Vec<IpAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            if host.contains(['/', ' ', '[', ']']) || host.matches(':').count() == 1 {
                return Err(format!(
                    "--target {host:?}: not an address or host name (give the host only, no port)"
                ));
            }
            tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
                .map(|sa| sa.ip())
                .collect()
        }
    };
    let mut addresses: Vec<IpAddr> = Vec::new();
    for ip in found {
        let wanted = (!args.ipv4 || ip.is_ipv4()) && (!args.ipv6 || ip.is_ipv6());
        if wanted && !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    if addresses.is_empty() {
        let family = if args.ipv4 { "IPv4" } else { "IPv6" };
        return Err(format!("{host:?} has no {family} address"));
    }
    if !args.all_addresses {
        addresses.truncate(1);
    }
    Ok(addresses)
}

fn config(args: &Args) -> ProbeConfig {
    ProbeConfig {
        tries: args.tries,
        max_concurrency: args.concurrency as usize,
        rate: args.rate.map(RateLimit::per_second),
        order: PortOrder::Shuffled { seed: args.seed },
        seed: args.seed,
        ..ProbeConfig::default()
    }
}

/// Where the events of a local run go: one implementation per output mode.
trait Sink {
    /// One port's verdict, as it comes.
    fn verdict(&mut self, request: &Request, verdict: Verdict);
    /// The engine lowered its in-flight limit.
    fn backoff(&mut self, backoff: Backoff);
    /// The run is over.
    fn finish(&mut self, request: &Request, stats: &Stats);
}

/// Probes `request` with the local engine and feeds every event to `sink`.
async fn run_local(args: &Args, request: &Request, sink: &mut dyn Sink) -> Result<(), String> {
    let plan = request.plan().map_err(|e| e.to_string())?;
    let prober = Prober::new(config(args)).map_err(|e| e.to_string())?;
    let mut stream = prober.start(plan).map_err(|e| e.to_string())?;
    while let Some(item) = stream.next().await {
        match item.map_err(|e| natkit_examples::error_line(&e))? {
            ProbeEvent::Verdict(v) => sink.verdict(request, v),
            ProbeEvent::Backoff(b) => sink.backoff(b),
            ProbeEvent::Finished(stats) => {
                sink.finish(request, &stats);
                return Ok(());
            }
            _ => {}
        }
    }
    Err("the probe run ended without a result".into())
}

/// A duration in milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// A short human duration: `38 µs`, `2.7 ms`, `1.25 s`.
fn short(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// What was seen, in words: the `reason` of the table and of JSON.
fn describe(v: &Verdict) -> String {
    let target = v.probe.addr.ip();
    match v.reason {
        Reason::Connected { rtt } => format!("connected in {}", short(rtt)),
        Reason::Reset { rtt } => format!("TCP reset from {target} after {}", short(rtt)),
        Reason::Reply { rtt, bytes } => format!("{bytes}-byte reply after {}", short(rtt)),
        Reason::Icmp {
            report,
            from_target,
            rtt,
        } => {
            let from = match report.offender {
                Some(o) if from_target => format!("from {o} (the target)"),
                Some(o) => format!("from {o} (not the target)"),
                None => "from an unknown sender".to_string(),
            };
            format!(
                "ICMP {} (type {} code {}) {from} after {}",
                report.kind.describe(),
                report.kind.icmp_type,
                report.kind.icmp_code,
                short(rtt)
            )
        }
        Reason::Refused { rtt } => format!("refused (no ICMP details) after {}", short(rtt)),
        Reason::Silence { tries, waited } => {
            let word = if tries == 1 { "try" } else { "tries" };
            format!("no answer to {tries} {word} in {}", short(waited))
        }
        other => other.to_string(),
    }
}

/// One JSON line per port.
#[derive(Serialize)]
struct PortLine<'a> {
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
struct SummaryLine<'a> {
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
struct SummaryWrap<'a> {
    summary: SummaryLine<'a>,
}

/// `--json`: JSON lines on stdout, one per port, then `{"summary": …}`.
struct Json<W: Write> {
    out: W,
}

impl<W: Write> Sink for Json<W> {
    fn verdict(&mut self, request: &Request, v: Verdict) {
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
        if serde_json::to_writer(&mut self.out, &line).is_ok() {
            let _ = self.out.write_all(b"\n");
        }
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
        if serde_json::to_writer(&mut self.out, &SummaryWrap { summary }).is_ok() {
            let _ = self.out.write_all(b"\n");
        }
        let _ = self.out.flush();
    }
}

fn report_backoff(b: Backoff) {
    tracing::warn!(
        "out of sockets ({}) with {} in flight: limit lowered to {}",
        std::io::Error::from_raw_os_error(b.errno),
        b.in_flight,
        b.limit
    );
}

/// The human report: a progress bar while probing (on a terminal), then a
/// table of the ports that are not closed (all with `--all`) and a summary.
struct Human {
    progress: ProgressBar,
    rows: Vec<Verdict>,
    closed: ClosedTally,
    show_closed: bool,
}

/// How the closed ports that are not listed were found closed.
#[derive(Default)]
struct ClosedTally {
    reset: usize,
    icmp: usize,
    other: usize,
}

impl Human {
    fn new(total: usize, show_closed: bool) -> Self {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let progress = if terminal {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} ports  {per_sec}  {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Human {
            progress,
            rows: Vec::new(),
            closed: ClosedTally::default(),
            show_closed,
        }
    }
}

impl Sink for Human {
    fn verdict(&mut self, _request: &Request, v: Verdict) {
        self.progress.inc(1);
        if v.state == PortState::Open {
            self.progress.set_message(format!("open: {}", v.probe));
        }
        if v.state == PortState::Closed && !self.show_closed {
            match v.reason {
                Reason::Reset { .. } => self.closed.reset += 1,
                Reason::Icmp { .. } => self.closed.icmp += 1,
                _ => self.closed.other += 1,
            }
        } else {
            self.rows.push(v);
        }
    }

    fn backoff(&mut self, b: Backoff) {
        self.progress.suspend(|| report_backoff(b));
    }

    fn finish(&mut self, request: &Request, stats: &Stats) {
        self.progress.finish_and_clear();
        self.rows.sort_by_key(|v| v.probe);
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let _ = print_table(&mut out, request, &self.rows, &self.closed, stats);
        let _ = writeln!(
            out,
            "{} probes in {}: {} open, {} closed, {} filtered, {} open_filtered \
             ({} tries, up to {} at once{})",
            stats.probes,
            short(stats.elapsed),
            stats.counts.open,
            stats.counts.closed,
            stats.counts.filtered,
            stats.counts.open_filtered,
            stats.attempts,
            stats.concurrency_max,
            if stats.backoffs > 0 {
                format!(", {} back-offs", stats.backoffs)
            } else {
                String::new()
            }
        );
        let _ = out.flush();
    }
}

fn print_table(
    out: &mut impl Write,
    request: &Request,
    rows: &[Verdict],
    closed: &ClosedTally,
    stats: &Stats,
) -> std::io::Result<()> {
    let addresses: Vec<String> = request.addresses.iter().map(IpAddr::to_string).collect();
    writeln!(
        out,
        "probe of {} ({}): {} ports",
        request.host,
        addresses.join(", "),
        stats.probes
    )?;
    let many_targets = request.addresses.len() > 1;
    if !rows.is_empty() {
        let mut header = String::new();
        if many_targets {
            header.push_str(&format!("{:<40} ", "ADDRESS"));
        }
        header.push_str(&format!(
            "{:<11} {:<13} {:<5} REASON",
            "PORT", "STATE", "TRIES"
        ));
        if request.profile.is_some() {
            header.push_str("  (PURPOSE)");
        }
        writeln!(out, "{header}")?;
    }
    for v in rows {
        let mut line = String::new();
        if many_targets {
            line.push_str(&format!("{:<40} ", v.probe.addr.ip()));
        }
        let port = format!("{}/{}", v.probe.addr.port(), v.probe.protocol);
        line.push_str(&format!(
            "{port:<11} {:<13} {:<5} {}",
            v.state.as_str(),
            v.tries,
            describe(v)
        ));
        if let Some(p) = v.payload {
            line.push_str(&format!(" ({p} payload)"));
        }
        if let Some(purpose) = request.purpose(v.probe.addr.port(), v.probe.protocol) {
            line.push_str(&format!("  ({purpose})"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let hidden = closed.reset + closed.icmp + closed.other;
    if hidden > 0 {
        let mut how = Vec::new();
        if closed.reset > 0 {
            how.push(format!("{} answered with a TCP reset", closed.reset));
        }
        if closed.icmp > 0 {
            how.push(format!(
                "{} with an ICMP port unreachable from the target",
                closed.icmp
            ));
        }
        if closed.other > 0 {
            how.push(format!("{} refused", closed.other));
        }
        writeln!(
            out,
            "{hidden} closed ports not shown ({}; --all lists them)",
            how.join(", ")
        )?;
    }
    Ok(())
}

/// Plans this small list their closed ports in the table too.
const SMALL_PLAN: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match natkit_examples::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    natkit_examples::init_logging(args.common.verbose);
    let (pairs, profile) = match port_pairs(&args) {
        Ok(p) => p,
        Err(e) => return natkit_examples::fail_msg(e),
    };
    let addresses = match resolve(&args).await {
        Ok(a) => a,
        Err(e) => return natkit_examples::fail_msg(e),
    };
    let request = Request {
        host: args.target.trim().to_string(),
        addresses,
        pairs,
        profile,
    };
    let total = request.addresses.len() * request.pairs.len();
    let result = if args.common.json {
        let stdout = std::io::stdout();
        let mut sink = Json {
            out: std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()),
        };
        run_local(&args, &request, &mut sink).await
    } else {
        let show_closed = args.all || total <= SMALL_PLAN;
        run_local(&args, &request, &mut Human::new(total, show_closed)).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => natkit_examples::fail_msg(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("probe").chain(list.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn ports_without_protocol_are_tcp_unless_udp() {
        let (pairs, _) = port_pairs(&args(&["--target", "h", "--ports", "53,123/udp"])).unwrap();
        assert_eq!(pairs, [(53, Protocol::Tcp), (123, Protocol::Udp)]);
        let (pairs, _) =
            port_pairs(&args(&["--target", "h", "--ports", "53,123/udp", "--udp"])).unwrap();
        assert_eq!(
            pairs,
            [
                (53, Protocol::Tcp),
                (53, Protocol::Udp),
                (123, Protocol::Udp)
            ]
        );
    }

    #[test]
    fn profiles_keep_their_protocols() {
        let (pairs, profile) =
            port_pairs(&args(&["--target", "h", "--profile", "back-to-my-mac"])).unwrap();
        assert_eq!(profile.unwrap().name, "back-to-my-mac");
        assert!(pairs.contains(&(4500, Protocol::Udp)));
        assert!(pairs.contains(&(443, Protocol::Tcp)));
        assert!(!pairs.contains(&(443, Protocol::Udp)));
    }

    #[test]
    fn nonsense_is_refused() {
        let parse = |l: &[&str]| {
            Args::try_parse_from(std::iter::once("probe").chain(l.iter().copied())).is_err()
        };
        assert!(parse(&["--target", "h"]));
        assert!(parse(&[
            "--target",
            "h",
            "--ports",
            "1",
            "--profile",
            "web"
        ]));
        assert!(parse(&["--target", "h", "--ports", "1", "--rate", "0"]));
        assert!(parse(&["--target", "h", "--ports", "1", "--tries", "17"]));
        assert!(parse(&["--target", "h", "--profile", "web", "--udp"]));
        assert!(parse(&["--target", "h", "--ports", "1", "-4", "-6"]));
        let e = port_pairs(&args(&["--target", "h", "--ports", "1,70000"])).unwrap_err();
        assert!(e.contains("70000 is above 65535"), "{e}");
        assert!(port_pairs(&args(&["--target", "h", "--profile", "nope"])).is_err());
    }

    #[test]
    fn reasons_name_the_sender() {
        let router: IpAddr = "192.168.77.1".parse().unwrap();
        let v = Verdict {
            probe: natkit_probe::PortProbe {
                addr: "88.77.66.2:443".parse().unwrap(),
                protocol: Protocol::Tcp,
            },
            state: PortState::Filtered,
            reason: Reason::Icmp {
                report: natkit_probe::IcmpReport {
                    kind: natkit_probe::IcmpKind::v4(3, 13),
                    offender: Some(router),
                    errno: 113,
                },
                from_target: false,
                rtt: Duration::from_micros(2500),
            },
            tries: 1,
            payload: None,
        };
        assert_eq!(
            describe(&v),
            "ICMP communication administratively prohibited (type 3 code 13) \
             from 192.168.77.1 (not the target) after 2.5 ms"
        );
        let silent = Verdict {
            reason: Reason::Silence {
                tries: 2,
                waited: Duration::from_millis(3000),
            },
            ..v
        };
        assert_eq!(describe(&silent), "no answer to 2 tries in 3.00 s");
    }

    #[tokio::test]
    async fn literals_resolve_without_the_resolver() {
        let a = args(&["--target", "[::1]", "--ports", "1"]);
        assert_eq!(
            resolve(&a).await.unwrap(),
            ["::1".parse::<IpAddr>().unwrap()]
        );
        let a = args(&["--target", "127.0.0.1", "--ports", "1", "-6"]);
        assert!(resolve(&a).await.unwrap_err().contains("no IPv6 address"));
        let a = args(&["--target", "127.0.0.1:80", "--ports", "1"]);
        assert!(resolve(&a).await.unwrap_err().contains("no port"));
    }
}
