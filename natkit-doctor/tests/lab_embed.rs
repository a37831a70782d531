//! The doctor embedded in an app, in the NAT lab: the guarantees `natkit doctor`
//! gives on Ctrl-C hold for a library caller. While a run holds trial mappings on
//! the router (a "dial-back server" that accepts and never answers keeps them
//! held), the app either stops it with `diagnose_until`'s stop future, which must
//! return every mapping as deleted, or drops the future, after which the mappings
//! must be gone from the router within the clean-up's bound while the app goes on.
//!
//! The app is this test binary re-run as a helper in the LAN namespace. Needs root
//! and the lab's packages; fails (never skips) without them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use natkit_doctor::{Config, Run};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto};

/// The silent "dial-back server" in wan.
const SILENT_PORT: u16 = 7008;
/// Set for the helper: `stop` or `drop`.
const MODE_ENV: &str = "NATKIT_EMBED_MODE";
/// Set for the helper: the file whose appearance means "stop now".
const STOP_FILE_ENV: &str = "NATKIT_EMBED_STOP_FILE";
/// What the helper prints before its result.
const MARK: &str = "EMBED ";

/// The mappings the router holds for the LAN host.
fn held(lab: &Lab) -> usize {
    let lan = lab.addrs().lan;
    lab.router_mappings()
        .expect("upnpc -l")
        .into_iter()
        .filter(|m| *m.internal.ip() == lan || m.description.contains("natkit"))
        .count()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn lab_with_silent_server() -> (Lab, LabChild) {
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .stund(true)
        .up();
    let port = SILENT_PORT.to_string();
    let silent = lab
        .spawn(Node::Wan, &["nc", "-l", "-k", "-p", port.as_str()])
        .expect("silent server");
    lab.wait_listening(Node::Wan, Proto::Tcp, SILENT_PORT, Duration::from_secs(5))
        .expect("listening");
    (lab, silent)
}

/// Starts the app in the LAN; returns it and the file that stops it.
fn start_app(lab: &Lab, mode: &str) -> (LabChild, PathBuf) {
    let stop_file = lab.run_dir().join(format!("stop-{mode}"));
    let _ = std::fs::remove_file(&stop_file);
    let mut cmd = lab
        .test_helper(Node::Lan, "embedding_app")
        .expect("helper command");
    cmd.env(MODE_ENV, mode)
        .env(STOP_FILE_ENV, &stop_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (LabChild::spawn(&mut cmd).expect("start the app"), stop_file)
}

#[test]
fn stopping_a_run_deletes_its_trial_mappings_and_says_so() {
    let (lab, _silent) = lab_with_silent_server();
    let (app, stop_file) = start_app(&lab, "stop");
    wait_for(
        "the run holds its 2 trial mappings",
        Duration::from_secs(20),
        || held(&lab) == 2,
    );
    std::fs::write(&stop_file, b"").expect("stop");
    let out = app
        .wait_with_output_timeout(Duration::from_secs(30))
        .expect("the app ends");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let result = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| Some(l[l.find(MARK)? + MARK.len()..].to_owned()))
        .unwrap_or_else(|| panic!("no result: {}", natkit_lab::dump_output(&out)));
    // "stopped DELETED LEFT": both mappings deleted, none left behind.
    assert_eq!(result, "stopped 2 0", "{}", natkit_lab::dump_output(&out));
    assert_eq!(held(&lab), 0, "the router still holds trial mappings");
}

#[test]
fn dropping_a_run_deletes_its_trial_mappings() {
    let (lab, _silent) = lab_with_silent_server();
    let (app, stop_file) = start_app(&lab, "drop");
    wait_for(
        "the run holds its 2 trial mappings",
        Duration::from_secs(20),
        || held(&lab) == 2,
    );
    std::fs::write(&stop_file, b"").expect("drop");
    // The app goes on running after the drop; the spawned clean-up deletes the
    // mappings (each delete is bounded by 5 s).
    let took = wait_for(
        "the dropped run's mappings are deleted",
        Duration::from_secs(15),
        || held(&lab) == 0,
    );
    eprintln!("deleted {took:?} after the drop");
    let out = app
        .wait_with_output_timeout(Duration::from_secs(30))
        .expect("the app ends");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("EMBED dropped"),
        "{}",
        natkit_lab::dump_output(&out)
    );
}

async fn wait_for_file(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
#[ignore = "helper process body: the embedding app, run in the LAN by the tests above"]
fn embedding_app() {
    let Some(a) = natkit_lab::helper_addrs("embedding_app").expect("lab env") else {
        return;
    };
    let mode = std::env::var(MODE_ENV).expect("mode");
    let stop_file = PathBuf::from(std::env::var_os(STOP_FILE_ENV).expect("stop file"));
    let config = Config::default()
        .with_ports("5900/tcp,5353/udp".parse().expect("spec"))
        .with_stun_servers([format!("{}:3478", a.stun1)])
        .with_dialback(SocketAddr::from((a.peer, SILENT_PORT)));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        match mode.as_str() {
            "stop" => {
                match natkit_doctor::diagnose_until(config, wait_for_file(&stop_file)).await {
                    Run::Stopped(c) => {
                        println!("{MARK}stopped {} {}", c.deleted.len(), c.left_behind.len())
                    }
                    other => println!("{MARK}unexpected {other:?}"),
                }
            }
            "drop" => {
                tokio::select! {
                    report = natkit_doctor::diagnose(config) => {
                        println!("{MARK}finished before the drop: {report:?}");
                    }
                    () = wait_for_file(&stop_file) => println!("{MARK}dropped"),
                }
                // The app goes on; the runtime runs the clean-up meanwhile.
                tokio::time::sleep(Duration::from_secs(12)).await;
            }
            other => panic!("unknown mode {other}"),
        }
    });
}
