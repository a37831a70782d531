//! A new Rust project that depends on `natkit` by path, as a user's would: it opens a
//! port with one call, reads its external address and NAT type with one call each
//! (the default STUN servers: the lab's DNS maps one of their names to stund and
//! the others to nothing), and closes the port; run inside the NAT lab's LAN host
//! behind a port-restricted NAT with miniupnpd. The router must hold the mapping
//! while the program runs and nothing afterwards.
//!
//! The project is written to a temporary directory, pinned to this workspace's
//! Cargo.lock and built offline (every crate it needs is already downloaded for the
//! workspace) into `target/new-project`, so that it shares nothing with the
//! workspace build but the registry.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use natkit_lab::{Lab, NatKind, Node, Proto};

const MAIN_RS: &str = r#"
use std::io::BufRead;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lease = natkit::PortLease::open(natkit::Protocol::Tcp, 8080).await?;
    let m = lease.external().ok_or("no mapping in force")?;
    println!("mapped {} via {}", m.external, m.mechanism);

    let address = natkit::external_address().await?;
    println!("address {}", address.ip);

    let nat = natkit::nat_type().await?;
    println!("nat {}", nat.legacy.as_str());

    // Hold the port until the test has looked at the router.
    println!("holding");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;

    lease.close().await?;
    println!("closed");
    Ok(())
}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Writes and builds the project; returns its binary.
fn build_project() -> PathBuf {
    let root = workspace();
    let dir = std::env::temp_dir().join(format!("natkit-new-project-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("project dir");
    let manifest = format!(
        r#"[package]
name = "uses-natkit"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
natkit = {{ path = "{}" }}
tokio = {{ version = "1", features = ["rt-multi-thread", "macros"] }}

[workspace]
"#,
        root.join("natkit").display()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), MAIN_RS).expect("main.rs");
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
    let target = root.join("target").join("new-project");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the new project did not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    target.join("debug").join("uses-natkit")
}

#[test]
fn a_new_project_opens_reads_and_closes_in_one_call_each() {
    natkit_lab::require_root();
    let bin = build_project();
    // A default server that can test filtering, not the first of the list: the
    // names before it do not resolve, as when public servers go away.
    let entry = natkit::stun::DEFAULT_SERVERS[2];
    assert!(entry.rfc5780, "{entry:?}");
    let (host, port) = entry.name.rsplit_once(':').expect("host:port");
    assert_eq!(port, "3478", "the lab's stund listens on 3478");
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .stund(true)
        .dns([(host, Ipv4Addr::new(88, 77, 66, 10))])
        .build()
        .expect("lab");
    let a = *lab.addrs();
    assert_eq!(a.stun1, Ipv4Addr::new(88, 77, 66, 10));

    let mut cmd = lab.command(Node::Lan, &bin);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = natkit_lab::LabChild::spawn(&mut cmd).expect("spawn");
    let stdout = child.child_mut().stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    while lines.last().map(String::as_str) != Some("holding") {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let out = child.wait_with_output_timeout(Duration::from_secs(5));
                panic!("the program stopped before holding: {lines:?} {out:?}");
            }
        }
    }
    let public = a.public.to_string();
    assert!(
        lines[0].starts_with(&format!("mapped {public}:8080 via ")),
        "{lines:?}"
    );
    assert_eq!(lines[1], format!("address {public}"), "{lines:?}");
    assert_eq!(lines[2], "nat port_restricted_cone", "{lines:?}");
    let held = lab.router_mappings().expect("router table");
    assert!(
        held.iter()
            .any(|m| m.external_port == 8080 && m.proto == Proto::Tcp),
        "the router holds the mapping while the lease lives: {held:?}"
    );

    use std::io::Write;
    let mut stdin = child.child_mut().stdin.take().expect("stdin");
    stdin.write_all(b"\n").expect("release");
    drop(stdin);
    let status = child
        .wait_timeout(Duration::from_secs(15))
        .expect("wait")
        .expect("the program ends after close");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "{lines:?} {rest:?}");
    assert_eq!(rest, ["closed"]);
    let left = lab.router_mappings().expect("router table");
    assert!(left.is_empty(), "nothing left on the router: {left:?}");
    lab.down().expect("lab down");
}
