//! natkit-core: the shared vocabulary of natkit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
