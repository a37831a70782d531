//! Can this process run a lab? Root, the tools, the script.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{LabError, NEED_ROOT_HINT};

/// The programs a lab and its tests need (Debian packages nftables, iproute2,
/// util-linux, nmap (for `nping`), miniupnpd-nftables, miniupnpc, natpmpc,
/// stun-client, stun-server, coturn, conntrack, netcat-openbsd).
pub const REQUIRED_TOOLS: [&str; 16] = [
    "bash",
    "ip",
    "nft",
    "ss",
    "flock",
    "ping",
    "miniupnpd",
    "stund",
    "stun",
    "turnserver",
    "turnutils_natdiscovery",
    "conntrack",
    "upnpc",
    "natpmpc",
    "nc",
    "dnsmasq",
];

/// Directories searched after `PATH`: a non-login root shell may lack the sbin ones.
const EXTRA_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The absolute path of `natlab.sh`, found next to this crate's manifest.
pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("natlab.sh")
}

/// Where a program lives: the first match in `PATH`, then in the usual sbin/bin
/// directories. `None` if it is not installed.
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path_dirs = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The effective user id, read from `/proc/self/status` (no libc needed).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved fs
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Checks that a lab can run here: root, every tool in [`REQUIRED_TOOLS`], and the
/// script. [`LabBuilder::build`](crate::LabBuilder::build) calls it too.
pub fn preflight() -> Result<(), LabError> {
    if effective_uid() != Some(0) {
        return Err(LabError::NotRoot);
    }
    if let Some(tool) = REQUIRED_TOOLS.into_iter().find(|t| tool_path(t).is_none()) {
        return Err(LabError::MissingTool { tool });
    }
    let script = script_path();
    if !script.is_file() {
        return Err(LabError::io(
            format!("natlab script {}", script.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    Ok(())
}

/// Makes a lab test fail — never skip — when the lab cannot run here.
///
/// # Panics
///
/// With "lab tests need root and the lab packages; run `bash test.sh` as root (it installs them)" and the
/// reason, when [`preflight`] fails.
pub fn require_root() {
    if let Err(e) = preflight() {
        panic!("{NEED_ROOT_HINT} ({e})");
    }
}

impl crate::LabBuilder {
    /// Brings the lab up for a test: [`require_root`], then
    /// [`build`](crate::LabBuilder::build).
    ///
    /// # Panics
    ///
    /// When the lab cannot run here or `natlab.sh up` fails, with the reason: a
    /// lab test that cannot run must fail, never skip.
    pub fn up(self) -> crate::Lab {
        require_root();
        self.build().unwrap_or_else(|e| panic!("lab up: {e}"))
    }
}
