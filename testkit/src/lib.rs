//! Test support shared by the natkit crates' tests (a dev-dependency only;
//! never published).
//!
//! - [`pmp`]: a fake NAT-PMP/PCP server on loopback, scripted per test;
//! - [`stun`]: the checks every decoded STUN message must pass (the fuzz
//!   target and the property tests share them).
//!
//! Errors in these tests are quoted with `natkit_core::error_line`, the
//! formatter the tools use, so a test sees the text a user would.
//!
//! The fake UPnP IGD still lives in natkit-upnp's `tests/fake_igd/`, its only
//! user.
#![forbid(unsafe_code)]

pub mod pmp;
pub mod stun;
