//! The conclusions: each axis as a pure function of what was observed, then the
//! [`Classification`] with the legacy name. Each conclusion needs positive evidence;
//! an absence of answers counts only next to a control that was answered at the same
//! time, and only when repeated.

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{FilteringBehaviour, MappingBehaviour, NatBehaviour};

use super::{HAIRPIN_MISSES, Phase, TestPlan};
use crate::classify::evidence::Classification;
use crate::classify::firewall::Firewall;
use crate::client::IpFamily;

/// One filtering round (RFC 5780 §4.4) on a fresh socket: which requests got answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FilteringRound {
    /// The plain control request to the primary address was answered promptly at its
    /// first send, so the round's absences count.
    pub control: bool,
    /// CHANGE-REQUEST change IP and port.
    pub change_ip_port: bool,
    /// CHANGE-REQUEST change port.
    pub change_port: bool,
    /// An answer with our id came from an address the change did not name: the server
    /// ignores CHANGE-REQUEST.
    pub wrong_source: bool,
    /// This host had sent to the alternate IP by the time of this round, so a filter
    /// kept per host may have let the change-IP-and-port answer in
    /// ([`Contacts`](crate::classify::contacts::Contacts)).
    pub alternate_ip_contacted: bool,
    /// This host had sent to the primary IP at the alternate port by then, so a
    /// per-host filter may have let the change-port answer in.
    pub alternate_port_contacted: bool,
}

/// How many rounds must agree on an absence before it counts.
pub(crate) const CONFIRMATIONS: usize = 3;

/// The filtering verdict so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilteringVerdict {
    /// Concluded.
    Decided(FilteringBehaviour),
    /// Another round is needed.
    NeedMore,
    /// No conclusion possible, with the reason.
    Inconclusive(FilteringUnknown),
}

/// Why the filtering rounds cannot conclude; its text goes in the notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilteringUnknown {
    /// An answer to a CHANGE-REQUEST came from an address the change did not name.
    WrongSource,
    /// The alternate address answered only after this host had sent to it.
    AlternateIpContacted,
    /// The alternate port answered only after this host had sent to it.
    AlternatePortContacted,
    /// No round's control was answered.
    NoControl,
    /// Too few rounds had a control answered at its first send.
    FewControls {
        /// Rounds whose control vouched.
        valid: usize,
        /// Rounds made.
        rounds: usize,
    },
}

impl std::fmt::Display for FilteringUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilteringUnknown::WrongSource => {
                f.write_str("the server answered CHANGE-REQUEST from the wrong address")
            }
            FilteringUnknown::AlternateIpContacted => f.write_str(
                "the server's alternate address answered, but this host had sent to that \
                 address before: a NAT that keeps its filter per host would let it in too, so \
                 full cone cannot be told from restricted cone",
            ),
            FilteringUnknown::AlternatePortContacted => f.write_str(
                "the alternate port answered, but this host had sent to it before: a NAT that \
                 keeps its filter per host would let it in too, so restricted cone cannot be \
                 told from port-restricted cone",
            ),
            FilteringUnknown::NoControl => f.write_str(
                "the control requests of the filtering tests went unanswered (packet loss?)",
            ),
            FilteringUnknown::FewControls { valid, rounds } => write!(
                f,
                "only {valid} of {rounds} filtering rounds had a control answered at its first \
                 send (packet loss, or a server that drops requests)"
            ),
        }
    }
}

/// Decides filtering from the rounds so far, allowing `max_rounds` rounds in all.
///
/// - An answer to change-IP-and-port in any round is positive evidence of
///   endpoint-independent filtering (only a NAT that lets anyone in delivers it),
///   unless this host had already sent to that address: a NAT that keeps its filter
///   per host would let it in too.
/// - Otherwise, address-dependent needs an answer to change-port (from an address the
///   host had not sent to) in some round *and* change-IP-and-port unanswered in
///   [`CONFIRMATIONS`] rounds whose control was answered.
/// - Address-and-port-dependent needs both unanswered in [`CONFIRMATIONS`] such rounds
///   and change-port answered in none.
pub(crate) fn filtering(rounds: &[FilteringRound], max_rounds: usize) -> FilteringVerdict {
    if rounds.iter().any(|r| r.wrong_source) {
        return FilteringVerdict::Inconclusive(FilteringUnknown::WrongSource);
    }
    // Answers are proof whatever the control did; absences count only with a control.
    if rounds
        .iter()
        .any(|r| r.change_ip_port && !r.alternate_ip_contacted)
    {
        return FilteringVerdict::Decided(FilteringBehaviour::EndpointIndependent);
    }
    let absent = rounds
        .iter()
        .filter(|r| r.control && !r.change_ip_port)
        .count();
    let port_proof = rounds
        .iter()
        .any(|r| r.change_port && !r.alternate_port_contacted);
    let port_answered = rounds.iter().any(|r| r.change_port);
    if absent >= CONFIRMATIONS && port_proof {
        return FilteringVerdict::Decided(FilteringBehaviour::AddressDependent);
    }
    if absent >= CONFIRMATIONS && !port_answered {
        return FilteringVerdict::Decided(FilteringBehaviour::AddressAndPortDependent);
    }
    // An opened filter stays open for the NAT's timeout: more rounds cannot help.
    let opened_ip = rounds.iter().filter(|r| r.change_ip_port).count();
    if opened_ip >= CONFIRMATIONS {
        return FilteringVerdict::Inconclusive(FilteringUnknown::AlternateIpContacted);
    }
    if absent >= CONFIRMATIONS {
        return FilteringVerdict::Inconclusive(FilteringUnknown::AlternatePortContacted);
    }
    let valid = rounds.iter().filter(|r| r.control).count();
    if rounds.len() < max_rounds {
        FilteringVerdict::NeedMore
    } else if valid == 0 {
        FilteringVerdict::Inconclusive(FilteringUnknown::NoControl)
    } else {
        FilteringVerdict::Inconclusive(FilteringUnknown::FewControls {
            valid,
            rounds: rounds.len(),
        })
    }
}

/// The mapped addresses of the mapping tests (RFC 5780 §4.3) on one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MappingRound {
    /// Test I: to the primary address.
    pub i: Option<SocketAddr>,
    /// Test II: to the alternate IP, primary port.
    pub ii: Option<SocketAddr>,
    /// Test III: to the alternate IP and port.
    pub iii: Option<SocketAddr>,
    /// Test I repeated after II and III (`None` if not made or unanswered).
    pub i_repeat: Option<SocketAddr>,
    /// Whether the repeat was made at all.
    pub repeat_made: bool,
}

/// Why a mapping round cannot conclude; its text goes in the notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MappingUnknown {
    /// Test I or II went unanswered.
    Unanswered,
    /// The repeat of test I saw another mapping than test I.
    Changed {
        /// Test I's mapping.
        first: SocketAddr,
        /// The repeat's.
        again: SocketAddr,
    },
    /// Tests I and II agree, test III disagrees.
    Inconsistent {
        /// The mapping for the primary and the alternate IP.
        ip: SocketAddr,
        /// The mapping for the alternate port.
        port: SocketAddr,
    },
    /// The mapping depends on the destination, and the repeat of test I was lost.
    RepeatUnanswered,
    /// The mapping depends on the destination, and test III was lost.
    ThirdUnanswered,
}

impl std::fmt::Display for MappingUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MappingUnknown::Unanswered => {
                f.write_str("mapping tests I and II did not both get answers")
            }
            MappingUnknown::Changed { first, again } => write!(
                f,
                "the mapping to the primary address changed during the test ({first} then \
                 {again})"
            ),
            MappingUnknown::Inconsistent { ip, port } => write!(
                f,
                "inconsistent mappings: {ip} for the primary and alternate IP, {port} for the \
                 alternate port"
            ),
            MappingUnknown::RepeatUnanswered => f.write_str(
                "the repeat of test I went unanswered, so a changing mapping cannot be \
                    told from a dependent one",
            ),
            MappingUnknown::ThirdUnanswered => {
                f.write_str("the mapping depends on the destination, but test III went unanswered")
            }
        }
    }
}

/// Decides mapping from one round; `Err` carries why it is inconclusive.
pub(crate) fn mapping(r: &MappingRound) -> Result<MappingBehaviour, MappingUnknown> {
    let (Some(i), Some(ii)) = (r.i, r.ii) else {
        return Err(MappingUnknown::Unanswered);
    };
    if r.repeat_made
        && let Some(again) = r.i_repeat.filter(|&again| again != i)
    {
        return Err(MappingUnknown::Changed { first: i, again });
    }
    if ii == i {
        return match r.iii {
            Some(iii) if iii != i => Err(MappingUnknown::Inconsistent { ip: i, port: iii }),
            _ => Ok(MappingBehaviour::EndpointIndependent),
        };
    }
    if r.repeat_made && r.i_repeat.is_none() {
        return Err(MappingUnknown::RepeatUnanswered);
    }
    match r.iii {
        Some(iii) if iii == ii => Ok(MappingBehaviour::AddressDependent),
        Some(_) => Ok(MappingBehaviour::AddressAndPortDependent),
        None => Err(MappingUnknown::ThirdUnanswered),
    }
}

impl TestPlan {
    /// No server can test filtering: what the mapped addresses of several servers say.
    pub(super) fn no_target(&mut self) {
        self.notes.push(
            "no server gave a usable alternate address (RFC 5780 OTHER-ADDRESS or RFC 3489 \
             CHANGED-ADDRESS): filtering cannot be tested"
                .into(),
        );
        self.mapping = Some(match self.varies {
            Some(false) => MappingBehaviour::EndpointIndependent,
            Some(true) => {
                self.notes.push(
                    "the mapping varies by destination (symmetric NAT), but telling address- \
                     from address-and-port-dependent needs a server with an alternate address"
                        .into(),
                );
                MappingBehaviour::Inconclusive
            }
            None => {
                self.notes.push(
                    "only one server IP answered: the mapping cannot be compared across \
                     destinations"
                        .into(),
                );
                MappingBehaviour::Inconclusive
            }
        });
        self.filtering = Some(FilteringBehaviour::Inconclusive);
        self.hairpin_done = true;
    }

    /// The plan ends: conclusions that need every axis.
    pub(super) fn finish(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        if self.target.is_some()
            && self.hairpin_misses >= HAIRPIN_MISSES
            && !self.hairpin_answered
            && !self.hairpin_miss_counts()
        {
            self.notes.push(
                "hairpinning: the request to this host's own public address did not come \
                 back, but where the mapping depends on the destination the looped-back \
                 request arrives through a new mapping that the filter may drop, so no \
                 hairpinning cannot be told from filtering"
                    .into(),
            );
        }
    }

    /// A hairpin miss means "no hairpinning" only if the looped-back request would
    /// pass the filter: it arrives from this host's own public address through the
    /// mapping the request made, the same one when the mapping is endpoint-independent.
    fn hairpin_miss_counts(&self) -> bool {
        self.mapping == Some(MappingBehaviour::EndpointIndependent)
            || self.filtering == Some(FilteringBehaviour::EndpointIndependent)
    }

    /// Whether the NAT kept the local port: proven by a mapping that kept it. One that
    /// did not says "no" only if it was the socket's first mapping: where the mapping
    /// depends on the destination and the socket had sent elsewhere first (a silent
    /// server), that earlier mapping may hold the port.
    fn port_preservation(&self) -> Option<bool> {
        let (e, l) = (self.external?, self.local?);
        if e.port() == l.port() {
            return Some(true);
        }
        let first_mapping = self.mapping == Some(MappingBehaviour::EndpointIndependent)
            || self.discovered.iter().all(|(p, _)| {
                p.group != self.discovery_group
                    || Some(p.destination) == self.target.map(|t| t.primary)
            });
        first_mapping.then_some(false)
    }

    fn hairpinning(&self) -> Option<bool> {
        if self.hairpin_answered {
            Some(true)
        } else if self.hairpin_misses >= HAIRPIN_MISSES && self.hairpin_miss_counts() {
            Some(false)
        } else {
            None
        }
    }

    /// The conclusion so far (complete once [`is_done`](Self::is_done)).
    pub fn classification(&self) -> Classification {
        let behaviour = NatBehaviour {
            connectivity: self.connectivity,
            mapping: self.mapping.unwrap_or(MappingBehaviour::Inconclusive),
            filtering: self.filtering.unwrap_or(FilteringBehaviour::Inconclusive),
            hairpinning: self.hairpinning(),
            port_preservation: self.port_preservation(),
        };
        Classification {
            family: self.servers.first().map(|(_, s)| IpFamily::of(s.ip())),
            behaviour,
            legacy: behaviour.legacy_type(),
            firewall: Firewall::of(&behaviour),
            external: self.external,
            local: self.local,
            mapping_varies_by_destination: match self.mapping {
                Some(MappingBehaviour::EndpointIndependent) => Some(false),
                Some(MappingBehaviour::AddressDependent)
                | Some(MappingBehaviour::AddressAndPortDependent) => Some(true),
                _ => self.varies,
            },
            behaviour_server: self.target.map(|t| t.primary),
            rtt: self.rtt,
            servers: self.checks.clone(),
            evidence: self.evidence.clone(),
            notes: self.notes.clone(),
            not_asked: Vec::new(),
            binding_lifetime: None,
            elapsed: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FilteringBehaviour as F;

    fn round(control: bool, both: bool, port: bool) -> FilteringRound {
        FilteringRound {
            control,
            change_ip_port: both,
            change_port: port,
            ..FilteringRound::default()
        }
    }

    #[test]
    fn filtering_needs_positive_or_repeated_evidence() {
        use FilteringVerdict::*;
        assert_eq!(
            filtering(&[round(true, true, true)], 3),
            Decided(F::EndpointIndependent)
        );
        // Even without an answered control, an answer from the other address is proof.
        assert_eq!(
            filtering(&[round(false, true, false)], 3),
            Decided(F::EndpointIndependent)
        );
        assert_eq!(filtering(&[round(true, false, true)], 5), NeedMore);
        assert_eq!(
            filtering(
                &[
                    round(true, false, true),
                    round(true, false, false),
                    round(true, false, false)
                ],
                5
            ),
            Decided(F::AddressDependent)
        );
        assert_eq!(filtering(&[round(true, false, false); 2], 5), NeedMore);
        assert_eq!(
            filtering(&[round(true, false, false); 3], 5),
            Decided(F::AddressAndPortDependent)
        );
        // A later positive answer overrides earlier absences.
        assert_eq!(
            filtering(&[round(true, false, false), round(true, true, true)], 3),
            Decided(F::EndpointIndependent)
        );
        // Unanswered controls do not count.
        assert_eq!(
            filtering(
                &[
                    round(false, false, false),
                    round(true, false, false),
                    round(true, false, false)
                ],
                5
            ),
            NeedMore
        );
        assert!(matches!(
            filtering(&[round(false, false, false); 3], 3),
            Inconclusive(_)
        ));
        let liar = FilteringRound {
            wrong_source: true,
            ..round(true, false, false)
        };
        assert!(matches!(filtering(&[liar], 3), Inconclusive(_)));
    }

    #[test]
    fn answers_from_addresses_this_host_sent_to_prove_nothing() {
        use FilteringVerdict::*;
        let opened = |both, port| FilteringRound {
            alternate_ip_contacted: true,
            alternate_port_contacted: true,
            ..round(true, both, port)
        };
        // A per-host restricted cone after this host sent to the alternate address.
        assert_eq!(filtering(&[opened(true, true)], 8), NeedMore);
        assert!(matches!(
            filtering(&[opened(true, true); 3], 8),
            Inconclusive(FilteringUnknown::AlternateIpContacted)
        ));
        // One untainted answer is still proof.
        assert_eq!(
            filtering(&[opened(true, true), round(true, true, true)], 8),
            Decided(F::EndpointIndependent)
        );
        // Absences stay evidence: a tainted port answer alone cannot make
        // "address-dependent", and cannot be ignored for "address-and-port".
        assert!(matches!(
            filtering(&[opened(false, true); 3], 8),
            Inconclusive(FilteringUnknown::AlternatePortContacted)
        ));
        assert_eq!(
            filtering(
                &[
                    opened(false, true),
                    round(true, false, true),
                    round(true, false, false)
                ],
                8
            ),
            Decided(F::AddressDependent)
        );
        assert_eq!(
            filtering(&[opened(false, false); 3], 8),
            Decided(F::AddressAndPortDependent)
        );
    }

    fn a(s: &str) -> Option<SocketAddr> {
        Some(s.parse().expect("addr"))
    }

    #[test]
    fn mapping_from_the_three_tests() {
        let m = |i, ii, iii, rep| MappingRound {
            i,
            ii,
            iii,
            i_repeat: rep,
            repeat_made: true,
        };
        let x = a("1.1.1.1:1000");
        let y = a("1.1.1.1:2000");
        let z = a("1.1.1.1:3000");
        assert_eq!(
            mapping(&m(x, x, x, x)),
            Ok(MappingBehaviour::EndpointIndependent)
        );
        assert_eq!(
            mapping(&m(x, x, None, None)),
            Ok(MappingBehaviour::EndpointIndependent)
        );
        assert_eq!(
            mapping(&m(x, y, y, x)),
            Ok(MappingBehaviour::AddressDependent)
        );
        assert_eq!(
            mapping(&m(x, y, z, x)),
            Ok(MappingBehaviour::AddressAndPortDependent)
        );
        assert!(mapping(&m(x, None, x, x)).is_err());
        assert!(mapping(&m(x, y, None, x)).is_err());
        assert!(mapping(&m(x, y, z, z)).is_err(), "unstable mapping");
        assert!(mapping(&m(x, y, z, None)).is_err(), "no stability check");
        assert!(mapping(&m(x, x, y, x)).is_err(), "inconsistent");
    }
}
