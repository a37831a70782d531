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
//! cargo run --release --example probe -- --dialback HOST:PORT (--ports SPEC | --profile NAME)
//!     [--udp] [--json] [--target PUBLIC-ADDRESS] [-4 | -6]
//! ```
//!
//! Port specs are natkit-core's: `22,80,443/tcp,4500/udp,16384-16403/udp`.
//! An item without a protocol is probed over TCP, and over UDP too with
//! `--udp`; profiles say themselves which protocol each port uses.
//!
//! Output modes are separate functions over one stream of verdicts
//! ([`Human`] and [`Json`] implement [`Sink`]); the resolution of the host
//! and the port list ([`Request`]) are shared between the local engine
//! ([`run_local`]) and the outside-in check ([`run_dialback`]).
//!
//! With `--dialback`, nothing is probed from here: natkit's dial-back server
//! (the `dialback_server` example) connects back to this host's public
//! address on each port while a responder of ours holds the port, and the
//! verdict per port is `reachable`, `wrong_host`, `closed`, `filtered` or
//! `not_forwarded` (natkit-probe's `dialback` module documents the rules).
//! The server dials only the address the request comes from, so `--target`
//! is optional there; when given it must name the public address the server
//! sees, or the run fails after the check without printing results.
//!
//! Only probe hosts you are allowed to scan.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natkit_core::{PortSpec, Protocol, Protocols, ServiceProfile};
use natkit_probe::dialback::{
    CheckPort, ClientConfig, DialbackClient, DialbackError, MAX_CHECK_PORTS, PortReachability,
    Reachability, ReachabilityReport, RefusalCode, canonical,
};
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
    /// The host to probe: an IPv4 or IPv6 address or a host name. With
    /// --dialback it is optional and must name this host's public address.
    #[arg(long, value_name = "HOST", required_unless_present = "dialback")]
    target: Option<String>,
    /// Check from outside instead of probing: the dial-back server at
    /// HOST:PORT dials this host's public address on each port (at most
    /// 1024) while a responder of ours listens there.
    #[arg(long, value_name = "HOST:PORT",
          conflicts_with_all = ["rate", "seed", "tries", "concurrency", "all_addresses"])]
    dialback: Option<String>,
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
/// `--all-addresses` (every one with `--dialback`, to compare with the
/// address the server sees).
async fn resolve(args: &Args, host: &str) -> Result<Vec<IpAddr>, Failure> {
    let host = host.trim();
    if host.is_empty() {
        return Err(Failure::Usage("--target: empty host".into()));
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let found: Vec<IpAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            if host.contains(['/', ' ', '[', ']']) || host.matches(':').count() == 1 {
                return Err(Failure::Usage(format!(
                    "--target {host:?}: not an address or host name (give the host only, no port)"
                )));
            }
            tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| Failure::Run(format!("cannot resolve {host:?}: {e}")))?
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
        return Err(Failure::Run(format!("{host:?} has no {family} address")));
    }
    if !args.all_addresses && args.dialback.is_none() {
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
    /// A dial-back check's report (`--dialback`), `elapsed` after asking.
    fn reachability(&mut self, request: &Request, report: &ReachabilityReport, elapsed: Duration);
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

/// `--dialback HOST:PORT` to the server's address: a literal as is
/// (`[2001:db8::7]:7007` for IPv6), a name through the system resolver,
/// filtered by -4/-6, the first address.
async fn dialback_address(args: &Args, text: &str) -> Result<SocketAddr, Failure> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return family_ok(args, addr).then_some(addr).ok_or_else(|| {
            Failure::Usage(format!(
                "--dialback {text}: not of the family -4/-6 asks for"
            ))
        });
    }
    let shape = || {
        Failure::Usage(format!(
            "--dialback {text:?}: give HOST:PORT, e.g. 192.0.2.7:7007, \
             [2001:db8::7]:7007 or dialback.example.net:7007"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(shape)?;
    if host.is_empty() || host.contains([':', '[', ']', '/', ' ']) {
        return Err(shape());
    }
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(Failure::Usage(format!(
                "--dialback {text:?}: {port:?} is not a port (1-65535)"
            )));
        }
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::Run(format!("cannot resolve the dial-back server {host:?}: {e}")))?
        .find(|&a| family_ok(args, a))
        .ok_or_else(|| {
            let family = if args.ipv4 { "IPv4" } else { "IPv6" };
            Failure::Run(format!(
                "the dial-back server {host:?} has no {family} address"
            ))
        })
}

fn family_ok(args: &Args, addr: SocketAddr) -> bool {
    (!args.ipv4 || addr.is_ipv4()) && (!args.ipv6 || addr.is_ipv6())
}

/// Asks the dial-back server at `server` to check `request`'s ports from
/// outside and hands the report to `sink`. A `--target` (the addresses in
/// `request`) must name the public address the server saw.
async fn run_dialback(
    server: SocketAddr,
    request: &Request,
    sink: &mut dyn Sink,
) -> Result<(), Failure> {
    let ports: Vec<CheckPort> = request
        .pairs
        .iter()
        .map(|&(port, protocol)| CheckPort::new(port, protocol))
        .collect();
    let started = Instant::now();
    let report = DialbackClient::new(ClientConfig::new(server))
        .check(&ports)
        .await
        .map_err(|e| Failure::Run(dialback_failure(&e)))?;
    let elapsed = started.elapsed();
    let public = canonical(report.observed.ip());
    if !request.addresses.is_empty() && !request.addresses.iter().any(|&a| canonical(a) == public) {
        return Err(Failure::Usage(format!(
            "--target {}: the dial-back server {server} saw this host as {public} and dials \
             only that address; give --target {public} or leave --target out",
            request.host
        )));
    }
    sink.reachability(request, &report, elapsed);
    Ok(())
}

/// A failed check in one line; a refusal names the server's reason code.
fn dialback_failure(e: &DialbackError) -> String {
    match e {
        DialbackError::Connect { server, source } => {
            format!("cannot reach the dial-back server {server}: {source}")
        }
        DialbackError::Refused { server, reason } => {
            let code = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{reason:?}"));
            let hint = match reason {
                RefusalCode::RateLimited | RefusalCode::Busy => "; try again in a few seconds",
                RefusalCode::TooManyPorts => {
                    "; ask for fewer ports (each request also carries one control port per \
                     protocol)"
                }
                RefusalCode::PortNotAllowed => "; it dials only the ports its operator allows",
                RefusalCode::TargetNotAllowed => {
                    "; it saw a private or reserved source address (a lab server needs \
                     --allow-private)"
                }
                _ => "",
            };
            format!("the dial-back server {server} refused the check: {code} ({reason}){hint}")
        }
        other => natkit_examples::error_line(other),
    }
}

/// Why a run failed: bad arguments (exit 2) or anything else (exit 1).
#[derive(Debug)]
enum Failure {
    Usage(String),
    Run(String),
}

impl Failure {
    fn exit(self) -> ExitCode {
        match self {
            Failure::Usage(m) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            Failure::Run(m) => natkit_examples::fail_msg(m),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Run(m) => f.write_str(m),
        }
    }
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
struct SummaryWrap<T> {
    summary: T,
}

/// One JSON line per port checked with `--dialback`.
#[derive(Serialize)]
struct ReachLine<'a> {
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
struct ReachSummary<'a> {
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
fn count(report: &ReachabilityReport, verdict: Reachability) -> usize {
    report.ports.iter().filter(|p| p.verdict == verdict).count()
}

/// A port's round-trip time, if the server saw an answer.
fn reach_rtt(p: &PortReachability) -> Option<Duration> {
    (!p.rtt.is_zero()).then_some(p.rtt)
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
    fn stdout() -> Self {
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
        let bar = progress(
            Some(total as u64),
            "{bar:40.cyan/blue} {pos}/{len} ports  {per_sec}  {msg}",
        );
        Human::with(bar, show_closed)
    }

    /// For `--dialback`: a spinner while the server dials (one answer
    /// comes for all ports at once, so there is nothing to count).
    fn checking(server: SocketAddr, ports: usize) -> Self {
        let spinner = progress(None, "{spinner} {msg} {elapsed}");
        spinner.set_message(format!(
            "the dial-back server {server} is dialling {ports} port{}",
            if ports == 1 { "" } else { "s" }
        ));
        spinner.enable_steady_tick(Duration::from_millis(100));
        Human::with(spinner, true)
    }

    fn with(progress: ProgressBar, show_closed: bool) -> Self {
        Human {
            progress,
            rows: Vec::new(),
            closed: ClosedTally::default(),
            show_closed,
        }
    }
}

/// A progress bar (`len` steps) or spinner (`None`) on stderr, drawn only
/// when both stdout and stderr are terminals.
fn progress(len: Option<u64>, template: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr_with_hz(10));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
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

    fn reachability(&mut self, request: &Request, report: &ReachabilityReport, elapsed: Duration) {
        self.progress.finish_and_clear();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let _ = print_reachability(&mut out, request, report, elapsed);
        let _ = out.flush();
    }
}

/// The `--dialback` table: every port checked, in the order asked.
fn print_reachability(
    out: &mut impl Write,
    request: &Request,
    report: &ReachabilityReport,
    elapsed: Duration,
) -> std::io::Result<()> {
    let public = canonical(report.observed.ip());
    let nat = if report.behind_nat {
        format!("behind a NAT: this end is {}", report.local)
    } else {
        "no NAT in between".to_owned()
    };
    writeln!(
        out,
        "dial-back check by {} of {public} (seen as {}; {nat}): {} port{}",
        report.server,
        report.observed,
        report.ports.len(),
        if report.ports.len() == 1 { "" } else { "s" }
    )?;
    writeln!(
        out,
        "{:<11} {:<13} {:<6} {:<9} WHY{}",
        "PORT",
        "VERDICT",
        "PROVEN",
        "RTT",
        if request.profile.is_some() {
            "  (PURPOSE)"
        } else {
            ""
        }
    )?;
    for p in &report.ports {
        let port = format!("{}/{}", p.port.external, p.port.protocol);
        let mut line = format!(
            "{port:<11} {:<13} {:<6} {:<9} {}",
            p.verdict.as_str(),
            if p.proven { "yes" } else { "no" },
            reach_rtt(p).map_or_else(|| "-".to_owned(), short),
            p.why
        );
        if let Some(purpose) = request.purpose(p.port.external, p.port.protocol) {
            line.push_str(&format!("  ({purpose})"));
        }
        writeln!(out, "{line}")?;
    }
    if !report.controls.is_empty() {
        let controls: Vec<String> = report
            .controls
            .iter()
            .map(|c| format!("{}/{} {}", c.port, c.protocol, c.outcome.as_str()))
            .collect();
        writeln!(
            out,
            "unforwarded control ports (nothing of ours listens): {}",
            controls.join(", ")
        )?;
    }
    let counts: Vec<String> = Reachability::ALL
        .iter()
        .map(|&v| format!("{} {v}", count(report, v)))
        .collect();
    writeln!(
        out,
        "{} ports checked in {}: {}",
        report.ports.len(),
        short(elapsed),
        counts.join(", ")
    )
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
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

async fn run(args: &Args) -> Result<(), Failure> {
    let (pairs, profile) = port_pairs(args).map_err(Failure::Usage)?;
    let server = match &args.dialback {
        Some(text) => Some(dialback_address(args, text).await?),
        None => None,
    };
    if server.is_some() && pairs.len() > MAX_CHECK_PORTS {
        return Err(Failure::Usage(format!(
            "--dialback checks at most {MAX_CHECK_PORTS} ports at a time, {} asked for",
            pairs.len()
        )));
    }
    let (host, addresses) = match &args.target {
        Some(t) => (t.trim().to_string(), resolve(args, t).await?),
        None => (String::new(), Vec::new()),
    };
    let request = Request {
        host,
        addresses,
        pairs,
        profile,
    };
    if let Some(server) = server {
        return if args.common.json {
            run_dialback(server, &request, &mut Json::stdout()).await
        } else {
            let mut sink = Human::checking(server, request.pairs.len());
            run_dialback(server, &request, &mut sink).await
        };
    }
    let total = request.addresses.len() * request.pairs.len();
    let result = if args.common.json {
        run_local(args, &request, &mut Json::stdout()).await
    } else {
        let show_closed = args.all || total <= SMALL_PLAN;
        run_local(args, &request, &mut Human::new(total, show_closed)).await
    };
    result.map_err(Failure::Run)
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
            resolve(&a, "[::1]").await.unwrap(),
            ["::1".parse::<IpAddr>().unwrap()]
        );
        let a = args(&["--target", "127.0.0.1", "--ports", "1", "-6"]);
        let e = resolve(&a, "127.0.0.1").await.unwrap_err();
        assert!(
            matches!(&e, Failure::Run(m) if m.contains("no IPv6 address")),
            "{e}"
        );
        let a = args(&["--target", "127.0.0.1:80", "--ports", "1"]);
        let e = resolve(&a, "127.0.0.1:80").await.unwrap_err();
        assert!(
            matches!(&e, Failure::Usage(m) if m.contains("no port")),
            "{e}"
        );
    }

    #[test]
    fn dialback_needs_no_target_and_refuses_local_options() {
        let parse = |l: &[&str]| {
            Args::try_parse_from(std::iter::once("probe").chain(l.iter().copied())).is_ok()
        };
        assert!(parse(&["--dialback", "192.0.2.7:7007", "--ports", "443"]));
        assert!(parse(&[
            "--dialback",
            "h:7007",
            "--profile",
            "web",
            "--target",
            "h"
        ]));
        for local_only in [
            &["--rate", "5"][..],
            &["--seed", "1"],
            &["--tries", "3"],
            &["--concurrency", "8"],
            &["--all-addresses"],
        ] {
            let mut l = vec!["--dialback", "192.0.2.7:7007", "--ports", "443"];
            l.extend_from_slice(local_only);
            assert!(!parse(&l), "{local_only:?}");
        }
    }

    #[tokio::test]
    async fn dialback_addresses_need_a_port() {
        let a = args(&["--dialback", "x", "--ports", "1"]);
        assert_eq!(
            dialback_address(&a, "[::1]:7007").await.unwrap(),
            "[::1]:7007".parse::<SocketAddr>().unwrap()
        );
        for bad in ["localhost", "::1:7007", "h:0", "h:70000", ":7007", "a b:1"] {
            let e = dialback_address(&a, bad).await.unwrap_err();
            assert!(matches!(e, Failure::Usage(_)), "{bad}: {e}");
        }
        let a = args(&["--dialback", "x", "--ports", "1", "-6"]);
        let e = dialback_address(&a, "127.0.0.1:7007").await.unwrap_err();
        assert!(matches!(e, Failure::Usage(_)), "{e}");
    }

    #[test]
    fn refusals_are_named() {
        let server: SocketAddr = "192.0.2.7:7007".parse().unwrap();
        let line = |reason| dialback_failure(&DialbackError::Refused { server, reason });
        let e = line(RefusalCode::RateLimited);
        assert!(e.contains("refused the check: rate_limited ("), "{e}");
        let e = line(RefusalCode::TooManyPorts);
        assert!(
            e.contains("too_many_ports") && e.contains("fewer ports"),
            "{e}"
        );
        let e = line(RefusalCode::TargetNotAllowed);
        assert!(e.contains("target_not_allowed"), "{e}");
        let e = dialback_failure(&DialbackError::Connect {
            server,
            source: std::io::ErrorKind::ConnectionRefused.into(),
        });
        assert!(
            e.starts_with("cannot reach the dial-back server 192.0.2.7:7007"),
            "{e}"
        );
    }
}
