//! A full TCP connect sweep, for timing and memory measurements.
//!
//! ```text
//! cargo run --release -p natkit-probe --example sweep -- [TARGET] [SPEC] [--concurrency N] [--seed S] [--no-icmp-details]
//! ```
//!
//! Defaults: `127.0.0.1`, `1-65535/tcp`. Only ever point it at hosts you
//! are allowed to scan.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Instant;

use natkit_core::PortSpec;
use natkit_probe::{PortOrder, PortState, ProbeConfig, ProbeEvent, ProbePlan, Prober};

struct Args {
    target: IpAddr,
    spec: PortSpec,
    config: ProbeConfig,
}

fn parse() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut config = ProbeConfig::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--concurrency" => {
                config.max_concurrency = value(&a)?.parse().map_err(|e| format!("{a}: {e}"))?;
            }
            "--seed" => {
                let seed = value(&a)?.parse().map_err(|e| format!("{a}: {e}"))?;
                config.order = PortOrder::Shuffled { seed };
                config.seed = seed;
            }
            "--tries" => config.tries = value(&a)?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--no-icmp-details" => config.tcp_icmp_details = false,
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => positional.push(a),
        }
    }
    let target = match positional.first() {
        Some(t) => t.parse().map_err(|e| format!("{t}: {e}"))?,
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let spec = positional
        .get(1)
        .map_or("1-65535/tcp", String::as_str)
        .parse()
        .map_err(|e| format!("{e}"))?;
    Ok(Args {
        target,
        spec,
        config,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sweep: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = match ProbePlan::from_spec(&[args.target], &args.spec) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sweep: {e}");
            return ExitCode::from(2);
        }
    };
    let prober = match Prober::new(args.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sweep: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let mut stream = match prober.start(plan) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sweep: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut open = Vec::new();
    let mut other = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(ProbeEvent::Verdict(v)) if v.state == PortState::Open => open.push(v),
            Ok(ProbeEvent::Verdict(v)) if v.state != PortState::Closed => other.push(v),
            Ok(ProbeEvent::Backoff(b)) => eprintln!(
                "backoff: limit {} ({} in flight, {})",
                b.limit,
                b.in_flight,
                std::io::Error::from_raw_os_error(b.errno)
            ),
            Ok(ProbeEvent::Finished(stats)) => {
                open.sort_by_key(|v| v.probe);
                for v in open.iter().chain(&other) {
                    println!("{v}");
                }
                println!(
                    "{} probes in {:.3} s: {} open, {} closed, {} filtered, {} open_filtered; \
                     {} tries, concurrency {}/{}, {} back-offs",
                    stats.probes,
                    start.elapsed().as_secs_f64(),
                    stats.counts.open,
                    stats.counts.closed,
                    stats.counts.filtered,
                    stats.counts.open_filtered,
                    stats.attempts,
                    stats.concurrency_limit,
                    stats.concurrency_max,
                    stats.backoffs
                );
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("sweep: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
