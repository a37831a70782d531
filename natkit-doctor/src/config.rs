//! What a run of the doctor checks, and with what.

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{PortSpec, Protocol, ServiceProfile};
use tokio::sync::watch;

/// The shortest and longest time any one check may take.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(120);

/// How long any one check may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which ports of a service to check.
#[derive(Debug, Clone, Default)]
pub enum Ports {
    /// No per-port checks: only the path, the router and the NAT type.
    #[default]
    None,
    /// The ports of a service profile (`back-to-my-mac`, `ichat` …), each with
    /// what it is for.
    Profile(&'static ServiceProfile),
    /// Ports given as a spec, e.g. `443/tcp,4500/udp,5298` (no protocol = both).
    Spec(PortSpec),
}

impl Ports {
    /// The (port, protocol) pairs to check.
    pub fn pairs(&self) -> Vec<(u16, Protocol)> {
        match self {
            Ports::None => Vec::new(),
            Ports::Profile(p) => p.port_spec().pairs(),
            Ports::Spec(s) => s.pairs(),
        }
    }

    /// The profile, when the ports came from one.
    pub fn profile(&self) -> Option<&'static ServiceProfile> {
        match self {
            Ports::Profile(p) => Some(p),
            _ => None,
        }
    }
}

/// What a run is doing now, for a progress display ([`Config::progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Not started yet.
    Starting,
    /// Looking up the default gateway.
    Gateway,
    /// Asking the router (UPnP, NAT-PMP, PCP) and the STUN servers.
    RouterAndStun,
    /// Checking this many ports.
    Ports(usize),
    /// Deleting the trial mappings.
    Cleanup,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Starting => f.write_str("starting"),
            Stage::Gateway => f.write_str("looking up the default gateway"),
            Stage::RouterAndStun => {
                f.write_str("asking the router (UPnP, NAT-PMP, PCP) and STUN servers")
            }
            Stage::Ports(n) => write!(f, "checking {n} ports"),
            Stage::Cleanup => f.write_str("deleting trial mappings"),
        }
    }
}

/// What to check and with what. Start from [`Config::default`] (no ports, the
/// default STUN servers, trial mappings on, 5 s per check) and change fields or use
/// the `with_` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The ports to check.
    pub ports: Ports,
    /// STUN servers, `host:port` (or `host` for 3478). The default is
    /// [`natkit_stun::default_servers`]: public servers that can test filtering,
    /// then plain ones for the address consensus.
    pub stun_servers: Vec<String>,
    /// A natkit dial-back server outside: each port is checked from the internet
    /// while its trial mapping is held. Needs ports. With its SIP echo
    /// (`natkit dialback-server --sip-echo`) the SIP ALG check runs too
    /// ([`Report::sip_alg`](crate::Report::sip_alg)); with its outbound echo
    /// (`--outbound-ports`) the outbound check
    /// ([`Report::outbound`](crate::Report::outbound)); with `--bandwidth` the
    /// bandwidth check ([`Report::bandwidth`](crate::Report::bandwidth)).
    pub dialback: Option<SocketAddr>,
    /// The dial-back server's IPv6 address: each port is checked from the
    /// IPv6 internet without a pinhole, then through one
    /// ([`Report::ipv6`](crate::Report::ipv6)). Needs ports.
    pub dialback6: Option<SocketAddr>,
    /// Make trial mappings (deleted right after) to learn whether natkit can map
    /// each port; `false` only reads the router's forwarding table.
    pub trial: bool,
    /// The longest any one check may take; within [`TIMEOUT_RANGE`].
    pub timeout: Duration,
    /// Where to report the [`Stage`] a run is in (for a spinner); `None` reports
    /// nothing.
    pub progress: Option<watch::Sender<Stage>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ports: Ports::None,
            stun_servers: natkit_stun::default_servers(),
            dialback: None,
            dialback6: None,
            trial: true,
            timeout: DEFAULT_TIMEOUT,
            progress: None,
        }
    }
}

/// A [`Config`] that cannot run as given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The timeout is outside [`TIMEOUT_RANGE`].
    #[error("the timeout must be between 0.1 and 120 seconds, not {0:?}")]
    Timeout(Duration),
    /// A dial-back server was given without ports to check.
    #[error("a dial-back check needs ports to check: give a profile or ports")]
    DialbackWithoutPorts,
    /// No STUN server to ask.
    #[error("no STUN server given")]
    NoStunServers,
    /// The IPv6 dial-back server's address is not an IPv6 address.
    #[error("the IPv6 dial-back server must have an IPv6 address, not {0}")]
    Dialback6NotIpv6(SocketAddr),
}

impl Config {
    /// The ports of a service profile, by name (`back-to-my-mac`, `ichat`, `ssh` …).
    pub fn with_profile(mut self, name: &str) -> Result<Config, natkit_core::Error> {
        self.ports = Ports::Profile(ServiceProfile::by_name(name)?);
        Ok(self)
    }

    /// The ports of a spec.
    pub fn with_ports(mut self, spec: PortSpec) -> Config {
        self.ports = Ports::Spec(spec);
        self
    }

    /// These STUN servers instead of the default ones.
    pub fn with_stun_servers(mut self, servers: impl IntoIterator<Item = String>) -> Config {
        self.stun_servers = servers.into_iter().collect();
        self
    }

    /// Check reachability from outside through this dial-back server.
    pub fn with_dialback(mut self, server: SocketAddr) -> Config {
        self.dialback = Some(server);
        self
    }

    /// Check reachability from the IPv6 internet through this dial-back
    /// server's IPv6 address.
    pub fn with_dialback6(mut self, server: SocketAddr) -> Config {
        self.dialback6 = Some(server);
        self
    }

    /// Whether to make trial mappings.
    pub fn with_trial(mut self, trial: bool) -> Config {
        self.trial = trial;
        self
    }

    /// The longest any one check may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// Report progress through `sender`.
    pub fn with_progress(mut self, sender: watch::Sender<Stage>) -> Config {
        self.progress = Some(sender);
        self
    }

    /// Whether the configuration makes sense as given. [`diagnose`](crate::diagnose)
    /// runs anything: a timeout outside the range is clamped into it, a dial-back
    /// server without ports is not asked, and no STUN server means no STUN checks;
    /// a tool should refuse such input with this error instead.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !TIMEOUT_RANGE.contains(&self.timeout) {
            return Err(ConfigError::Timeout(self.timeout));
        }
        let dialback = self.dialback.is_some() || self.dialback6.is_some();
        if dialback && matches!(self.ports, Ports::None) {
            return Err(ConfigError::DialbackWithoutPorts);
        }
        if self.stun_servers.is_empty() {
            return Err(ConfigError::NoStunServers);
        }
        if let Some(d) = self.dialback6.filter(SocketAddr::is_ipv4) {
            return Err(ConfigError::Dialback6NotIpv6(d));
        }
        Ok(())
    }

    pub(crate) fn report_stage(&self, stage: Stage) {
        if let Some(p) = &self.progress {
            p.send_replace(stage);
        }
    }

    pub(crate) fn clamped_timeout(&self) -> Duration {
        self.timeout
            .clamp(*TIMEOUT_RANGE.start(), *TIMEOUT_RANGE.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let c = Config::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.stun_servers, natkit_stun::default_servers());
        let slow = Config::default().with_timeout(Duration::from_secs(500));
        assert!(matches!(slow.validate(), Err(ConfigError::Timeout(_))));
        assert_eq!(slow.clamped_timeout(), Duration::from_secs(120));
        let lone = Config::default().with_dialback("192.0.2.7:7007".parse().expect("addr"));
        assert!(matches!(
            lone.validate(),
            Err(ConfigError::DialbackWithoutPorts)
        ));
        let ok = lone.with_profile("ssh").expect("ssh is a profile");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.ports.pairs(), [(22, Protocol::Tcp)]);
        assert!(Config::default().with_profile("nope").is_err());
        let none = Config::default().with_stun_servers(Vec::new());
        assert!(matches!(none.validate(), Err(ConfigError::NoStunServers)));
    }
}
