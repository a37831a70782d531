//! natkit-portmap's error type.

use std::path::PathBuf;

use natkit_core::{FailureKind, Mechanism};

use crate::report::{Detection, MechanismError};

/// What went wrong in the combinator or its journal.
///
/// At the [`natkit_core::PortMapper`] boundary these are wrapped in
/// [`natkit_core::Error::Mechanism`]; downcast the source to this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No mechanism can map: the detection's summary names what each said
    /// ("no port mapping protocol on 192.168.77.1 (pcp: no answer …)").
    #[error("{}", report.summary())]
    NoMechanism {
        /// The detection.
        report: Box<Detection>,
    },
    /// Every available mechanism was tried and each failed.
    #[error("every mechanism failed: {}", attempts_line(attempts))]
    AllFailed {
        /// What each mechanism answered, in the order tried, each with its
        /// protocol crate's typed error ([`MechanismError::downcast`]).
        attempts: Vec<(Mechanism, MechanismError)>,
    },
    /// A mapping made by a mechanism this combinator does not use (not in
    /// its order, or not found on this gateway).
    #[error("no {mechanism} mapper on this gateway for that mapping")]
    NoMapperFor {
        /// The mechanism that made the mapping.
        mechanism: Mechanism,
    },
    /// The journal could not be read or written.
    #[error("journal {path}: {op} failed: {source}")]
    JournalIo {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`create directory`, `write`, `read`, …).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A journal file is not natkit's format.
    #[error("journal {path}: not a natkit journal: {detail}")]
    JournalFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong (at most 200 characters).
        detail: String,
    },
    /// A journal entry's mapper token is not the hex natkit writes.
    #[error("journal entry's token {token:?} is not a natkit mapping token")]
    JournalToken {
        /// The token as found (at most 64 characters of it).
        token: String,
    },
    /// No place for the journal: neither `$XDG_STATE_HOME` nor `$HOME` is set.
    #[error("no journal directory: set XDG_STATE_HOME or HOME, or give a path")]
    NoJournalDir,
}

/// natkit-portmap's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn attempts_line(attempts: &[(Mechanism, MechanismError)]) -> String {
    attempts
        .iter()
        .map(|(m, e)| format!("{m}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The broad failure kind: for [`Error::AllFailed`] the first
    /// attempt's; "unavailable" when no mechanism is usable.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Error::NoMechanism { report } => report
                .mechanisms
                .iter()
                .find_map(|m| m.error.as_ref().filter(|_| m.responded).map(|e| e.kind))
                .unwrap_or(FailureKind::Unavailable),
            Error::AllFailed { attempts } => attempts
                .first()
                .map_or(FailureKind::Unavailable, |(_, e)| e.kind),
            Error::NoMapperFor { .. } => FailureKind::Unsupported,
            // The router may have granted the mapping; this host could not
            // keep the record that makes it safe to hand out.
            Error::JournalIo { .. }
            | Error::JournalFormat { .. }
            | Error::JournalToken { .. }
            | Error::NoJournalDir => FailureKind::Local,
        }
    }
}

impl natkit_core::IntoCore for Error {
    fn failure_kind(&self) -> FailureKind {
        Error::failure_kind(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::IntoCore;

    #[test]
    fn journal_failures_are_this_hosts() {
        let denied = Error::JournalIo {
            path: "/var/lib/natkit/portmap/1234.json".into(),
            op: "write",
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(denied.failure_kind(), FailureKind::Local);
        let core = denied.into_core(Mechanism::Pcp);
        assert_eq!(core.failure_kind(), Some(FailureKind::Local));
        assert!(!core.is_retryable());
        assert_eq!(Error::NoJournalDir.failure_kind(), FailureKind::Local);
    }
}
