//! The doctor's report: everything it observed, as one value.
//!
//! The JSON form ([`render::json`](crate::render::json), `natkit doctor --json`) is
//! this structure serialized; its schema is `docs/doctor.schema.json`
//! ([`SCHEMA`](crate::SCHEMA)), and the lab tests validate every document against
//! it. Field names are stable within a [`SCHEMA_VERSION`]; new fields may be added,
//! which is why the structs are `#[non_exhaustive]`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use natkit_core::Protocol;
use serde::Serialize;

pub use crate::findings::FindingCode;

/// The version of the JSON document's layout (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one run of the doctor found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The layout version of the JSON document ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The interface the default route leaves by.
    pub interface: Option<String>,
    /// The default gateway (the router port mapping talks to).
    pub gateway: Option<Ipv4Addr>,
    /// This host's address towards the gateway.
    pub local_address: Option<Ipv4Addr>,
    /// Its scope (`private`, `shared`, `global` …).
    pub local_address_scope: Option<&'static str>,
    /// What the router's mapping protocols answered.
    pub mapping_protocols: MappingProtocols,
    /// The router's external (WAN) address as its mapping protocols report it.
    pub router_external_address: Option<IpAddr>,
    /// The scope of `router_external_address`.
    pub router_external_address_scope: Option<&'static str>,
    /// What the STUN servers agree this host's public address is.
    pub stun_external_address: Option<SocketAddr>,
    /// Every STUN server asked and what it said.
    pub stun_servers: Vec<StunAnswer>,
    /// Whether another NAT sits between the router and the internet.
    pub double_nat: bool,
    /// The observations behind `double_nat`, in words.
    pub double_nat_evidence: Vec<String>,
    /// The first hops towards a STUN server and what they say about another NAT.
    pub hops: Option<crate::HopsReport>,
    /// Whether anything outside the LAN answered, and the DNS; `None` before the
    /// checks ran (no gateway).
    pub internet: Option<crate::InternetReport>,
    /// The NAT type, when the STUN tests ran.
    pub nat: Option<NatReport>,
    /// The service profile checked, if one was named.
    pub profile: Option<&'static str>,
    /// One entry per port checked (`--profile`/`--ports`).
    pub ports: Vec<PortReport>,
    /// The router's whole forwarding table (UPnP listing), this host's forwards
    /// first, each with what its port is for; `None` when it could not be read.
    pub router_forwards: Option<Vec<crate::RouterForward>>,
    /// Whether something on the path rewrites or drops SIP (with a dial-back
    /// server, whose SIP echo it uses); `None` when not checked.
    pub sip_alg: Option<crate::SipAlgReport>,
    /// Whether a firewall on the way out blocks some ports (with a dial-back
    /// server, whose outbound echo it uses); `None` when not checked.
    pub outbound: Option<crate::OutboundReport>,
    /// The bandwidth each way (with a dial-back server that runs
    /// `--bandwidth`); `None` when not checked.
    pub bandwidth: Option<crate::BandwidthReport>,
    /// Who answers mDNS for this host's `.local` name besides this host;
    /// `None` when not checked (no default route).
    pub local_name: Option<crate::LocalNameReport>,
    /// The IPv6 section: this host's global addresses, the router's firewall,
    /// a trial pinhole, reachability over IPv6; `None` when not checked (no
    /// default route).
    pub ipv6: Option<crate::Ipv6Report>,
    /// What is wrong, most important first, each with its fix.
    pub findings: Vec<Finding>,
    /// Wall time of the run in milliseconds.
    pub elapsed_ms: u64,
}

impl Report {
    pub(crate) fn empty() -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            interface: None,
            gateway: None,
            local_address: None,
            local_address_scope: None,
            mapping_protocols: MappingProtocols::default(),
            router_external_address: None,
            router_external_address_scope: None,
            stun_external_address: None,
            stun_servers: Vec::new(),
            double_nat: false,
            double_nat_evidence: Vec::new(),
            hops: None,
            internet: None,
            nat: None,
            router_forwards: None,
            profile: None,
            ports: Vec::new(),
            sip_alg: None,
            outbound: None,
            bandwidth: None,
            local_name: None,
            ipv6: None,
            findings: Vec::new(),
            elapsed_ms: 0,
        }
    }
}

/// The router's three mapping protocols.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MappingProtocols {
    /// UPnP IGD.
    pub upnp: ProtocolState,
    /// NAT-PMP (RFC 6886).
    pub natpmp: ProtocolState,
    /// PCP (RFC 6887).
    pub pcp: ProtocolState,
}

impl MappingProtocols {
    /// The states in display order with their human names.
    pub(crate) fn named(&self) -> [(&'static str, &ProtocolState); 3] {
        [
            ("UPnP IGD", &self.upnp),
            ("NAT-PMP", &self.natpmp),
            ("PCP", &self.pcp),
        ]
    }

    /// Whether anything answered at all (usable or not).
    pub(crate) fn any_present(&self) -> bool {
        self.named().iter().any(|(_, s)| s.status.is_present())
    }
}

/// What one mapping protocol looked like.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ProtocolState {
    /// Whether it answered and can map.
    pub status: Status,
    /// The external address it reported, if any.
    pub external_address: Option<IpAddr>,
    /// Details: the device, the error, the result code.
    pub detail: Option<String>,
}

impl Default for ProtocolState {
    fn default() -> Self {
        ProtocolState {
            status: Status::NotChecked,
            external_address: None,
            detail: None,
        }
    }
}

/// The state of one mapping protocol on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It answered and can map ports.
    Available,
    /// UPnP: an IGD answered but says its WAN connection is not up.
    NotConnected,
    /// It answered, but with an error (e.g. NAT-PMP "network failure").
    Failing,
    /// PCP: the router answered that it speaks only NAT-PMP.
    Unsupported,
    /// Nothing answered.
    Absent,
    /// Not checked (no gateway, or interrupted).
    NotChecked,
}

impl Status {
    /// Whether the router answered this protocol at all (usable or not).
    pub fn is_present(self) -> bool {
        matches!(
            self,
            Status::Available | Status::NotConnected | Status::Failing | Status::Unsupported
        )
    }

    /// The state in a few words, as the text report shows it.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Available => "yes",
            Status::NotConnected => "found, not connected",
            Status::Failing => "answers with errors",
            Status::Unsupported => "not supported",
            Status::Absent => "no",
            Status::NotChecked => "not checked",
        }
    }
}

/// One STUN server's answer.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StunAnswer {
    /// The server as it was given (`host:port`).
    pub server: String,
    /// What came of asking it.
    pub outcome: StunOutcome,
    /// The address it saw for this host.
    pub address: Option<SocketAddr>,
    /// Why asking failed.
    pub detail: Option<String>,
    /// What kind of failure, when asking failed (the JSON has `detail`).
    #[serde(skip)]
    pub failure: Option<natkit_core::DiscoveryFailure>,
}

/// What came of asking one STUN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StunOutcome {
    /// It answered with the address it saw.
    Saw,
    /// It did not answer in time.
    TimedOut,
    /// Asking failed (the name did not resolve, an error response …).
    Failed,
}

impl StunOutcome {
    /// The stable snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StunOutcome::Saw => "saw",
            StunOutcome::TimedOut => "timed_out",
            StunOutcome::Failed => "failed",
        }
    }
}

/// The NAT's behaviour as the STUN tests measured it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct NatReport {
    /// The mapping behaviour (RFC 4787), e.g. `endpoint_independent`.
    pub mapping: &'static str,
    /// The filtering behaviour (RFC 4787), e.g. `address_and_port_dependent`.
    pub filtering: &'static str,
    /// The classic name, e.g. `port_restricted_cone`.
    pub legacy_type: &'static str,
    /// What the type means for applications.
    pub meaning: &'static str,
    /// Whether the NAT kept the local port as the external one.
    pub port_preservation: Option<bool>,
    /// Whether the NAT loops traffic to its own public address back.
    pub hairpinning: Option<bool>,
    /// The server the behaviour tests ran against.
    pub tested_with: Option<SocketAddr>,
    /// That server's name as it was given.
    pub tested_with_name: Option<String>,
    /// Every server the tests asked, and whether it could test filtering.
    pub servers: Vec<crate::NatServer>,
    /// The round-trip time to that server.
    pub rtt_ms: Option<f64>,
    /// The classifier's remarks (why something is inconclusive …).
    pub notes: Vec<String>,
    /// Those of [`notes`](Self::notes) that say a server was not asked because its
    /// name did not resolve (the text groups them).
    #[serde(skip)]
    pub not_resolved: Vec<String>,
}

/// Who a port is already forwarded to on the router.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Forward {
    /// The LAN host it goes to.
    pub host: String,
    /// The port on that host.
    pub port: u16,
    /// The description the forward was made with.
    pub description: String,
    /// Whether the forward goes to this host.
    pub this_host: bool,
}

/// One port of the service.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PortReport {
    /// The port number.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// What the service profile uses it for.
    pub purpose: Option<&'static str>,
    /// The router's existing forward of this external port (UPnP listing).
    pub forwarded_to: Option<Forward>,
    /// Whether natkit could map it (tried, then removed); `None` = not tried.
    pub mappable: Option<bool>,
    /// How the trial mapping went, in detail.
    pub mapping: Option<MappingTrial>,
    /// Reachability from outside (`--dialback`): `reachable`, `wrong_host`,
    /// `closed`, `filtered`, `not_forwarded`; `error` when the dial-back
    /// failed; `not_checked` without `--dialback`.
    pub reachability: String,
    /// What the dial-back server saw, in words.
    pub reachability_detail: Option<String>,
    /// Whether a forward to this host (natkit's trial mapping, or one the
    /// router already had) was in place while the dial-back ran.
    pub forwarded_during_check: bool,
}

/// The trial mapping of one port.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MappingTrial {
    /// Which mechanism made (or refused) it.
    pub mechanism: Option<&'static str>,
    /// The external port granted, when one was.
    pub external_port: Option<u16>,
    /// Whether it was removed again afterwards.
    pub removed: bool,
    /// Held for the dial-back check (removed after it).
    #[serde(skip)]
    pub(crate) held: bool,
    /// The router's refusal, or why removing failed.
    pub error: Option<String>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something that stops a service from being reachable.
    Problem,
    /// Something that limits what works.
    Warning,
    /// Worth knowing, nothing in the way (e.g. no IPv6 on this network).
    Info,
}

/// One diagnosis with its fix.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// What was found; its stable machine code (e.g. `double_nat`) is the
    /// JSON's `code`.
    pub code: FindingCode,
    /// A problem or a warning.
    pub severity: Severity,
    /// What was observed, in plain words.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// The port the finding is about, if any.
    pub port: Option<u16>,
    /// The protocol of that port.
    pub protocol: Option<Protocol>,
    /// The finding this one follows from (e.g. `no_internet`): fixing that one
    /// fixes this one; `None` when it stands on its own.
    pub caused_by: Option<FindingCode>,
}
