//! natkit-upnp (skeleton; filled by its own issue).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
