//! The WAN connection's state, from `GetStatusInfo`.

use std::fmt;

/// The longest unrecognised status string kept.
const MAX_STATUS_LEN: usize = 64;

/// `NewConnectionStatus` of the WAN connection service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// `Connected`: the only state in which mappings reach the internet.
    Connected,
    /// `Disconnected`.
    Disconnected,
    /// `Unconfigured`: the WAN side has never been set up.
    Unconfigured,
    /// `Connecting`.
    Connecting,
    /// `PendingDisconnect`.
    PendingDisconnect,
    /// `Disconnecting`.
    Disconnecting,
    /// A value outside the spec, kept as sent (at most 64 characters).
    Unrecognised(String),
}

impl ConnectionStatus {
    /// Parses the spec's values exactly; anything else is kept.
    pub fn parse(s: &str) -> ConnectionStatus {
        match s {
            "Connected" => ConnectionStatus::Connected,
            "Disconnected" => ConnectionStatus::Disconnected,
            "Unconfigured" => ConnectionStatus::Unconfigured,
            "Connecting" => ConnectionStatus::Connecting,
            "PendingDisconnect" => ConnectionStatus::PendingDisconnect,
            "Disconnecting" => ConnectionStatus::Disconnecting,
            other => ConnectionStatus::Unrecognised(other.chars().take(MAX_STATUS_LEN).collect()),
        }
    }

    /// Whether the WAN side is up.
    pub fn is_connected(&self) -> bool {
        *self == ConnectionStatus::Connected
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionStatus::Connected => "Connected",
            ConnectionStatus::Disconnected => "Disconnected",
            ConnectionStatus::Unconfigured => "Unconfigured",
            ConnectionStatus::Connecting => "Connecting",
            ConnectionStatus::PendingDisconnect => "PendingDisconnect",
            ConnectionStatus::Disconnecting => "Disconnecting",
            ConnectionStatus::Unrecognised(s) => s,
        })
    }
}

/// The answer to `GetStatusInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInfo {
    /// The connection state.
    pub status: ConnectionStatus,
    /// `NewLastConnectionError`, e.g. `ERROR_NONE`, when sent.
    pub last_error: Option<String>,
    /// `NewUptime` in seconds, when sent and numeric.
    pub uptime_secs: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statuses() {
        assert!(ConnectionStatus::parse("Connected").is_connected());
        assert_eq!(
            ConnectionStatus::parse("Unconfigured"),
            ConnectionStatus::Unconfigured
        );
        let odd = ConnectionStatus::parse(&"x".repeat(100));
        assert_eq!(odd.to_string().len(), 64);
        assert!(!odd.is_connected());
        assert_eq!(
            ConnectionStatus::parse("connected").to_string(),
            "connected"
        );
    }
}
