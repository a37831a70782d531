//! Parses arbitrary bytes as a UPnP device description (rootDesc.xml), then resolves
//! the WAN service's control URL the way `Igd::connect` does. Invariants: the service
//! count and every text stay within the documented limits; the chosen service has a
//! control URL; a resolved control URL prints to a URL that parses to the same thing
//! (it is handed to igd-next as text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_upnp::description::MAX_SERVICES;
use natkit_upnp::{Description, HttpUrl, MAX_XML_TEXT};

fuzz_target!(|data: &[u8]| {
    let Ok(d) = Description::parse(data) else {
        return;
    };
    assert!(d.services.len() <= MAX_SERVICES);
    for s in &d.services {
        assert!(s.service_type.len() <= MAX_XML_TEXT);
        assert!(s.control_url.len() <= MAX_XML_TEXT);
    }
    for f in [
        &d.friendly_name,
        &d.manufacturer,
        &d.model_name,
        &d.device_type,
        &d.url_base,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!f.is_empty() && f.len() <= MAX_XML_TEXT);
    }
    let _ = d.display_name();
    let Some((kind, entry)) = d.wan_service() else {
        return;
    };
    assert!(!entry.control_url.is_empty());
    // Service types match case-insensitively; requests use the description's spelling.
    assert!(
        kind.service_type()
            .eq_ignore_ascii_case(&entry.service_type)
    );
    let location = HttpUrl::parse("http://192.168.77.1:2869/rootDesc.xml").unwrap();
    let base = match &d.url_base {
        Some(b) => match HttpUrl::parse(b) {
            Ok(u) => u,
            Err(_) => return,
        },
        None => location,
    };
    if let Ok(control) = base.join(&entry.control_url) {
        assert!(control.path.starts_with('/'));
        assert_eq!(HttpUrl::parse(&control.to_string()), Ok(control));
    }
});
