//! What the classifier observed, and what it concluded.

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{LegacyNatType, NatBehaviour};

use super::firewall::Firewall;
use super::lifetime::BindingLifetime;
use crate::Error;
use crate::client::IpFamily;

/// Which test a request belonged to (RFC 5780 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TestKind {
    /// Test I: a plain Binding request to a server's primary address (§4.3). Also how
    /// every server is first asked.
    MappingI,
    /// Mapping test II: to the alternate IP, primary port (§4.3).
    MappingII,
    /// Mapping test III: to the alternate IP and port (§4.3).
    MappingIII,
    /// Test I again after tests II and III, to check that the first mapping held.
    MappingIRepeat,
    /// The control of a filtering round: a plain request to the primary address at the
    /// same time, from the same socket, as the filtering tests (§4.4 test I).
    FilteringControl,
    /// Filtering test II: CHANGE-REQUEST change IP and port (§4.4).
    FilteringChangeIpPort,
    /// Filtering test III: CHANGE-REQUEST change port (§4.4).
    FilteringChangePort,
    /// Hairpinning: a request to the socket's own mapped address (§4.6).
    Hairpin,
    /// The control of a repeated hairpinning test: a plain request to the primary
    /// address from the same socket at the same time.
    HairpinControl,
}

impl TestKind {
    /// A request of a filtering round (its answers are evidence about the filter).
    pub fn is_filtering(self) -> bool {
        matches!(
            self,
            TestKind::FilteringControl
                | TestKind::FilteringChangeIpPort
                | TestKind::FilteringChangePort
        )
    }
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TestOutcome {
    /// An acceptable answer.
    Answered {
        /// The mapped address the server saw.
        mapped: Option<SocketAddr>,
        /// Where the answer came from.
        from: SocketAddr,
        /// OTHER-ADDRESS or CHANGED-ADDRESS, if given.
        other: Option<SocketAddr>,
        /// Whether `other` came from RFC 3489's CHANGED-ADDRESS.
        rfc3489: bool,
        /// RESPONSE-ORIGIN or SOURCE-ADDRESS, if given.
        origin: Option<SocketAddr>,
        /// The round-trip time, when unambiguous.
        rtt: Option<Duration>,
        /// Time from the first send to the answer.
        elapsed: Duration,
    },
    /// No acceptable answer within the wait. `wrong_sources` lists sources that answered
    /// with this request's id from an address not accepted (a server ignoring
    /// CHANGE-REQUEST).
    NoAnswer {
        /// Sources that answered from the wrong address.
        wrong_sources: Vec<SocketAddr>,
    },
    /// The request could not be made, or got an error response.
    Failed(TestFailure),
}

/// Why a request got no answer that counts, other than silence.
///
/// In JSON it is its text (`"error response 420"`), as the evidence has always read;
/// read back, an error response keeps its code and anything else its text only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", from = "String"))]
#[non_exhaustive]
pub enum TestFailure {
    /// The server answered with an error response.
    ErrorResponse {
        /// The ERROR-CODE number (e.g. 420), 0 if the response carried none.
        code: u16,
    },
    /// The client transaction ended with an error: the request could not be sent.
    Transaction(Error),
    /// A failure read back from serialized evidence, as its text: the typed error
    /// does not survive serialization.
    Recorded(String),
}

impl std::fmt::Display for TestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestFailure::ErrorResponse { code } => write!(f, "error response {code}"),
            TestFailure::Transaction(e) => e.fmt(f),
            TestFailure::Recorded(text) => f.write_str(text),
        }
    }
}

impl From<TestFailure> for String {
    fn from(f: TestFailure) -> String {
        f.to_string()
    }
}

impl From<String> for TestFailure {
    fn from(text: String) -> TestFailure {
        match text
            .strip_prefix("error response ")
            .and_then(|c| c.parse().ok())
        {
            Some(code) => TestFailure::ErrorResponse { code },
            None => TestFailure::Recorded(text),
        }
    }
}

impl TestOutcome {
    /// The mapped address, if answered with one.
    pub fn mapped(&self) -> Option<SocketAddr> {
        match self {
            TestOutcome::Answered { mapped, .. } => *mapped,
            _ => None,
        }
    }

    /// Whether an acceptable answer came.
    pub fn answered(&self) -> bool {
        matches!(self, TestOutcome::Answered { .. })
    }
}

impl Classification {
    /// The note saying a server was not asked, and why.
    pub fn not_asked_note(why: &Error) -> String {
        format!("not asked: {why}")
    }

    /// The error a note stands for, if it is the note of a server not asked
    /// ([`not_asked`](Self::not_asked)).
    pub fn not_asked_by_note(&self, note: &str) -> Option<&Error> {
        self.not_asked
            .iter()
            .find(|e| Self::not_asked_note(e) == note)
    }

    /// The mapping axis in words that fit: `none` with no NAT in the way (the
    /// address seen is this host's own, nothing is translated, as on IPv6), else the
    /// RFC 4787 behaviour (`endpoint_independent` …).
    pub fn mapping_name(&self) -> &'static str {
        match self.firewall {
            Some(_) => "none",
            None => self.behaviour.mapping.as_str(),
        }
    }

    /// What is in the way, in one phrase: the firewall's name with no NAT, the legacy
    /// NAT type otherwise (`stateful_address_and_port_dependent` on a home
    /// router's IPv6, `port_restricted_cone` behind its IPv4 NAT).
    pub fn kind(&self) -> &'static str {
        match self.firewall {
            Some(f) => f.as_str(),
            None => self.legacy.as_str(),
        }
    }

    /// What [`kind`](Self::kind) means for applications, in plain words.
    pub fn meaning(&self) -> &'static str {
        match self.firewall {
            Some(f) => f.meaning(),
            None => self.legacy.meaning(),
        }
    }
}

/// One request of the test plan and what it got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TestEvidence {
    /// Which test.
    pub test: TestKind,
    /// Which round of that test (filtering and mapping may be repeated), from 1.
    pub round: u8,
    /// The server address the request went to.
    pub server: SocketAddr,
    /// The local socket it was sent from.
    pub local: Option<SocketAddr>,
    /// The sources whose answer counted.
    pub accepted_from: Vec<SocketAddr>,
    /// What happened.
    pub outcome: TestOutcome,
}

/// Which dialect a server speaks, judged from its first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ServerFlavor {
    /// OTHER-ADDRESS (RFC 5780).
    Rfc5780,
    /// CHANGED-ADDRESS (RFC 3489, e.g. stund).
    Rfc3489,
    /// No alternate address: address discovery only.
    Plain,
    /// Did not answer.
    Unreachable,
}

/// What the classifier found out about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerCheck {
    /// The server's (primary) address.
    pub server: SocketAddr,
    /// The name it was given as.
    pub name: String,
    /// Its dialect.
    pub flavor: ServerFlavor,
    /// Its alternate address, if it gave one.
    pub other: Option<SocketAddr>,
    /// Whether it passed the checks needed for behaviour tests: the alternate differs
    /// from the primary in IP and port, and RESPONSE-ORIGIN (or SOURCE-ADDRESS) is the
    /// address the answer really came from.
    pub usable_for_behaviour: bool,
    /// Why not, if not.
    pub problem: Option<ServerProblem>,
}

/// Why a server cannot be used for the behaviour tests.
///
/// In JSON it is its text, as the checks have always read; read back, the typed
/// detail does not survive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", from = "String"))]
#[non_exhaustive]
pub enum ServerProblem {
    /// It gave no alternate address (OTHER-ADDRESS or CHANGED-ADDRESS).
    NoAlternate,
    /// Its alternate address shares the primary's IP or port.
    AlternateNotDistinct {
        /// The alternate address it gave.
        other: SocketAddr,
    },
    /// RESPONSE-ORIGIN (or SOURCE-ADDRESS) is not where the answer came from.
    OriginMismatch {
        /// The address it says it answered from.
        origin: SocketAddr,
        /// Where the answer came from.
        from: SocketAddr,
    },
    /// A problem read back from serialized checks, as its text.
    Recorded(String),
}

impl std::fmt::Display for ServerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerProblem::NoAlternate => f.write_str("no alternate address"),
            ServerProblem::AlternateNotDistinct { other } => write!(
                f,
                "its alternate address {other} does not differ in both IP and port"
            ),
            ServerProblem::OriginMismatch { origin, from } => write!(
                f,
                "it says it answered from {origin} but the answer came from {from} \
                 (behind a NAT without advertising its public address?)"
            ),
            ServerProblem::Recorded(text) => f.write_str(text),
        }
    }
}

impl From<ServerProblem> for String {
    fn from(p: ServerProblem) -> String {
        p.to_string()
    }
}

impl From<String> for ServerProblem {
    fn from(text: String) -> ServerProblem {
        if text == ServerProblem::NoAlternate.to_string() {
            ServerProblem::NoAlternate
        } else {
            ServerProblem::Recorded(text)
        }
    }
}

/// The classifier's answer: the NAT's behaviour with the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Classification {
    /// The address family tested: that of the servers (a host has an IPv4 and an
    /// IPv6 answer, classified one at a time).
    #[cfg_attr(feature = "serde", serde(default))]
    pub family: Option<IpFamily>,
    /// Mapping and filtering behaviour, hairpinning and port preservation.
    pub behaviour: NatBehaviour,
    /// The legacy RFC 3489 name, derived from [`behaviour`](Self::behaviour).
    pub legacy: LegacyNatType,
    /// With no NAT in the way (IPv6, or a public IPv4 host): how the firewall
    /// filters, in a firewall's words, derived from [`behaviour`](Self::behaviour);
    /// `None` behind a NAT or when nothing answered.
    #[cfg_attr(feature = "serde", serde(default))]
    pub firewall: Option<Firewall>,
    /// The mapped address of the first test (this host's address as seen from outside).
    pub external: Option<SocketAddr>,
    /// The local socket of the first test.
    pub local: Option<SocketAddr>,
    /// Whether the mapped address changed with the destination (from any two
    /// destinations with different IPs); `None` if not observed.
    pub mapping_varies_by_destination: Option<bool>,
    /// The server used for the behaviour tests, if any.
    pub behaviour_server: Option<SocketAddr>,
    /// The round-trip time measured in test I to that server.
    pub rtt: Option<Duration>,
    /// Every server asked.
    pub servers: Vec<ServerCheck>,
    /// Every request made, in order.
    pub evidence: Vec<TestEvidence>,
    /// Plain-language remarks on what could not be concluded and why.
    pub notes: Vec<String>,
    /// The servers not asked, and why (their names did not resolve); each also has a
    /// note, which is what serializes.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub not_asked: Vec<Error>,
    /// The binding lifetime, when asked for ([`ClassifyConfig::lifetime`](super::ClassifyConfig::lifetime))
    /// and measurable (an RFC 5780 server).
    #[cfg_attr(feature = "serde", serde(default))]
    pub binding_lifetime: Option<BindingLifetime>,
    /// How long the classification took, binding lifetime discovery included (set by
    /// the runner; zero from the plan alone).
    pub elapsed: Duration,
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn a_failure_serializes_as_its_text() {
        let refused = TestOutcome::Failed(TestFailure::ErrorResponse { code: 420 });
        let json = serde_json::to_string(&refused).expect("serialize");
        assert_eq!(json, r#"{"failed":"error response 420"}"#);
        let back: TestOutcome = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, refused);
        let unsent = TestOutcome::Failed(TestFailure::Transaction(Error::Io {
            op: "send",
            kind: std::io::ErrorKind::PermissionDenied,
        }));
        let json = serde_json::to_string(&unsent).expect("serialize");
        assert_eq!(json, r#"{"failed":"send: permission denied"}"#);
        let back: TestOutcome = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(
            back,
            TestOutcome::Failed(TestFailure::Recorded("send: permission denied".into()))
        );
    }

    #[test]
    fn a_server_problem_serializes_as_its_text() {
        let plain = ServerProblem::NoAlternate;
        let json = serde_json::to_string(&plain).expect("serialize");
        assert_eq!(json, r#""no alternate address""#);
        assert_eq!(
            serde_json::from_str::<ServerProblem>(&json).expect("deserialize"),
            plain
        );
        let other = "192.0.2.1:3478".parse().expect("addr");
        let json = serde_json::to_string(&ServerProblem::AlternateNotDistinct { other })
            .expect("serialize");
        assert_eq!(
            json,
            r#""its alternate address 192.0.2.1:3478 does not differ in both IP and port""#
        );
    }
}
