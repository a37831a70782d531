//! Which servers can run the behaviour tests: each server's dialect, its alternate
//! address and the checks on it, and the choice of the server to test against.

use std::net::SocketAddr;

use super::contacts::Contacts;
use super::evidence::{ServerCheck, ServerFlavor, ServerProblem, TestOutcome};

/// The server the behaviour tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// Where test I went (PA:PP).
    pub primary: SocketAddr,
    /// The server's alternate address (AA:AP).
    pub other: SocketAddr,
}

impl Target {
    /// The alternate IP at the primary port (AA:PP), where mapping test II goes.
    pub(crate) fn alt_ip_primary_port(&self) -> SocketAddr {
        SocketAddr::new(self.other.ip(), self.primary.port())
    }

    /// The primary IP at the alternate port (PA:AP), where change-port answers come from.
    pub(crate) fn primary_ip_alt_port(&self) -> SocketAddr {
        SocketAddr::new(self.primary.ip(), self.other.port())
    }

    /// Whether this host had sent to either address that filtering answers come from
    /// by wave `wave`.
    fn opened_by(&self, contacts: &Contacts, wave: u32) -> bool {
        contacts.ip_by(self.other.ip(), wave)
            || contacts.endpoint_by(self.primary_ip_alt_port(), wave)
    }
}

/// The check of one server from its answer to test I (`None`: no answer).
pub(crate) fn check(name: &str, server: SocketAddr, outcome: Option<&TestOutcome>) -> ServerCheck {
    let mut check = ServerCheck {
        server,
        name: name.to_owned(),
        flavor: ServerFlavor::Unreachable,
        other: None,
        usable_for_behaviour: false,
        problem: None,
    };
    if let Some(TestOutcome::Answered {
        other,
        origin,
        from,
        rfc3489,
        mapped: Some(_),
        ..
    }) = outcome
    {
        check.other = *other;
        check.flavor = match other {
            None => ServerFlavor::Plain,
            Some(_) if *rfc3489 => ServerFlavor::Rfc3489,
            Some(_) => ServerFlavor::Rfc5780,
        };
        check.problem = match (other, origin) {
            (None, _) => Some(ServerProblem::NoAlternate),
            (Some(o), _) if o.ip() == server.ip() || o.port() == server.port() => {
                Some(ServerProblem::AlternateNotDistinct { other: *o })
            }
            (Some(_), Some(origin)) if origin != from => Some(ServerProblem::OriginMismatch {
                origin: *origin,
                from: *from,
            }),
            _ => None,
        };
        check.usable_for_behaviour = check.problem.is_none();
    }
    check
}

/// The server to test against: the first usable one whose alternate addresses this
/// host has not sent to by wave `wave`, else the first usable one (its filtering
/// answers are then weighed as possibly let in by our own traffic).
pub(crate) fn choose(checks: &[ServerCheck], contacts: &Contacts, wave: u32) -> Option<Target> {
    let usable: Vec<Target> = checks
        .iter()
        .filter(|c| c.usable_for_behaviour)
        .filter_map(|c| {
            c.other.map(|other| Target {
                primary: c.server,
                other,
            })
        })
        .collect();
    usable
        .iter()
        .find(|t| !t.opened_by(contacts, wave))
        .or(usable.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn rfc5780(server: &str, other: &str) -> ServerCheck {
        let outcome = TestOutcome::Answered {
            mapped: Some(sa("198.51.100.1:4000")),
            from: sa(server),
            other: Some(sa(other)),
            rfc3489: false,
            origin: Some(sa(server)),
            rtt: Some(Duration::from_millis(1)),
            elapsed: Duration::from_millis(1),
        };
        check(server, sa(server), Some(&outcome))
    }

    #[test]
    fn a_server_whose_alternate_we_already_talked_to_is_the_last_choice() {
        let a = rfc5780("192.0.2.1:3478", "192.0.2.2:3479");
        let b = rfc5780("203.0.113.1:3478", "203.0.113.2:3479");
        let mut contacts = Contacts::default();
        contacts.record(sa("192.0.2.2:3478"), 1);
        let t = choose(&[a.clone(), b.clone()], &contacts, 1).expect("target");
        assert_eq!(t.primary, sa("203.0.113.1:3478"));
        // Before that wave, the first server is still clean.
        let t = choose(&[a.clone(), b], &contacts, 0).expect("target");
        assert_eq!(t.primary, sa("192.0.2.1:3478"));
        // With no clean one, the first usable one.
        let t = choose(std::slice::from_ref(&a), &contacts, 1).expect("target");
        assert_eq!(t.primary, sa("192.0.2.1:3478"));
        assert_eq!(t.alt_ip_primary_port(), sa("192.0.2.2:3478"));
        assert_eq!(t.primary_ip_alt_port(), sa("192.0.2.1:3479"));
    }

    #[test]
    fn servers_are_checked_before_use() {
        let same_ip = rfc5780("192.0.2.1:3478", "192.0.2.1:3479");
        assert!(!same_ip.usable_for_behaviour);
        assert!(check("x", sa("192.0.2.1:3478"), None).flavor == ServerFlavor::Unreachable);
        assert_eq!(choose(&[same_ip], &Contacts::default(), 0), None);
    }
}
