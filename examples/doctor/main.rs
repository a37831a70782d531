//! The doctor through its library, natkit-doctor: why can't the internet reach
//! this machine? The full tool is `natkit doctor` (crate natkit-cli); this shows
//! the calls an app makes to embed it.
//!
//! ```text
//! cargo run --example doctor -- [--profile NAME | --ports SPEC] [--stun HOST:PORT]... [--json]
//! ```
//!
//! Ctrl-C stops the run cleanly: `diagnose_until` deletes every trial mapping
//! before it returns (exit 130). Exit status 1 with no network.

use std::process::ExitCode;

use natkit_doctor::{Config, Run, render};

#[tokio::main]
async fn main() -> ExitCode {
    let (config, json) = match config(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = match natkit_doctor::diagnose_until(config, stop).await {
        Run::Finished(report) => report,
        Run::Stopped(cleanup) => {
            eprintln!(
                "interrupted: deleted {} trial mapping(s), {} left to expire",
                cleanup.deleted.len(),
                cleanup.left_behind.len()
            );
            return ExitCode::from(130);
        }
        _ => return ExitCode::FAILURE,
    };
    if json {
        println!("{}", render::json(&report));
    } else {
        print!("{}", render::text(&report, render::Style::PLAIN));
    }
    // The codes are typed: an app can act on them instead of parsing text.
    let no_network = report
        .findings
        .iter()
        .any(|f| f.code == natkit_doctor::FindingCode::NoNetwork);
    if no_network {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The few flags this demo takes; `natkit doctor --help` has them all.
fn config(mut args: impl Iterator<Item = String>) -> Result<(Config, bool), String> {
    let mut config = Config::default();
    let mut stun = Vec::new();
    let mut json = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--profile" => config = config.with_profile(&value()?).map_err(|e| e.to_string())?,
            "--ports" => config = config.with_ports(value()?.parse().map_err(|e| format!("{e}"))?),
            "--stun" => stun.push(value()?),
            "--json" => json = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !stun.is_empty() {
        config = config.with_stun_servers(stun);
    }
    Ok((config, json))
}
