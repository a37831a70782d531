//! Parses arbitrary bytes as an SSDP search answer, then takes its LOCATION through the
//! checks discovery applies (URL parse, the gateway/subnet/loopback policy). Invariants:
//! what parses fits the size limit, its fields are non-empty trimmed slices of the
//! datagram, and a LOCATION URL prints back to a URL that parses to the same thing.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use natkit_core::Gateway;
use natkit_upnp::ssdp::{MAX_SSDP_RESPONSE, SsdpResponse, is_igd_target};
use natkit_upnp::{HttpUrl, LocationPolicy, check_location};

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = SsdpResponse::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_SSDP_RESPONSE);
    let text = std::str::from_utf8(data).expect("an answer is text");
    for field in [
        Some(answer.location),
        Some(answer.st),
        answer.usn,
        answer.server,
    ]
    .into_iter()
    .flatten()
    {
        assert!(text.contains(field));
        assert_eq!(field.trim(), field);
    }
    assert!(!answer.location.is_empty() && !answer.st.is_empty());
    let _ = is_igd_target(answer.st);
    if let Ok(url) = HttpUrl::parse(answer.location) {
        let gateway = Gateway {
            interface: "eth0".into(),
            address: Ipv4Addr::new(192, 168, 77, 1),
            local_address: Ipv4Addr::new(192, 168, 77, 2),
            prefix_len: 24,
            address_v6: None,
            local_v6: vec![],
        };
        for policy in [
            LocationPolicy::GatewayOnly,
            LocationPolicy::Lan,
            LocationPolicy::Any,
        ] {
            if check_location(url.ip(), &gateway, policy, false).is_ok() {
                assert!(!url.ip().is_loopback());
                assert!(!url.ip().is_unspecified() && !url.ip().is_multicast());
            }
        }
        let printed = url.to_string();
        assert_eq!(HttpUrl::parse(&printed), Ok(url));
    }
});
