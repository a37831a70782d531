//! `natkit map` in the NAT lab against miniupnpd: `--once` and a
//! run stopped by SIGTERM or SIGINT leave nothing on the router; a run
//! killed with SIGKILL leaves its mappings, and the next run's journal
//! cleanup deletes exactly those and nothing of anyone else's.
//!
//! Runs the `natkit` binary (`natkit_lab::natkit_bin` builds it up to date).

use std::path::PathBuf;

use natkit_lab::{Lab, NatKind, Node, Proto, RouterMapping};
use serde_json::Value;

mod natkit_map;
use natkit_map::Running;

fn natkit_exe() -> PathBuf {
    natkit_lab::natkit_bin()
}

/// A fresh journal directory for one test.
fn journal_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("natkit-map-port-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(lab: &Lab, args: &[&str]) -> std::process::Output {
    lab.command(Node::Lan, natkit_exe())
        .arg("map")
        .args(args)
        .output()
        .expect("map_port runs")
}

/// `natkit map --json` for `proto`/`port` through `mechanism`, once it printed
/// its mapping.
fn run_mapped(
    lab: &Lab,
    proto: &str,
    port: &str,
    mechanism: &str,
    journal: &str,
) -> (Running, Value) {
    let running = Running::start(
        lab,
        &[
            "--protocol",
            proto,
            "--port",
            port,
            "--mechanism",
            mechanism,
            "--json",
            "--journal",
            journal,
        ],
    );
    let mapped = running.event("mapped");
    (running, mapped)
}

fn ours(lab: &Lab) -> Vec<RouterMapping> {
    lab.router_mappings()
        .expect("router listing")
        .into_iter()
        .filter(|m| *m.internal.ip() == lab.addrs().lan)
        .collect()
}

fn port_of(v: &Value) -> u16 {
    v["external"]
        .as_str()
        .and_then(|e| e.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no external port in {v}"))
}

#[test]
fn once_sigterm_and_sigint_leave_nothing_on_the_router() {
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .up();
    let dir = journal_dir("clean");
    let journal = dir.to_str().expect("utf-8 path");
    let wan = lab.addrs().rtr_wan;

    // --once, human output.
    let out = run(
        &lab,
        &[
            "--protocol",
            "tcp",
            "--port",
            "42000",
            "--once",
            "--journal",
            journal,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "mapped tcp {wan}:42000 -> 192.168.77.2:42000 via PCP"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("deleted {wan}:42000")), "{text}");
    assert!(ours(&lab).is_empty(), "{:?}", ours(&lab));

    // --once --json: one line with the mapping.
    let out = run(
        &lab,
        &[
            "--protocol",
            "udp",
            "--port",
            "42001",
            "--once",
            "--json",
            "--journal",
            journal,
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    let mapped: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "mapped")
        .expect("a mapped line");
    assert_eq!(mapped["external"], format!("{wan}:42001"));
    assert_eq!(mapped["internal"], "192.168.77.2:42001");
    assert_eq!(mapped["mechanism"], "pcp");
    assert!(
        mapped["lifetime"].as_u64().is_some_and(|l| l > 0),
        "{mapped}"
    );
    assert!(mapped["upstream_nat"].is_null(), "{mapped}");
    assert!(ours(&lab).is_empty(), "{:?}", ours(&lab));

    // Kept until SIGTERM (UPnP) or SIGINT (NAT-PMP), then deleted, exit 0.
    for (mechanism, port, sig) in [("upnp", "42002", "TERM"), ("natpmp", "42003", "INT")] {
        let (running, mapped) = run_mapped(&lab, "tcp", port, mechanism, journal);
        let listed = ours(&lab);
        assert!(
            listed.iter().any(|m| m.external_port == port_of(&mapped)),
            "{mechanism}: {mapped} not listed: {listed:?}"
        );
        running.signal(sig);
        let deleted = running.event("deleted");
        assert_eq!(deleted["released"], 1, "{deleted}");
        let status = running.wait();
        assert!(status.success(), "{mechanism}: {status:?}");
        assert!(ours(&lab).is_empty(), "{mechanism}: {:?}", ours(&lab));
    }
    let left: Vec<_> = std::fs::read_dir(&dir).expect("journal dir").collect();
    assert!(left.is_empty(), "journal files left: {left:?}");
    std::fs::remove_dir_all(&dir).expect("remove journal dir");
}

#[test]
fn sigkill_leaves_mappings_and_the_next_run_deletes_exactly_those() {
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .lan2(true)
        .up();
    let dir = journal_dir("kill");
    let journal = dir.to_str().expect("utf-8 path");
    let lan2 = lab.addrs().lan2.expect("lan2").to_string();
    // Another host's mapping, and one of this host made by another program.
    lab.exec_ok(
        Node::Lan2,
        &["upnpc", "-a", lan2.as_str(), "43000", "43000", "TCP"],
    )
    .expect("lan2 mapping");
    lab.exec_ok(
        Node::Lan,
        &["upnpc", "-a", "192.168.77.2", "43010", "43010", "UDP"],
    )
    .expect("upnpc mapping of this host");
    let before = lab.router_mappings().expect("listing");

    let mut killed = Vec::new();
    for (mechanism, proto, port) in [
        ("pcp", "udp", "43001"),
        ("natpmp", "tcp", "43002"),
        ("upnp", "tcp", "43003"),
    ] {
        let (running, mapped) = run_mapped(&lab, proto, port, mechanism, journal);
        running.signal("KILL");
        running.wait();
        killed.push((port_of(&mapped), proto));
    }
    let after_kill = lab.router_mappings().expect("listing");
    for (port, _) in &killed {
        assert!(
            after_kill.iter().any(|m| m.external_port == *port),
            "SIGKILL should leave {port}: {after_kill:?}"
        );
    }

    // The next run cleans up first.
    let out = run(
        &lab,
        &[
            "--protocol",
            "udp",
            "--port",
            "43004",
            "--once",
            "--json",
            "--journal",
            journal,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    let cleanup: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "cleanup")
        .expect("a cleanup line");
    let removed = cleanup["report"]["removed"].as_array().expect("removed");
    let mut got: Vec<u16> = removed.iter().map(port_of).collect();
    got.sort_unstable();
    let mut want: Vec<u16> = killed.iter().map(|(p, _)| *p).collect();
    want.sort_unstable();
    assert_eq!(got, want, "{cleanup}");
    assert_eq!(
        cleanup["report"]["failed"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(cleanup["report"]["swept"].as_array().map(Vec::len), Some(0));

    // Exactly what was there before the three runs.
    let end = lab.router_mappings().expect("listing");
    assert_eq!(end, before_minus_leases(&before, &end), "{end:?}");
    assert!(
        end.iter()
            .any(|m| m.external_port == 43000 && m.internal.ip().to_string() == lan2)
    );
    assert!(
        end.iter()
            .any(|m| m.external_port == 43010 && m.proto == Proto::Udp)
    );
    assert_eq!(end.len(), 2, "{end:?}");
    let left: Vec<_> = std::fs::read_dir(&dir).expect("journal dir").collect();
    assert!(left.is_empty(), "journal files left: {left:?}");
    std::fs::remove_dir_all(&dir).expect("remove journal dir");
}

/// `before` with the remaining leases as `now` reports them (the lease
/// column counts down between listings).
fn before_minus_leases(before: &[RouterMapping], now: &[RouterMapping]) -> Vec<RouterMapping> {
    before
        .iter()
        .map(|b| {
            let mut b = b.clone();
            if let Some(n) = now
                .iter()
                .find(|n| n.external_port == b.external_port && n.proto == b.proto)
            {
                b.lease_secs = n.lease_secs;
            }
            b
        })
        .collect()
}
