//! The doctor's report: everything it observed, as one value.
//!
//! The JSON form (`--json`) is this structure serialized; its schema is
//! `docs/doctor.schema.json`, and the lab tests validate every document
//! against it. Field names are stable; new fields may be added.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use natkit_core::Protocol;
use serde::Serialize;

/// The version of the JSON document's layout (`schema_version`).
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Everything one run of the doctor found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) schema_version: u32,
    /// The interface the default route leaves by.
    pub(crate) interface: Option<String>,
    /// The default gateway (the router port mapping talks to).
    pub(crate) gateway: Option<Ipv4Addr>,
    /// This host's address towards the gateway.
    pub(crate) local_address: Option<Ipv4Addr>,
    /// Its scope (`private`, `shared`, `global` …).
    pub(crate) local_address_scope: Option<&'static str>,
    pub(crate) mapping_protocols: MappingProtocols,
    /// The router's external (WAN) address as its mapping protocols report it.
    pub(crate) router_external_address: Option<IpAddr>,
    pub(crate) router_external_address_scope: Option<&'static str>,
    /// What the STUN servers agree this host's public address is.
    pub(crate) stun_external_address: Option<SocketAddr>,
    /// Every STUN server asked and what it said.
    pub(crate) stun_servers: Vec<StunAnswer>,
    /// Whether another NAT sits between the router and the internet.
    pub(crate) double_nat: bool,
    /// The observations behind `double_nat`, in words.
    pub(crate) double_nat_evidence: Vec<String>,
    pub(crate) nat: Option<NatReport>,
    /// The service profile checked, if one was named.
    pub(crate) profile: Option<&'static str>,
    pub(crate) ports: Vec<PortReport>,
    pub(crate) findings: Vec<Finding>,
    /// Wall time of the run in milliseconds.
    pub(crate) elapsed_ms: u64,
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
            nat: None,
            profile: None,
            ports: Vec::new(),
            findings: Vec::new(),
            elapsed_ms: 0,
        }
    }
}

/// The router's three mapping protocols.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct MappingProtocols {
    pub(crate) upnp: ProtocolState,
    pub(crate) natpmp: ProtocolState,
    pub(crate) pcp: ProtocolState,
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
pub(crate) struct ProtocolState {
    pub(crate) status: Status,
    /// The external address it reported, if any.
    pub(crate) external_address: Option<IpAddr>,
    /// Details: the device, the error, the result code.
    pub(crate) detail: Option<String>,
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
pub(crate) enum Status {
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
    pub(crate) fn is_present(self) -> bool {
        matches!(
            self,
            Status::Available | Status::NotConnected | Status::Failing | Status::Unsupported
        )
    }

    pub(crate) fn describe(self) -> &'static str {
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
pub(crate) struct StunAnswer {
    pub(crate) server: String,
    /// `saw`, `timed_out` or `failed`.
    pub(crate) outcome: &'static str,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) detail: Option<String>,
}

/// The NAT's behaviour as the STUN tests measured it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NatReport {
    pub(crate) mapping: &'static str,
    pub(crate) filtering: &'static str,
    pub(crate) legacy_type: &'static str,
    /// What the type means for applications.
    pub(crate) meaning: &'static str,
    pub(crate) port_preservation: Option<bool>,
    pub(crate) hairpinning: Option<bool>,
    /// The server the behaviour tests ran against.
    pub(crate) tested_with: Option<SocketAddr>,
    pub(crate) rtt_ms: Option<f64>,
    /// The classifier's remarks (why something is inconclusive …).
    pub(crate) notes: Vec<String>,
}

/// Who a port is already forwarded to on the router.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Forward {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) description: String,
    /// Whether the forward goes to this host.
    pub(crate) this_host: bool,
}

/// One port of the service.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PortReport {
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) purpose: Option<&'static str>,
    /// The router's existing forward of this external port (UPnP listing).
    pub(crate) forwarded_to: Option<Forward>,
    /// Whether natkit could map it (tried, then removed); `None` = not tried.
    pub(crate) mappable: Option<bool>,
    /// How the trial mapping went, in detail.
    pub(crate) mapping: Option<MappingTrial>,
    /// Reachability from outside (`--dialback`): `reachable`, `wrong_host`,
    /// `closed`, `filtered`, `not_forwarded`; `error` when the dial-back
    /// failed; `not_checked` without `--dialback`.
    pub(crate) reachability: String,
    pub(crate) reachability_detail: Option<String>,
    /// Whether a forward to this host (natkit's trial mapping, or one the
    /// router already had) was in place while the dial-back ran.
    pub(crate) forwarded_during_check: bool,
}

/// The trial mapping of one port.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MappingTrial {
    /// Which mechanism made (or refused) it.
    pub(crate) mechanism: Option<&'static str>,
    /// The external port granted, when one was.
    pub(crate) external_port: Option<u16>,
    /// Whether it was removed again afterwards.
    pub(crate) removed: bool,
    /// Held for the dial-back check (removed after it).
    #[serde(skip)]
    pub(crate) held: bool,
    /// The router's refusal, or why removing failed.
    pub(crate) error: Option<String>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    /// Something that stops a service from being reachable.
    Problem,
    /// Something that limits what works.
    Warning,
}

/// One diagnosis with its fix.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// Stable machine code, e.g. `double_nat`.
    pub(crate) code: &'static str,
    pub(crate) severity: Severity,
    /// What was observed, in plain words.
    pub(crate) message: String,
    /// What to do about it.
    pub(crate) fix: String,
    /// The port the finding is about, if any.
    pub(crate) port: Option<u16>,
    pub(crate) protocol: Option<Protocol>,
}
