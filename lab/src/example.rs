//! The natkit example programs that lab tests run inside the namespaces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The path of the `natkit-examples` example `name` (e.g. `"doctor"`), built
/// up to date for the profile the calling test was built with.
///
/// Tests cannot count on `cargo test` having built it: an example with
/// `test = true` (the doctor) is built only as a test harness there, and
/// `cargo test -p CRATE --test FILE` builds no examples at all. So the first
/// call in a test process runs `cargo build --example NAME` into the same
/// target directory (a no-op when it is current). Panics with the reason when
/// that fails: a lab test must fail, not skip.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
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
    cmd.args(["build", "-q", "-p", "natkit-examples", "--example", name])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build the {name} example: {e}"));
    assert!(status.success(), "building the {name} example failed");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.is_file(),
        "{} is missing after the build",
        bin.display()
    );
    built.insert(name.to_string(), bin.clone());
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
