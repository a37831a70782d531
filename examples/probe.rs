//! Which ports of a host answer, with natkit-probe: TCP connect and UDP probes
//! without root, every verdict with what was seen (a reset, an ICMP error and who
//! sent it, silence after N tries). The full tool, with JSON, profiles and the
//! dial-back check from outside, is `natkit probe`.
//!
//! ```text
//! cargo run --release --example probe -- [ADDRESS] [SPEC]   # default: 127.0.0.1 1-1024/tcp
//! ```
//!
//! Only probe hosts you are allowed to scan.

use std::net::IpAddr;
use std::process::ExitCode;

use natkit_core::PortSpec;
use natkit_probe::{PortState, ProbeConfig, ProbePlan, Prober};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let spec = args.next().unwrap_or_else(|| "1-1024/tcp".into());
    let (Ok(ip), Ok(spec)) = (target.parse::<IpAddr>(), spec.parse::<PortSpec>()) else {
        eprintln!("error: usage: probe [ADDRESS] [SPEC], e.g. probe 127.0.0.1 22,80,443/tcp");
        return ExitCode::from(2);
    };
    let run = async {
        let plan = ProbePlan::from_spec(&[ip], &spec)?;
        Prober::new(ProbeConfig::default())?.run(plan).await
    };
    let summary = match run.await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for state in [
        PortState::Open,
        PortState::OpenFiltered,
        PortState::Filtered,
    ] {
        for v in summary.in_state(state) {
            println!(
                "{}/{} {}: {}",
                v.probe.addr,
                v.probe.protocol,
                state.as_str(),
                v.reason
            );
        }
    }
    println!("{} ports, the others closed", summary.verdicts.len());
    ExitCode::SUCCESS
}
