//! `natkit map --mechanism X --once` under 30 % loss on both sides of the router, 20
//! runs for each of UPnP, NAT-PMP, PCP and auto against miniupnpd in the NAT lab: every
//! run maps, deletes and exits 0, and after every run the router holds nothing of
//! this host's (miniupnpd's table read from the router itself, and its nft chains).
//!
//! `--loss 30` drops 30 % of the packets entering the router on either side and of
//! its own output, so a request/answer exchange with it is lost with probability
//! 1 - 0.7² = 0.51. One lab per mechanism, built once for its 20 runs; the four
//! tests run in parallel. Each run is bounded ([`RUN_LIMIT`]); the time of each is
//! printed as a distribution (min, median, p90, max) for docs/RELIABILITY.md.
//!
//! Needs root and the lab packages (fails, never skips, without them). The `natkit`
//! binary is built by the first test (`natkit_lab::natkit_bin`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use natkit_lab::{Lab, NatKind, Node, RouterMapping, dump_output, parse_upnpc_list};
use serde_json::Value;

const RUNS: u16 = 20;
const LOSS: u8 = 30;

/// One run's bound: detection (3 s), a MAP on the full plan (120 s at most), the
/// delete at exit (11 s at most) and the start-up cleanup, with room to spare. A run
/// this long has already failed any user's patience, so it counts as a failure.
const RUN_LIMIT: Duration = Duration::from_secs(180);

#[test]
fn upnp_maps_and_cleans_up_20_of_20_under_30_percent_loss() {
    loss_runs("upnp", "tcp", 43_000);
}

#[test]
fn natpmp_maps_and_cleans_up_20_of_20_under_30_percent_loss() {
    loss_runs("natpmp", "udp", 43_100);
}

#[test]
fn pcp_maps_and_cleans_up_20_of_20_under_30_percent_loss() {
    loss_runs("pcp", "tcp", 43_200);
}

/// The default, `--mechanism auto`: whichever mechanism detection finds
/// first in PCP, NAT-PMP, UPnP order; its 900 ms window gets a second one
/// for NAT-PMP and PCP when nothing answered the first.
#[test]
fn auto_maps_and_cleans_up_20_of_20_under_30_percent_loss() {
    loss_runs("auto", "udp", 43_300);
}

/// Whether `natkit map --json`'s `mechanism` field fits `--mechanism`.
fn made_by(mechanism: &str, field: &Value) -> bool {
    let names: &[&str] = match mechanism {
        "upnp" => &["upnp"],
        "natpmp" => &["nat_pmp"],
        "pcp" => &["pcp"],
        "auto" => &["pcp", "nat_pmp", "upnp"],
        other => panic!("unknown mechanism {other}"),
    };
    names.iter().any(|n| field == n)
}

fn loss_runs(mechanism: &str, proto: &str, first_port: u16) {
    natkit_lab::require_root();
    let exe = natkit_lab::natkit_bin();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .loss(LOSS)
        .up();
    let journal = journal_dir(mechanism);
    let journal_arg = journal.to_str().expect("utf-8 path");
    let wan = lab.addrs().rtr_wan;
    assert!(
        leftovers(&lab).is_empty(),
        "a fresh lab holds mappings: {:?}",
        leftovers(&lab)
    );

    let mut times = Vec::new();
    let mut failures = Vec::new();
    for i in 0..RUNS {
        let port = (first_port + i).to_string();
        let argv = [
            exe.to_str().expect("utf-8 path"),
            "map",
            "--protocol",
            proto,
            "--port",
            &port,
            "--mechanism",
            mechanism,
            "--once",
            "--json",
            "--journal",
            journal_arg,
        ];
        let start = Instant::now();
        let out = lab.exec_timeout(Node::Lan, &argv, RUN_LIMIT);
        let took = start.elapsed();
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("run {i}: {e} after {took:?}"));
                continue;
            }
        };
        times.push(took);
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let event = |name: &str| events.iter().find(|v| v["event"] == name);
        let verdict = match (event("mapped"), event("deleted")) {
            _ if !out.status.success() => Err("exit status".to_owned()),
            (Some(m), _) if !made_by(mechanism, &m["mechanism"]) => {
                Err(format!("mapped through {}", m["mechanism"]))
            }
            (Some(m), _) if m["external"] != format!("{wan}:{port}") => {
                Err(format!("mapped to {}", m["external"]))
            }
            (Some(_), Some(d)) if d["released"] == 1 && d["failed"] == serde_json::json!([]) => {
                Ok(())
            }
            (mapped, deleted) => Err(format!("mapped {mapped:?}, deleted {deleted:?}")),
        };
        if let Err(why) = verdict {
            failures.push(format!("run {i} ({took:?}): {why}\n{}", dump_output(&out)));
        }
        let left = leftovers(&lab);
        if !left.is_empty() {
            failures.push(format!("run {i}: left on the router: {left:?}"));
        }
    }
    let _ = std::fs::remove_dir_all(&journal);
    println!(
        "natkit map --mechanism {mechanism} --once under {LOSS} % loss: {}/{RUNS} ok; {}",
        usize::from(RUNS) - failures.len().min(usize::from(RUNS)),
        distribution(&mut times)
    );
    assert!(
        failures.is_empty(),
        "{mechanism} under {LOSS} % loss:\n{}",
        failures.join("\n")
    );
}

/// `min … median … p90 … max …` of `times`, in ms.
fn distribution(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "no run finished".to_owned();
    }
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len() - 1) as f64 * q).round() as usize;
        times[i].as_millis()
    };
    format!(
        "time min {} ms, median {} ms, p90 {} ms, max {} ms (n = {})",
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0),
        times.len()
    )
}

/// This host's mappings on the router: miniupnpd's table (UPnP, NAT-PMP and PCP
/// alike) read by `upnpc -l` on the router itself, where the loss rules (on `br0`
/// and `wan0`) do not apply, plus any DNAT rule to the LAN host in the router's nft
/// ruleset (miniupnpd's chains; the port-restricted NAT itself has none), as
/// `RouterMapping`s or the rule text.
fn leftovers(lab: &Lab) -> Vec<String> {
    let lan = lab.addrs().lan;
    let port = lab.get("MINIUPNPD_HTTP_PORT").unwrap_or("2869");
    let url = format!("http://{}:{port}/rootDesc.xml", lab.addrs().rtr_lan);
    let listing = lab
        .exec_ok(Node::Rtr, &["upnpc", "-u", url.as_str(), "-l"])
        .expect("upnpc -l on the router");
    let mut left: Vec<String> = parse_upnpc_list(&listing)
        .into_iter()
        .filter(|m: &RouterMapping| *m.internal.ip() == lan)
        .map(|m| format!("{m:?}"))
        .collect();
    let ruleset = lab.router_ruleset().expect("the router's nft ruleset");
    left.extend(
        ruleset
            .lines()
            .filter(|l| l.contains("dnat") && l.contains(&lan.to_string()))
            .map(|l| l.trim().to_owned()),
    );
    left
}

fn journal_dir(mechanism: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "natkit-loss-all-{}-{mechanism}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
