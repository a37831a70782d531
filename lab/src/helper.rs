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
