//! `natkit probe`: which ports of a host answer, and what was seen that says so.
//!
//! Runs natkit-probe's local engine (TCP connect and UDP probes, no root)
//! against one host and prints every verdict with its evidence: a reset, an
//! ICMP error and who sent it, silence after N tries, the round-trip time.
//!
//! ```text
//! natkit probe --target HOST (--ports SPEC | --profile NAME)
//!     [--udp] [--json] [--rate PPS] [--seed N] [--tries N] [--concurrency N]
//!     [-4 | -6] [--all-addresses] [--all]
//! natkit probe --dialback HOST:PORT (--ports SPEC | --profile NAME)
//!     [--udp] [--json] [--target PUBLIC-ADDRESS] [--source LOCAL-IP] [-4 | -6]
//! ```
//!
//! Port specs are natkit-core's: `22,80,443/tcp,4500/udp,16384-16403/udp`.
//! An item without a protocol is probed over TCP, and over UDP too with
//! `--udp`; profiles say themselves which protocol each port uses.
//!
//! Output modes are separate modules over one stream of verdicts
//! (`human::Human` and `json::Json` implement [`Sink`]); the resolution of the
//! host and the port list ([`Request`]) are shared between the local engine
//! ([`run_local`]) and the outside-in check (`dialback::run_dialback`).
//!
//! With `--dialback`, nothing is probed from here: natkit's dial-back server
//! (`natkit dialback-server`) connects back to this host's public
//! address on each port while a responder of ours holds the port, and the
//! verdict per port is `reachable`, `wrong_host`, `closed`, `filtered` or
//! `not_forwarded` (natkit-probe's `dialback` module documents the rules).
//! The server dials only the address the request comes from, so `--target`
//! is optional there; when given it must name the public address the server
//! sees, or the run fails after the check without printing results.
//!
//! Only probe hosts you are allowed to scan.

mod dialback;
mod human;
mod json;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use natkit_core::{PortSpec, Protocol, Protocols, ServiceProfile};
use natkit_probe::dialback::{MAX_CHECK_PORTS, ReachabilityReport};
use natkit_probe::{
    Backoff, PortOrder, PortVerdict, ProbeConfig, ProbeEvent, ProbePlan, Prober, RateLimit, Stats,
};

use crate::common::{self, Output};
use dialback::{dialback_address, run_dialback};
use human::Human;
use json::Json;

/// Probe the TCP and UDP ports of a host and say what was seen.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["ports", "profile"]))]
pub(crate) struct Args {
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
    /// With --dialback: send the request from this local address, the one
    /// the server then dials (e.g. the stable IPv6 address a pinhole is
    /// for, rather than the temporary one the system would pick).
    #[arg(long, value_name = "IP", requires = "dialback")]
    source: Option<IpAddr>,
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
}

/// What to probe: the host as given, its addresses, the ports.
pub(super) struct Request {
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
pub(super) type Ports = (Vec<(u16, Protocol)>, Option<&'static ServiceProfile>);

/// The (port, protocol) pairs of `--ports` or `--profile`.
pub(super) fn port_pairs(args: &Args) -> Result<Ports, String> {
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
pub(super) async fn resolve(args: &Args, host: &str) -> Result<Vec<IpAddr>, Failure> {
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

pub(super) fn config(args: &Args) -> ProbeConfig {
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
pub(super) trait Sink {
    /// One port's verdict, as it comes.
    fn verdict(&mut self, request: &Request, verdict: PortVerdict);
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
        match item.map_err(|e| common::error_line(&e))? {
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

/// Why a run failed: bad arguments (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub(super) enum Failure {
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
            Failure::Run(m) => common::fail_msg(m),
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
pub(super) fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// A short human duration: `38 µs`, `2.7 ms`, `1.25 s`.
pub(super) fn short(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Plans this small list their closed ports in the table too.
const SMALL_PLAN: usize = 32;

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    match probe(&args, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

async fn probe(args: &Args, out: Output) -> Result<(), Failure> {
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
        return if out.json {
            run_dialback(server, args.source, &request, &mut Json::stdout()).await
        } else {
            let mut sink = Human::checking(server, request.pairs.len());
            run_dialback(server, args.source, &request, &mut sink).await
        };
    }
    let total = request.addresses.len() * request.pairs.len();
    let result = if out.json {
        run_local(args, &request, &mut Json::stdout()).await
    } else {
        let show_closed = args.all || total <= SMALL_PLAN;
        run_local(args, &request, &mut Human::new(total, show_closed)).await
    };
    result.map_err(Failure::Run)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use clap::Parser;
    use natkit_probe::dialback::{DialbackError, RefusalCode};
    use natkit_probe::{PortState, Reason};

    use super::dialback::dialback_failure;
    use super::human::describe;
    use super::*;

    /// `natkit probe`'s arguments on their own.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn try_parse<'a>(list: impl IntoIterator<Item = &'a str>) -> Result<Args, clap::Error> {
        Cli::try_parse_from(list).map(|c| c.args)
    }

    fn args(list: &[&str]) -> Args {
        try_parse(std::iter::once("probe").chain(list.iter().copied())).expect("valid arguments")
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
        let parse =
            |l: &[&str]| try_parse(std::iter::once("probe").chain(l.iter().copied())).is_err();
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
        let v = PortVerdict {
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
        let silent = PortVerdict {
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
        let parse =
            |l: &[&str]| try_parse(std::iter::once("probe").chain(l.iter().copied())).is_ok();
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

    /// `--source` goes with `--dialback` only, and in the server's family:
    /// refused before anything is sent.
    #[tokio::test]
    async fn dialback_source_needs_dialback_and_its_family() {
        let parse =
            |l: &[&str]| try_parse(std::iter::once("probe").chain(l.iter().copied())).is_ok();
        let with = ["--dialback", "[2a0d:88:77:66::20]:7007", "--ports", "443"];
        assert!(parse(
            &[&with[..], &["--source", "2a0d:88:77:77::2"]].concat()
        ));
        assert!(!parse(&[
            "--target", "h", "--ports", "1", "--source", "::1"
        ]));
        assert!(!parse(&[&with[..], &["--source", "not-an-ip"]].concat()));
        let request = Request {
            host: String::new(),
            addresses: Vec::new(),
            pairs: vec![(443, Protocol::Tcp)],
            profile: None,
        };
        let server: SocketAddr = "[2a0d:88:77:66::20]:7007".parse().expect("address");
        let mut sink = Human::checking(server, 1);
        let source = Some(IpAddr::from([192, 168, 77, 2]));
        let e = super::dialback::run_dialback(server, source, &request, &mut sink)
            .await
            .expect_err("family mismatch");
        assert!(
            matches!(&e, Failure::Usage(m) if m.contains("--source 192.168.77.2")),
            "{e}"
        );
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
