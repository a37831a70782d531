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

mod checks;
mod findings;
mod guard;
mod ports;
mod render;
mod report;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natkit_core::{AddressScope, Gateway, PortSpec, Protocol, ServiceProfile};

use crate::checks::Timeouts;
use crate::guard::MapGuard;
use crate::report::{Report, Status};

/// How long Ctrl-C waits for mapping requests in flight before deleting.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

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

/// What the user asked to check.
struct Plan {
    profile: Option<&'static ServiceProfile>,
    pairs: Vec<(u16, Protocol)>,
    stun: Vec<String>,
    timeouts: Timeouts,
    trial: bool,
    dialback: Option<SocketAddr>,
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

fn plan(args: &Args) -> Result<Plan, ExitCode> {
    let (profile, spec) = match (&args.profile, &args.ports) {
        (Some(name), _) => match ServiceProfile::by_name(name) {
            Ok(p) => (Some(p), Some(p.port_spec())),
            Err(e) => return Err(natkit_examples::fail(&e)),
        },
        (None, Some(text)) => match text.parse::<PortSpec>() {
            Ok(spec) => (None, Some(spec)),
            Err(e) => return Err(natkit_examples::fail(&e)),
        },
        (None, None) => (None, None),
    };
    if !(args.timeout.is_finite() && (0.1..=120.0).contains(&args.timeout)) {
        eprintln!("error: --timeout must be between 0.1 and 120 seconds");
        return Err(ExitCode::from(2));
    }
    let stun = if args.stun.is_empty() {
        natkit_stun::default_servers()
    } else {
        args.stun.clone()
    };
    let dialback = match &args.dialback {
        None => None,
        Some(text) => match resolve(text) {
            Ok(addr) => Some(addr),
            Err(e) => return Err(natkit_examples::fail_msg(e)),
        },
    };
    if dialback.is_some() && spec.is_none() {
        eprintln!("error: --dialback needs ports to check: give --profile or --ports");
        return Err(ExitCode::from(2));
    }
    Ok(Plan {
        profile,
        pairs: spec.map(|s| s.pairs()).unwrap_or_default(),
        stun,
        timeouts: Timeouts::new(Duration::from_secs_f64(args.timeout)),
        trial: !args.no_trial,
        dialback,
    })
}

/// `host:port` to the first address it names.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("--dialback {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--dialback {text}: no address"))
}

async fn run(plan: Plan, json: bool) -> ExitCode {
    let started = Instant::now();
    let progress = spinner();
    let guard = MapGuard::new();
    let work = tokio::spawn(diagnose(plan, guard.clone(), progress.clone()));
    let abort = work.abort_handle();
    let outcome = tokio::select! {
        joined = work => Some(joined),
        _ = natkit_examples::shutdown_signal() => {
            abort.abort();
            None
        }
    };
    progress.set_message("deleting trial mappings");
    let left_behind = guard.release_all(RELEASE_WAIT).await;
    progress.finish_and_clear();
    let mut report = match outcome {
        Some(Ok(report)) => report,
        Some(Err(e)) => return natkit_examples::fail_msg(format!("the diagnosis failed: {e}")),
        None => {
            if left_behind.is_empty() {
                eprintln!("interrupted: every trial mapping was deleted");
            } else {
                eprintln!(
                    "interrupted: could not delete {} (they expire within two minutes)",
                    left_behind.join("; ")
                );
            }
            return ExitCode::from(130);
        }
    };
    if report.gateway.is_some() {
        report.findings = findings::derive(&report, &left_behind);
    }
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if json {
        match serde_json::to_value(&report) {
            Ok(v) => natkit_examples::print_json(&v),
            Err(e) => return natkit_examples::fail(&e),
        }
    } else {
        print!("{}", render::human(&report));
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

/// Runs every check (at once where they are independent) into a report.
async fn diagnose(plan: Plan, guard: Arc<MapGuard>, progress: ProgressBar) -> Report {
    let mut r = Report::empty();
    r.profile = plan.profile.map(|p| p.name);
    progress.set_message("looking up the default gateway");
    let gateway = match tokio::task::spawn_blocking(natkit_core::default_gateway).await {
        Ok(g) => g,
        Err(e) => Err(natkit_core::Error::NoDefaultGateway {
            detail: e.to_string(),
        }),
    };
    let gw = match gateway {
        Ok(gw) => gw,
        Err(e) => {
            r.findings
                .push(findings::no_network(&natkit_examples::error_line(&e)));
            return r;
        }
    };
    r.interface = Some(gw.interface.clone());
    r.gateway = Some(gw.address);
    r.local_address = Some(gw.local_address);
    r.local_address_scope = Some(AddressScope::of(gw.local_address.into()).as_str());
    progress.set_message("asking the router (UPnP, NAT-PMP, PCP) and STUN servers");
    let t = plan.timeouts;
    let stun = plan.stun.clone();
    let router_side = router_and_ports(&gw, &plan, &guard, &progress, &mut r);
    // The classification first, then the plain address check: the address check asks
    // every listed server at once, and when the list holds a server's alternate address
    // (both of stund's IPs, say) that request would open a NAT filter kept per host
    // before the classifier's filtering tests ran, and a restricted cone would look
    // like a full cone.
    let stun_side = async {
        let bound = t.check + Duration::from_secs(2);
        let nat = tokio::time::timeout(bound, checks::check_nat(&stun)).await;
        let seen = tokio::time::timeout(bound, checks::check_stun(&stun)).await;
        (seen, nat)
    };
    let ((), (seen, nat)) = tokio::join!(router_side, stun_side);
    match seen {
        Ok((answers, consensus)) => {
            r.stun_servers = answers;
            r.stun_external_address = consensus;
        }
        Err(_) => tracing::warn!("STUN discovery timed out"),
    }
    match nat {
        Ok(Ok(c)) => r.nat = Some(checks::nat_report(&c)),
        Ok(Err(e)) => tracing::warn!("NAT classification failed: {e}"),
        Err(_) => tracing::warn!("NAT classification timed out"),
    }
    double_nat(&mut r);
    r
}

/// The router's protocols, then the per-port checks through the best one.
async fn router_and_ports(
    gw: &Gateway,
    plan: &Plan,
    guard: &Arc<MapGuard>,
    progress: &ProgressBar,
    r: &mut Report,
) {
    let t = plan.timeouts;
    let router = checks::check_router(gw, t).await;
    r.mapping_protocols.upnp = router.upnp;
    r.mapping_protocols.natpmp = router.natpmp;
    r.mapping_protocols.pcp = router.pcp;
    r.router_external_address = r
        .mapping_protocols
        .named()
        .iter()
        .find_map(|(_, s)| s.external_address);
    r.router_external_address_scope = r
        .router_external_address
        .map(|ip| AddressScope::of(ip).as_str());
    let mapper = router.mapper.filter(|_| plan.trial);
    if !plan.pairs.is_empty() {
        progress.set_message(format!("checking {} ports", plan.pairs.len()));
        let check = ports::PortCheck {
            pairs: plan.pairs.clone(),
            profile: plan.profile,
            entries: router.entries.as_deref(),
            mapper,
            dialback: plan.dialback,
            local: gw.local_address,
            timeout: t.check,
        };
        r.ports = ports::check_ports(check, guard).await;
    }
}

/// Decides whether a second NAT sits upstream, from the router's external
/// address, what STUN servers see, and the router's own complaints.
fn double_nat(r: &mut Report) {
    let mut evidence = Vec::new();
    let stun_ip = r.stun_external_address.map(|sa| sa.ip());
    if let Some(ext) = r.router_external_address {
        if let Some(note) = natkit_core::upstream_nat_note(ext) {
            evidence.push(note);
        } else if let Some(seen) = stun_ip.filter(|ip| *ip != ext) {
            evidence.push(format!(
                "the router reports external address {ext}, but STUN servers see {seen}"
            ));
        }
    } else if let Some(seen) = stun_ip.filter(|ip| Some(*ip) != r.local_address.map(IpAddr::V4)) {
        let mp = &r.mapping_protocols;
        let complaints: Vec<String> = mp
            .named()
            .iter()
            .filter(|(_, s)| matches!(s.status, Status::NotConnected | Status::Failing))
            .map(|(name, s)| format!("{name} {}", s.status.describe()))
            .collect();
        if !complaints.is_empty() {
            evidence.push(format!(
                "the router reports no usable WAN address ({}) although STUN servers reach the \
                 internet through it and see {seen}: its own WAN address is not public",
                complaints.join(", ")
            ));
        }
    }
    r.double_nat = !evidence.is_empty();
    r.double_nat_evidence = evidence;
}
