//! The crate's error type.

use std::time::Duration;

/// What can go wrong when planning or running a probe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A probe plan needs at least one target address.
    #[error("no target addresses to probe")]
    NoTargets,
    /// A probe plan needs at least one port.
    #[error("no ports to probe")]
    NoPorts,
    /// The plan is larger than one run handles.
    #[error("{count} probes planned; at most {max} are allowed in one run")]
    TooManyProbes {
        /// Targets × ports planned.
        count: usize,
        /// The most allowed ([`crate::MAX_PROBES`]).
        max: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid probe configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// Sockets could not be created (out of descriptors or local ports) even
    /// with nothing else of the probe's in flight, for longer than allowed.
    #[error("out of sockets for {waited:?} with no probe in flight: {}", std::io::Error::from_raw_os_error(*errno))]
    ResourcesExhausted {
        /// The last OS error (`EMFILE`, `ENFILE`, `ENOBUFS`, `EADDRNOTAVAIL` …).
        errno: i32,
        /// How long the engine kept retrying.
        waited: Duration,
    },
    /// The engine must run inside a tokio runtime with I/O and time enabled.
    #[error("the probe engine needs a tokio runtime with I/O and time enabled")]
    NoRuntime,
    /// A dial-back message was malformed.
    #[error("dial-back message: {0}")]
    Dialback(#[from] crate::dialback::WireError),
    /// A probe task ended abnormally (it panicked or was cancelled): a bug.
    #[error("a probe task ended abnormally")]
    ProbeTaskFailed,
}

/// Which configuration value is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `tries` must be between 1 and [`crate::MAX_TRIES`].
    #[error("tries must be 1..={max}, not {0}", max = crate::MAX_TRIES)]
    Tries(u8),
    /// The RTT bounds must satisfy `0 < min_rto ≤ initial_rto ≤ max_rto`.
    #[error("RTT bounds must satisfy 0 < min_rto <= initial_rto <= max_rto")]
    RttBounds,
    /// A rate limit needs at least one probe per second and a burst of one.
    #[error("a rate limit needs per_second >= 1 and burst >= 1")]
    Rate,
    /// `max_concurrency` must be at least 1.
    #[error("max_concurrency must be at least 1")]
    Concurrency,
    /// `give_up_after` must be non-zero.
    #[error("give_up_after must be non-zero")]
    GiveUp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            Error::from(ConfigError::Tries(0)).to_string(),
            format!(
                "invalid probe configuration: tries must be 1..={}, not 0",
                crate::MAX_TRIES
            )
        );
        let e = Error::ResourcesExhausted {
            errno: 24,
            waited: Duration::from_secs(30),
        };
        let msg = e.to_string();
        assert!(msg.starts_with("out of sockets for 30s"), "{msg}");
        assert!(msg.contains("(os error 24)"), "{msg}");
    }
}
