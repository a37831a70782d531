//! natkit's examples: short demos of each crate's main use (see README.md
//! beside this file). The tools themselves are the `natkit` command (natkit-cli).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
