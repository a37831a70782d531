//! IGD:2's `WANIPv6FirewallControl:1` service, sans-IO: the actions'
//! arguments out, their answers and faults in. The I/O is
//! [`FirewallControl`](crate::FirewallControl) (`io/firewall.rs`).
//!
//! There is no NAT on IPv6; the router's stateful firewall drops new
//! inbound connections, and a *pinhole* lets them through to one host's
//! address and port. Nothing is translated: the address the internet
//! reaches is the host's own.
//!
//! What the spec (UPnP `WANIPv6FirewallControl:1`, 2010) and miniupnpd
//! (`upnpsoap.c`, 2.3.1 in Debian 12 and 2.3.11) agree on, and where they
//! differ:
//! - `Protocol` is the IANA number (6 TCP, 17 UDP), not `TCP`/`UDP`;
//!   65535 is the wildcard, refused with 707.
//! - `LeaseTime` is 1 to 86400 s; miniupnpd refuses anything else with 402,
//!   so natkit clamps ([`pinhole_lease`]) and renews.
//! - `RemoteHost` empty and `RemotePort` 0 are the wildcards ("anyone may
//!   connect").
//! - `UniqueID` is a `ui2`: the router's handle for UpdatePinhole,
//!   DeletePinhole, CheckPinholeWorking and GetPinholePackets. There is no
//!   action that lists pinholes, so the ID is all a client has; natkit
//!   carries it in `Mapping::token` ([`PinholeId::to_token`]).
//! - AddPinhole for a pinhole that exists already (same remote host and
//!   port, internal client and port, protocol) extends it and returns its
//!   ID: a client that lost the ID gets it back by adding again.
//! - 606 Action not authorized: miniupnpd only lets a pinhole's own
//!   internal client add, update or delete it (miniupnp issue 731), and
//!   only for internal ports from 1024. The request must come *from* the
//!   internal client's IPv6 address: a request over IPv4 never passes. 2.3.1
//!   compares the sender's address to `InternalClient` *as text*
//!   (`strcmp` with `inet_ntop`'s output), so the address goes in its
//!   canonical RFC 5952 form, which is Rust's `Display` of [`Ipv6Addr`].
//! - GetOutboundPinholeTimeout is a stub in miniupnpd (always 501).
//! - CheckPinholeWorking answers 709 NoTrafficReceived until a packet has
//!   gone through; GetPinholePackets counts them.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use natkit_core::{FailureKind, MappingToken, Protocol};

use crate::error::{Error, Result};
use crate::wire::soap::SoapArgs;

/// The service type prefix (any version) of the IPv6 firewall service.
pub const FIREWALL_SERVICE: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:";

/// The longest pinhole lease the spec (and miniupnpd) allows, in seconds.
pub const MAX_PINHOLE_LEASE: u32 = 86_400;

/// Whether `service_type` is `WANIPv6FirewallControl` of any version.
pub fn is_firewall_service(service_type: &str) -> bool {
    let Some(head) = service_type.get(..FIREWALL_SERVICE.len()) else {
        return false;
    };
    let version = &service_type[FIREWALL_SERVICE.len()..];
    head.eq_ignore_ascii_case(FIREWALL_SERVICE)
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
}

/// The pinhole lease for a requested lifetime: whole seconds within
/// 1..=[`MAX_PINHOLE_LEASE`]. Zero (a permanent mapping, in port mapping
/// terms) becomes the maximum: pinholes are never permanent.
pub fn pinhole_lease(lifetime: Duration) -> u32 {
    match lifetime.as_secs() {
        0 => MAX_PINHOLE_LEASE,
        s => u32::try_from(s).map_or(MAX_PINHOLE_LEASE, |s| s.min(MAX_PINHOLE_LEASE)),
    }
}

/// The IANA protocol number the service uses for `protocol`.
pub fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

/// A pinhole's `UniqueID`, the router's handle for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PinholeId(pub u16);

/// The first byte of a pinhole's [`MappingToken`], so a token of another
/// kind (a PCP nonce) is never taken for a pinhole ID.
const TOKEN_KIND: u8 = 0x36;

impl PinholeId {
    /// The token that carries this ID in a `Mapping` (three bytes: a kind
    /// byte and the ID, big-endian).
    pub fn to_token(self) -> MappingToken {
        let [hi, lo] = self.0.to_be_bytes();
        MappingToken::new(&[TOKEN_KIND, hi, lo]).expect("three bytes fit in a token")
    }

    /// The ID in a token made by [`to_token`](Self::to_token); `None` for
    /// any other token.
    pub fn from_token(token: &MappingToken) -> Option<PinholeId> {
        match token.as_bytes() {
            [TOKEN_KIND, hi, lo] => Some(PinholeId(u16::from_be_bytes([*hi, *lo]))),
            _ => None,
        }
    }
}

impl fmt::Display for PinholeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pinhole {}", self.0)
    }
}

/// What to open: inbound `protocol` traffic to `internal`, from anyone
/// unless `remote` narrows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinholeRequest {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host's address and port that may be reached. miniupnpd refuses
    /// ports below 1024 (606).
    pub internal: SocketAddrV6,
    /// Only from this address (`None`: any).
    pub remote_host: Option<Ipv6Addr>,
    /// Only from this port (0: any).
    pub remote_port: u16,
    /// The lease in seconds, 1..=[`MAX_PINHOLE_LEASE`] (see [`pinhole_lease`]).
    pub lease_secs: u32,
}

impl PinholeRequest {
    /// A request open to anyone, with `lease_secs`.
    pub fn new(protocol: Protocol, internal: SocketAddrV6, lease_secs: u32) -> Self {
        PinholeRequest {
            protocol,
            internal,
            remote_host: None,
            remote_port: 0,
            lease_secs,
        }
    }

    /// Refuses what the service cannot express or miniupnpd always refuses,
    /// before anything is sent.
    pub fn check(&self) -> Result<()> {
        let reason = if self.internal.port() == 0 {
            "a pinhole needs an internal port (no wildcard)"
        } else if self.internal.ip().is_unspecified() {
            "a pinhole needs the internal client's address, not ::"
        } else if !(1..=MAX_PINHOLE_LEASE).contains(&self.lease_secs) {
            "a pinhole lease is 1 to 86400 s"
        } else {
            return Ok(());
        };
        Err(Error::InvalidRequest { reason })
    }

    /// AddPinhole's arguments, in the service description's order.
    pub fn add_args(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "RemoteHost",
                self.remote_host.map(|a| a.to_string()).unwrap_or_default(),
            ),
            ("RemotePort", self.remote_port.to_string()),
            ("InternalClient", self.internal.ip().to_string()),
            ("InternalPort", self.internal.port().to_string()),
            ("Protocol", protocol_number(self.protocol).to_string()),
            ("LeaseTime", self.lease_secs.to_string()),
        ]
    }
}

/// UpdatePinhole's arguments.
pub fn update_args(id: PinholeId, lease_secs: u32) -> Vec<(&'static str, String)> {
    vec![
        ("UniqueID", id.0.to_string()),
        ("NewLeaseTime", lease_secs.to_string()),
    ]
}

/// The arguments of the actions that take only the ID (DeletePinhole,
/// CheckPinholeWorking, GetPinholePackets).
pub fn id_args(id: PinholeId) -> Vec<(&'static str, String)> {
    vec![("UniqueID", id.0.to_string())]
}

/// GetOutboundPinholeTimeout's arguments: the outbound flow asked about
/// (`remote` `None`: any).
pub fn outbound_args(
    protocol: Protocol,
    internal: SocketAddrV6,
    remote: Option<SocketAddrV6>,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "RemoteHost",
            remote.map(|r| r.ip().to_string()).unwrap_or_default(),
        ),
        ("RemotePort", remote.map_or(0, |r| r.port()).to_string()),
        ("InternalClient", internal.ip().to_string()),
        ("InternalPort", internal.port().to_string()),
        ("Protocol", protocol_number(protocol).to_string()),
    ]
}

/// GetFirewallStatus's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirewallStatus {
    /// Whether the router filters IPv6 at all. When it does not, inbound
    /// connections already get through and no pinhole is needed (the
    /// pinhole actions then fail with 702 FirewallDisabled).
    pub enabled: bool,
    /// Whether clients may open pinholes.
    pub inbound_pinhole_allowed: bool,
}

/// Parses GetFirewallStatus's answer.
pub fn parse_firewall_status(out: &SoapArgs) -> Result<FirewallStatus> {
    const A: &str = "GetFirewallStatus";
    Ok(FirewallStatus {
        enabled: boolean(out, A, "FirewallEnabled")?,
        inbound_pinhole_allowed: boolean(out, A, "InboundPinholeAllowed")?,
    })
}

/// Parses AddPinhole's answer: the new (or existing) pinhole's ID.
pub fn parse_unique_id(out: &SoapArgs) -> Result<PinholeId> {
    out.number::<u16>("AddPinhole", "UniqueID").map(PinholeId)
}

/// Parses GetOutboundPinholeTimeout's answer.
pub fn parse_outbound_timeout(out: &SoapArgs) -> Result<Duration> {
    out.number::<u32>("GetOutboundPinholeTimeout", "OutboundPinholeTimeout")
        .map(|s| Duration::from_secs(u64::from(s)))
}

/// Parses CheckPinholeWorking's answer (`IsWorking`).
pub fn parse_is_working(out: &SoapArgs) -> Result<bool> {
    boolean(out, "CheckPinholeWorking", "IsWorking")
}

/// Parses GetPinholePackets's answer.
pub fn parse_pinhole_packets(out: &SoapArgs) -> Result<u32> {
    out.number("GetPinholePackets", "PinholePackets")
}

/// A UPnP `boolean`: `0`/`1`, `false`/`true`, `no`/`yes` (UDA 1.1 §2.5).
fn boolean(out: &SoapArgs, action: &'static str, argument: &'static str) -> Result<bool> {
    let raw = out.get(argument).unwrap_or("");
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(Error::bad_argument(action, argument, raw)),
    }
}

/// Whether a DeletePinhole failure means the pinhole is already gone: the
/// router holds no pinhole by that ID ([`Error::NoSuchPinhole`], which
/// [`FirewallControl`](crate::FirewallControl) makes of both answers a
/// router gives for it, see [`no_such_pinhole`]).
pub fn already_deleted(e: &Error) -> bool {
    matches!(e, Error::NoSuchPinhole { .. })
        || e.firewall_code() == Some(FirewallErrorCode::NoSuchEntry)
}

/// A fault of an action that names a pinhole by its ID alone
/// (UpdatePinhole, DeletePinhole, CheckPinholeWorking) as
/// [`Error::NoSuchPinhole`] when it means the router holds no such
/// pinhole:
/// - 704 NoSuchEntry, the spec's answer;
/// - 402 Invalid Args: miniupnpd 2.3.1's nftables backend never reports a
///   missing ID (`get_pinhole_info` returns success without filling in the
///   internal client), so its check of the sender fails on an empty
///   address. natkit's own requests are well-formed (the ID a number, the
///   lease checked before sending), so the 402 is not about its arguments.
///
/// Any other error is returned as it is.
pub fn no_such_pinhole(id: PinholeId, e: Error) -> Error {
    match e {
        Error::Firewall {
            action,
            code: code @ (FirewallErrorCode::NoSuchEntry | FirewallErrorCode::InvalidArgs),
            description,
        } => Error::NoSuchPinhole {
            action,
            id,
            code,
            description,
        },
        other => other,
    }
}

/// A UPnP error code from the firewall service's faults. Its 7xx codes
/// mean other things than WANIPConnection's (704 is NoSuchEntry here,
/// ConnectionSetupFailed there), so they have a type of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FirewallErrorCode {
    /// 401 Invalid Action: the device does not have the action.
    InvalidAction,
    /// 402 Invalid Args (miniupnpd: a lease outside 1..=86400, a bad ID).
    InvalidArgs,
    /// 501 Action Failed (miniupnpd: GetOutboundPinholeTimeout always, or
    /// the firewall backend failed).
    ActionFailed,
    /// 606 Action not authorized: the request did not come from the
    /// pinhole's internal client, or its internal port is below 1024.
    NotAuthorized,
    /// 701 PinholeSpaceExhausted.
    PinholeSpaceExhausted,
    /// 702 FirewallDisabled: the router does not filter IPv6.
    FirewallDisabled,
    /// 703 InboundPinholeNotAllowed: the router's owner forbids pinholes.
    InboundPinholeNotAllowed,
    /// 704 NoSuchEntry: no pinhole with that ID (expired, deleted, or the
    /// router restarted).
    NoSuchEntry,
    /// 705 ProtocolNotSupported.
    ProtocolNotSupported,
    /// 706 InternalPortWildcardingNotAllowed.
    InternalPortWildcardingNotAllowed,
    /// 707 ProtocolWildcardingNotAllowed.
    ProtocolWildcardingNotAllowed,
    /// 708 WildCardNotPermittedInSrcIP (no InternalClient).
    WildCardNotPermittedInSrcIp,
    /// 709 NoTrafficReceived (CheckPinholeWorking).
    NoTrafficReceived,
    /// Any other code, as the router sent it.
    Unknown(u16),
}

/// Every typed code with its number and spec name.
const FIREWALL_CODES: [(FirewallErrorCode, u16, &str); 13] = [
    (FirewallErrorCode::InvalidAction, 401, "InvalidAction"),
    (FirewallErrorCode::InvalidArgs, 402, "InvalidArgs"),
    (FirewallErrorCode::ActionFailed, 501, "ActionFailed"),
    (FirewallErrorCode::NotAuthorized, 606, "ActionNotAuthorized"),
    (
        FirewallErrorCode::PinholeSpaceExhausted,
        701,
        "PinholeSpaceExhausted",
    ),
    (FirewallErrorCode::FirewallDisabled, 702, "FirewallDisabled"),
    (
        FirewallErrorCode::InboundPinholeNotAllowed,
        703,
        "InboundPinholeNotAllowed",
    ),
    (FirewallErrorCode::NoSuchEntry, 704, "NoSuchEntry"),
    (
        FirewallErrorCode::ProtocolNotSupported,
        705,
        "ProtocolNotSupported",
    ),
    (
        FirewallErrorCode::InternalPortWildcardingNotAllowed,
        706,
        "InternalPortWildcardingNotAllowed",
    ),
    (
        FirewallErrorCode::ProtocolWildcardingNotAllowed,
        707,
        "ProtocolWildcardingNotAllowed",
    ),
    (
        FirewallErrorCode::WildCardNotPermittedInSrcIp,
        708,
        "WildCardNotPermittedInSrcIP",
    ),
    (
        FirewallErrorCode::NoTrafficReceived,
        709,
        "NoTrafficReceived",
    ),
];

impl FirewallErrorCode {
    /// The type for a numeric code.
    pub fn from_code(code: u16) -> Self {
        FIREWALL_CODES
            .iter()
            .find(|(_, n, _)| *n == code)
            .map_or(FirewallErrorCode::Unknown(code), |(c, _, _)| *c)
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            FirewallErrorCode::Unknown(code) => code,
            known => FIREWALL_CODES
                .iter()
                .find(|(c, _, _)| *c == known)
                .map_or(0, |(_, n, _)| *n),
        }
    }

    /// The spec's name for the code, or `unknown`.
    pub fn name(self) -> &'static str {
        FIREWALL_CODES
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("unknown", |(_, _, name)| name)
    }

    /// The protocol-independent kind of failure this code means.
    pub fn failure_kind(self) -> FailureKind {
        use FirewallErrorCode::*;
        match self {
            InvalidAction | FirewallDisabled => FailureKind::Unsupported,
            ProtocolNotSupported
            | InternalPortWildcardingNotAllowed
            | ProtocolWildcardingNotAllowed
            | WildCardNotPermittedInSrcIp => FailureKind::Unsupported,
            InvalidArgs | ActionFailed | NotAuthorized | InboundPinholeNotAllowed => {
                FailureKind::Refused
            }
            PinholeSpaceExhausted => FailureKind::NoResources,
            NoSuchEntry => FailureKind::NoSuchMapping,
            NoTrafficReceived => FailureKind::Protocol,
            Unknown(_) => FailureKind::Refused,
        }
    }
}

impl fmt::Display for FirewallErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::soap::{SoapError, SoapReply, parse_response};
    use proptest::prelude::*;

    const NS: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";

    /// miniupnpd 2.3.1's answers, as its `resp` templates write them.
    fn answer(action: &str, inner: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{action}Response xmlns:u=\"{NS}\">{inner}</u:{action}Response></s:Body></s:Envelope>\r\n"
        )
    }

    fn args_of(action: &str, inner: &str) -> SoapArgs {
        match parse_response(answer(action, inner).as_bytes(), action).unwrap() {
            SoapReply::Ok(args) => args,
            other => panic!("not ok: {other:?}"),
        }
    }

    fn internal() -> SocketAddrV6 {
        SocketAddrV6::new("2a0d:88:77:77::2".parse().unwrap(), 8080, 0, 0)
    }

    #[test]
    fn service_types() {
        assert!(is_firewall_service(NS));
        assert!(is_firewall_service(
            "urn:schemas-upnp-org:service:wanipv6firewallcontrol:2"
        ));
        for t in [
            "urn:schemas-upnp-org:service:WANIPv6FirewallControl:",
            "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1x",
            "urn:schemas-upnp-org:service:WANIPConnection:2",
            "urn:dslforum-org:service:WANIPv6FirewallControl:1",
            "",
        ] {
            assert!(!is_firewall_service(t), "{t}");
        }
    }

    #[test]
    fn leases_are_clamped_to_the_spec() {
        assert_eq!(pinhole_lease(Duration::ZERO), MAX_PINHOLE_LEASE);
        assert_eq!(pinhole_lease(Duration::from_millis(999)), MAX_PINHOLE_LEASE);
        assert_eq!(pinhole_lease(Duration::from_secs(1)), 1);
        assert_eq!(pinhole_lease(Duration::from_secs(7200)), 7200);
        assert_eq!(
            pinhole_lease(Duration::from_secs(86_401)),
            MAX_PINHOLE_LEASE
        );
        assert_eq!(pinhole_lease(Duration::MAX), MAX_PINHOLE_LEASE);
    }

    #[test]
    fn add_pinhole_body() {
        let req = PinholeRequest::new(Protocol::Udp, internal(), 3600);
        req.check().unwrap();
        let args = req.add_args();
        let borrowed: Vec<(&str, &str)> = args.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            borrowed,
            [
                ("RemoteHost", ""),
                ("RemotePort", "0"),
                ("InternalClient", "2a0d:88:77:77::2"),
                ("InternalPort", "8080"),
                ("Protocol", "17"),
                ("LeaseTime", "3600"),
            ]
        );
        let body = crate::wire::soap::request_body(NS, "AddPinhole", &borrowed);
        assert!(body.contains(&format!("<u:AddPinhole xmlns:u=\"{NS}\">")));
        assert!(body.contains("<InternalClient>2a0d:88:77:77::2</InternalClient>"));
        assert!(body.contains("<Protocol>17</Protocol><LeaseTime>3600</LeaseTime>"));
        let narrowed = PinholeRequest {
            remote_host: Some("2a0d:88:77:66::20".parse().unwrap()),
            remote_port: 4000,
            protocol: Protocol::Tcp,
            ..req
        };
        let args = narrowed.add_args();
        assert_eq!(args[0].1, "2a0d:88:77:66::20");
        assert_eq!(args[1].1, "4000");
        assert_eq!(args[4].1, "6");
    }

    #[test]
    fn internal_client_is_canonical_text() {
        // miniupnpd 2.3.1 compares it with inet_ntop's text of the sender.
        let long: Ipv6Addr = "2a0d:0088:0077:0077:0000:0000:0000:0002".parse().unwrap();
        let req = PinholeRequest::new(Protocol::Tcp, SocketAddrV6::new(long, 5000, 0, 0), 60);
        assert_eq!(req.add_args()[2].1, "2a0d:88:77:77::2");
        let one_zero: Ipv6Addr = "2a0d:88:0:77:1:2:3:4".parse().unwrap();
        assert_eq!(one_zero.to_string(), "2a0d:88:0:77:1:2:3:4");
    }

    #[test]
    fn requests_the_service_cannot_express_are_refused_first() {
        let mut req = PinholeRequest::new(Protocol::Tcp, internal(), 60);
        req.internal.set_port(0);
        assert!(matches!(req.check(), Err(Error::InvalidRequest { .. })));
        let mut req = PinholeRequest::new(Protocol::Tcp, internal(), 60);
        req.internal.set_ip(Ipv6Addr::UNSPECIFIED);
        assert!(matches!(req.check(), Err(Error::InvalidRequest { .. })));
        for lease in [0, MAX_PINHOLE_LEASE + 1] {
            let req = PinholeRequest::new(Protocol::Tcp, internal(), lease);
            assert!(matches!(req.check(), Err(Error::InvalidRequest { .. })));
        }
    }

    #[test]
    fn other_bodies() {
        let id = PinholeId(7);
        assert_eq!(
            update_args(id, 120),
            [("UniqueID", "7".to_owned()), ("NewLeaseTime", "120".into())]
        );
        assert_eq!(id_args(id), [("UniqueID", "7".to_owned())]);
        let out = outbound_args(Protocol::Tcp, internal(), None);
        assert_eq!(out[0], ("RemoteHost", String::new()));
        assert_eq!(out[1], ("RemotePort", "0".into()));
        assert_eq!(out[4], ("Protocol", "6".into()));
    }

    #[test]
    fn parses_miniupnpd_answers() {
        let s = parse_firewall_status(&args_of(
            "GetFirewallStatus",
            "<FirewallEnabled>1</FirewallEnabled><InboundPinholeAllowed>1</InboundPinholeAllowed>",
        ))
        .unwrap();
        assert_eq!(
            s,
            FirewallStatus {
                enabled: true,
                inbound_pinhole_allowed: true
            }
        );
        let off = parse_firewall_status(&args_of(
            "GetFirewallStatus",
            "<FirewallEnabled>false</FirewallEnabled><InboundPinholeAllowed>0</InboundPinholeAllowed>",
        ))
        .unwrap();
        assert!(!off.enabled && !off.inbound_pinhole_allowed);
        assert_eq!(
            parse_unique_id(&args_of("AddPinhole", "<UniqueID>65534</UniqueID>")).unwrap(),
            PinholeId(65534)
        );
        assert_eq!(
            parse_outbound_timeout(&args_of(
                "GetOutboundPinholeTimeout",
                "<OutboundPinholeTimeout>120</OutboundPinholeTimeout>"
            ))
            .unwrap(),
            Duration::from_secs(120)
        );
        assert!(
            parse_is_working(&args_of("CheckPinholeWorking", "<IsWorking>1</IsWorking>")).unwrap()
        );
        assert_eq!(
            parse_pinhole_packets(&args_of(
                "GetPinholePackets",
                "<PinholePackets>42</PinholePackets>"
            ))
            .unwrap(),
            42
        );
    }

    #[test]
    fn hostile_answers_are_typed_errors() {
        // Out of range, negative, missing, not a number, huge.
        for inner in [
            "<UniqueID>65536</UniqueID>",
            "<UniqueID>-1</UniqueID>",
            "",
            "<UniqueID>abc</UniqueID>",
            &format!("<UniqueID>{}</UniqueID>", "9".repeat(500)),
        ] {
            let e = parse_unique_id(&args_of("AddPinhole", inner)).unwrap_err();
            let Error::BadArgument {
                action,
                argument,
                value,
            } = e
            else {
                panic!("{e:?}")
            };
            assert_eq!((action, argument), ("AddPinhole", "UniqueID"));
            assert!(value.chars().count() <= 64);
        }
        assert!(matches!(
            parse_firewall_status(&args_of(
                "GetFirewallStatus",
                "<FirewallEnabled>2</FirewallEnabled><InboundPinholeAllowed>1</InboundPinholeAllowed>"
            )),
            Err(Error::BadArgument {
                argument: "FirewallEnabled",
                ..
            })
        ));
        assert!(matches!(
            parse_pinhole_packets(&args_of(
                "GetPinholePackets",
                "<PinholePackets>4294967296</PinholePackets>"
            )),
            Err(Error::BadArgument { .. })
        ));
        // Text past the XML limit is refused by the parser itself.
        assert_eq!(
            parse_response(
                answer(
                    "AddPinhole",
                    &format!("<UniqueID>{}</UniqueID>", "9".repeat(5000))
                )
                .as_bytes(),
                "AddPinhole"
            ),
            Err(SoapError::Xml(crate::wire::xml::XmlError::TextTooLong))
        );
        // An answer to another action is no answer.
        assert_eq!(
            parse_response(answer("AddPortMapping", "").as_bytes(), "AddPinhole"),
            Err(SoapError::NoResponse)
        );
    }

    #[test]
    fn codes_round_trip_and_map_to_kinds() {
        for code in [
            401, 402, 501, 606, 701, 702, 703, 704, 705, 706, 707, 708, 709, 999,
        ] {
            assert_eq!(FirewallErrorCode::from_code(code).code(), code);
        }
        assert_eq!(
            FirewallErrorCode::from_code(704).to_string(),
            "704 NoSuchEntry"
        );
        assert_eq!(FirewallErrorCode::from_code(999).name(), "unknown");
        assert_eq!(
            FirewallErrorCode::PinholeSpaceExhausted.failure_kind(),
            FailureKind::NoResources
        );
        assert!(
            FirewallErrorCode::PinholeSpaceExhausted
                .failure_kind()
                .is_retryable()
        );
        for c in [606, 702, 703, 704, 705, 708] {
            assert!(
                !FirewallErrorCode::from_code(c)
                    .failure_kind()
                    .is_retryable(),
                "{c}"
            );
        }
        assert_eq!(
            FirewallErrorCode::NotAuthorized.failure_kind(),
            FailureKind::Refused
        );
    }

    #[test]
    fn tokens_carry_the_id_and_nothing_else() {
        for id in [0, 1, 0x1234, u16::MAX] {
            let t = PinholeId(id).to_token();
            assert_eq!(PinholeId::from_token(&t), Some(PinholeId(id)));
            let again = MappingToken::from_hex(&t.to_hex()).unwrap();
            assert_eq!(PinholeId::from_token(&again), Some(PinholeId(id)));
        }
        // A 12-byte PCP nonce, or a two-byte token, is not a pinhole ID.
        assert_eq!(
            PinholeId::from_token(&MappingToken::new(&[7; 12]).unwrap()),
            None
        );
        assert_eq!(
            PinholeId::from_token(&MappingToken::new(&[0, 1]).unwrap()),
            None
        );
    }

    proptest! {
        #[test]
        fn arbitrary_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(SoapReply::Ok(args)) = parse_response(&bytes, "AddPinhole") {
                let _ = parse_unique_id(&args);
                let _ = parse_firewall_status(&args);
                let _ = parse_is_working(&args);
            }
        }
    }
}
