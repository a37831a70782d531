//! The natkit program that lab tests run inside the namespaces: the `natkit`
//! tool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The path of the `natkit` command-line tool (crate natkit-cli), built up to
/// date for the profile the calling test was built with: what
/// `cargo install --path natkit-cli` installs. Lab tests run its subcommands
/// (`natkit doctor`, `natkit map` …) inside the namespaces.
///
/// Tests of other crates cannot count on cargo having built it, so the first call
/// in a test process runs `cargo build -p natkit-cli --bin natkit` into the same
/// target directory (a no-op when it is current). Panics with the reason when that
/// fails: a lab test must fail, not skip.
pub fn natkit_bin() -> PathBuf {
    built(
        "natkit",
        &["--bin", "natkit"],
        "natkit-cli",
        Path::new("natkit"),
    )
}

/// Builds `package`'s target (`what`, e.g. `["--bin", "natkit"]`) once per test
/// process and returns `target/<profile>/<path>`.
fn built(key: &str, what: &[&str], package: &str, path: &Path) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{package}/{key}");
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/TEST-HASH → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the lab crate lives in the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package])
        .args(what)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build {key}: {e}"));
    assert!(status.success(), "building {key} failed");
    let bin = profile_dir.join(path);
    assert!(
        bin.is_file(),
        "{} is missing after the build",
        bin.display()
    );
    built.insert(key, bin.clone());
    bin
}

/// A finished program's exit status, stdout and stderr as one text, for a lab test's
/// failure message.
pub fn dump_output(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
