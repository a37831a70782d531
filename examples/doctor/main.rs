//! doctor: why can't the internet reach this machine?
//!
//! One run checks the whole path and says what is wrong and how to fix it:
//!
//! - the path: this host, its local address, the default gateway, the
//!   router's mapping protocols (UPnP IGD — connected or not —, NAT-PMP,
//!   PCP), the router's external address and what STUN servers see; a
//!   double NAT when those disagree or the router's address is not public;
//! - the NAT type (RFC 5780/3489 tests) with its evidence and meaning;
//! - for `--profile NAME` or `--ports SPEC`, per port: whether the router
//!   already forwards it and to whom, and whether natkit can map it (a
//!   trial mapping, deleted right after);
//! - findings with stable codes and fixes.
//!
//! Every check runs at once and is bounded in time. Trial mappings are
//! always deleted, also on Ctrl-C. `--json` prints one document described
//! by `docs/doctor.schema.json`.
//!
//! Exit status: 0 when the diagnosis ran (whatever it found), 1 with no
//! network or on a local error, 2 on bad usage, 130 when interrupted.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natkit_core::PortSpec;
use natkit_doctor::{Config, Run, Stage, render};

/// Diagnose why a service on this machine is unreachable from outside.
#[derive(clap::Parser, Debug)]
#[command(version, about)]
struct Args {
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
    /// port is reachable from the internet while its trial mapping is held.
    #[arg(long, value_name = "HOST:PORT")]
    dialback: Option<String>,
    /// Don't make trial mappings: only read the router's forwarding table.
    #[arg(long)]
    no_trial: bool,
    /// The longest any one check may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    timeout: f64,
    #[command(flatten)]
    common: natkit_examples::CommonArgs,
}

fn main() -> ExitCode {
    let args = match natkit_examples::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    natkit_examples::init_logging(args.common.verbose);
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return natkit_examples::fail(&e),
    };
    runtime.block_on(run(plan, args.common.json))
}

fn plan(args: &Args) -> Result<Config, ExitCode> {
    let mut config = Config::default();
    if let Some(name) = &args.profile {
        config = config
            .with_profile(name)
            .map_err(|e| natkit_examples::fail(&e))?;
    } else if let Some(text) = &args.ports {
        let spec = text
            .parse::<PortSpec>()
            .map_err(|e| natkit_examples::fail(&e))?;
        config = config.with_ports(spec);
    }
    if !args.stun.is_empty() {
        config = config.with_stun_servers(args.stun.clone());
    }
    if let Some(text) = &args.dialback {
        config = config.with_dialback(resolve(text).map_err(natkit_examples::fail_msg)?);
    }
    config = config
        .with_trial(!args.no_trial)
        .with_timeout(Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::MAX));
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return Err(ExitCode::from(2));
    }
    Ok(config)
}

/// `host:port` to the first address it names.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("--dialback {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--dialback {text}: no address"))
}

async fn run(config: Config, json: bool) -> ExitCode {
    let (tx, mut rx) = tokio::sync::watch::channel(Stage::Starting);
    let progress = spinner();
    let bar = progress.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let stage = *rx.borrow_and_update();
            bar.set_message(stage.to_string());
        }
    });
    let run =
        natkit_doctor::diagnose_until(config.with_progress(tx), natkit_examples::shutdown_signal())
            .await;
    progress.finish_and_clear();
    let report = match run {
        Run::Finished(report) => *report,
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
        _ => return ExitCode::FAILURE,
    };
    if json {
        natkit_examples::print_json(&render::json(&report));
    } else {
        print!("{}", render::text(&report, render::Style::PLAIN));
    }
    if report.gateway.is_none() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
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
