//! Shared helpers for the natkit examples.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
