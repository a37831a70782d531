//! Running a test's own Rust code inside a lab node: the test binary re-runs one of
//! its (ignored) tests as a helper process under `ip netns exec`.
//!
//! ```no_run
//! use natkit_lab::{Lab, Node};
//!
//! #[test]
//! #[ignore = "helper: run inside the lab by maps_from_the_lan"]
//! fn lan_side() {
//!     let Some(addrs) = natkit_lab::helper_addrs("lan_side").expect("lab env") else {
//!         return; // run by hand, not as a helper: nothing to do
//!     };
//!     // … talk to addrs.rtr_lan with the code under test, print results …
//! }
//!
//! #[test]
//! fn maps_from_the_lan() {
//!     natkit_lab::require_root();
//!     let lab = Lab::builder().miniupnpd(true).build().expect("lab");
//!     let out = lab.test_helper(Node::Lan, "lan_side").expect("helper").output().expect("run");
//!     assert!(out.status.success());
//! }
//! ```

use std::env;
use std::fs;

use crate::env::{LabAddrs, parse_env};
use crate::error::LabError;

/// Set in a helper process to the name of the test it runs.
pub const HELPER_TEST_ENV: &str = "NATKIT_LAB_HELPER";

/// Set in a helper process to the path of the lab's env file.
pub const HELPER_LAB_ENV: &str = "NATKIT_LAB_ENV";

/// In a helper process started by [`Lab::test_helper`](crate::Lab::test_helper) for
/// `test_name`: the lab's addresses. `Ok(None)` in any other process, so the helper
/// test can return at once when it runs on its own.
pub fn helper_addrs(test_name: &str) -> Result<Option<LabAddrs>, LabError> {
    if env::var(HELPER_TEST_ENV).ok().as_deref() != Some(test_name) {
        return Ok(None);
    }
    let path = env::var_os(HELPER_LAB_ENV).ok_or_else(|| LabError::BadEnv {
        key: HELPER_LAB_ENV.to_owned(),
        value: None,
    })?;
    let text = fs::read_to_string(&path)
        .map_err(|e| LabError::io(format!("reading {}", path.to_string_lossy()), e))?;
    LabAddrs::from_env(&parse_env(&text)).map(Some)
}

impl crate::Lab {
    /// Runs the test helper `test_name` in `node` to the end (see
    /// [`test_helper`](crate::Lab::test_helper)) and returns what follows `mark` on
    /// each line of its stdout that holds it (the test harness may print
    /// `test NAME ... ` in front of the first). Panics with the helper's whole
    /// output when it cannot run or fails: a lab test must fail loudly.
    pub fn helper_lines(&self, node: crate::Node, test_name: &str, mark: &str) -> Vec<String> {
        let out = self
            .test_helper(node, test_name)
            .and_then(|mut cmd| {
                cmd.output()
                    .map_err(|e| LabError::io(format!("running helper {test_name}"), e))
            })
            .unwrap_or_else(|e| panic!("helper {test_name}: {e}"));
        assert!(
            out.status.success(),
            "helper {test_name} failed: {}",
            crate::dump_output(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.find(mark).map(|at| l[at + mark.len()..].to_owned()))
            .collect()
    }
}
