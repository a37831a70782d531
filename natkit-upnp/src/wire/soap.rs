//! SOAP envelopes for IGD actions, sans-IO: request text out, checked
//! parsing of the answer (arguments or a UPnP fault) in.

use crate::wire::code::UpnpErrorCode;
use crate::wire::xml::{Node, XmlError, walk};

/// The most output arguments accepted in one answer.
pub const MAX_SOAP_ARGS: usize = 32;
/// The longest fault description kept, in characters.
pub const MAX_FAULT_DESCRIPTION: usize = 256;

/// The body of a SOAP request for `action` of `service_type`, with the
/// arguments in the order given (the order of the service description;
/// some routers insist on it). Values are XML-escaped.
pub fn request_body(service_type: &str, action: &str, args: &[(&str, &str)]) -> String {
    let mut body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{}\">",
        escape(service_type)
    );
    for (name, value) in args {
        body.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    }
    body.push_str(&format!("</u:{action}></s:Body></s:Envelope>\r\n"));
    body
}

/// The `SOAPAction` header value for `action` of `service_type`.
pub fn soap_action(service_type: &str, action: &str) -> String {
    format!("\"{service_type}#{action}\"")
}

/// Escapes text for XML content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The output arguments of a successful action, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoapArgs(pub Vec<(String, String)>);

impl SoapArgs {
    /// The value of argument `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Argument `argument` of `action`'s answer as a number;
    /// [`Error::BadArgument`](crate::Error::BadArgument) when it is missing
    /// or does not parse (out of range included).
    pub(crate) fn number<T: std::str::FromStr>(
        &self,
        action: &'static str,
        argument: &'static str,
    ) -> crate::Result<T> {
        let raw = self.get(argument).unwrap_or("");
        raw.trim()
            .parse()
            .map_err(|_| crate::Error::bad_argument(action, argument, raw))
    }
}

/// A parsed SOAP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapReply {
    /// `<u:ActionResponse>` with its arguments.
    Ok(SoapArgs),
    /// A `<s:Fault>` carrying a `<UPnPError>`.
    Fault {
        /// `errorCode`.
        code: UpnpErrorCode,
        /// `errorDescription` (at most [`MAX_FAULT_DESCRIPTION`] characters).
        description: String,
    },
}

/// Why a SOAP answer was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SoapError {
    /// The XML was not accepted.
    #[error("SOAP answer: {0}")]
    Xml(#[from] XmlError),
    /// Neither `<ActionResponse>` nor `<Fault>` inside `<Body>`.
    #[error("SOAP answer has neither the expected response element nor a fault")]
    NoResponse,
    /// A fault without a numeric UPnP `errorCode`.
    #[error("SOAP fault carries no numeric UPnP errorCode")]
    FaultWithoutCode,
    /// More than [`MAX_SOAP_ARGS`] output arguments.
    #[error("SOAP answer has more than {MAX_SOAP_ARGS} arguments")]
    TooManyArgs,
}

/// Parses the answer to `action`. `http_status` is not needed: faults are
/// recognised by their content (routers send them with 500, some with 200).
pub fn parse_response(body: &[u8], action: &str) -> Result<SoapReply, SoapError> {
    let expected = format!("{action}Response");
    let mut in_response = false;
    let mut saw_response = false;
    let mut saw_fault = false;
    let mut args = Vec::new();
    let mut too_many = false;
    let mut code: Option<String> = None;
    let mut description = String::new();
    walk(body, |parents, node| {
        let in_body = parents.len() >= 2 && parents[0] == "Envelope" && parents[1] == "Body";
        match node {
            Node::Open(name) => {
                if in_body && parents.len() == 2 {
                    if name == expected {
                        in_response = true;
                        saw_response = true;
                    } else if name == "Fault" {
                        saw_fault = true;
                    }
                }
            }
            Node::Close(name, text) => {
                if in_body && parents.len() == 2 && name == expected {
                    in_response = false;
                } else if in_response && parents.len() == 3 {
                    if args.len() >= MAX_SOAP_ARGS {
                        too_many = true;
                    } else {
                        args.push((name.to_owned(), text.to_owned()));
                    }
                } else if saw_fault && parents.last().is_some_and(|p| p == "UPnPError") {
                    match name {
                        "errorCode" => code = Some(text.to_owned()),
                        "errorDescription" => {
                            description = text.chars().take(MAX_FAULT_DESCRIPTION).collect();
                        }
                        _ => {}
                    }
                }
            }
        }
    })?;
    if too_many {
        return Err(SoapError::TooManyArgs);
    }
    if saw_response {
        return Ok(SoapReply::Ok(SoapArgs(args)));
    }
    if saw_fault {
        let code = code
            .and_then(|c| c.trim().parse::<u16>().ok())
            .ok_or(SoapError::FaultWithoutCode)?;
        return Ok(SoapReply::Fault {
            code: UpnpErrorCode::from_code(code),
            description,
        });
    }
    Err(SoapError::NoResponse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) const FAULT_718: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"#;

    #[test]
    fn parses_arguments() {
        let ok = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetStatusInfoResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewConnectionStatus>Connected</NewConnectionStatus><NewLastConnectionError>ERROR_NONE</NewLastConnectionError><NewUptime>3600</NewUptime></u:GetStatusInfoResponse></s:Body></s:Envelope>"#;
        let SoapReply::Ok(args) = parse_response(ok.as_bytes(), "GetStatusInfo").unwrap() else {
            panic!("not ok")
        };
        assert_eq!(args.get("NewConnectionStatus"), Some("Connected"));
        assert_eq!(args.get("NewUptime"), Some("3600"));
        assert_eq!(args.get("Nope"), None);
    }

    #[test]
    fn parses_faults() {
        assert_eq!(
            parse_response(FAULT_718.as_bytes(), "AddPortMapping").unwrap(),
            SoapReply::Fault {
                code: UpnpErrorCode::ConflictInMappingEntry,
                description: "ConflictInMappingEntry".into()
            }
        );
        let no_code = FAULT_718.replace("<errorCode>718</errorCode>", "<errorCode>x</errorCode>");
        assert_eq!(
            parse_response(no_code.as_bytes(), "AddPortMapping"),
            Err(SoapError::FaultWithoutCode)
        );
    }

    #[test]
    fn wrong_action_is_no_response() {
        let ok = "<s:Envelope><s:Body><u:OtherResponse/></s:Body></s:Envelope>";
        assert_eq!(
            parse_response(ok.as_bytes(), "GetStatusInfo"),
            Err(SoapError::NoResponse)
        );
        let many = format!(
            "<s:Envelope><s:Body><u:XResponse>{}</u:XResponse></s:Body></s:Envelope>",
            "<a>1</a>".repeat(MAX_SOAP_ARGS + 1)
        );
        assert_eq!(
            parse_response(many.as_bytes(), "X"),
            Err(SoapError::TooManyArgs)
        );
    }

    #[test]
    fn builds_escaped_requests() {
        let body = request_body(
            "urn:schemas-upnp-org:service:WANIPConnection:2",
            "AddAnyPortMapping",
            &[
                ("NewRemoteHost", ""),
                ("NewPortMappingDescription", "a<b>&'\""),
            ],
        );
        assert!(body.contains(
            "<u:AddAnyPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:2\">"
        ));
        assert!(body.contains("<NewRemoteHost></NewRemoteHost>"));
        assert!(body.contains(
            "<NewPortMappingDescription>a&lt;b&gt;&amp;&apos;&quot;</NewPortMappingDescription>"
        ));
        // What we build, we can parse back as a request-shaped document.
        let mut n = 0;
        crate::wire::xml::walk(body.as_bytes(), |_, _| n += 1).unwrap();
        assert!(n > 0);
        assert_eq!(
            soap_action("urn:x:1", "GetStatusInfo"),
            "\"urn:x:1#GetStatusInfo\""
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = parse_response(&bytes, "AddPortMapping");
        }

        #[test]
        fn mutated_fault_never_panics(at in 0usize..1000, byte in any::<u8>()) {
            let mut doc = FAULT_718.as_bytes().to_vec();
            let i = at % doc.len();
            doc[i] = byte;
            let _ = parse_response(&doc, "AddPortMapping");
            let _ = parse_response(&doc[..i], "AddPortMapping");
        }
    }
}
