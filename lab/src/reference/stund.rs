//! stund's client `stun` (stun-client 0.97) against the lab's stund.

use std::net::SocketAddrV4;

use super::{CLIENT_TIMEOUT, NatFiltering};
use crate::example::dump_output;
use crate::lab::Lab;
use crate::spec::Node;

/// What stund's client `stun STUN1 -v` concluded (stun-client 0.97).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StundVerdict {
    /// The "Primary:" line, e.g. `Independent Mapping, Port Dependent Filter,
    /// preserves ports, no hairpin`.
    pub primary: String,
    /// The first MappedAddress (test I, to STUN1:3478).
    pub mapped: SocketAddrV4,
    /// The exit code. Observed: bits 0x0E are the type (0x00 open, 0x02 independent
    /// filter, 0x04 address dependent filter, 0x06 port dependent filter, 0x08
    /// dependent mapping, 0x0C blocked), 0x01 "preserves ports", 0x10 "no hairpin".
    pub code: i32,
}

impl StundVerdict {
    /// Parses the client's stdout+stderr and exit code; `None` without a "Primary:"
    /// line or a MappedAddress.
    pub fn parse(output: &str, code: i32) -> Option<StundVerdict> {
        let primary = output
            .lines()
            .find_map(|l| l.strip_prefix("Primary: "))?
            .trim()
            .to_owned();
        let mapped = output
            .lines()
            .find_map(|l| l.trim().strip_prefix("MappedAddress = "))?
            .trim()
            .parse()
            .ok()?;
        Some(StundVerdict {
            primary,
            mapped,
            code,
        })
    }

    /// The "Primary:" line's parts, e.g. `["Independent Mapping", "Port Dependent
    /// Filter", "preserves ports", "no hairpin"]`.
    pub fn parts(&self) -> Vec<&str> {
        self.primary.split(", ").map(str::trim).collect()
    }

    /// The exit code's type bits (see [`code`](Self::code)).
    pub fn type_bits(&self) -> i32 {
        self.code & 0x0e
    }

    /// Whether it saw a NAT ("Open" means none).
    pub fn nat(&self) -> bool {
        !self.parts().contains(&"Open")
    }

    /// Whether the mapping is endpoint independent; `None` without a NAT. The client
    /// tells only independent from dependent (address or address-and-port).
    pub fn mapping_independent(&self) -> Option<bool> {
        self.says(&[("Independent Mapping", true), ("Dependent Mapping", false)])
    }

    /// The value of the first of `words` that the "Primary:" line holds.
    fn says<T: Copy>(&self, words: &[(&str, T)]) -> Option<T> {
        let parts = self.parts();
        words
            .iter()
            .find(|(w, _)| parts.contains(w))
            .map(|&(_, t)| t)
    }

    /// The filtering, which the client reports only for an independent mapping.
    pub fn filtering(&self) -> Option<NatFiltering> {
        self.says(&[
            ("Independent Filter", NatFiltering::EndpointIndependent),
            ("Address Dependent Filter", NatFiltering::AddressDependent),
            (
                "Port Dependent Filter",
                NatFiltering::AddressAndPortDependent,
            ),
        ])
    }

    /// "preserves ports" or "random port"; `None` when not said (open).
    pub fn preserves_ports(&self) -> Option<bool> {
        self.says(&[("preserves ports", true), ("random port", false)])
    }

    /// "will hairpin" or "no hairpin"; `None` when not said (open).
    pub fn hairpinning(&self) -> Option<bool> {
        self.says(&[("will hairpin", true), ("no hairpin", false)])
    }
}

impl Lab {
    /// Runs stund's client in `node` against the lab's stund (`stun STUN1 -v`).
    ///
    /// # Panics
    /// When it cannot run or prints no verdict, with its output.
    pub fn stund_client(&self, node: Node) -> StundVerdict {
        let server = self.addrs().stun1.to_string();
        let out = self
            .exec_timeout(node, &["stun", server.as_str(), "-v"], CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("running stun in {node:?}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let code = out.status.code().unwrap_or(-1);
        StundVerdict::parse(&text, code)
            .unwrap_or_else(|| panic!("no verdict from stun: {}", dump_output(&out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stund_verdicts() {
        let out = "STUN client version 0.97\n  MappedAddress = 88.77.66.2:40001\n\
                   Primary: Independent Mapping, Address Dependent Filter, random port, will hairpin\t\n\
                   Return value is 0x000014\n";
        let v = StundVerdict::parse(out, 0x14).expect("parses");
        assert_eq!(v.mapped, "88.77.66.2:40001".parse().unwrap());
        assert!(v.nat());
        assert_eq!(v.mapping_independent(), Some(true));
        assert_eq!(v.filtering(), Some(NatFiltering::AddressDependent));
        assert_eq!(v.preserves_ports(), Some(false));
        assert_eq!(v.hairpinning(), Some(true));
        assert_eq!(v.type_bits(), 0x04);

        let sym = StundVerdict::parse(
            "MappedAddress = 88.77.66.2:1\nPrimary: Dependent Mapping, random port, no hairpin\n",
            0x18,
        )
        .expect("parses");
        assert_eq!(sym.mapping_independent(), Some(false));
        assert_eq!(sym.filtering(), None);
        assert_eq!(sym.hairpinning(), Some(false));

        let open = StundVerdict::parse("MappedAddress = 88.77.67.2:1\nPrimary: Open\n", 1)
            .expect("parses");
        assert!(!open.nat());
        assert_eq!(open.mapping_independent(), None);
        assert_eq!(open.preserves_ports(), None);
        assert!(StundVerdict::parse("Primary: Open\n", 1).is_none());
    }
}
