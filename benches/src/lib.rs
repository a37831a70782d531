//! Helpers shared by natkit's benchmarks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
