//! nat_type: what kind of NAT is between this host and the internet?
//!
//! Runs natkit-stun's RFC 5780 behaviour discovery (falling back to the
//! classic RFC 3489 tests against servers like stund) and prints the mapping
//! and filtering behaviour, the legacy name derived from them, this host's
//! external address and the evidence.
//!
//! ```text
//! cargo run --example nat_type -- --stun 88.77.66.10:3478 [--stun …] [--hairpinning] [--json]
//! ```

use std::process::ExitCode;

use clap::Parser;
use natkit_core::LegacyNatType;
use natkit_stun::classify::{ClassifyConfig, classify};
use serde_json::json;

/// Public STUN servers used when no --stun is given. RFC 5780 servers are
/// rare on the public internet; with plain servers the filtering axis is
/// reported as inconclusive rather than guessed.
const DEFAULT_SERVERS: [&str; 2] = ["stun.l.google.com:19302", "stun.cloudflare.com:3478"];

/// Classify the NAT between this host and the internet with STUN.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A STUN server, `host:port` (or `host` for 3478); repeatable. The first
    /// one with an alternate address runs the behaviour tests.
    #[arg(long = "stun", value_name = "HOST:PORT")]
    servers: Vec<String>,
    /// Also test hairpinning (RFC 5780 §4.6).
    #[arg(long)]
    hairpinning: bool,
    #[command(flatten)]
    common: natkit_examples::CommonArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    natkit_examples::init_logging(args.common.verbose);
    let servers = if args.servers.is_empty() {
        DEFAULT_SERVERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.servers.clone()
    };
    let mut config = ClassifyConfig::new(servers);
    config.hairpinning = args.hairpinning;
    let c = match classify(config).await {
        Ok(c) => c,
        Err(e) => return natkit_examples::fail(&e),
    };
    let b = c.behaviour;
    if args.common.json {
        natkit_examples::print_json(&json!({
            "mapping": b.mapping,
            "filtering": b.filtering,
            "legacy_type": c.legacy,
            "connectivity": b.connectivity,
            "external_address": c.external,
            "local_address": c.local,
            "hairpinning": b.hairpinning,
            "port_preservation": b.port_preservation,
            "mapping_varies_by_destination": c.mapping_varies_by_destination,
            "behaviour_server": c.behaviour_server,
            "rtt_ms": c.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "elapsed_ms": c.elapsed.as_secs_f64() * 1000.0,
            "servers": c.servers,
            "evidence": c.evidence,
            "notes": c.notes,
        }));
    } else {
        println!("NAT type      {}", c.legacy);
        println!("  means       {}", c.legacy.meaning());
        println!("mapping       {}", b.mapping);
        println!("filtering     {}", b.filtering);
        if let Some(ext) = c.external {
            println!("external      {ext}");
        }
        if let Some(local) = c.local {
            println!("local         {local}");
        }
        if let Some(p) = b.port_preservation {
            println!("port kept     {}", if p { "yes" } else { "no" });
        }
        if let Some(h) = b.hairpinning {
            println!("hairpinning   {}", if h { "yes" } else { "no" });
        }
        if let Some(server) = c.behaviour_server {
            let rtt = c
                .rtt
                .map(|d| format!(", rtt {:.1} ms", d.as_secs_f64() * 1000.0));
            println!("tested with   {server}{}", rtt.unwrap_or_default());
        }
        for note in &c.notes {
            println!("note          {note}");
        }
        println!("took          {:.0} ms", c.elapsed.as_secs_f64() * 1000.0);
    }
    if c.legacy == LegacyNatType::UdpBlocked {
        eprintln!("error: no STUN server answered: UDP is blocked or the servers are down");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
