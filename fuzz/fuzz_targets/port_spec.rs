//! Parses arbitrary text as a port spec (`443/tcp,4500/udp,16384-16403/udp,5298`) and as a
//! service profile name. A spec that parses must print back to text that parses to the
//! same spec; its pairs must be unique and each covered by the spec; its error, when it
//! fails, must name an item that exists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_core::{PortSpec, Protocol, ServiceProfile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ServiceProfile::by_name(text);
    match text.parse::<PortSpec>() {
        Ok(spec) => {
            assert!(!spec.ranges.is_empty());
            let printed = spec.to_string();
            let again: PortSpec = printed.parse().expect("a printed spec parses");
            assert_eq!(again, spec);
            let pairs = spec.pairs();
            let total: usize = spec.ranges.iter().map(|r| r.iter().count()).sum();
            assert!(
                spec.ranges
                    .iter()
                    .all(|r| r.iter().count() == r.len() * r.protocols.iter().count())
            );
            assert!(pairs.len() <= total);
            let mut sorted = pairs.clone();
            sorted.sort_by_key(|&(p, proto)| (p, proto == Protocol::Tcp));
            sorted.dedup();
            assert_eq!(sorted.len(), pairs.len(), "pairs are unique");
            for (port, proto) in pairs {
                assert_ne!(port, 0);
                assert!(spec.contains(port, proto));
            }
        }
        Err(e) => {
            assert!(e.index <= text.split(',').count());
            assert!(e.item.chars().count() <= 32);
            let _ = e.to_string();
        }
    }
});
