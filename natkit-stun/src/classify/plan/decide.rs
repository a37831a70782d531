//! The conclusions, as pure functions of what was observed. Each conclusion needs
//! positive evidence; an absence of answers counts only next to a control that was
//! answered at the same time, and only when repeated.

use std::net::SocketAddr;

use natkit_core::{FilteringBehaviour, MappingBehaviour};

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
    /// ([`Contacts`](super::contacts::Contacts)).
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
    Inconclusive(String),
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
        return FilteringVerdict::Inconclusive(
            "the server answered CHANGE-REQUEST from the wrong address".into(),
        );
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
        return FilteringVerdict::Inconclusive(
            "the server's alternate address answered, but this host had sent to that \
             address before: a NAT that keeps its filter per host would let it in too, so \
             full cone cannot be told from restricted cone"
                .into(),
        );
    }
    if absent >= CONFIRMATIONS {
        return FilteringVerdict::Inconclusive(
            "the alternate port answered, but this host had sent to it before: a NAT that \
             keeps its filter per host would let it in too, so restricted cone cannot be \
             told from port-restricted cone"
                .into(),
        );
    }
    let valid = rounds.iter().filter(|r| r.control).count();
    if rounds.len() < max_rounds {
        FilteringVerdict::NeedMore
    } else if valid == 0 {
        FilteringVerdict::Inconclusive(
            "the control requests of the filtering tests went unanswered (packet loss?)".into(),
        )
    } else {
        FilteringVerdict::Inconclusive(format!(
            "only {} of {} filtering rounds had a control answered at its first send \
             (packet loss, or a server that drops requests)",
            valid,
            rounds.len()
        ))
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

/// Decides mapping from one round; `Err` carries why it is inconclusive.
pub(crate) fn mapping(r: &MappingRound) -> Result<MappingBehaviour, String> {
    let (Some(i), Some(ii)) = (r.i, r.ii) else {
        return Err("mapping tests I and II did not both get answers".into());
    };
    if r.repeat_made && r.i_repeat.is_some_and(|again| again != i) {
        return Err(format!(
            "the mapping to the primary address changed during the test ({i} then {})",
            r.i_repeat.map_or_else(String::new, |a| a.to_string())
        ));
    }
    if ii == i {
        return match r.iii {
            Some(iii) if iii != i => Err(format!(
                "inconsistent mappings: {i} for the primary and alternate IP, {iii} for the \
                 alternate port"
            )),
            _ => Ok(MappingBehaviour::EndpointIndependent),
        };
    }
    if r.repeat_made && r.i_repeat.is_none() {
        return Err(
            "the repeat of test I went unanswered, so a changing mapping cannot be \
                    told from a dependent one"
                .into(),
        );
    }
    match r.iii {
        Some(iii) if iii == ii => Ok(MappingBehaviour::AddressDependent),
        Some(_) => Ok(MappingBehaviour::AddressAndPortDependent),
        None => Err("the mapping depends on the destination, but test III went unanswered".into()),
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
            Inconclusive(why) if why.contains("per host")
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
            Inconclusive(why) if why.contains("port-restricted")
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
