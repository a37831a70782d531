//! `natkit external-ip`: which address does the internet see for this host?
//!
//! Asks every discoverer at once — each STUN server at its IPv4 address, and
//! the router itself over UPnP IGD, NAT-PMP and PCP (natkit-portmap's detection) —
//! and forms a consensus (natkit-core's `consensus`): the IPv4 address most
//! sources saw,
//! with who agreed, who disagreed (a router reporting another address than
//! STUN sees means another NAT upstream) and who did not answer.
//!
//! ```text
//! natkit external-ip [--stun HOST:PORT …] [--no-router] [-6] [--json] [-v]
//! ```
//!
//! With `-6` the IPv6 address is found too, side by side: the STUN servers with an
//! IPv6 address (AAAA record) are asked from an IPv6 socket, a consensus of their own
//! (natkit's `AddressQuery::run_both`). Usually there is no NAT on IPv6 and it is
//! this host's own (usually temporary) address; where a router translates IPv6
//! (NAT66, NPTv6) it is not, and the report says so (checked against this host's
//! addresses). Without IPv6 the line says why at once.
//!
//! Exit status: 0 with an address, 1 when no source saw one (or on a local
//! error), 2 on bad usage.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use natkit::AddressQuery;
use natkit_core::{AddressScope, Evidence, ExternalAddress, Outcome};
use serde_json::json;

use crate::common::{self, Output};

/// Find this host's public address: STUN servers and the router, compared.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A STUN server, `host:port` (or `host` for 3478); repeatable.
    /// Default: natkit_stun::DEFAULT_SERVERS (public servers that can test filtering,
    /// then Google's and Cloudflare's).
    #[arg(long = "stun", value_name = "HOST:PORT")]
    stun: Vec<String>,
    /// Don't ask the router (UPnP, NAT-PMP, PCP), only STUN servers.
    #[arg(long)]
    no_router: bool,
    /// The longest to wait for any source, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    timeout: f64,
    /// Also find this host's IPv6 address, side by side (STUN only).
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    if !(args.timeout.is_finite() && (0.1..=60.0).contains(&args.timeout)) {
        eprintln!("error: --timeout must be between 0.1 and 60 seconds");
        return ExitCode::from(2);
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut query = AddressQuery::new().router(!args.no_router).timeout(timeout);
    if !args.stun.is_empty() {
        query = query.servers(args.stun.iter().cloned());
    }
    let started = Instant::now();
    // Each family by its own consensus: an IPv6 server sees this host's own IPv6
    // address, which says nothing about the IPv4 one.
    let (ipv4, ipv6) = if args.ipv6 {
        let both = query.run_both().await;
        (both.ipv4, Some(both.ipv6.map_err(|e| e.to_string())))
    } else {
        (query.run().await, None)
    };
    let elapsed = started.elapsed();
    let (consensus, evidence) = match ipv4 {
        Ok(a) => {
            let evidence = a.evidence.clone();
            (Some(a), evidence)
        }
        Err(natkit::Error::NoAddress { evidence }) => (None, evidence),
        Err(e) => return common::fail_msg(e),
    };
    let ip = consensus.as_ref().map(|c| c.ip);
    let side = |e: &Evidence| match (e.outcome.ip(), ip) {
        (Some(seen), Some(ip)) if seen == ip => "agrees",
        (Some(_), _) => "disagrees",
        (None, _) if e.outcome == Outcome::TimedOut => "timed_out",
        (None, _) => "failed",
    };
    if out.json {
        let sources: Vec<_> = evidence
            .iter()
            .map(|e| {
                let (address, detail) = match &e.outcome {
                    Outcome::SawEndpoint(sa) => (Some(sa.to_string()), None),
                    Outcome::SawAddress(a) => (Some(a.to_string()), None),
                    Outcome::TimedOut => (None, None),
                    Outcome::Failed { detail, .. } => (None, Some(detail.clone())),
                };
                json!({
                    "mechanism": e.mechanism.as_str(),
                    "source": e.source,
                    "verdict": side(e),
                    "address": address,
                    "detail": detail,
                })
            })
            .collect();
        let mut doc = json!({
            "external_address": ip,
            "scope": ip.map(|ip| AddressScope::of(ip).as_str()),
            "port": consensus.as_ref().and_then(|c| c.port),
            "agreeing": consensus.as_ref().map_or(0, |c| c.agreeing().count()),
            "disagreeing": consensus.as_ref().map_or(0, |c| c.disagreeing().count()),
            "sources": sources,
            "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
        });
        if let Some(r) = &ipv6 {
            doc["ipv6"] = match r {
                Ok(a) => json!({
                    "address": a.ip,
                    "scope": AddressScope::of(a.ip).as_str(),
                    "agreeing": a.agreeing().count(),
                    "asked": a.evidence.len(),
                    "own_address": own_address(a.ip),
                }),
                Err(why) => json!({ "address": null, "reason": why }),
            };
        }
        common::print_json(&doc);
    } else {
        match &consensus {
            Some(c) => outln!(
                "external address  {} ({}; {} of {} sources agree)",
                c.ip,
                AddressScope::of(c.ip).describe(),
                c.agreeing().count(),
                evidence.len()
            ),
            None => outln!("external address  unknown: no source saw one"),
        }
        for e in &evidence {
            outln!("  {:<10} {e}", side(e).replace('_', " "));
        }
        if let Some(r) = &ipv6 {
            outln!("{}", ipv6_line(r));
        }
        outln!("took {:.0} ms", elapsed.as_secs_f64() * 1000.0);
    }
    match consensus {
        Some(_) => ExitCode::SUCCESS,
        None => common::fail_msg("no STUN server or router protocol reported an address"),
    }
}

/// Whether `ip` is one of this host's addresses: `Some(false)` means a NAT
/// (NAT66, NPTv6) translates this host's IPv6; `None` when the address table
/// cannot be read.
fn own_address(ip: std::net::IpAddr) -> Option<bool> {
    let std::net::IpAddr::V6(ip) = ip else {
        return Some(false);
    };
    let list = natkit_core::host_ipv6_addresses().ok()?;
    Some(list.iter().any(|h| h.address == ip))
}

/// The IPv6 address in words: this host's own (no NAT on IPv6) or a
/// translator's, or why there is none.
fn ipv6_line(r: &Result<ExternalAddress, String>) -> String {
    match r {
        Ok(a) => format!(
            "external IPv6     {} ({}; {}; {} of {} STUN servers agree)",
            a.ip,
            AddressScope::of(a.ip).describe(),
            match own_address(a.ip) {
                Some(true) => "this host's own address, no NAT",
                Some(false) => "not this host's address: a NAT translates IPv6 (NAT66 or NPTv6)",
                None => "whether it is this host's own address is unknown",
            },
            a.agreeing().count(),
            a.evidence.len()
        ),
        Err(why) => format!("external IPv6     none: {why}"),
    }
}
