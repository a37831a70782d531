//! Every real router in the corpus at `../shared/routers` (next to the
//! workspace; not in this repository: the captures are other projects'
//! test data, see that directory's README), played back by its
//! `fake_igd.py` in the NAT lab's router namespace. For each one, natkit,
//! with its default discovery, in the LAN:
//! - finds the IGD (SSDP in that router's header style) and its WAN
//!   connection service (whatever the version, namespace, nesting, URLBase
//!   or port of its control URL);
//! - maps a TCP and a UDP port, reads both back, and the wan peer reaches
//!   the LAN host's echo servers through them (the fake installs a real
//!   nftables DNAT per mapping);
//! - deletes both; the router's table is empty and its DNAT rules gone,
//!   which `fake_igd.py check` confirms from the fake's own log.
//!
//! Where the corpus is absent the test says so plainly and passes (a clone
//! of the repository alone has no corpus); with `CI=true` a missing corpus
//! fails. The in-repo fake IGD covers each quirk on its own
//! (`tests/dialects.rs`). Needs root and the lab packages; fails, never
//! skips, without them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use natkit_core::{MappingRequest, PortMapper, Protocol};
use natkit_lab::{Lab, LabChild, Node, Proto, serve_commands, spawn_echo};
use natkit_upnp::{DiscoveryConfig, UpnpErrorCode, UpnpMapper};

/// The LAN host's TCP and UDP echo servers' ports, mapped to the same
/// external ports (`fake_igd.py check` follows the TCP one).
const PORT: u16 = 47_100;
const UDP_PORT: u16 = 47_101;
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the corpus is: `$NATKIT_ROUTER_CORPUS`, else `../shared/routers`
/// next to the workspace.
fn corpus_dir() -> PathBuf {
    match std::env::var_os("NATKIT_ROUTER_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/routers"),
    }
}

fn python<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new("python3")
        .args(args)
        .output()
        .expect("run python3")
}

#[test]
#[ignore = "helper process body; every_router_in_the_corpus_maps_and_cleans_up runs it in the LAN"]
fn router_lan_side() {
    let a = natkit_lab::helper_addrs("router_lan_side")
        .expect("lab env")
        .expect("router_lan_side is the LAN side of every_router_in_the_corpus_maps_and_cleans_up; it runs only inside the lab");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _echo = spawn_echo(PORT, UDP_PORT).expect("echo servers");
    let started = Instant::now();
    let mapper = rt
        .block_on(UpnpMapper::discover(&DiscoveryConfig::default()))
        .expect("discover");
    let igd = mapper.igd();
    println!(
        "IGD {igd} type={} server={:?} others={} found in {} ms",
        igd.service_type(),
        igd.server(),
        igd.other_connections().len(),
        started.elapsed().as_millis()
    );
    let reqs = [(Protocol::Tcp, PORT), (Protocol::Udp, UDP_PORT)].map(|(p, port)| {
        MappingRequest::new(p, SocketAddr::from((a.lan, port)))
            .with_external_port(Some(port))
            .with_lifetime(Duration::from_secs(3600))
            .with_description("corpus")
    });
    let held: Vec<natkit_core::Mapping> = reqs
        .iter()
        .map(|r| rt.block_on(mapper.map(r)).expect("map"))
        .collect();
    for m in &held {
        let back = rt
            .block_on(igd.get_specific_entry(m.protocol, m.external.port()))
            .expect("read back");
        assert_eq!(back.internal_client, a.lan.to_string(), "{back:?}");
        assert_eq!(back.internal_port, m.internal.port(), "{back:?}");
        println!(
            "MAPPED {} {} -> {} lease {} s, read back {back}",
            m.protocol,
            m.external,
            m.internal,
            m.lifetime.as_secs()
        );
    }
    serve_commands(|cmd| match cmd {
        "delete" => {
            for m in &held {
                rt.block_on(mapper.unmap(m)).expect("unmap");
                let gone = rt
                    .block_on(igd.get_specific_entry(m.protocol, m.external.port()))
                    .expect_err("deleted");
                assert_eq!(
                    gone.upnp_code(),
                    Some(UpnpErrorCode::NoSuchEntryInArray),
                    "{gone}"
                );
            }
            vec!["DELETED".to_owned()]
        }
        other => panic!("unknown command {other:?}"),
    });
}

/// Runs one router: the fake up, the helper's map, the wan peer's
/// exchanges, the delete, the fake down, its check. `Err` says what failed.
fn run_router(lab: &Lab, fake_igd: &Path, router: &str) -> Result<String, String> {
    let dir = lab.run_dir();
    let (log, table, ready) = (
        dir.join(format!("{router}.log")),
        dir.join(format!("{router}.table")),
        dir.join(format!("{router}.ready")),
    );
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    // The arguments `serve` and `check` share.
    let files = [
        "--router".to_owned(),
        router.to_owned(),
        "--log".to_owned(),
        s(&log),
        "--table".to_owned(),
        s(&table),
    ];
    let mut serve = vec!["python3".to_owned(), s(fake_igd), "serve".to_owned()];
    serve.extend(files.iter().cloned());
    serve.extend([
        "--ready".to_owned(),
        s(&ready),
        "--wan-if".to_owned(),
        "wan0".to_owned(),
    ]);
    let mut fake: LabChild = lab
        .spawn(Node::Rtr, &serve)
        .map_err(|e| format!("start fake_igd.py: {e}"))?;
    let up = Instant::now();
    while !ready.exists() {
        if up.elapsed() > Duration::from_secs(10) {
            return Err("fake_igd.py never became ready".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = exercise(lab);
    // SIGTERM: the fake deletes its nft table and dumps its table on the way out.
    let _ = lab.exec(Node::Rtr, &["kill", "-TERM", &fake.pid().to_string()]);
    let _ = fake.wait_timeout(Duration::from_secs(5));
    let _ = fake.kill();
    let helper = result?;
    let mut check = vec![s(fake_igd), "check".to_owned()];
    check.extend(files);
    check.extend([
        "--port".to_owned(),
        PORT.to_string(),
        "--client".to_owned(),
        lab.addrs().lan.to_string(),
    ]);
    let check = python(&check);
    let verdict = String::from_utf8_lossy(&check.stdout).trim().to_owned();
    if !check.status.success() {
        return Err(format!("fake_igd.py check: {verdict}\nhelper:\n{helper}"));
    }
    Ok(format!("{verdict}\n{helper}"))
}

/// The helper maps; the wan peer talks through both mappings; the helper
/// deletes them. Returns the helper's transcript.
fn exercise(lab: &Lab) -> Result<String, String> {
    let mut helper = lab
        .helper_session(Node::Lan, "router_lan_side", &[])
        .map_err(|e| format!("helper: {e}"))?;
    let fail = |h: &natkit_lab::HelperSession, what: String| {
        format!("{what}\nhelper:\n{}", h.transcript())
    };
    for _ in 0..2 {
        if let Err(e) = helper.expect("MAPPED ", LINE_TIMEOUT) {
            return Err(fail(&helper, format!("no mapping: {e}")));
        }
    }
    let public = SocketAddr::from((lab.addrs().public, PORT));
    for (proto, port) in [(Proto::Tcp, PORT), (Proto::Udp, UDP_PORT)] {
        let public = SocketAddr::from((lab.addrs().public, port));
        let payload = format!("corpus-{}-{}", proto.as_str(), lab.id());
        let answer = lab
            .exchange(Node::Wan, proto, public, &payload)
            .map_err(|e| format!("exchange: {e}"))?;
        if !answer.ends_with(&payload) {
            return Err(fail(
                &helper,
                format!("the wan peer's {proto:?} exchange through {public} got {answer:?}"),
            ));
        }
    }
    helper.send("delete").map_err(|e| format!("send: {e}"))?;
    if let Err(e) = helper.expect("DELETED", LINE_TIMEOUT) {
        return Err(fail(&helper, format!("no delete: {e}")));
    }
    // Deleted means no longer reachable: the DNAT went with the mapping.
    let after = lab
        .exchange(Node::Wan, Proto::Tcp, public, "after-delete")
        .map_err(|e| format!("exchange: {e}"))?;
    if !after.is_empty() {
        return Err(fail(
            &helper,
            format!("still reachable after delete: {after:?}"),
        ));
    }
    let transcript = helper.transcript();
    match helper.finish(Duration::from_secs(10)) {
        Ok(true) => Ok(transcript),
        other => Err(format!("helper exit {other:?}\n{transcript}")),
    }
}

#[test]
fn every_router_in_the_corpus_maps_and_cleans_up() {
    let dir = corpus_dir();
    let fake_igd = dir.join("fake_igd.py");
    if !fake_igd.exists() {
        let msg = format!(
            "the router corpus is not at {} (set NATKIT_ROUTER_CORPUS): the real-router corpus test did NOT run",
            dir.display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        println!("{msg}");
        return;
    }
    natkit_lab::require_root();
    let listed = python(&[fake_igd.to_str().expect("utf-8 path"), "list"]);
    assert!(listed.status.success(), "fake_igd.py list failed");
    let routers: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!routers.is_empty(), "fake_igd.py lists no routers");
    let lab = Lab::builder().build().expect("lab up");
    // The fake installs a DNAT per mapping and nothing else; miniupnpd
    // would also open the lab's forward filter (policy drop) in its chain.
    // One rule there stands for that: accept what a DNAT redirected. The
    // lab's port-restricted NAT does no DNAT of its own, so every flow it
    // lets in is the fake's mapping at work.
    lab.exec_ok(
        Node::Rtr,
        &[
            "nft",
            "add",
            "rule",
            "inet",
            "filter",
            "miniupnpd",
            "ct",
            "status",
            "dnat",
            "accept",
        ],
    )
    .expect("forward rule for DNATed flows");
    let mut failed = Vec::new();
    for router in &routers {
        match run_router(&lab, &fake_igd, router) {
            Ok(report) => println!("OK {router}: {report}"),
            Err(why) => {
                println!("FAILED {router}: {why}");
                failed.push(router.clone());
            }
        }
    }
    println!(
        "{} of {} routers mapped, reached and cleaned up",
        routers.len() - failed.len(),
        routers.len()
    );
    assert!(failed.is_empty(), "failed: {failed:?}");
}
