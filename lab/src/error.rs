//! The lab's error type.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use crate::spec::Node;

/// What the lab tests tell a person who runs them without the means to.
pub(crate) const NEED_ROOT_HINT: &str =
    "lab tests need root and the lab packages; run `bash test.sh` as root (it installs them)";

/// Everything that can go wrong while building, using or tearing down a lab.
#[derive(Debug)]
#[non_exhaustive]
pub enum LabError {
    /// The process does not run as root (the lab creates namespaces and nft rules).
    NotRoot,
    /// A program the lab needs is not installed.
    MissingTool {
        /// The program's name, e.g. `miniupnpd`.
        tool: &'static str,
    },
    /// The lab specification cannot be built (e.g. `--nat open` with `--double-nat`).
    InvalidSpec {
        /// Why.
        reason: &'static str,
    },
    /// Starting a program or reading a lab file failed.
    Io {
        /// What the lab was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// `natlab.sh` (or a command run through [`Lab::exec_ok`](crate::Lab::exec_ok))
    /// exited unsuccessfully.
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it wrote to stdout.
        stdout: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A command did not finish in time and was killed.
    Timeout {
        /// The command line or the condition waited for.
        what: String,
        /// How long the lab waited.
        after: Duration,
    },
    /// The lab's env file lacks a key or has a value that does not parse.
    BadEnv {
        /// The key.
        key: String,
        /// The value found, if any.
        value: Option<String>,
    },
    /// The node does not exist in this lab (`Lan2` without `lan2`, `Isp` without
    /// `double_nat`).
    NoSuchNode(Node),
    /// The lab was built without miniupnpd.
    NoMiniupnpd,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRoot => write!(f, "not running as root: {NEED_ROOT_HINT}"),
            Self::MissingTool { tool } => write!(f, "`{tool}` not found: {NEED_ROOT_HINT}"),
            Self::InvalidSpec { reason } => write!(f, "invalid lab specification: {reason}"),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::CommandFailed {
                command,
                status,
                stdout,
                stderr,
            } => write!(
                f,
                "`{command}` failed ({status})\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
            ),
            Self::Timeout { what, after } => write!(f, "`{what}` timed out after {after:?}"),
            Self::BadEnv {
                key,
                value: Some(v),
            } => {
                write!(f, "lab env: bad value {v:?} for {key}")
            }
            Self::BadEnv { key, value: None } => write!(f, "lab env: {key} missing"),
            Self::NoSuchNode(node) => write!(f, "this lab has no {node:?} node"),
            Self::NoMiniupnpd => write!(f, "this lab runs no miniupnpd"),
        }
    }
}

impl std::error::Error for LabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
