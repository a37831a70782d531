//! natkit's classifier agrees with the reference clients on every lab topology.
//!
//! For each topology of `natkit_lab::every_topology()` (every NAT kind, the double
//! NAT, hairpinning on), the reference clients first say what the NAT is: stund's
//! `stun` and coturn's `turnutils_natdiscovery -f`, `-m`, `-H`, each on fresh NAT
//! state (`lab/tests/reference_truth.rs` proves those verdicts are the topology's
//! name). Then `natkit nat-type --json --hairpinning` runs [`RUNS`] times against
//! each of stund (RFC 3489), coturn (`turnserver -n --stun-only`, RFC 5780) and
//! natkit's own `natkit stun-server`, each run from fresh NAT state too. Every run must give
//! the reference's connectivity (NAT or not), mapping and filtering, inconclusive
//! counting as a disagreement; on port preservation and hairpinning it must never
//! contradict the reference, and where it is inconclusive the table says so (natkit
//! will not call hairpinning behind a destination-dependent mapping, whose filter
//! may drop the looped-back packet). The table of agreement counts is printed
//! whatever the outcome.
//!
//! Each topology has its own lab and all run at once; within a lab the runs are
//! sequential (they share the NAT's state) and alternate between the servers.
//! Needs root; fails (never skips) without it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use natkit_core::{Connectivity, FilteringBehaviour, MappingBehaviour};
use natkit_lab::{
    COTURN_PORT, Lab, LabBuilder, LabChild, NatFiltering, NatMapping, NatProfile, Node, Proto,
    all_at_once, every_topology, require_root,
};
use serde_json::Value;

/// natkit runs per topology and server.
const RUNS: usize = 10;
/// Where natkit's own server listens in the wan node (stund has 3478/3479, coturn
/// 5478/5479).
const OUR_PORT: u16 = 4478;
const OUR_ALT_PORT: u16 = 4479;

fn natkit() -> PathBuf {
    natkit_lab::natkit_bin()
}

/// natkit's `stun_server` on STUN1:4478 and STUN2:4479, killed on drop. No rate
/// limit: one client classifies back to back from one address.
fn start_our_server(lab: &Lab) -> LabChild {
    let a = *lab.addrs();
    let mut cmd = lab.command(Node::Wan, natkit());
    cmd.arg("stun-server")
        .arg("--bind")
        .arg(SocketAddr::from((a.stun1, OUR_PORT)).to_string())
        .arg("--alternate")
        .arg(SocketAddr::from((a.stun2, OUR_ALT_PORT)).to_string())
        .arg("--no-rate-limit")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start natkit's stun_server");
    lab.wait_listening(Node::Wan, Proto::Udp, OUR_ALT_PORT, Duration::from_secs(10))
        .expect("natkit's stun_server listens");
    child
}

fn natkit_mapping(m: NatMapping) -> MappingBehaviour {
    match m {
        NatMapping::EndpointIndependent => MappingBehaviour::EndpointIndependent,
        NatMapping::AddressDependent => MappingBehaviour::AddressDependent,
        NatMapping::AddressAndPortDependent => MappingBehaviour::AddressAndPortDependent,
    }
}

fn natkit_filtering(f: NatFiltering) -> FilteringBehaviour {
    match f {
        NatFiltering::EndpointIndependent => FilteringBehaviour::EndpointIndependent,
        NatFiltering::AddressDependent => FilteringBehaviour::AddressDependent,
        NatFiltering::AddressAndPortDependent => FilteringBehaviour::AddressAndPortDependent,
    }
}

/// How natkit's `nat_type --json` document compares with the reference profile.
#[derive(Debug, Default)]
struct Comparison {
    /// The axes of the bar (connectivity, mapping, filtering) where natkit said
    /// something else, inconclusive included: `axis natkit≠reference`.
    wrong: Vec<String>,
    /// Port preservation and hairpinning: where natkit said something else than the
    /// reference, not counting inconclusive (`null`). Never allowed.
    wrong_extra: Vec<String>,
    /// Port preservation and hairpinning where natkit was inconclusive.
    inconclusive_extra: Vec<String>,
}

fn compare(doc: &Value, want: &NatProfile) -> Comparison {
    let field = |k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
    let mut c = Comparison::default();
    let mut bar = |axis: &str, want: Value| {
        let got = field(axis);
        if got != want {
            c.wrong.push(format!("{axis} {got}≠{want}"));
        }
    };
    let conn = if want.nat {
        Connectivity::Nat
    } else {
        Connectivity::NoNat
    };
    bar(
        "connectivity",
        serde_json::to_value(conn).expect("serializes"),
    );
    bar(
        "mapping",
        serde_json::to_value(natkit_mapping(want.mapping)).expect("serializes"),
    );
    bar(
        "filtering",
        serde_json::to_value(natkit_filtering(want.filtering)).expect("serializes"),
    );
    let mut extra = |axis: &str, want: bool| {
        let got = field(axis);
        if got.is_null() {
            c.inconclusive_extra.push(axis.to_owned());
        } else if got != Value::Bool(want) {
            c.wrong_extra.push(format!("{axis} {got}≠{want}"));
        }
    };
    if want.nat {
        extra("port_preservation", want.preserves_ports);
    }
    if let Some(h) = want.hairpinning {
        extra("hairpinning", h);
    }
    c
}

/// One server's tally on one topology.
#[derive(Debug, Default)]
struct Tally {
    /// Runs that gave the reference's connectivity, mapping and filtering.
    agreed: usize,
    /// Runs that also gave its port preservation and hairpinning.
    agreed_on_all: usize,
    /// `run N: …` for each run below the bar or wrong on another axis.
    disagreements: Vec<String>,
    /// How often natkit was inconclusive on port preservation or hairpinning, by axis.
    inconclusive_extra: Vec<String>,
    /// natkit's own time per run (its `elapsed_ms`).
    elapsed_ms: Vec<f64>,
}

/// One topology's row of the table.
#[derive(Debug)]
struct Row {
    topology: String,
    reference: NatProfile,
    /// stund, coturn, natkit's server.
    tallies: [Tally; 3],
}

const SERVER_NAMES: [&str; 3] = ["stund", "coturn", "natkit"];

fn check_topology(spec: LabBuilder) -> Row {
    let topology = spec.topology_name();
    let lab = spec.build().expect("lab up");
    let _ours = start_our_server(&lab);
    let reference = lab.reference_verdicts();
    assert!(
        reference.disagreements().is_empty(),
        "{topology}: the reference clients disagree on {:?}: {reference:#?}",
        reference.disagreements()
    );
    let want = reference.profile();
    let stun1 = lab.addrs().stun1;
    let servers = [
        SocketAddr::from((stun1, 3478)),
        SocketAddr::from((stun1, COTURN_PORT)),
        SocketAddr::from((stun1, OUR_PORT)),
    ];
    let natkit = natkit();
    let mut tallies: [Tally; 3] = Default::default();
    // Alternate between the servers so that a slow moment of the machine does not
    // fall on one server's runs only.
    for run in 0..RUNS {
        for (server, tally) in servers.iter().zip(tallies.iter_mut()) {
            lab.reset_nat().expect("reset the NAT");
            let out = lab
                .command(Node::Lan, &natkit)
                .args([
                    "nat-type",
                    "--stun",
                    &server.to_string(),
                    "--json",
                    "--hairpinning",
                ])
                .output()
                .expect("run nat_type in the LAN");
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "{topology}, {server}: {e}: {}",
                    natkit_lab::dump_output(&out)
                )
            });
            if let Some(ms) = doc["elapsed_ms"].as_f64() {
                tally.elapsed_ms.push(ms);
            }
            let c = compare(&doc, &want);
            tally.agreed += usize::from(c.wrong.is_empty());
            tally.agreed_on_all += usize::from(
                c.wrong.is_empty() && c.wrong_extra.is_empty() && c.inconclusive_extra.is_empty(),
            );
            if !c.wrong.is_empty() || !c.wrong_extra.is_empty() {
                let all: Vec<String> = c.wrong.into_iter().chain(c.wrong_extra).collect();
                tally.disagreements.push(format!(
                    "run {run}: {}; notes {}",
                    all.join(", "),
                    doc["notes"]
                ));
            }
            tally.inconclusive_extra.extend(c.inconclusive_extra);
        }
    }
    Row {
        topology,
        reference: want,
        tallies,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Every topology, each in its own lab, all at once. The whole table is printed
/// before the assertion, so one run shows every disagreement.
#[test]
fn natkit_agrees_with_the_reference_clients_on_every_topology() {
    require_root();
    let jobs = every_topology()
        .into_iter()
        .map(|spec| (spec.topology_name(), move || check_topology(spec)))
        .collect();
    let rows = all_at_once(jobs);
    let mut table = String::from(
        "topology | reference clients | natkit's connectivity, mapping and filtering agree, \
         against stund / coturn / natkit (median time)\n",
    );
    let mut failures = String::new();
    for row in &rows {
        let counts: Vec<String> = row
            .tallies
            .iter()
            .map(|t| {
                let mut cell = format!("{}/{RUNS} ({:.0} ms)", t.agreed, median(&t.elapsed_ms));
                if t.agreed_on_all < t.agreed {
                    let mut axes = t.inconclusive_extra.clone();
                    axes.sort();
                    axes.dedup();
                    let _ = write!(
                        cell,
                        " [all axes {}/{RUNS}; inconclusive: {}]",
                        t.agreed_on_all,
                        axes.join(", ")
                    );
                }
                cell
            })
            .collect();
        let _ = writeln!(
            table,
            "{} | {} | {}",
            row.topology,
            row.reference,
            counts.join(" / ")
        );
        for (name, t) in SERVER_NAMES.iter().zip(&row.tallies) {
            for d in &t.disagreements {
                let _ = writeln!(failures, "{} against {name}: {d}", row.topology);
            }
        }
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "natkit disagrees with the reference clients:\n{failures}\n{table}"
    );
}
