//! The exported forwarding table: its JSON file, its checks, and the plan that
//! re-creates it on another router. No I/O here: the plan is decided from the file
//! and this host's address, and tested without a router.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use natkit_core::Protocol;
use natkit_upnp::PortMappingEntry;
use serde::{Deserialize, Serialize};

/// The `format` field of every export.
pub(crate) const FORMAT: &str = "natkit-forwards";
/// The layout version written and understood.
pub(crate) const VERSION: u32 = 1;
/// The most entries a file may hold: what a router's table may list
/// (natkit_upnp::MAX_LIST_ENTRIES).
const MAX_ENTRIES: usize = natkit_upnp::MAX_LIST_ENTRIES as usize;
/// The longest description accepted (what the listing keeps of one).
const MAX_DESCRIPTION: usize = 256;
/// The largest file read: 1024 entries of a few hundred bytes each.
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 20;

/// An exported forwarding table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardsFile {
    /// Always [`FORMAT`].
    pub(crate) format: String,
    /// Always [`VERSION`].
    pub(crate) version: u32,
    /// The address of the host that exported it, as the old router saw it: its
    /// entries are the ones to re-create for this host on the new router, whatever
    /// address the new LAN gives it.
    pub(crate) exported_by: Ipv4Addr,
    /// The router it was read from, for the reader.
    #[serde(default)]
    pub(crate) router: String,
    /// The table.
    pub(crate) entries: Vec<ForwardEntry>,
}

/// One entry of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardEntry {
    /// `tcp` or `udp`.
    pub(crate) protocol: Protocol,
    /// The port on the router's WAN side.
    pub(crate) external_port: u16,
    /// The LAN host it forwards to.
    pub(crate) internal_host: Ipv4Addr,
    /// The port on that host.
    pub(crate) internal_port: u16,
    /// The description its creator gave.
    #[serde(default)]
    pub(crate) description: String,
    /// The lease left when exported, in seconds; 0 is permanent.
    #[serde(default)]
    pub(crate) lease_secs: u32,
    /// Whether it was enabled.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// The remote host it was limited to; empty for any.
    #[serde(default)]
    pub(crate) remote_host: String,
    /// What the port is usually for (natkit_core::purpose), for the reader;
    /// ignored on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) purpose: Option<String>,
}

fn yes() -> bool {
    true
}

/// Why a file cannot be imported.
#[derive(Debug)]
pub(crate) enum FileError {
    /// Not JSON of the expected shape (serde_json names the line and column).
    Json(serde_json::Error),
    /// Another `format`.
    Format {
        /// What the file says.
        found: String,
    },
    /// A `version` this natkit does not read.
    Version {
        /// What the file says.
        found: u32,
    },
    /// More entries than any router table holds.
    TooManyEntries {
        /// How many.
        count: usize,
    },
    /// A field of an entry that makes no sense.
    BadEntry {
        /// The entry's index in `entries`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Two entries for the same external port and protocol.
    Duplicate {
        /// The later entry's index.
        index: usize,
        /// The protocol.
        protocol: Protocol,
        /// The port.
        external_port: u16,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Json(e) => write!(f, "not a natkit forwards file: {e}"),
            FileError::Format { found } => write!(
                f,
                "not a natkit forwards file: format is {:?}, expected {FORMAT:?}",
                found.chars().take(40).collect::<String>()
            ),
            FileError::Version { found } => write!(
                f,
                "forwards file version {found} is not supported (this natkit reads {VERSION})"
            ),
            FileError::TooManyEntries { count } => write!(
                f,
                "the file holds {count} entries; a router table holds at most {MAX_ENTRIES}"
            ),
            FileError::BadEntry { index, reason } => write!(f, "entry {index}: {reason}"),
            FileError::Duplicate {
                index,
                protocol,
                external_port,
            } => write!(
                f,
                "entry {index}: {external_port}/{protocol} appears twice (a router forwards \
                 each external port to one host)"
            ),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl ForwardEntry {
    /// The entry as the router listed it.
    pub(crate) fn from_listing(e: &PortMappingEntry) -> Option<ForwardEntry> {
        Some(ForwardEntry {
            protocol: e.protocol,
            external_port: e.external_port,
            // A router that names the client otherwise (a host name) cannot be
            // re-created from the file; the listing shows it, the export leaves it.
            internal_host: e.internal_client.parse().ok()?,
            internal_port: e.internal_port,
            description: e.description.clone(),
            lease_secs: e.lease_secs,
            enabled: e.enabled,
            remote_host: e.remote_host.clone(),
            purpose: natkit_core::purpose(e.external_port, e.protocol).map(str::to_owned),
        })
    }
}

impl ForwardsFile {
    /// The file for a listed table.
    pub(crate) fn new(
        exported_by: Ipv4Addr,
        router: &str,
        entries: &[PortMappingEntry],
    ) -> ForwardsFile {
        ForwardsFile {
            format: FORMAT.to_owned(),
            version: VERSION,
            exported_by,
            router: router.to_owned(),
            entries: entries
                .iter()
                .filter_map(ForwardEntry::from_listing)
                .collect(),
        }
    }

    /// Parses and checks a file's text.
    pub(crate) fn parse(text: &str) -> Result<ForwardsFile, FileError> {
        let file: ForwardsFile = serde_json::from_str(text).map_err(FileError::Json)?;
        if file.format != FORMAT {
            return Err(FileError::Format { found: file.format });
        }
        if file.version != VERSION {
            return Err(FileError::Version {
                found: file.version,
            });
        }
        if file.entries.len() > MAX_ENTRIES {
            return Err(FileError::TooManyEntries {
                count: file.entries.len(),
            });
        }
        let mut seen = HashSet::new();
        for (index, e) in file.entries.iter().enumerate() {
            let bad = |reason: String| FileError::BadEntry { index, reason };
            if e.external_port == 0 {
                return Err(bad("external_port 0 is not a port".into()));
            }
            if e.internal_port == 0 {
                return Err(bad("internal_port 0 is not a port".into()));
            }
            let h = e.internal_host;
            if h.is_unspecified() || h.is_broadcast() || h.is_multicast() || h.is_loopback() {
                return Err(bad(format!("internal_host {h} is not a LAN host")));
            }
            if e.description.len() > MAX_DESCRIPTION {
                return Err(bad(format!(
                    "description of {} bytes (at most {MAX_DESCRIPTION})",
                    e.description.len()
                )));
            }
            if !seen.insert((e.protocol, e.external_port)) {
                return Err(FileError::Duplicate {
                    index,
                    protocol: e.protocol,
                    external_port: e.external_port,
                });
            }
        }
        Ok(file)
    }
}

/// What import does with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Map it to this host.
    Recreate,
    /// Leave it, for this reason.
    Skip(String),
}

/// The step for each entry of `file` when this host is `local` on the new LAN.
///
/// Only entries that forwarded to the exporting host (or to this address) are
/// re-created, to this host: UPnP lets a client map ports only to itself
/// (miniupnpd in secure mode, its default, answers 606 ActionNotAuthorized for
/// another internal client; the lab's runs without it). Another host's entries
/// must be imported from that host.
pub(crate) fn plan(file: &ForwardsFile, local: Ipv4Addr) -> Vec<Step> {
    file.entries
        .iter()
        .map(|e| {
            if e.internal_host != file.exported_by && e.internal_host != local {
                Step::Skip(format!(
                    "forwards to another host ({}): UPnP lets a host map ports only to \
                     itself (miniupnpd in secure mode refuses others with 606); import it on \
                     that host",
                    e.internal_host
                ))
            } else if !e.enabled {
                Step::Skip("it was disabled on the old router".into())
            } else if !e.remote_host.is_empty() {
                Step::Skip(format!(
                    "it is limited to remote host {:?}, which natkit does not re-create",
                    e.remote_host.chars().take(64).collect::<String>()
                ))
            } else {
                Step::Recreate
            }
        })
        .collect()
}

/// The description to store for a re-created entry: the user's own words, without
/// a natkit tag naming the old host.
pub(crate) fn description_for(e: &ForwardEntry) -> String {
    match natkit_upnp::parse_tag(&e.description) {
        Some((_, user)) => user.to_owned(),
        None => e.description.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
    const NEW: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);

    fn entry(host: &str, port: u16, proto: Protocol, desc: &str) -> PortMappingEntry {
        PortMappingEntry {
            remote_host: String::new(),
            external_port: port,
            protocol: proto,
            internal_client: host.into(),
            internal_port: port,
            enabled: true,
            description: desc.into(),
            lease_secs: 0,
        }
    }

    fn sample() -> ForwardsFile {
        ForwardsFile::new(
            OLD,
            "AirPort",
            &[
                entry("10.0.1.2", 548, Protocol::Tcp, "AFP"),
                entry("10.0.1.2", 5900, Protocol::Tcp, "natkit 10.0.1.2 screen"),
                entry("10.0.1.3", 3074, Protocol::Udp, "xbox"),
                entry("not-an-ip", 80, Protocol::Tcp, "odd router"),
            ],
        )
    }

    #[test]
    fn export_round_trips_with_purposes() {
        let f = sample();
        assert_eq!(f.entries.len(), 3, "the host-name entry cannot be exported");
        let text = serde_json::to_string_pretty(&f).unwrap();
        assert!(text.contains("\"purpose\": \"Apple Filing Protocol over TCP\""));
        assert_eq!(ForwardsFile::parse(&text).unwrap(), f);
    }

    #[test]
    fn plan_recreates_own_entries_and_skips_others_with_the_reason() {
        let steps = plan(&sample(), NEW);
        assert_eq!(steps[0], Step::Recreate);
        assert_eq!(steps[1], Step::Recreate);
        let Step::Skip(why) = &steps[2] else {
            panic!("{steps:?}")
        };
        assert!(why.contains("10.0.1.3") && why.contains("606"), "{why}");
        assert_eq!(description_for(&sample().entries[1]), "screen");
        assert_eq!(description_for(&sample().entries[0]), "AFP");
        let mut f = sample();
        f.entries[0].enabled = false;
        f.entries[1].remote_host = "203.0.113.9".into();
        let steps = plan(&f, NEW);
        assert!(matches!(&steps[0], Step::Skip(w) if w.contains("disabled")));
        assert!(matches!(&steps[1], Step::Skip(w) if w.contains("203.0.113.9")));
    }

    fn parse_err(text: &str) -> String {
        ForwardsFile::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let good = serde_json::to_value(sample()).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            f(&mut v);
            v.to_string()
        };
        assert!(parse_err("").contains("not a natkit forwards file"));
        assert!(parse_err("{\"format\":").contains("not a natkit forwards file"));
        assert!(parse_err("[1,2]").contains("not a natkit forwards file"));
        assert!(parse_err(&with(&|v| v["format"] = "x".into())).contains("format is \"x\""));
        assert!(parse_err(&with(&|v| v["version"] = 9.into())).contains("version 9"));
        let e = parse_err(&with(&|v| v["entries"][0]["external_port"] = 70000.into()));
        assert!(e.contains("70000"), "{e}");
        let e = parse_err(&with(&|v| v["entries"][1]["external_port"] = 0.into()));
        assert_eq!(e, "entry 1: external_port 0 is not a port");
        let e = parse_err(&with(&|v| v["entries"][0]["internal_port"] = (-1).into()));
        assert!(e.contains("-1"), "{e}");
        let e = parse_err(&with(&|v| {
            v["entries"][0]["internal_host"] = "0.0.0.0".into()
        }));
        assert_eq!(e, "entry 0: internal_host 0.0.0.0 is not a LAN host");
        let e = parse_err(&with(&|v| v["entries"][0]["internal_host"] = "lan".into()));
        assert!(e.contains("not a natkit forwards file"), "{e}");
        let e = parse_err(&with(&|v| v["entries"][0]["protocol"] = "sctp".into()));
        assert!(e.contains("sctp"), "{e}");
        let e = parse_err(&with(&|v| {
            v["entries"][1]["external_port"] = 548.into();
        }));
        assert!(e.contains("548/tcp appears twice"), "{e}");
        let e = parse_err(&with(&|v| {
            v["entries"][0]["description"] = "d".repeat(300).into()
        }));
        assert!(e.contains("300 bytes"), "{e}");
        let e = parse_err(&with(&|v| {
            let one = v["entries"][0].clone();
            v["entries"] = serde_json::Value::Array(vec![one; 1025]);
        }));
        assert!(e.contains("1025 entries"), "{e}");
    }
}
