//! `natkit doctor`: why can't the internet reach this machine?
//!
//! The diagnosis itself is the natkit-doctor library; this is its command line:
//! the arguments, a spinner on a terminal, Ctrl-C/SIGTERM as the stop (every trial
//! mapping is deleted, exit 130), and the text or `--json` report.
//!
//! Exit status: 0 when the diagnosis ran (whatever else it found), 1 with no
//! network, no internet (`no_internet`, `dns_failure`) or on a local error, 2 on
//! bad usage, 130 when interrupted.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natkit_core::PortSpec;
use natkit_doctor::{Config, Run, Stage, render};

use crate::common::{self, Output};

/// Diagnose why a service on this machine is unreachable from outside.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A service profile: back-to-my-mac, ichat, jabber, file-sharing,
    /// screen-sharing, ssh, web.
    #[arg(long, conflicts_with = "ports")]
    profile: Option<String>,
    /// Ports to check, e.g. `443/tcp,4500/udp,16384-16403/udp,5298`
    /// (no protocol = both).
    #[arg(long)]
    ports: Option<String>,
    /// A STUN server, `host:port` (or `host` for 3478); repeatable.
    /// Default: natkit_stun::DEFAULT_SERVERS (public servers that can test filtering,
    /// then Google's and Cloudflare's).
    #[arg(long = "stun", value_name = "HOST:PORT")]
    stun: Vec<String>,
    /// A natkit dial-back server outside (`host:port`): checks whether each
    /// port is reachable from the internet while its trial mapping is held,
    /// and (when it runs `--sip-echo`) whether a SIP ALG rewrites or drops SIP,
    /// and (when it runs `--outbound-ports`) whether a firewall blocks any of
    /// the ports on the way out, and (when it runs `--bandwidth`) the bandwidth
    /// each way. Its IPv6 address (a name's AAAA record, or a second
    /// `--dialback [ADDR]:PORT`) checks each port over IPv6 too, without and
    /// through a pinhole.
    #[arg(long, value_name = "HOST:PORT")]
    dialback: Vec<String>,
    /// Don't make trial mappings: only read the router's forwarding table.
    #[arg(long)]
    no_trial: bool,
    /// The longest any one check may take, in seconds (0.1 to 120).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    timeout: f64,
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    let config = match config(&args).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (tx, mut rx) = tokio::sync::watch::channel(Stage::Starting);
    let progress = spinner();
    let bar = progress.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let stage = *rx.borrow_and_update();
            bar.set_message(stage.to_string());
        }
    });
    // Caught before the first trial mapping can exist.
    let shutdown = match common::Shutdown::listen() {
        Ok(s) => s,
        Err(e) => return common::fail(&e),
    };
    let run = natkit_doctor::diagnose_until(config.with_progress(tx), shutdown.wait()).await;
    progress.finish_and_clear();
    let report = match run {
        Run::Finished(report) => report,
        Run::Stopped(cleanup) => {
            if cleanup.left_behind.is_empty() {
                eprintln!("interrupted: every trial mapping was deleted");
            } else {
                eprintln!(
                    "interrupted: could not delete {} (they expire within two minutes)",
                    cleanup.left_behind.join("; ")
                );
            }
            return ExitCode::from(130);
        }
        other => return common::fail_msg(format!("the diagnosis ended unexpectedly: {other:?}")),
    };
    if out.json {
        common::print_json(&render::json(&report));
    } else {
        let style = render::Style {
            colour: common::colour_stdout(),
        };
        out!("{}", render::text(&report, style));
    }
    let offline = report
        .internet
        .as_ref()
        .is_some_and(|i| i.verdict.is_failure());
    if report.gateway.is_none() || offline {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn config(args: &Args) -> Result<Config, ExitCode> {
    let mut config = Config::default();
    if let Some(name) = &args.profile {
        config = config.with_profile(name).map_err(|e| common::fail(&e))?;
    } else if let Some(text) = &args.ports {
        let spec = text.parse::<PortSpec>().map_err(|e| common::fail(&e))?;
        config = config.with_ports(spec);
    }
    if !args.stun.is_empty() {
        config = config.with_stun_servers(args.stun.clone());
    }
    for text in &args.dialback {
        // One server per family: the first IPv4 and the first IPv6 address.
        for addr in resolve(text).await.map_err(common::fail_msg)? {
            match addr {
                SocketAddr::V4(_) if config.dialback.is_none() => {
                    config = config.with_dialback(addr);
                }
                SocketAddr::V6(_) if config.dialback6.is_none() => {
                    config = config.with_dialback6(addr);
                }
                _ => {}
            }
        }
    }
    if !(args.timeout.is_finite() && (0.1..=120.0).contains(&args.timeout)) {
        return Err(common::usage(
            "--timeout must be between 0.1 and 120 seconds",
        ));
    }
    config = config
        .with_trial(!args.no_trial)
        .with_timeout(Duration::from_secs_f64(args.timeout));
    if let Err(e) = config.validate() {
        let e = match e {
            natkit_doctor::ConfigError::DialbackWithoutPorts => {
                "--dialback needs ports to check: give --profile or --ports".to_owned()
            }
            other => other.to_string(),
        };
        return Err(common::usage(e));
    }
    Ok(config)
}

/// `host:port` to the addresses it names (at least one).
async fn resolve(text: &str) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(text)
        .await
        .map_err(|e| format!("--dialback {text}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("--dialback {text}: no address"));
    }
    Ok(addrs)
}

/// A spinner on stderr when it is a terminal; hidden otherwise.
fn spinner() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    async fn config_of(argv: &[&str]) -> Config {
        let cmd = Cmd::try_parse_from(std::iter::once("doctor").chain(argv.iter().copied()))
            .expect("parses");
        config(&cmd.args).await.expect("a valid config")
    }

    /// One dial-back server per family: an IPv6 address serves the IPv6
    /// section, never the IPv4 port checks.
    #[tokio::test]
    async fn dialback_addresses_go_to_their_family() {
        let v4 = "88.77.66.20:7007";
        let v6 = "[2a0d:88:77:66::20]:7007";
        let both = config_of(&["--ports", "5900/tcp", "--dialback", v4, "--dialback", v6]).await;
        assert_eq!(both.dialback, Some(v4.parse().expect("v4")));
        assert_eq!(both.dialback6, Some(v6.parse().expect("v6")));
        let only6 = config_of(&["--ports", "5900/tcp", "--dialback", v6]).await;
        assert_eq!(only6.dialback, None);
        assert_eq!(only6.dialback6, Some(v6.parse().expect("v6")));
        let only4 = config_of(&["--ports", "5900/tcp", "--dialback", v4]).await;
        assert_eq!(only4.dialback6, None);
    }
}
