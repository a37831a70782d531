//! `natkit nat-type`: what kind of NAT is between this host and the internet?
//!
//! Runs natkit-stun's RFC 5780 behaviour discovery (falling back to the
//! classic RFC 3489 tests against servers like stund) and prints the mapping
//! and filtering behaviour, the legacy name derived from them, this host's
//! external address and the evidence.
//!
//! ```text
//! natkit nat-type --stun 88.77.66.10:3478 [--stun …] [--hairpinning]
//!     [--lifetime MAX_SECS [--lifetime-steps N]] [-4 | -6] [--json]
//! ```
//!
//! With `-6` (or IPv6 servers) it tests over IPv6, where there is no NAT: the
//! answer is the router's firewall (`stateful_address_and_port_dependent` for a
//! conntrack firewall, `open` with no filtering) and the mapping is `none`.
//!
//! Exit status: 0 with an answer (inconclusive included), 1 when no server
//! answered (UDP blocked or servers down) or on a local error, 2 on bad usage.

use std::process::ExitCode;
use std::time::Duration;

use natkit_core::LegacyNatType;
use natkit_stun::classify::{BindingLifetime, ClassifyConfig, LifetimeConfig, classify};
use natkit_stun::client::IpFamily;
use serde_json::json;

use crate::common::{self, Output};

/// Classify the NAT between this host and the internet with STUN.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A STUN server, `host:port` (or `host` for 3478); repeatable. The first
    /// one with an alternate address runs the behaviour tests.
    #[arg(long = "stun", value_name = "HOST:PORT")]
    servers: Vec<String>,
    /// Also test hairpinning: whether the NAT loops a packet sent to this
    /// host's own public address back to it.
    #[arg(long)]
    hairpinning: bool,
    /// Also measure how long an idle UDP binding lives (RFC 5780 binding
    /// lifetime discovery), probing idle times up to MAX_SECS; takes about
    /// MAX_SECS. Needs an RFC 5780 server (RESPONSE-PORT).
    #[arg(long, value_name = "MAX_SECS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    lifetime: Option<u32>,
    /// How many idle times --lifetime probes (evenly spaced, all at once):
    /// the answer is known to within MAX_SECS / N.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=32), requires = "lifetime")]
    lifetime_steps: u8,
    /// Test over IPv4 only (server names resolve to their A records).
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    ipv4: bool,
    /// Test over IPv6 (server names resolve to their AAAA records): no NAT,
    /// the router's firewall is measured.
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    let servers = if args.servers.is_empty() {
        natkit_stun::default_servers()
    } else {
        args.servers.clone()
    };
    let mut config = ClassifyConfig::new(servers);
    config.hairpinning = args.hairpinning;
    config.lifetime = args.lifetime.map(|secs| LifetimeConfig {
        max: Duration::from_secs(u64::from(secs)),
        steps: args.lifetime_steps,
    });
    config.family = match (args.ipv4, args.ipv6) {
        (true, _) => Some(IpFamily::V4),
        (_, true) => Some(IpFamily::V6),
        _ => None,
    };
    let c = match classify(config).await {
        Ok(c) => c,
        Err(e) => return common::fail(&e),
    };
    let b = c.behaviour;
    if out.json {
        let mut out = json!({
            "family": c.family,
            "kind": c.kind(),
            // RFC 4787's axis, as measured (the reference comparisons read it); with
            // no NAT, `kind` and `firewall` say what is in the way.
            "mapping": b.mapping,
            "filtering": b.filtering,
            "legacy_type": c.legacy,
            "firewall": c.firewall,
            "connectivity": b.connectivity,
            "external_address": c.external,
            "local_address": c.local,
            "port_preservation": b.port_preservation,
            "mapping_varies_by_destination": c.mapping_varies_by_destination,
            "behaviour_server": c.behaviour_server,
            "rtt_ms": c.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "elapsed_ms": c.elapsed.as_secs_f64() * 1000.0,
            "servers": c.servers,
            "evidence": c.evidence,
            "notes": c.notes,
        });
        // Only what was tested: a test that was asked for but could not conclude is
        // null, one that was not asked for is absent.
        if args.hairpinning {
            out["hairpinning"] = json!(b.hairpinning);
        }
        if args.lifetime.is_some() {
            out["binding_lifetime"] = c.binding_lifetime.as_ref().map_or(json!(null), |l| {
                json!({
                    "at_least_s": l.at_least.map(|d| d.as_secs_f64()),
                    "less_than_s": l.less_than.map(|d| d.as_secs_f64()),
                    "max_s": l.max.as_secs_f64(),
                    "conclusive": l.conclusive,
                    "server": l.server,
                    "steps": l.steps,
                    "notes": l.notes,
                })
            });
        }
        common::print_json(&out);
    } else {
        match c.firewall {
            Some(f) => outln!("firewall      {f} (no NAT)"),
            None => outln!("NAT type      {}", c.legacy),
        }
        outln!("  means       {}", c.meaning());
        if let Some(family) = c.family {
            outln!("family        {family}");
        }
        match c.mapping_name() {
            "none" => outln!("mapping       none (no NAT: the address seen is this host's own)"),
            m => outln!("mapping       {m}"),
        }
        outln!("filtering     {}", b.filtering);
        if let Some(ext) = c.external {
            outln!("external      {ext}");
        }
        if let Some(local) = c.local {
            outln!("local         {local}");
        }
        // Port preservation is a NAT's property: with none, the port is the socket's.
        if let (None, Some(p)) = (c.firewall, b.port_preservation) {
            outln!("port kept     {}", if p { "yes" } else { "no" });
        }
        if args.hairpinning {
            let h = match b.hairpinning {
                Some(true) => "yes",
                Some(false) => "no",
                None if c.firewall.is_some() => "not applicable (no NAT)",
                None => "inconclusive",
            };
            outln!("hairpinning   {h}");
        }
        if args.lifetime.is_some() {
            outln!(
                "binding life  {}",
                lifetime_line(c.binding_lifetime.as_ref())
            );
        }
        if let Some(server) = c.behaviour_server {
            let rtt = c
                .rtt
                .map(|d| format!(", rtt {:.1} ms", d.as_secs_f64() * 1000.0));
            outln!("tested with   {server}{}", rtt.unwrap_or_default());
        }
        for note in &c.notes {
            outln!("note          {note}");
        }
        outln!("took          {:.0} ms", c.elapsed.as_secs_f64() * 1000.0);
    }
    if c.legacy == LegacyNatType::UdpBlocked {
        eprintln!("error: no STUN server answered: UDP is blocked or the servers are down");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The binding lifetime bracket in words.
fn lifetime_line(l: Option<&BindingLifetime>) -> String {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let Some(l) = l else {
        return "not measured (see notes)".into();
    };
    let bracket = match (l.at_least, l.less_than) {
        (Some(a), Some(b)) => format!("between {} and {} idle", secs(a), secs(b)),
        (Some(a), None) => format!("at least {} idle (the most probed)", secs(a)),
        (None, Some(b)) => format!("less than {} idle", secs(b)),
        (None, None) => "unknown".into(),
    };
    let mut line = if l.conclusive {
        bracket
    } else {
        format!("inconclusive ({bracket})")
    };
    for n in &l.notes {
        line.push_str("; ");
        line.push_str(n);
    }
    line
}
