//! `natkit map`: open a port on the router for this host, keep it open, and
//! remove it again.
//!
//! Detects PCP, NAT-PMP and UPnP IGD at once (natkit-portmap's
//! `AutoMapper`), maps through the best one (or the one `--mechanism`
//! names), prints the mapping, keeps it renewed with natkit-core's
//! `LeaseKeeper` (printing what the keeper does) until SIGINT or SIGTERM,
//! then deletes it. Every mapping is recorded in a journal first, and every
//! run starts by deleting what a killed run left behind.
//!
//! ```text
//! natkit map --protocol tcp|udp --port N [--external-port M]
//!     [--mechanism auto|upnp|natpmp|pcp] [--lifetime S] [--json] [--once]
//!     [--journal DIR] [--ipv6 | --address IP] [--stun HOST:PORT …]
//! ```
//!
//! With `--ipv6` (or an IPv6 `--address`) it opens an IPv6 *pinhole* in the
//! router's firewall instead (PCP, then UPnP IGD; NAT-PMP has no IPv6): for
//! this host's stable global IPv6 address, never a temporary (privacy) one,
//! and the output says which address and why. Beside the mapping it asks STUN
//! servers over IPv6 which address they see from the pinhole's (`reach`): a
//! router that translates IPv6 (NAT66, NPTv6) makes the pinhole unreachable
//! from outside, and the output warns; with no answer it says reachability
//! was not checked. A kept pinhole moves with a new prefix: when the host's
//! address is gone (the ISP renumbered the LAN), it opens one for the new
//! stable address and deletes the old one where the router allows.
//!
//! Exit status: 0 after the mapping was made and deleted again; 1 when no
//! mechanism could map (the line names what each one answered), when the
//! deletion failed, or on a local error; 2 on bad usage.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod reach;

use natkit::{ADDRESS_CHECK_INTERVAL, LeaseEvent, PinholeFollower};
use natkit_core::addresses::ROUTE_LOOKUP_V6;
use natkit_core::{
    AddressScope, Gateway, KeeperConfig, KeeperEvent, LeaseKeeper, Mapping, MappingRequest,
    Mechanism, Protocol, StableIpv6, stable_ipv6_for,
};
use natkit_pmp::RetransmitPlan;
use natkit_portmap::{
    AutoMapper, CleanupOptions, CleanupReport, Detection, Journal, PortMapConfig,
    mapping_upstream_note,
};
use serde_json::json;
use tokio::sync::broadcast;

use crate::common::{self, Output};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// PCP, then NAT-PMP, then UPnP IGD: the best the router has.
    Auto,
    /// UPnP IGD only.
    Upnp,
    /// NAT-PMP only.
    Natpmp,
    /// PCP only.
    Pcp,
}

/// Map a port on the router for this host and keep it until stopped.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// TCP or UDP.
    #[arg(long, value_enum)]
    protocol: Proto,
    /// The port on this host that inbound traffic should reach.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// The external port to ask for (default: the same as --port).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    external_port: Option<u16>,
    /// Which mechanism to use.
    #[arg(long, value_enum, default_value_t = Choice::Auto)]
    mechanism: Choice,
    /// The lease to ask for, in seconds; renewed at half of what the
    /// router grants.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u32).range(1..=604_800))]
    lifetime: u32,
    /// Map, print, delete and exit.
    #[arg(long)]
    once: bool,
    /// The journal directory (default $XDG_STATE_HOME/natkit/portmap).
    #[arg(long, value_name = "DIR")]
    journal: Option<std::path::PathBuf>,
    /// Open an IPv6 pinhole instead, for this host's stable global IPv6
    /// address (never a temporary one).
    #[arg(long, conflicts_with = "address")]
    ipv6: bool,
    /// The local address inbound traffic should reach (default: the one
    /// that routes to the gateway). An IPv6 address opens a pinhole for it.
    #[arg(long, value_name = "IP")]
    address: Option<IpAddr>,
    /// For a pinhole: a STUN server asked over IPv6 which address the
    /// internet sees for it, `host:port` (or `host` for 3478); repeatable.
    /// Default: natkit_stun::DEFAULT_SERVERS.
    #[arg(long = "stun", value_name = "HOST:PORT")]
    stun: Vec<String>,
}

/// How long the NAT-PMP/PCP deletion at exit may try: the first retry at
/// 250 ms, then every 500 ms, for 8.9 s (19 sends). Under 30 % loss each way
/// (an exchange lost with p = 0.51) a run then leaves its mapping to expire
/// for its lease about once in 350 000 (0.51¹⁹), against once in 1 600 with
/// the library's 4.9 s plan (11 sends), which must fit the lease keeper's
/// default 5 s shutdown; `lab_loss_all` met that one in 1 600. Only a router
/// that stopped answering makes the person at the terminal wait it out.
const EXIT_RELEASE_BUDGET: Duration = Duration::from_millis(8_900);

/// `config` with the deletion plans of [`EXIT_RELEASE_BUDGET`].
fn with_exit_release(mut config: PortMapConfig) -> PortMapConfig {
    config.natpmp.delete = RetransmitPlan::release_within(EXIT_RELEASE_BUDGET);
    config.pcp.delete =
        RetransmitPlan::release_within(EXIT_RELEASE_BUDGET).with_jitter(natkit_pmp::PCP_RAND);
    config
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    // Checked before anything is sent to the router.
    let pinhole = args.ipv6 || args.address.is_some_and(|a| a.is_ipv6());
    if pinhole && args.external_port.is_some_and(|p| p != args.port) {
        eprintln!("error: an IPv6 pinhole does not translate: --external-port must be --port");
        return ExitCode::from(2);
    }
    // Caught from the start when the mapping is kept: a SIGTERM right after the
    // mapping is printed stops the keeper cleanly (and deletes the mapping) instead
    // of killing the process. `--once` keeps the signals' default action.
    let shutdown = match (!args.once).then(common::Shutdown::listen).transpose() {
        Ok(s) => s,
        Err(e) => return common::fail(&e),
    };
    let journal = match &args.journal {
        Some(dir) => Journal::open(dir),
        None => Journal::open_default(),
    };
    let journal = match journal {
        Ok(j) => j,
        Err(e) => return common::fail(&e),
    };
    // One mechanism asked for by name: nothing else could answer instead,
    // so `only` gives its detection 3 s rather than the 900 ms that keeps
    // auto's "no port mapping protocol" under 1 s, and maps through NAT-PMP
    // or PCP even when every detection datagram was lost.
    let only = |m| PortMapConfig::default().only(m);
    let config = with_exit_release(match args.mechanism {
        Choice::Auto => PortMapConfig::default(),
        Choice::Upnp => only(Mechanism::Upnp),
        Choice::Natpmp => only(Mechanism::NatPmp),
        Choice::Pcp => only(Mechanism::Pcp),
    });
    let mapper = AutoMapper::new(config).with_journal(journal);
    let json = out.json;

    // The address is a local lookup; known before the cleanup, it lets the
    // reachability check run beside the cleanup and the mapping.
    let stable = if args.ipv6 {
        Some(stable_address(mapper.gateway().ok().cloned()).await)
    } else {
        None
    };
    let pinhole_ip = match &stable {
        Some(Ok(choice)) => Some(IpAddr::V6(choice.address)),
        Some(Err(_)) => None,
        None => args.address.filter(IpAddr::is_ipv6),
    };
    let reach = pinhole_ip.map(|ip| {
        let servers = if args.stun.is_empty() {
            natkit_stun::default_servers()
        } else {
            args.stun.clone()
        };
        tokio::spawn(reach::check((ip, args.port).into(), servers))
    });
    let mut reach = Reach::new(reach);

    match mapper.cleanup(CleanupOptions::default()).await {
        Ok(report) => print_cleanup(&report, json),
        Err(e) => eprintln!(
            "warning: cleanup of earlier runs failed: {}",
            common::error_line(&e)
        ),
    }

    let protocol = match args.protocol {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
    };
    let (internal_ip, stable) = match stable {
        Some(Ok(choice)) => (IpAddr::V6(choice.address), Some(choice)),
        Some(Err(e)) => return common::fail(&e),
        None => (
            args.address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            None,
        ),
    };
    if let Some(choice) = &stable {
        if json {
            common::print_json(&json!({ "event": "ipv6_address", "choice": choice }));
        } else {
            outln!("using {choice}");
        }
    }
    let request = MappingRequest::new(protocol, (internal_ip, args.port).into())
        .with_external_port(Some(args.external_port.unwrap_or(args.port)))
        .with_lifetime(Duration::from_secs(u64::from(args.lifetime)))
        .with_description("map_port");

    // The deletion at exit gets the NAT-PMP/PCP delete plan's whole budget
    // and a second more for UPnP's hedged DeletePortMapping.
    let keeper_config = KeeperConfig {
        shutdown_timeout: EXIT_RELEASE_BUDGET + Duration::from_secs(1),
        ..KeeperConfig::default()
    };
    let (keeper, mut events) = LeaseKeeper::new(Arc::new(mapper.clone()), keeper_config);
    let (id, mapping) = match keeper.add(request.clone()).await {
        Ok(granted) => granted,
        Err(e) => {
            keeper.shutdown().await;
            // The combinator's own error says what each mechanism answered;
            // the core wrapper would put one mechanism's name in front.
            if let natkit_core::Error::Mechanism { source, .. } = &e
                && let Some(inner) = source.downcast_ref::<natkit_portmap::Error>()
            {
                return common::fail(inner);
            }
            return common::fail(&e);
        }
    };
    let report = mapper.last_detection().await;
    print_mapping(&mapping, &request, &report, json);
    let keeper = Arc::new(keeper);
    // A kept pinhole for the stable address natkit chose moves with a new
    // prefix; an address given with --address is the caller's to keep.
    let follower = match (&stable, &shutdown) {
        (Some(choice), Some(_)) => Some(PinholeFollower::spawn(
            keeper.clone(),
            id,
            request.clone(),
            choice.clone(),
            mapper.gateway().ok(),
            ADDRESS_CHECK_INTERVAL,
        )),
        _ => None,
    };
    let mut moves = follower.as_ref().map(PinholeFollower::events);
    let mut followed = Followed {
        current: mapping,
        failure: None,
    };

    if let Some(shutdown) = shutdown {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                r = reach.next(), if reach.pending() => print_reach(&r, json),
                Some(event) = next_move(&mut moves) => print_move(&event, &mut followed, json),
                Some(event) = events.recv() => if shown(&event, follower.as_ref()) {
                    print_event(&event, json);
                },
            }
        }
    } else if reach.pending() {
        // The check is bounded itself; this bound only guards against a bug.
        match tokio::time::timeout(reach::CHECK_BOUND, reach.next()).await {
            Ok(r) => print_reach(&r, json),
            Err(_) => reach.abandon(),
        }
    }
    // Events the keeper sent before stopping.
    while let Ok(event) = events.try_recv() {
        if shown(&event, follower.as_ref()) {
            print_event(&event, json);
        }
    }
    if let Some(follower) = follower {
        follower.stop().await;
    }
    let Ok(keeper) = Arc::try_unwrap(keeper) else {
        // The follower has let go of it once stopped: a bug if not.
        eprintln!(
            "error: the pinhole's address watch still holds the keeper; the mapping lapses with its lease"
        );
        return ExitCode::FAILURE;
    };
    let shutdown = keeper.shutdown().await;
    let ok = shutdown.all_released();
    let failed: Vec<String> = (shutdown.failed.iter().map(|(_, e)| &**e))
        .chain(&shutdown.task_failed)
        .map(ToString::to_string)
        .collect();
    if json {
        common::print_json(&json!({
            "event": "deleted",
            "released": shutdown.released.len(),
            "failed": failed,
        }));
    } else if ok {
        outln!("deleted {}", followed.current.external);
    } else {
        for e in &failed {
            eprintln!("error: deleting the mapping failed: {e}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether to print the keeper's `event`: not the first `Mapped` (the mapping
/// printed at the start; a moved pinhole's comes as `renumbered`), nor the
/// deletion of a pinhole the follower moved away from, which its `renumbered`
/// line already told.
fn shown(event: &KeeperEvent, follower: Option<&PinholeFollower>) -> bool {
    match (event, follower) {
        (KeeperEvent::Mapped { .. }, _) => false,
        (KeeperEvent::Released { id } | KeeperEvent::ReleaseFailed { id, .. }, Some(f)) => {
            *id == f.id()
        }
        _ => true,
    }
}

/// The follower's next event; never, without a follower or once it stopped.
async fn next_move(moves: &mut Option<broadcast::Receiver<LeaseEvent>>) -> Option<LeaseEvent> {
    if let Some(rx) = moves {
        loop {
            match rx.recv().await {
                Ok(event) => return Some(event),
                // Too many prefix changes to print each: the next one tells the state.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        *moves = None;
    }
    std::future::pending().await
}

/// What the follower's events changed.
struct Followed {
    /// The pinhole in force.
    current: Mapping,
    /// The last failure printed: the same one again, at each look while the
    /// address has no successor, is not printed again.
    failure: Option<String>,
}

/// A prefix change the follower handled.
fn print_move(event: &LeaseEvent, followed: &mut Followed, json: bool) {
    match event {
        LeaseEvent::Renumbered {
            old,
            new,
            mapping,
            old_deleted,
        } => {
            followed.current = (**mapping).clone();
            followed.failure = None;
            if json {
                common::print_json(&json!({
                    "event": "renumbered",
                    "old": old,
                    "choice": new,
                    "internal": mapping.internal.to_string(),
                    "mechanism": mapping.mechanism,
                    "lifetime": mapping.lifetime.as_secs(),
                    "old_deleted": old_deleted.is_ok(),
                    "old_error": old_deleted.as_ref().err().map(ToString::to_string),
                }));
                return;
            }
            outln!(
                "the IPv6 prefix changed: pinhole {} {} via {} (lease {} s) instead of {old}",
                mapping.protocol,
                mapping.internal,
                mapping.mechanism.display_name(),
                mapping.lifetime.as_secs()
            );
            outln!("  using {new}");
            match old_deleted {
                Ok(()) => outln!("  deleted the pinhole for {old}"),
                Err(e) => outln!(
                    "  the pinhole for {old} lapses at the end of its lease (not deleted: {e})"
                ),
            }
        }
        LeaseEvent::RenumberFailed { old, error } => {
            let text = error.to_string();
            if followed.failure.as_ref() == Some(&text) {
                return;
            }
            if json {
                common::print_json(&json!({
                    "event": "renumber_failed",
                    "old": old,
                    "error": text,
                }));
            } else {
                eprintln!(
                    "warning: the pinhole's address {old} is gone: {error}; looking again every {} s",
                    ADDRESS_CHECK_INTERVAL.as_secs()
                );
            }
            followed.failure = Some(text);
        }
        other => tracing::debug!(?other, "a lease event map does not print"),
    }
}

/// The pinhole's reachability check ([`reach`]), running on its own task
/// beside the cleanup, the mapping and the keeper; ended when dropped.
struct Reach {
    task: Option<tokio::task::JoinHandle<reach::Reachability>>,
}

impl Reach {
    fn new(task: Option<tokio::task::JoinHandle<reach::Reachability>>) -> Self {
        Reach { task }
    }

    /// Whether the check has yet to be printed.
    fn pending(&self) -> bool {
        self.task.is_some()
    }

    /// The check's conclusion once it finishes (never, when none is pending);
    /// a panic in it is raised here.
    async fn next(&mut self) -> Option<reach::Reachability> {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let done = task.await;
        self.task = None;
        match done {
            Ok(r) => Some(r),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    fn abandon(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Reach {
    fn drop(&mut self) {
        self.abandon();
    }
}

fn print_reach(r: &Option<reach::Reachability>, json: bool) {
    let Some(r) = r else { return };
    if json {
        common::print_json(&r.json());
    } else {
        outln!("{}", r.line());
    }
}

/// This host's stable global IPv6 address, on the gateway's interface when
/// there is an IPv4 gateway (else the one the default IPv6 route leaves by).
async fn stable_address(
    gateway: Option<Gateway>,
) -> Result<StableIpv6, natkit_core::Ipv6AddressError> {
    let toward = gateway
        .as_ref()
        .and_then(|g| g.address_v6)
        .filter(|a| AddressScope::of(IpAddr::V6(*a)).is_global())
        .unwrap_or(ROUTE_LOOKUP_V6);
    let interface = gateway.map(|g| g.interface);
    tokio::task::spawn_blocking(move || stable_ipv6_for(toward, interface.as_deref()))
        .await
        .unwrap_or_else(|_| {
            Err(natkit_core::Ipv6AddressError::Io(std::io::Error::other(
                "the address lookup did not finish",
            )))
        })
}

fn print_cleanup(report: &CleanupReport, json: bool) {
    let nothing = report.deleted() == 0 && report.failed.is_empty() && report.expired.is_empty();
    if json {
        if !nothing {
            common::print_json(&json!({ "event": "cleanup", "report": report }));
        }
        return;
    }
    for e in &report.removed {
        if e.is_pinhole() {
            outln!(
                "cleanup: deleted {} {} pinhole {} left by an earlier run",
                e.mechanism,
                e.protocol,
                e.internal
            );
            continue;
        }
        outln!(
            "cleanup: deleted {} {} {} -> {} left by an earlier run",
            e.mechanism,
            e.protocol,
            e.external,
            e.internal
        );
    }
    for e in &report.swept {
        outln!("cleanup: deleted stale UPnP entry {e}");
    }
    for (e, why) in &report.failed {
        eprintln!(
            "warning: cleanup could not delete {} {} {}: {why}",
            e.mechanism, e.protocol, e.external
        );
    }
}

fn print_mapping(mapping: &Mapping, request: &MappingRequest, report: &Detection, json: bool) {
    let note = mapping_upstream_note(mapping);
    let substituted = mapping.port_substituted(request);
    if json {
        common::print_json(&json!({
            "event": "mapped",
            "external": mapping.external.to_string(),
            "internal": mapping.internal.to_string(),
            "protocol": mapping.protocol,
            "mechanism": mapping.mechanism,
            "pinhole": mapping.is_pinhole(),
            "lifetime": mapping.lifetime.as_secs(),
            "epoch": mapping.epoch.map(|e| e.server_seconds),
            "port_substituted": substituted,
            "upstream_nat": note,
            "detection": report,
        }));
        return;
    }
    let lease = if mapping.lifetime.is_zero() {
        "permanent (deleted by us)".to_owned()
    } else {
        format!("lease {} s", mapping.lifetime.as_secs())
    };
    if mapping.is_pinhole() {
        outln!(
            "pinhole {} {} via {} ({lease})",
            mapping.protocol,
            mapping.internal,
            mapping.mechanism.display_name()
        );
    } else {
        outln!(
            "mapped {} {} -> {} via {} ({lease})",
            mapping.protocol,
            mapping.external,
            mapping.internal,
            mapping.mechanism.display_name()
        );
    }
    if substituted {
        outln!(
            "note: the router gave external port {} instead of {}",
            mapping.external.port(),
            request.external_port.unwrap_or_default()
        );
    }
    if let Some(note) = note {
        outln!("warning: {note}");
    }
    for m in &report.mechanisms {
        outln!("  {}", m.summary());
    }
}

fn print_event(event: &KeeperEvent, json: bool) {
    let (name, text, value) = match event {
        KeeperEvent::Mapped { mapping, .. } => (
            "keeper_mapped",
            format!("mapped {}", mapping.external),
            json!({ "external": mapping.external.to_string() }),
        ),
        KeeperEvent::Renewed { mapping, .. } => (
            "renewed",
            format!(
                "renewed {} (lease {} s)",
                mapping.external,
                mapping.lifetime.as_secs()
            ),
            json!({ "external": mapping.external.to_string(), "lifetime": mapping.lifetime.as_secs() }),
        ),
        KeeperEvent::Remapped {
            mapping, reason, ..
        } => (
            "remapped",
            format!("re-mapped {} ({reason:?})", mapping.external),
            json!({ "external": mapping.external.to_string(), "reason": format!("{reason:?}") }),
        ),
        KeeperEvent::ExternalAddressChanged { old, new, .. } => (
            "external_address_changed",
            format!("the external address changed from {old} to {new}"),
            json!({ "old": old, "new": new }),
        ),
        KeeperEvent::RenewFailed {
            error, retry_in, ..
        } => (
            "renew_failed",
            format!(
                "renewal failed: {error}; retrying in {} s",
                retry_in.as_secs()
            ),
            json!({ "error": error.to_string(), "retry_in": retry_in.as_secs() }),
        ),
        KeeperEvent::Lost {
            error, retry_in, ..
        } => (
            "lost",
            format!(
                "the mapping is lost: {error}; retrying in {} s",
                retry_in.as_secs()
            ),
            json!({ "error": error.to_string(), "retry_in": retry_in.as_secs() }),
        ),
        KeeperEvent::Released { .. } => ("released", "released".to_owned(), json!({})),
        KeeperEvent::ReleaseFailed { error, .. } => (
            "release_failed",
            format!("deleting failed: {error}"),
            json!({ "error": error.to_string() }),
        ),
        other => ("other", format!("{other:?}"), json!({})),
    };
    if json {
        let mut v = value;
        v["event"] = json!(name);
        common::print_json(&v);
    } else {
        outln!("keeper: {text}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use natkit_pmp::{Retransmitter, TimerAction};

    use super::*;

    /// The sends of `plan` on a simulated clock, and when it gives up.
    fn sends(plan: RetransmitPlan, seed: u64) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut r = Retransmitter::start(plan, t0, seed).expect("a valid plan");
        let mut at = vec![Duration::ZERO];
        loop {
            let now = r.deadline();
            match r.on_timeout(now) {
                TimerAction::Retransmit { .. } => at.push(now - t0),
                TimerAction::GiveUp => return (at, now - t0),
                TimerAction::Wait => unreachable!("called at the deadline"),
            }
        }
    }

    #[test]
    fn the_exit_deletion_sends_19_times_within_its_budget() {
        let config = with_exit_release(PortMapConfig::default().only(Mechanism::NatPmp));
        let (at, gave_up) = sends(config.natpmp.delete, 1);
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        let expected: Vec<u128> = [0, 250]
            .into_iter()
            .chain((750..8_900).step_by(500))
            .collect();
        assert_eq!(ms, expected);
        assert_eq!(at.len(), 19);
        assert_eq!(gave_up, EXIT_RELEASE_BUDGET);
        // PCP's jitter keeps it within the budget, and within the keeper's.
        for seed in 0..200 {
            let (at, gave_up) = sends(config.pcp.delete, seed);
            assert!(at.len() >= 17, "seed {seed}: {at:?}");
            assert!(gave_up <= EXIT_RELEASE_BUDGET, "seed {seed}: {gave_up:?}");
        }
    }
}
