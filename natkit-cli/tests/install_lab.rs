//! What a user does first: `cargo install --path natkit-cli`, then
//! `natkit doctor --profile back-to-my-mac`, here inside the NAT lab's LAN behind a
//! port-restricted NAT with miniupnpd. The install goes to a scratch root, built
//! with this test's profile into the workspace's target directory (so it reuses
//! what `cargo test` built), offline and with the lock file.
//!
//! Needs root and the lab's packages; fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use natkit_lab::{Lab, LabChild, NatKind, Node, require_root};
use serde_json::Value;

/// `cargo install --path natkit-cli --root ROOT`; returns ROOT/bin/natkit.
fn cargo_install(root: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/TEST-HASH → target/<profile> → target
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["install", "--quiet", "--locked", "--offline", "--path"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--root")
        .arg(root)
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_none_or(|p| p != "release") {
        cmd.arg("--debug");
    }
    let out = cmd.output().expect("run cargo install");
    assert!(
        out.status.success(),
        "cargo install failed: {}",
        natkit_lab::dump_output(&out)
    );
    let bin = root.join("bin/natkit");
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

#[test]
fn cargo_install_then_natkit_doctor_back_to_my_mac() {
    require_root();
    let root = std::env::temp_dir().join(format!("natkit-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let natkit = cargo_install(&root);
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .stund(true)
        .up();
    let a = *lab.addrs();
    let stun1 = format!("{}:3478", a.stun1);
    let stun2 = format!("{}:3478", a.stun2);
    let mut cmd = lab.command(Node::Lan, &natkit);
    cmd.args(["doctor", "--profile", "back-to-my-mac", "--json"])
        .args(["--stun", stun1.as_str(), "--stun", stun2.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = LabChild::spawn(&mut cmd)
        .expect("start natkit doctor")
        .wait_with_output_timeout(Duration::from_secs(60))
        .expect("natkit doctor finishes");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", natkit_lab::dump_output(&out)));
    assert_eq!(doc["profile"], "back-to-my-mac");
    assert_eq!(doc["gateway"], a.rtr_lan.to_string());
    assert_eq!(doc["router_external_address"], a.rtr_wan.to_string());
    assert_eq!(doc["nat"]["legacy_type"], "port_restricted_cone", "{doc:#}");
    let ports = doc["ports"].as_array().expect("ports");
    assert_eq!(
        ports.len(),
        4,
        "443/tcp 4500/udp 5353/udp 5354/tcp: {doc:#}"
    );
    for p in ports {
        assert_eq!(p["mappable"], true, "{p}");
        assert_eq!(p["mapping"]["removed"], true, "{p}");
    }
    let left: Vec<_> = lab
        .router_mappings()
        .expect("upnpc -l")
        .into_iter()
        .filter(|m| *m.internal.ip() == a.lan)
        .collect();
    assert!(left.is_empty(), "mappings left on the router: {left:?}");
    let _ = std::fs::remove_dir_all(&root);
}
