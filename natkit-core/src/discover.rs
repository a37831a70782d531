//! The address discoverer trait: "which address does the internet see?".

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;

use crate::error::{FailureKind, Result};
use crate::mechanism::Mechanism;

/// Something that can tell this host's public address as seen from outside:
/// STUN servers, or a router's own report (UPnP, NAT-PMP, PCP).
#[async_trait]
pub trait AddressDiscoverer: Send + Sync {
    /// Which mechanism this discoverer uses.
    fn mechanism(&self) -> Mechanism;

    /// Finds the public address, with the evidence for it.
    async fn discover(&self) -> Result<ExternalAddress>;
}

/// A public address and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ExternalAddress {
    /// The address the evidence supports.
    pub ip: IpAddr,
    /// The external port, where the mechanism tells one (STUN's mapped port
    /// for the socket it used).
    pub port: Option<u16>,
    /// Every observation made, agreeing or not.
    pub evidence: Vec<Evidence>,
}

impl ExternalAddress {
    /// The observations that saw [`ip`](Self::ip).
    pub fn agreeing(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence
            .iter()
            .filter(move |e| e.outcome.ip() == Some(self.ip))
    }

    /// The observations that saw another address.
    pub fn disagreeing(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence
            .iter()
            .filter(move |e| e.outcome.ip().is_some_and(|ip| ip != self.ip))
    }
}

/// One observation: who was asked, and what they said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Evidence {
    /// The mechanism used.
    pub mechanism: Mechanism,
    /// Who answered: a STUN server's `host:port`, or the gateway's address.
    pub source: String,
    /// What was observed.
    pub outcome: Outcome,
}

/// What one source said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Outcome {
    /// It saw this address and port (STUN's mapped address).
    SawEndpoint(SocketAddr),
    /// It reported this address (a router's external address).
    SawAddress(IpAddr),
    /// It did not answer in time.
    TimedOut,
    /// It answered with an error, or could not be asked.
    Failed {
        /// What kind of failure, for callers to match on.
        kind: DiscoveryFailure,
        /// The failure in words, as the mechanism put it.
        detail: String,
    },
}

/// Why a source gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DiscoveryFailure {
    /// The source's name did not resolve, so it was not asked.
    Unresolved {
        /// Why, in words ("no such name", "the lookup took longer than 3 s" …): the
        /// same for every name the same resolver failure hit.
        reason: String,
    },
    /// It answered with an error response (STUN's ERROR-CODE).
    ErrorResponse {
        /// The error code (e.g. 420), 0 if the response carried none.
        code: u16,
    },
    /// Any other failure, in the kinds every natkit error has
    /// ([`FailureKind`]: a network error, a malformed answer, a router's refusal …).
    Other(FailureKind),
}

impl Outcome {
    /// The address observed, if any.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Outcome::SawEndpoint(sa) => Some(sa.ip()),
            Outcome::SawAddress(ip) => Some(*ip),
            Outcome::TimedOut | Outcome::Failed { .. } => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::SawEndpoint(sa) => write!(f, "saw {sa}"),
            Outcome::SawAddress(ip) => write!(f, "saw {ip}"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Failed { detail, .. } => write!(f, "failed: {detail}"),
        }
    }
}

/// One line of a table of evidence: the mechanism and the source in
/// aligned columns, then the outcome (`stun     88.77.66.10:3478  saw …`).
impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {:<24} {}",
            self.mechanism.as_str(),
            self.source,
            self.outcome
        )
    }
}

/// Forms a consensus from observations: the address most sources saw
/// (ties go to the earliest observation), or `None` if none saw any.
pub fn consensus(evidence: Vec<Evidence>) -> Option<ExternalAddress> {
    let mut best: Option<(IpAddr, usize, usize)> = None; // (ip, votes, first index)
    for (i, e) in evidence.iter().enumerate() {
        let Some(ip) = e.outcome.ip() else { continue };
        let votes = evidence
            .iter()
            .filter(|o| o.outcome.ip() == Some(ip))
            .count();
        let first = evidence
            .iter()
            .position(|o| o.outcome.ip() == Some(ip))
            .unwrap_or(i);
        if best.is_none_or(|(_, v, f)| votes > v || (votes == v && first < f)) {
            best = Some((ip, votes, first));
        }
    }
    let (ip, _, _) = best?;
    let port = evidence.iter().find_map(|e| match e.outcome {
        Outcome::SawEndpoint(sa) if sa.ip() == ip => Some(sa.port()),
        _ => None,
    });
    Some(ExternalAddress { ip, port, evidence })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(source: &str, outcome: Outcome) -> Evidence {
        Evidence {
            mechanism: Mechanism::Stun,
            source: source.into(),
            outcome,
        }
    }

    #[test]
    fn majority_wins_and_keeps_dissent() {
        let a: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let b: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let got = consensus(vec![
            ev("s1", Outcome::SawEndpoint(b)),
            ev("s2", Outcome::SawEndpoint(a)),
            ev("s3", Outcome::TimedOut),
            ev("s4", Outcome::SawEndpoint(a)),
        ])
        .unwrap();
        assert_eq!(got.ip, a.ip());
        assert_eq!(got.port, Some(40000));
        assert_eq!(got.agreeing().count(), 2);
        assert_eq!(
            got.disagreeing()
                .map(|e| e.source.as_str())
                .collect::<Vec<_>>(),
            ["s1"]
        );
    }

    #[test]
    fn evidence_prints_as_aligned_columns() {
        let e = Evidence {
            mechanism: Mechanism::NatPmp,
            source: "192.168.1.1".into(),
            outcome: Outcome::SawAddress("203.0.113.9".parse().unwrap()),
        };
        assert_eq!(
            e.to_string(),
            "natpmp   192.168.1.1              saw 203.0.113.9"
        );
    }

    #[test]
    fn tie_goes_to_first_and_none_without_answers() {
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "203.0.113.9".parse().unwrap();
        let got = consensus(vec![
            ev("s1", Outcome::SawAddress(b)),
            ev("s2", Outcome::SawAddress(a)),
        ])
        .unwrap();
        assert_eq!(got.ip, b);
        assert_eq!(got.port, None);
        assert!(consensus(vec![ev("s1", Outcome::TimedOut)]).is_none());
    }
}
