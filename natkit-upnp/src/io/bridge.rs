//! The bridge to igd-next: its [`Gateway`] builds and parses the common
//! IGD:1 actions (AddPortMapping, DeletePortMapping, GetExternalIPAddress,
//! GetGenericPortMappingEntry); natkit gives it a bounded HTTP provider and
//! turns its errors back into typed UPnP codes.
//!
//! igd-next's own tokio provider allows 1 MiB answers and a fixed 10 s
//! timeout; [`BoundedHttp`] allows [`MAX_SOAP_RESPONSE`] bytes, and every
//! call is wrapped in the caller's SOAP timeout, hedged like natkit's own
//! actions (see [`crate::decide::hedge`]).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;

use igd_next::aio::{Gateway, Provider};
use igd_next::{
    AddPortError, GetExternalIpError, GetGenericPortMappingEntryError, PortMappingProtocol,
    RemovePortError, RequestError,
};
use natkit_core::Protocol;

use crate::decide::hedge::action_name;
use crate::error::Error;
use crate::io::igd::CALL;
use crate::io::transport::{Deadline, Plan, post_soap};
use crate::wire::code::UpnpErrorCode;
use crate::wire::http::HttpError;
use crate::wire::url::HttpUrl;

/// The largest SOAP answer accepted, in bytes.
pub const MAX_SOAP_RESPONSE: usize = 16 * 1024;

/// A backstop time limit inside the provider; callers wrap every call in
/// their own (shorter) SOAP timeout.
const PROVIDER_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(30);

/// igd-next's HTTP provider, replaced by natkit's bounded transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoundedHttp;

impl Provider for BoundedHttp {
    async fn send_async(url: &str, action: &str, body: &str) -> Result<String, RequestError> {
        let url = HttpUrl::parse(url)
            .map_err(|_| RequestError::InvalidResponse("invalid control URL".into()))?;
        let name = action_name(action);
        let fetched = match CALL.try_with(Clone::clone) {
            Ok(call) => {
                let plan = call.hedging.plan(name, call.deadline);
                let fetched =
                    post_soap(&url, action, body, MAX_SOAP_RESPONSE, call.deadline, &plan).await;
                if let Ok(f) = &fetched {
                    call.copies.fetch_max(f.copies, Ordering::Relaxed);
                }
                fetched
            }
            Err(_) => {
                let deadline = Deadline::after(PROVIDER_BACKSTOP);
                post_soap(
                    &url,
                    action,
                    body,
                    MAX_SOAP_RESPONSE,
                    deadline,
                    &Plan::single(),
                )
                .await
            }
        }
        .map_err(|e| RequestError::IoError(io::Error::other(e)))?;
        Ok(String::from_utf8(fetched.body)?)
    }
}

/// The arguments of the two actions igd-next builds from a schema, in the
/// order of the WANIPConnection:1/2 service descriptions (so no SCPD fetch
/// is needed; every IGD has these actions with these arguments).
pub(crate) fn standard_schema() -> HashMap<String, Vec<String>> {
    let args = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect();
    HashMap::from([
        (
            "AddPortMapping".to_owned(),
            args(&[
                "NewRemoteHost",
                "NewExternalPort",
                "NewProtocol",
                "NewInternalPort",
                "NewInternalClient",
                "NewEnabled",
                "NewPortMappingDescription",
                "NewLeaseDuration",
            ]),
        ),
        (
            "DeletePortMapping".to_owned(),
            args(&["NewRemoteHost", "NewExternalPort", "NewProtocol"]),
        ),
    ])
}

/// The igd-next gateway type natkit drives.
pub(crate) type IgdNextGateway = Gateway<BoundedHttp>;

pub(crate) fn to_igd_protocol(p: Protocol) -> PortMappingProtocol {
    match p {
        Protocol::Tcp => PortMappingProtocol::TCP,
        Protocol::Udp => PortMappingProtocol::UDP,
    }
}

pub(crate) fn from_igd_protocol(p: PortMappingProtocol) -> Protocol {
    match p {
        PortMappingProtocol::TCP => Protocol::Tcp,
        PortMappingProtocol::UDP => Protocol::Udp,
    }
}

fn upnp(action: &'static str, code: UpnpErrorCode) -> Error {
    Error::Upnp {
        action,
        code,
        description: code.name().to_owned(),
    }
}

/// Turns an igd-next request error back into natkit's typed error.
pub(crate) fn from_request(action: &'static str, url: &str, e: RequestError) -> Error {
    match e {
        RequestError::ErrorCode(code, description) => Error::Upnp {
            action,
            code: UpnpErrorCode::from_code(code),
            description: description.chars().take(256).collect(),
        },
        RequestError::IoError(io) => {
            let source = match io.get_ref().and_then(|i| i.downcast_ref::<HttpError>()) {
                Some(h) => *h,
                None => HttpError::Io { kind: io.kind() },
            };
            Error::http(&url, source)
        }
        RequestError::InvalidResponse(text) => Error::BadArgument {
            action,
            argument: "response",
            value: text.chars().take(64).collect(),
        },
        other => Error::BadArgument {
            action,
            argument: "response",
            value: other.to_string().chars().take(64).collect(),
        },
    }
}

pub(crate) fn from_add_port(url: &str, e: AddPortError) -> Error {
    const A: &str = "AddPortMapping";
    match e {
        AddPortError::ActionNotAuthorized => upnp(A, UpnpErrorCode::NotAuthorized),
        AddPortError::PortInUse => upnp(A, UpnpErrorCode::ConflictInMappingEntry),
        AddPortError::SamePortValuesRequired => upnp(A, UpnpErrorCode::SamePortValuesRequired),
        AddPortError::OnlyPermanentLeasesSupported => {
            upnp(A, UpnpErrorCode::OnlyPermanentLeasesSupported)
        }
        AddPortError::DescriptionTooLong => upnp(A, UpnpErrorCode::Unknown(605)),
        AddPortError::ExternalPortZeroInvalid => Error::InvalidRequest {
            reason: "external port 0",
        },
        AddPortError::InternalPortZeroInvalid => Error::InvalidRequest {
            reason: "internal port 0",
        },
        AddPortError::RequestError(e) => from_request(A, url, e),
    }
}

pub(crate) fn from_remove_port(url: &str, e: RemovePortError) -> Error {
    const A: &str = "DeletePortMapping";
    match e {
        RemovePortError::ActionNotAuthorized => upnp(A, UpnpErrorCode::NotAuthorized),
        RemovePortError::NoSuchPortMapping => upnp(A, UpnpErrorCode::NoSuchEntryInArray),
        RemovePortError::RequestError(e) => from_request(A, url, e),
    }
}

pub(crate) fn from_external_ip(url: &str, e: GetExternalIpError) -> Error {
    const A: &str = "GetExternalIPAddress";
    match e {
        GetExternalIpError::ActionNotAuthorized => upnp(A, UpnpErrorCode::NotAuthorized),
        GetExternalIpError::RequestError(e) => from_request(A, url, e),
    }
}

pub(crate) fn from_generic_entry(url: &str, e: GetGenericPortMappingEntryError) -> Error {
    const A: &str = "GetGenericPortMappingEntry";
    match e {
        GetGenericPortMappingEntryError::ActionNotAuthorized => {
            upnp(A, UpnpErrorCode::NotAuthorized)
        }
        GetGenericPortMappingEntryError::SpecifiedArrayIndexInvalid => {
            upnp(A, UpnpErrorCode::SpecifiedArrayIndexInvalid)
        }
        GetGenericPortMappingEntryError::RequestError(e) => from_request(A, url, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_codes_survive_igd_next() {
        let url = "http://192.168.1.1:5000/ctl/IPConn";
        assert_eq!(
            from_add_port(url, AddPortError::PortInUse).upnp_code(),
            Some(UpnpErrorCode::ConflictInMappingEntry)
        );
        assert_eq!(
            from_add_port(
                url,
                AddPortError::RequestError(RequestError::ErrorCode(402, "Invalid Args".into()))
            )
            .upnp_code(),
            Some(UpnpErrorCode::InvalidArgs)
        );
        assert_eq!(
            from_remove_port(url, RemovePortError::NoSuchPortMapping).upnp_code(),
            Some(UpnpErrorCode::NoSuchEntryInArray)
        );
        let e = from_request(
            "GetExternalIPAddress",
            url,
            RequestError::IoError(io::Error::other(HttpError::BodyTooLarge { limit: 16384 })),
        );
        assert!(matches!(
            e,
            Error::Http {
                source: HttpError::BodyTooLarge { limit: 16384 },
                ..
            }
        ));
    }
}
