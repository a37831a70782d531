//! What each mechanism said: [`MechanismReport`], [`Detection`], and the
//! double-NAT conclusions drawn from them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{AddressScope, FailureKind, Mapping, Mechanism, upstream_nat_note};
use serde::Serialize;

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// A mechanism's failure: its typed kind, the protocol crate's message and,
/// when the protocol crate said it, its typed error.
#[derive(Debug, Clone, Serialize)]
pub struct MechanismError {
    /// The broad kind (`not_connected`, `timeout`, `conflict` …).
    pub kind: FailureKind,
    /// The protocol crate's error, as one line.
    pub message: String,
    /// The protocol crate's own error, as natkit-core carries it: downcast
    /// the source of its [`natkit_core::Error::Mechanism`] (a UPnP 718 is
    /// `natkit_upnp::Error::Conflict`, naming the LAN host that holds the
    /// port). `None` for what the combinator concluded itself (no answer
    /// within the detection deadline, a server that speaks only NAT-PMP).
    #[serde(skip)]
    pub error: Option<Arc<natkit_core::Error>>,
}

/// Two failures are the same when they say the same; the typed error is
/// what the message was made from.
impl PartialEq for MechanismError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for MechanismError {}

impl MechanismError {
    /// A failure the combinator concluded itself, with no protocol error.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        MechanismError {
            kind,
            message: message.into(),
            error: None,
        }
    }

    /// From a core error, kept typed: the kind of a mechanism failure
    /// (an error of this host, such as the journal's, is
    /// [`FailureKind::Local`]; anything else counts as
    /// [`FailureKind::Network`]).
    pub fn from_core(e: natkit_core::Error) -> Self {
        MechanismError {
            kind: e.failure_kind().unwrap_or(FailureKind::Network),
            message: natkit_core::error_line(&e),
            error: Some(Arc::new(e)),
        }
    }

    /// A protocol crate's error, `message` its line, `error` the same as
    /// natkit-core carries it.
    pub(crate) fn typed(message: String, error: natkit_core::Error) -> Self {
        MechanismError {
            kind: error.failure_kind().unwrap_or(FailureKind::Network),
            message,
            error: Some(Arc::new(error)),
        }
    }

    /// The protocol crate's typed error, if this failure carries one of
    /// type `E` (e.g. `natkit_upnp::Error`, `natkit_pmp::Error`).
    pub fn downcast<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.error.as_deref()?.downcast_source()
    }
}

impl fmt::Display for MechanismError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

/// What one mechanism said when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MechanismReport {
    /// PCP, NAT-PMP or UPnP IGD.
    pub mechanism: Mechanism,
    /// The router speaks it and reported an external address: mappings
    /// can be made through it.
    pub available: bool,
    /// Something on the gateway answered in this protocol (true also when
    /// it answered with an error such as "not connected").
    pub responded: bool,
    /// Why it is not available.
    pub error: Option<MechanismError>,
    /// The external (WAN) address it reported.
    pub external_address: Option<IpAddr>,
    /// The scope of that address; anything but `global` means another NAT
    /// is upstream.
    pub address_scope: Option<AddressScope>,
    /// The double-NAT explanation when the address is not global.
    pub upstream_nat: Option<String>,
    /// The gateway's epoch (seconds since its mapping state began; NAT-PMP
    /// and PCP).
    pub epoch: Option<u32>,
    /// How long detecting this mechanism took.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
    /// What answered: the server address, or the IGD's name and URL.
    pub detail: Option<String>,
}

impl MechanismReport {
    /// A report for a mechanism that failed.
    pub(crate) fn failed(
        mechanism: Mechanism,
        responded: bool,
        error: MechanismError,
        elapsed: Duration,
    ) -> Self {
        MechanismReport {
            mechanism,
            available: false,
            responded,
            error: Some(error),
            external_address: None,
            address_scope: None,
            upstream_nat: None,
            epoch: None,
            elapsed,
            detail: None,
        }
    }

    /// A report for a mechanism that can map, with its external address.
    pub(crate) fn available(mechanism: Mechanism, external: IpAddr, elapsed: Duration) -> Self {
        Self::answered(mechanism, elapsed).with_external(external)
    }

    /// A report for a mechanism that answered and can map, whose external
    /// address is not known yet (PCP when the address MAP's answers were
    /// lost within the detection window).
    pub(crate) fn answered(mechanism: Mechanism, elapsed: Duration) -> Self {
        MechanismReport {
            mechanism,
            available: true,
            responded: true,
            error: None,
            external_address: None,
            address_scope: None,
            upstream_nat: None,
            epoch: None,
            elapsed,
            detail: None,
        }
    }

    /// Sets the external address, its scope and the double-NAT note.
    pub(crate) fn with_external(mut self, ip: IpAddr) -> Self {
        self.external_address = Some(ip);
        self.address_scope = Some(AddressScope::of(ip));
        self.upstream_nat = upstream_nat_note(ip);
        self
    }

    /// One line: `pcp: available, external 88.77.66.2, epoch 12 (3.1 ms)`
    /// or `upnp: not connected: IGD "…" … (750.2 ms)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: ", self.mechanism.as_str());
        match &self.error {
            None => s.push_str("available"),
            Some(e) if !self.responded => {
                s.push_str("no answer (");
                s.push_str(&e.message);
                s.push(')');
            }
            Some(e) => {
                s.push_str(&e.kind.to_string());
                s.push_str(": ");
                s.push_str(&e.message);
            }
        }
        if let Some(ip) = self.external_address {
            s.push_str(&format!(", external {ip}"));
            if let Some(scope) = self.address_scope.filter(|s| !s.is_global()) {
                s.push_str(&format!(" ({})", scope.describe()));
            }
        }
        if let Some(e) = self.epoch {
            s.push_str(&format!(", epoch {e}"));
        }
        s.push_str(&format!(" ({:.1} ms)", self.elapsed.as_secs_f64() * 1e3));
        s
    }
}

/// The overall answer of a detection: which mapping protocol the router offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "mechanism", rename_all = "snake_case")]
pub enum RouterVerdict {
    /// Mappings go through this mechanism (the best available in order).
    Usable(Mechanism),
    /// Nothing on the gateway answered PCP, NAT-PMP or UPnP: the router
    /// has no port mapping protocol (or it is switched off).
    NoProtocol,
    /// The router answered, but no mechanism can map (not connected,
    /// refused, no external address …); see each report.
    Unusable,
}

/// Another NAT upstream of the router, as far as the answers show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UpstreamNat {
    /// The router reported a non-global external address.
    Confirmed {
        /// Which mechanism reported it.
        mechanism: Mechanism,
        /// The address.
        external: IpAddr,
        /// Its scope.
        scope: AddressScope,
        /// "the router's external address is 100.64.0.2 …: another NAT
        /// is upstream; …".
        note: String,
    },
    /// The router answers but has no usable external address, which is
    /// what miniupnpd does when its WAN address is private or shared
    /// (double NAT) and also while its WAN link is down.
    Suspected {
        /// What was seen.
        evidence: String,
    },
}

impl fmt::Display for UpstreamNat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamNat::Confirmed { note, .. } => f.write_str(note),
            UpstreamNat::Suspected { evidence } => write!(
                f,
                "the router has no usable external address ({evidence}): its WAN link is down, \
                 or its WAN address is private or shared and another NAT is upstream"
            ),
        }
    }
}

/// What detecting every mechanism found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// The gateway asked (`None`: this host has no default gateway).
    pub gateway: Option<Ipv4Addr>,
    /// Every mechanism in the order of preference.
    pub mechanisms: Vec<MechanismReport>,
    /// The overall answer.
    #[serde(flatten)]
    pub verdict: RouterVerdict,
    /// Another NAT upstream, as far as the answers show (see
    /// [`Detection::upstream_nat`]).
    pub upstream_nat: Option<UpstreamNat>,
    /// From the start of detection until the last mechanism answered or
    /// the deadline passed.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
}

impl Detection {
    /// The detection of `mechanisms` (in order of preference).
    pub(crate) fn new(
        gateway: Option<Ipv4Addr>,
        mechanisms: Vec<MechanismReport>,
        elapsed: Duration,
    ) -> Self {
        Detection {
            gateway,
            verdict: Self::verdict_of(&mechanisms),
            upstream_nat: upstream_nat_of(&mechanisms),
            mechanisms,
            elapsed,
        }
    }

    /// The verdict for reports in order of preference.
    pub(crate) fn verdict_of(mechanisms: &[MechanismReport]) -> RouterVerdict {
        if let Some(m) = mechanisms.iter().find(|m| m.available) {
            RouterVerdict::Usable(m.mechanism)
        } else if mechanisms.iter().any(|m| m.responded) {
            RouterVerdict::Unusable
        } else {
            RouterVerdict::NoProtocol
        }
    }

    /// The mechanism mappings go through, if any.
    pub fn chosen(&self) -> Option<Mechanism> {
        match self.verdict {
            RouterVerdict::Usable(m) => Some(m),
            _ => None,
        }
    }

    /// The available mechanisms, best first.
    pub fn available(&self) -> impl Iterator<Item = Mechanism> + '_ {
        self.mechanisms
            .iter()
            .filter(|m| m.available)
            .map(|m| m.mechanism)
    }

    /// The report of one mechanism, if it was asked.
    pub fn get(&self, mechanism: Mechanism) -> Option<&MechanismReport> {
        self.mechanisms.iter().find(|m| m.mechanism == mechanism)
    }

    /// Whether nothing answered any port mapping protocol.
    pub fn is_no_protocol(&self) -> bool {
        self.verdict == RouterVerdict::NoProtocol
    }

    /// Another NAT upstream, as far as the answers show: confirmed by a
    /// non-global external address, or suspected when the router answers
    /// but reports no usable WAN (see [`UpstreamNat::Suspected`]).
    pub fn upstream_nat(&self) -> Option<UpstreamNat> {
        self.upstream_nat.clone()
    }

    /// One line for people: the verdict and what each mechanism said,
    /// e.g. `no port mapping protocol on 192.168.77.1 (pcp: no answer …;
    /// natpmp: …; upnp: …)`.
    pub fn summary(&self) -> String {
        let each: Vec<String> = self.mechanisms.iter().map(|m| m.summary()).collect();
        let at = self
            .gateway
            .map_or_else(|| "(no default gateway)".to_owned(), |g| g.to_string());
        let head = match self.verdict {
            RouterVerdict::Usable(m) => format!("using {} on {at}", m.display_name()),
            RouterVerdict::NoProtocol => format!("no port mapping protocol on {at}"),
            RouterVerdict::Unusable => format!("no port mapping mechanism works on {at}"),
        };
        match &self.upstream_nat {
            Some(u) => format!("{head} ({}); {u}", each.join("; ")),
            None => format!("{head} ({})", each.join("; ")),
        }
    }
}

/// Another NAT upstream, from the mechanisms' answers.
fn upstream_nat_of(mechanisms: &[MechanismReport]) -> Option<UpstreamNat> {
    if let Some(m) = mechanisms.iter().find(|m| m.upstream_nat.is_some()) {
        let (Some(external), Some(scope), Some(note)) =
            (m.external_address, m.address_scope, m.upstream_nat.clone())
        else {
            return None;
        };
        return Some(UpstreamNat::Confirmed {
            mechanism: m.mechanism,
            external,
            scope,
            note,
        });
    }
    if mechanisms.iter().any(|m| m.available) {
        return None;
    }
    let evidence: Vec<String> = mechanisms
        .iter()
        .filter(|m| m.responded)
        .filter_map(|m| {
            let e = m.error.as_ref()?;
            // miniupnpd with a reserved WAN address: NAT-PMP "network
            // failure", UPnP Connected without an external address, and a
            // PCP MAP answered NO_RESOURCES (seen in the double-NAT lab).
            matches!(e.kind, FailureKind::NotConnected | FailureKind::NoResources).then(|| {
                format!(
                    "{} answers but reports {}",
                    m.mechanism.display_name(),
                    e.kind
                )
            })
        })
        .collect();
    (!evidence.is_empty()).then(|| UpstreamNat::Suspected {
        evidence: evidence.join("; "),
    })
}

/// For a mapping whose external address is not global: "the router's
/// external address is 100.64.0.2 (shared address space (carrier-grade
/// NAT)): another NAT is upstream; this mapping does not reach the
/// internet".
pub fn mapping_upstream_note(mapping: &Mapping) -> Option<String> {
    let ip = mapping.external.ip();
    let scope = AddressScope::of(ip);
    (!scope.is_global()).then(|| {
        format!(
            "the router's external address is {ip} ({}): another NAT is upstream; \
             this mapping does not reach the internet",
            scope.describe()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::Protocol;
    use std::time::Instant;

    fn ok(m: Mechanism, ip: &str) -> MechanismReport {
        MechanismReport::available(m, ip.parse().unwrap(), Duration::from_millis(3))
    }

    fn bad(m: Mechanism, responded: bool, kind: FailureKind) -> MechanismReport {
        MechanismReport::failed(
            m,
            responded,
            MechanismError::new(kind, "x"),
            Duration::from_millis(250),
        )
    }

    fn report(mechanisms: Vec<MechanismReport>) -> Detection {
        Detection::new(
            Some(Ipv4Addr::new(192, 168, 77, 1)),
            mechanisms,
            Duration::from_millis(300),
        )
    }

    #[test]
    fn verdicts() {
        let r = report(vec![
            bad(Mechanism::Pcp, false, FailureKind::Timeout),
            ok(Mechanism::NatPmp, "88.77.66.2"),
            ok(Mechanism::Upnp, "88.77.66.2"),
        ]);
        assert_eq!(r.verdict, RouterVerdict::Usable(Mechanism::NatPmp));
        assert_eq!(
            r.available().collect::<Vec<_>>(),
            [Mechanism::NatPmp, Mechanism::Upnp]
        );
        assert_eq!(r.upstream_nat(), None);
        let none = report(vec![
            bad(Mechanism::Pcp, false, FailureKind::Timeout),
            bad(Mechanism::NatPmp, false, FailureKind::Network),
            bad(Mechanism::Upnp, false, FailureKind::Unavailable),
        ]);
        assert!(none.is_no_protocol());
        assert!(
            none.summary()
                .starts_with("no port mapping protocol on 192.168.77.1 (pcp: no answer"),
            "{}",
            none.summary()
        );
        let unusable = report(vec![
            bad(Mechanism::Pcp, true, FailureKind::NotConnected),
            bad(Mechanism::Upnp, false, FailureKind::Timeout),
        ]);
        assert_eq!(unusable.verdict, RouterVerdict::Unusable);
        assert!(matches!(
            unusable.upstream_nat(),
            Some(UpstreamNat::Suspected { .. })
        ));
    }

    #[test]
    fn shared_external_address_is_double_nat() {
        let r = report(vec![ok(Mechanism::Pcp, "100.64.0.2")]);
        let Some(UpstreamNat::Confirmed { note, scope, .. }) = r.upstream_nat() else {
            panic!("{r:?}")
        };
        assert_eq!(scope, AddressScope::Shared);
        assert!(note.contains("100.64.0.2") && note.contains("another NAT is upstream"));
        let m = Mapping::new(
            Mechanism::Pcp,
            Protocol::Udp,
            "100.64.0.2:9000".parse().unwrap(),
            "192.168.77.2:9000".parse().unwrap(),
            Duration::from_secs(60),
            Instant::now(),
        );
        let note = mapping_upstream_note(&m).unwrap();
        assert!(
            note.starts_with("the router's external address is 100.64.0.2")
                && note
                    .ends_with("another NAT is upstream; this mapping does not reach the internet"),
            "{note}"
        );
        let mut public = m.clone();
        public.external = "88.77.66.2:9000".parse().unwrap();
        assert_eq!(mapping_upstream_note(&public), None);
    }

    #[test]
    fn json_shape() {
        let r = report(vec![ok(Mechanism::Pcp, "88.77.66.2")]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["verdict"], "usable");
        assert_eq!(v["mechanism"], "pcp");
        assert_eq!(v["mechanisms"][0]["external_address"], "88.77.66.2");
        assert_eq!(v["mechanisms"][0]["address_scope"], "global");
        assert_eq!(v["mechanisms"][0]["elapsed_ms"], 3.0);
    }
}
