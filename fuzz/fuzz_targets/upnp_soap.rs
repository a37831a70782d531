//! Parses arbitrary bytes as the SOAP answer to each action natkit parses itself
//! (GetStatusInfo, GetSpecificPortMappingEntry, AddAnyPortMapping and the rest).
//! Invariants: arguments and fault texts stay within the documented limits, a fault's
//! code survives its typed form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_upnp::soap::{MAX_FAULT_DESCRIPTION, MAX_SOAP_ARGS, SoapReply, parse_response};
use natkit_upnp::{MAX_XML_TEXT, UpnpErrorCode};

const ACTIONS: [&str; 7] = [
    "GetStatusInfo",
    "GetExternalIPAddress",
    "AddPortMapping",
    "AddAnyPortMapping",
    "DeletePortMapping",
    "GetSpecificPortMappingEntry",
    "GetGenericPortMappingEntry",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let action = ACTIONS[usize::from(selector) % ACTIONS.len()];
    match parse_response(body, action) {
        Ok(SoapReply::Ok(args)) => {
            assert!(args.0.len() <= MAX_SOAP_ARGS);
            for (name, value) in &args.0 {
                // quick-xml takes `<s:>` as an element with an empty local name; such
                // an argument is never asked for, so it is harmless and allowed here.
                assert!(value.len() <= MAX_XML_TEXT);
                assert_eq!(value.trim(), value);
                assert!(args.get(name).is_some());
            }
        }
        Ok(SoapReply::Fault { code, description }) => {
            assert!(description.chars().count() <= MAX_FAULT_DESCRIPTION);
            assert_eq!(UpnpErrorCode::from_code(code.code()), code);
            let _ = (code.name(), code.is_retryable(), code.failure_kind());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
