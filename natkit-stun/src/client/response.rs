//! A Binding response, decoded into what the client and the classifier need.

use std::net::SocketAddr;
use std::time::Duration;

use crate::attr::{
    AttrType, ChangedAddress, OtherAddress, ResponseOrigin, Software, SourceAddress,
};
use crate::{Class, Error, Message};

/// How the server told the mapped address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MappedKind {
    /// XOR-MAPPED-ADDRESS (RFC 5389/8489).
    Xor,
    /// XOR-MAPPED-ADDRESS under its pre-RFC 5389 number 0x8020 (classic servers).
    XorLegacy,
    /// MAPPED-ADDRESS only (RFC 3489).
    Plain,
}

/// An accepted Binding response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BindingResponse {
    /// The address the response came from.
    pub from: SocketAddr,
    /// The server-reflexive address (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS);
    /// `None` for an error response or a success without one.
    pub mapped: Option<SocketAddr>,
    /// Which attribute carried [`mapped`](Self::mapped).
    pub mapped_kind: Option<MappedKind>,
    /// The server's other address: OTHER-ADDRESS (RFC 5780), else CHANGED-ADDRESS
    /// (RFC 3489).
    pub other_address: Option<SocketAddr>,
    /// Whether [`other_address`](Self::other_address) came from CHANGED-ADDRESS.
    pub other_is_rfc3489: bool,
    /// Where the server says it sent the response from: RESPONSE-ORIGIN, else
    /// SOURCE-ADDRESS.
    pub response_origin: Option<SocketAddr>,
    /// SOFTWARE, if any.
    pub software: Option<String>,
    /// The ERROR-CODE number of an error response (0 if it carried none); `None` for a
    /// success response.
    pub error_code: Option<u16>,
    /// Whether the response carried a (valid) FINGERPRINT.
    pub fingerprint: bool,
    /// Time from the first send to the answer.
    pub elapsed: Duration,
    /// The round-trip time, when it is unambiguous (the request was sent once;
    /// Karn's rule).
    pub rtt: Option<Duration>,
    /// How many requests had been sent when the answer came.
    pub sends: u32,
}

impl BindingResponse {
    /// Decodes a response already matched to its transaction (class, id, source and
    /// fingerprint checked). Fails on attributes that do not decode.
    pub(crate) fn decode(
        msg: &Message<'_>,
        from: SocketAddr,
        elapsed: Duration,
        rtt: Option<Duration>,
        sends: u32,
    ) -> Result<BindingResponse, Error> {
        let (mapped, mapped_kind) = if let Some(a) = msg.xor_mapped_address()? {
            (Some(a), Some(MappedKind::Xor))
        } else if msg
            .raw_attribute(AttrType::XOR_MAPPED_ADDRESS_LEGACY)
            .is_some()
        {
            (msg.reflexive_address()?, Some(MappedKind::XorLegacy))
        } else if let Some(a) = msg.mapped_address()? {
            (Some(a), Some(MappedKind::Plain))
        } else {
            (None, None)
        };
        let (other_address, other_is_rfc3489) = match msg.get::<OtherAddress>()? {
            Some(a) => (Some(a.0), false),
            None => (msg.get::<ChangedAddress>()?.map(|a| a.0), true),
        };
        let response_origin = match msg.get::<ResponseOrigin>()? {
            Some(a) => Some(a.0),
            None => msg.get::<SourceAddress>()?.map(|a| a.0),
        };
        let software = msg.get::<Software<'_>>()?.map(|s| s.as_str().to_owned());
        let error_code = if msg.class() == Class::ErrorResponse {
            Some(msg.error_code()?.map_or(0, |e| e.code()))
        } else {
            None
        };
        Ok(BindingResponse {
            from,
            mapped: if error_code.is_some() { None } else { mapped },
            mapped_kind: if error_code.is_some() {
                None
            } else {
                mapped_kind
            },
            other_address,
            other_is_rfc3489: other_address.is_some() && other_is_rfc3489,
            response_origin,
            software,
            error_code,
            fingerprint: msg.has_fingerprint(),
            elapsed,
            rtt,
            sends,
        })
    }

    /// The mapped address of a success response, or the error this response stands for.
    pub fn mapped_or_error(&self) -> Result<SocketAddr, Error> {
        match (self.error_code, self.mapped) {
            (Some(code), _) => Err(Error::ErrorResponse {
                server: self.from,
                code,
            }),
            (None, Some(a)) => Ok(a),
            (None, None) => Err(Error::NoMappedAddress { server: self.from }),
        }
    }
}
