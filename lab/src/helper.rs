//! Running a test's own Rust code inside a lab node: the test binary re-runs one of
//! its (ignored) tests as a helper process under `ip netns exec`.
//!
//! ```no_run
//! use natkit_lab::{Lab, Node};
//!
//! #[test]
//! #[ignore = "helper: run inside the lab by maps_from_the_lan"]
//! fn lan_side() {
//!     // Panics unless `maps_from_the_lan` started this process in the lab.
//!     let addrs = natkit_lab::helper_addrs("lan_side").expect("lab env").expect("in the lab");
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
/// `test_name`: the lab's addresses.
///
/// # Panics
///
/// In any other process, e.g. when `cargo test -- --ignored` runs the helper body
/// on the host: outside its lab a helper has nothing to talk to, and returning
/// early would report a pass for a test that did nothing. So the result is always
/// `Some`; the `Option` stays only until the call sites that match on it
/// (`let Some(a) = … else { return }`) are rewritten.
pub fn helper_addrs(test_name: &str) -> Result<Option<LabAddrs>, LabError> {
    let started_as = env::var(HELPER_TEST_ENV).ok();
    if started_as.as_deref() != Some(test_name) {
        panic!("{}", not_in_helper(test_name, started_as.as_deref()));
    }
    let path = env::var_os(HELPER_LAB_ENV).ok_or_else(|| LabError::BadEnv {
        key: HELPER_LAB_ENV.to_owned(),
        value: None,
    })?;
    let text = fs::read_to_string(&path)
        .map_err(|e| LabError::io(format!("reading {}", path.to_string_lossy()), e))?;
    LabAddrs::from_env(&parse_env(&text)).map(Some)
}

/// Why the helper body `test_name` refuses to run in this process.
fn not_in_helper(test_name: &str, started_as: Option<&str>) -> String {
    let how = match started_as {
        None => format!("{HELPER_TEST_ENV} is not set"),
        Some(other) => format!("{HELPER_TEST_ENV} names {other:?}"),
    };
    format!(
        "{test_name} is a lab helper body: it runs only inside a lab node, started by \
         the lab test that calls Lab::test_helper(_, {test_name:?}); run that test \
         instead ({how})"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "lan_side is a lab helper body")]
    fn a_helper_body_outside_its_lab_panics() {
        // The unit test process is never a helper process.
        let _ = helper_addrs("lan_side");
    }

    #[test]
    fn the_message_says_which_helper_and_why() {
        let m = not_in_helper("lan_side", Some("wan_side"));
        assert!(m.contains(r#"Lab::test_helper(_, "lan_side")"#), "{m}");
        assert!(m.contains(r#"NATKIT_LAB_HELPER names "wan_side""#), "{m}");
        let m = not_in_helper("lan_side", None);
        assert!(m.ends_with("(NATKIT_LAB_HELPER is not set)"), "{m}");
    }
}
