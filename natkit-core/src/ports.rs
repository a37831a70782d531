//! Port specs: `443/tcp,4500/udp,16384-16403/udp,5298`.
//!
//! A spec is a comma-separated list of items; each item is a port or an
//! inclusive range `LOW-HIGH`, optionally followed by `/tcp` or `/udp`. An
//! item with no protocol means both. White space around items is allowed.

use std::fmt;
use std::str::FromStr;

use crate::protocol::Protocol;

/// The longest spec accepted, in bytes: far more than any real list, small
/// enough that a hostile argument cannot make natkit allocate much.
pub const MAX_SPEC_LEN: usize = 4096;
/// The most items a spec may have.
pub const MAX_ITEMS: usize = 256;

/// Which protocols a port spec item covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Protocols {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// TCP and UDP.
    Both,
}

impl Protocols {
    /// The protocols covered, TCP first.
    pub fn iter(self) -> impl Iterator<Item = Protocol> {
        let (tcp, udp) = match self {
            Protocols::Tcp => (true, false),
            Protocols::Udp => (false, true),
            Protocols::Both => (true, true),
        };
        tcp.then_some(Protocol::Tcp)
            .into_iter()
            .chain(udp.then_some(Protocol::Udp))
    }

    /// Whether `p` is covered.
    pub fn contains(self, p: Protocol) -> bool {
        self.iter().any(|q| q == p)
    }
}

impl From<Protocol> for Protocols {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => Protocols::Tcp,
            Protocol::Udp => Protocols::Udp,
        }
    }
}

/// One item of a spec: an inclusive port range and its protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortRange {
    /// The first port (≥ 1).
    pub first: u16,
    /// The last port (≥ `first`).
    pub last: u16,
    /// The protocols.
    pub protocols: Protocols,
}

impl PortRange {
    /// A single port.
    pub const fn single(port: u16, protocols: Protocols) -> Self {
        PortRange {
            first: port,
            last: port,
            protocols,
        }
    }

    /// How many ports the range covers (per protocol).
    pub fn len(&self) -> usize {
        usize::from(self.last.saturating_sub(self.first)) + 1
    }

    /// Always false: a range covers at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every (port, protocol) pair in the range, ports in order, TCP first.
    pub fn iter(&self) -> impl Iterator<Item = (u16, Protocol)> + '_ {
        (self.first..=self.last).flat_map(move |p| self.protocols.iter().map(move |q| (p, q)))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)?;
        } else {
            write!(f, "{}-{}", self.first, self.last)?;
        }
        match self.protocols {
            Protocols::Tcp => f.write_str("/tcp"),
            Protocols::Udp => f.write_str("/udp"),
            Protocols::Both => Ok(()),
        }
    }
}

/// A parsed port spec: a list of ranges, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortSpec {
    /// The items, in the order given.
    pub ranges: Vec<PortRange>,
}

impl PortSpec {
    /// Every (port, protocol) pair, in spec order, duplicates removed (the
    /// first occurrence is kept).
    pub fn pairs(&self) -> Vec<(u16, Protocol)> {
        let mut seen = vec![0u8; 65536];
        let mut out = Vec::new();
        for r in &self.ranges {
            for (port, proto) in r.iter() {
                let bit = match proto {
                    Protocol::Tcp => 1,
                    Protocol::Udp => 2,
                };
                let slot = &mut seen[usize::from(port)];
                if *slot & bit == 0 {
                    *slot |= bit;
                    out.push((port, proto));
                }
            }
        }
        out
    }

    /// Whether the spec covers `port` for `protocol`.
    pub fn contains(&self, port: u16, protocol: Protocol) -> bool {
        self.ranges
            .iter()
            .any(|r| r.first <= port && port <= r.last && r.protocols.contains(protocol))
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Why a port spec did not parse: which item, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad port spec item {index} ({item:?}): {reason}")]
pub struct PortSpecError {
    /// The 1-based position of the bad item (0 for the spec as a whole).
    pub index: usize,
    /// The item's text (at most 32 characters of it).
    pub item: String,
    /// What is wrong.
    pub reason: PortSpecErrorReason,
}

/// What is wrong with a port spec item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortSpecErrorReason {
    /// The spec is empty, or an item between commas is empty.
    #[error("empty item")]
    Empty,
    /// A port that is not a decimal number.
    #[error("{0:?} is not a port number")]
    NotANumber(String),
    /// Port 0 cannot be mapped, probed or listened on.
    #[error("port 0 is not a usable port")]
    PortZero,
    /// A port above 65535.
    #[error("{0} is above 65535")]
    PortTooLarge(String),
    /// A range whose first port is above its last.
    #[error("range {first}-{last} is reversed (did you mean {last}-{first}?)")]
    ReversedRange {
        /// The first port given.
        first: u16,
        /// The last port given.
        last: u16,
    },
    /// A protocol other than tcp or udp.
    #[error("unknown protocol {0:?}: expected tcp or udp")]
    UnknownProtocol(String),
    /// The spec is longer than [`MAX_SPEC_LEN`] bytes.
    #[error("the spec is {0} bytes long; at most {MAX_SPEC_LEN} are accepted")]
    TooLong(usize),
    /// The spec has more than [`MAX_ITEMS`] items.
    #[error("more than {MAX_ITEMS} items")]
    TooManyItems,
}

fn truncated(s: &str) -> String {
    s.chars().take(32).collect()
}

fn parse_port(text: &str) -> Result<u16, PortSpecErrorReason> {
    if text.is_empty() {
        return Err(PortSpecErrorReason::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortSpecErrorReason::NotANumber(truncated(text)));
    }
    let digits = text.trim_start_matches('0');
    if digits.is_empty() {
        return Err(PortSpecErrorReason::PortZero);
    }
    if digits.len() > 5 {
        return Err(PortSpecErrorReason::PortTooLarge(truncated(text)));
    }
    let value: u32 = digits
        .parse()
        .map_err(|_| PortSpecErrorReason::NotANumber(truncated(text)))?;
    u16::try_from(value).map_err(|_| PortSpecErrorReason::PortTooLarge(truncated(text)))
}

fn parse_item(item: &str) -> Result<PortRange, PortSpecErrorReason> {
    if item.is_empty() {
        return Err(PortSpecErrorReason::Empty);
    }
    let (ports, protocols) = match item.split_once('/') {
        Some((ports, proto)) => {
            let proto = proto.trim();
            let protocols = if proto.eq_ignore_ascii_case("tcp") {
                Protocols::Tcp
            } else if proto.eq_ignore_ascii_case("udp") {
                Protocols::Udp
            } else {
                return Err(PortSpecErrorReason::UnknownProtocol(truncated(proto)));
            };
            (ports.trim(), protocols)
        }
        None => (item, Protocols::Both),
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (parse_port(a.trim())?, parse_port(b.trim())?),
        None => {
            let p = parse_port(ports)?;
            (p, p)
        }
    };
    if first > last {
        return Err(PortSpecErrorReason::ReversedRange { first, last });
    }
    Ok(PortRange {
        first,
        last,
        protocols,
    })
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let whole = |reason| PortSpecError {
            index: 0,
            item: truncated(spec),
            reason,
        };
        if spec.len() > MAX_SPEC_LEN {
            return Err(whole(PortSpecErrorReason::TooLong(spec.len())));
        }
        if spec.trim().is_empty() {
            return Err(whole(PortSpecErrorReason::Empty));
        }
        let mut ranges = Vec::new();
        for (i, raw) in spec.split(',').enumerate() {
            if i >= MAX_ITEMS {
                return Err(whole(PortSpecErrorReason::TooManyItems));
            }
            let item = raw.trim();
            let range = parse_item(item).map_err(|reason| PortSpecError {
                index: i + 1,
                item: truncated(item),
                reason,
            })?;
            ranges.push(range);
        }
        Ok(PortSpec { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(spec: &str) -> PortSpecError {
        spec.parse::<PortSpec>().unwrap_err()
    }

    #[test]
    fn parses_the_issue_example() {
        let spec: PortSpec = "443/tcp,4500/udp,16384-16403/udp,5298".parse().unwrap();
        assert_eq!(spec.to_string(), "443/tcp,4500/udp,16384-16403/udp,5298");
        let pairs = spec.pairs();
        assert_eq!(pairs.len(), 1 + 1 + 20 + 2);
        assert_eq!(pairs[0], (443, Protocol::Tcp));
        assert_eq!(pairs[22], (5298, Protocol::Tcp));
        assert_eq!(pairs[23], (5298, Protocol::Udp));
        assert!(spec.contains(16390, Protocol::Udp));
        assert!(!spec.contains(16390, Protocol::Tcp));
    }

    #[test]
    fn accepts_spaces_case_and_leading_zeros() {
        let spec: PortSpec = " 22 , 80-81/TCP , 053/Udp ".parse().unwrap();
        assert_eq!(spec.to_string(), "22,80-81/tcp,53/udp");
    }

    #[test]
    fn each_bad_item_is_named() {
        let e = err("443/tcp,0/udp");
        assert_eq!((e.index, e.item.as_str()), (2, "0/udp"));
        assert_eq!(e.reason, PortSpecErrorReason::PortZero);
        assert_eq!(
            err("65536").reason,
            PortSpecErrorReason::PortTooLarge("65536".into())
        );
        assert_eq!(
            err("99999999999999999999").reason,
            PortSpecErrorReason::PortTooLarge("99999999999999999999".into())
        );
        assert_eq!(
            err("100-10").reason,
            PortSpecErrorReason::ReversedRange {
                first: 100,
                last: 10
            }
        );
        assert_eq!(
            err("53/sctp").reason,
            PortSpecErrorReason::UnknownProtocol("sctp".into())
        );
        assert_eq!(
            err("53/").reason,
            PortSpecErrorReason::UnknownProtocol(String::new())
        );
        assert_eq!(err("22,,80").index, 2);
        assert_eq!(err("22,,80").reason, PortSpecErrorReason::Empty);
        assert_eq!(err("").reason, PortSpecErrorReason::Empty);
        assert_eq!(err("22,").reason, PortSpecErrorReason::Empty);
        assert_eq!(err("-5").reason, PortSpecErrorReason::Empty);
        assert_eq!(
            err("ssh").reason,
            PortSpecErrorReason::NotANumber("ssh".into())
        );
        assert_eq!(
            err("+22").reason,
            PortSpecErrorReason::NotANumber("+22".into())
        );
        assert_eq!(
            err("1-2-3").reason,
            PortSpecErrorReason::NotANumber("2-3".into())
        );
        assert_eq!(
            err(&"1,".repeat(2000)).reason,
            PortSpecErrorReason::TooManyItems
        );
        assert_eq!(
            err(&"1".repeat(5000)).reason,
            PortSpecErrorReason::TooLong(5000)
        );
        let msg = err("443/tcp,70000").to_string();
        assert_eq!(
            msg,
            "bad port spec item 2 (\"70000\"): 70000 is above 65535"
        );
    }

    #[test]
    fn pairs_deduplicate() {
        let spec: PortSpec = "80,80/tcp,79-81/udp".parse().unwrap();
        assert_eq!(
            spec.pairs(),
            vec![
                (80, Protocol::Tcp),
                (80, Protocol::Udp),
                (79, Protocol::Udp),
                (81, Protocol::Udp)
            ]
        );
    }

    fn any_range() -> impl Strategy<Value = PortRange> {
        (
            1u16..,
            0u16..200,
            prop::sample::select(vec![Protocols::Tcp, Protocols::Udp, Protocols::Both]),
        )
            .prop_map(|(first, span, protocols)| PortRange {
                first,
                last: first.saturating_add(span),
                protocols,
            })
    }

    proptest! {
        /// Printing then parsing gives back the same spec.
        #[test]
        fn print_parse_round_trip(ranges in prop::collection::vec(any_range(), 1..20)) {
            let spec = PortSpec { ranges };
            let text = spec.to_string();
            prop_assert_eq!(text.parse::<PortSpec>().unwrap(), spec);
        }

        /// Arbitrary text never panics: it parses or names a bad item, and
        /// whatever parses prints back to something that parses the same.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            match text.parse::<PortSpec>() {
                Ok(spec) => {
                    prop_assert!(!spec.ranges.is_empty());
                    let again: PortSpec = spec.to_string().parse().unwrap();
                    prop_assert_eq!(again, spec);
                }
                Err(e) => prop_assert!(e.index <= text.split(',').count()),
            }
        }

        /// Text made of spec characters exercises the error paths.
        #[test]
        fn spec_alphabet_never_panics(text in "[0-9,/\\- tcpudTCPUD]{0,48}") {
            if let Ok(spec) = text.parse::<PortSpec>() {
                for r in &spec.ranges {
                    prop_assert!(r.first >= 1 && r.first <= r.last);
                }
            }
        }
    }
}
