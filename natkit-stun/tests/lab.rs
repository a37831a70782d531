//! The classifier in the NAT lab: for each NAT kind, natkit's classifier runs in the
//! LAN against stund and against natkit's own server (both in the wan node, on the two
//! STUN addresses), and must give the kind's legacy type — and agree with stund's own
//! client. Needs root; fails (never skips) without it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natkit_core::{Connectivity, LegacyNatType};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, helper_addrs, require_root};
use natkit_stun::classify::{Classification, ClassifyConfig, ServerFlavor, classify};
use natkit_stun::client::RetransmitPlan;
use natkit_stun::server::{Server, ServerConfig};

/// Where natkit's own server listens in the wan node (stund has 3478/3479).
const OUR_PORT: u16 = 4478;
const OUR_ALT_PORT: u16 = 4479;
/// The env var telling the LAN helper which servers to classify against.
const TARGETS_ENV: &str = "NATKIT_STUN_LAB_TARGETS";
/// The line prefix the LAN helper prints each classification after.
const MARK: &str = "NATKIT_CLASSIFICATION ";

#[test]
#[ignore = "helper: run inside the lab's wan node by the lab tests"]
fn wan_server_helper() {
    let Some(addrs) = helper_addrs("wan_server_helper").expect("lab env") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = ServerConfig::with_alternate(
            SocketAddr::from((addrs.stun1, OUR_PORT)),
            SocketAddr::from((addrs.stun2, OUR_ALT_PORT)),
        );
        let server = Server::bind(cfg).await.expect("bind in wan");
        println!("serving on {:?}", server.local_addrs());
        server.run().await.expect("serve");
    });
}

#[test]
#[ignore = "helper: run inside the lab's LAN node by the lab tests"]
fn lan_classify_helper() {
    if helper_addrs("lan_classify_helper")
        .expect("lab env")
        .is_none()
    {
        return;
    }
    let targets = std::env::var(TARGETS_ENV).expect("targets");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for target in targets.split(',') {
        let mut config = ClassifyConfig::new([target]);
        config.plan = RetransmitPlan::LAB;
        config.hairpinning = true;
        let c = rt.block_on(classify(config)).expect("classify");
        println!("{MARK}{}", serde_json::to_string(&c).expect("json"));
    }
}

/// The legacy type stund's client reports on its "Primary:" line.
fn stund_verdict(lab: &Lab) -> (LegacyNatType, Option<bool>, String) {
    let server = lab.addrs().stun1.to_string();
    let out = lab
        .exec(Node::Lan, &["stun", server.as_str(), "-v"])
        .expect("stun");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let primary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Primary: "))
        .unwrap_or_else(|| panic!("no verdict from stun:\n{stdout}"))
        .trim()
        .to_owned();
    let legacy = if primary.starts_with("Open") {
        LegacyNatType::Open
    } else if primary.starts_with("Dependent Mapping") {
        LegacyNatType::Symmetric
    } else if primary.contains("Independent Filter") {
        LegacyNatType::FullCone
    } else if primary.contains("Address Dependent Filter") {
        LegacyNatType::RestrictedCone
    } else if primary.contains("Port Dependent Filter") {
        LegacyNatType::PortRestrictedCone
    } else {
        panic!("unknown stun verdict {primary:?}")
    };
    let hairpin = if primary.contains("no hairpin") {
        Some(false)
    } else if primary.contains("will hairpin") {
        Some(true)
    } else {
        None
    };
    (legacy, hairpin, primary)
}

/// Runs natkit's classifier in the LAN against stund and natkit's server.
fn classify_in_lan(lab: &Lab) -> (Vec<Classification>, Duration) {
    let stund = SocketAddr::from((lab.addrs().stun1, 3478));
    let ours = SocketAddr::from((lab.addrs().stun1, OUR_PORT));
    let t = Instant::now();
    let out = lab
        .test_helper(Node::Lan, "lan_classify_helper")
        .expect("helper")
        .env(TARGETS_ENV, format!("{stund},{ours}"))
        .output()
        .expect("run the classifier in the LAN");
    let took = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helper failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Classification> = stdout
        .lines()
        .filter_map(|l| l.split_once(MARK).map(|(_, json)| json))
        .map(|j| serde_json::from_str(j).expect("classification json"))
        .collect();
    assert_eq!(results.len(), 2, "{stdout}");
    (results, took)
}

/// Starts natkit's server in the wan node (killed when the returned child drops).
fn start_our_server(lab: &Lab) -> LabChild {
    let mut cmd = lab
        .test_helper(Node::Wan, "wan_server_helper")
        .expect("helper");
    cmd.stdout(std::process::Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start our server");
    lab.wait_listening(Node::Wan, Proto::Udp, OUR_ALT_PORT, Duration::from_secs(10))
        .expect("our server listens");
    child
}

fn check(kind: NatKind, want: LegacyNatType) {
    require_root();
    let started = Instant::now();
    let lab = Lab::builder()
        .nat(kind)
        .stund(true)
        .build()
        .expect("lab up");
    let up = started.elapsed();
    let _server = start_our_server(&lab);
    let (results, classify_time) = classify_in_lan(&lab);

    let (stund_says, stund_hairpin, line) = stund_verdict(&lab);
    assert_eq!(stund_says, want, "{kind}: stund's client says {line:?}");
    for (c, server, flavor) in [
        (&results[0], "stund", ServerFlavor::Rfc3489),
        (&results[1], "natkit", ServerFlavor::Rfc5780),
    ] {
        let what = format!("{kind} against {server}: {c:#?}");
        println!(
            "{kind} vs {server}: {} in {:?} (mapping {}, filtering {}, hairpin {:?})",
            c.legacy,
            c.elapsed,
            c.behaviour.mapping,
            c.behaviour.filtering,
            c.behaviour.hairpinning
        );
        assert_eq!(c.legacy, want, "{what}");
        assert_eq!(
            c.legacy, stund_says,
            "disagrees with stund's client ({line}): {what}"
        );
        assert_eq!(c.servers[0].flavor, flavor, "{what}");
        let external = c.external.expect("external address");
        assert_eq!(
            external.ip(),
            std::net::IpAddr::V4(lab.addrs().public),
            "{what}"
        );
        let conn = if kind == NatKind::Open {
            Connectivity::NoNat
        } else {
            Connectivity::Nat
        };
        assert_eq!(c.behaviour.connectivity, conn, "{what}");
        if let (Some(ours), Some(theirs)) = (c.behaviour.hairpinning, stund_hairpin) {
            assert_eq!(
                ours, theirs,
                "hairpinning disagrees with stund's client: {what}"
            );
        }
    }
    println!(
        "{kind}: lab up in {up:?}, both classifications in {classify_time:?} (helper process \
         included)"
    );
}

#[test]
fn lab_open() {
    check(NatKind::Open, LegacyNatType::Open);
}

#[test]
fn lab_full_cone() {
    check(NatKind::FullCone, LegacyNatType::FullCone);
}

#[test]
fn lab_restricted_cone() {
    check(NatKind::RestrictedCone, LegacyNatType::RestrictedCone);
}

#[test]
fn lab_port_restricted_cone() {
    check(NatKind::PortRestricted, LegacyNatType::PortRestrictedCone);
}

#[test]
fn lab_symmetric() {
    check(NatKind::Symmetric, LegacyNatType::Symmetric);
}

/// With 10 % loss at the router (about 19 % per round trip) the classifier may say
/// "inconclusive" but never names a wrong type.
#[test]
fn lab_port_restricted_cone_with_loss_is_never_wrong() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .stund(true)
        .loss(10)
        .build()
        .expect("lab up");
    let _server = start_our_server(&lab);
    for run in 0..2 {
        let (results, took) = classify_in_lan(&lab);
        for c in &results {
            println!(
                "with loss, run {run}, server {:?}: {} in {took:?}; notes {:?}",
                c.behaviour_server, c.legacy, c.notes
            );
            assert!(
                matches!(
                    c.legacy,
                    LegacyNatType::PortRestrictedCone | LegacyNatType::Inconclusive
                ),
                "{c:#?}"
            );
            assert!(matches!(
                c.behaviour.connectivity,
                Connectivity::Nat | Connectivity::Inconclusive
            ));
        }
    }
}
