//! The public STUN servers natkit asks when the caller names none: one list for the
//! library, the doctor and the tools.
//!
//! Telling a full cone from a port-restricted one (the question iChat and every
//! peer-to-peer app asks) needs a server with a second IP address and port (RFC 5780
//! OTHER-ADDRESS, or RFC 3489 CHANGED-ADDRESS); the big public servers (Google's,
//! Cloudflare's) have one address and answer plain RFC 5389 only. So the list starts
//! with servers that can test filtering, taken from the always-online-stun project's
//! hourly-checked `valid_nat_testing_hosts.txt` (pradt2/always-online-stun, snapshot
//! of commit 0002108c, December 2026), and ends with the big plain ones, which make
//! the address consensus sturdier. The classifier asks the first alone, then all of
//! them at once, and tests against the first that answers with a valid alternate
//! address ([`classify`](crate::classify)); a server that has gone away costs one
//! short wait, not a wrong answer.
//!
//! Public servers change: a caller that needs a verdict it can rely on runs its own
//! (`natkit stun-server` on a host with two public addresses) and names it.

/// One public STUN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicServer {
    /// `host:port`.
    pub name: &'static str,
    /// Whether it was listed as answering RFC 5780 behaviour tests (a second IP and
    /// port); the classifier checks that itself at every run.
    pub rfc5780: bool,
}

const fn nat_testing(name: &'static str) -> PublicServer {
    PublicServer {
        name,
        rfc5780: true,
    }
}

const fn plain(name: &'static str) -> PublicServer {
    PublicServer {
        name,
        rfc5780: false,
    }
}

/// The default servers, those that can test filtering first.
pub const DEFAULT_SERVERS: &[PublicServer] = &[
    nat_testing("stun.nextcloud.com:3478"),
    nat_testing("stun.freeswitch.org:3478"),
    nat_testing("stun.telnyx.com:3478"),
    nat_testing("stun.signalwire.com:3478"),
    nat_testing("stun.sonetel.com:3478"),
    nat_testing("stun.voipgate.com:3478"),
    nat_testing("stun.hot-chilli.net:3478"),
    nat_testing("stun.stochastix.de:3478"),
    plain("stun.l.google.com:19302"),
    plain("stun.cloudflare.com:3478"),
];

/// The names of [`DEFAULT_SERVERS`], in order, as the classifier and the address
/// discoverer take them.
pub fn default_servers() -> Vec<String> {
    DEFAULT_SERVERS.iter().map(|s| s.name.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ServerName;

    #[test]
    fn the_defaults_can_test_filtering_and_parse() {
        let first_plain = DEFAULT_SERVERS
            .iter()
            .position(|s| !s.rfc5780)
            .unwrap_or(DEFAULT_SERVERS.len());
        assert!(
            first_plain >= 4,
            "several filtering-capable servers come first"
        );
        assert!(DEFAULT_SERVERS[first_plain..].iter().all(|s| !s.rfc5780));
        for s in DEFAULT_SERVERS {
            assert!(
                matches!(ServerName::parse(s.name), Ok(ServerName::Host(_, _))),
                "{}",
                s.name
            );
        }
        let names = default_servers();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no server twice");
    }
}
