//! The crash-cleanup journal: which mappings this process holds, on disk,
//! so that the next run can delete what a killed process left behind.
//!
//! Layout: a directory (by default `$XDG_STATE_HOME/natkit/portmap`, else
//! `$HOME/.local/state/natkit/portmap`) with one JSON file per process,
//! `<pid>-<start>.json`, naming its owner (pid and the kernel's start time
//! of that process, so a reused pid is not taken for the owner) and its
//! mappings. A process only ever writes its own file (write to a temporary
//! file, then rename), so processes never contend for one file.
//!
//! [`Journal::claim_stale`] hands over the files of owners that are no
//! longer running: each is first renamed to a name of the claiming process
//! (an atomic step only one claimer wins), then read. A claimer that dies
//! before settling leaves the claimed file, whose content still names the
//! dead owner, for the next run.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use natkit_core::{Mapping, MappingToken, Mechanism, Protocol};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FORMAT: &str = "natkit-portmap-journal";
const VERSION: u32 = 1;
/// Journal files larger than this are not natkit's.
const MAX_FILE: u64 = 1 << 20;

/// One mapping as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The mechanism that made it.
    pub mechanism: Mechanism,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The gateway it was made on (`None` when unknown).
    pub gateway: Option<Ipv4Addr>,
    /// The internal address and port.
    pub internal: SocketAddr,
    /// The external address and port granted.
    pub external: SocketAddr,
    /// The mapper's token in hex (PCP: the nonce that owns the mapping).
    pub token: Option<String>,
    /// The lease granted in seconds; 0 is permanent.
    pub lifetime_secs: u64,
    /// When it was granted or last renewed (seconds since 1970).
    pub made_unix: u64,
}

impl JournalEntry {
    /// The entry for `mapping`, made on `gateway`.
    pub fn of(gateway: Option<Ipv4Addr>, mapping: &Mapping) -> Self {
        JournalEntry {
            mechanism: mapping.mechanism,
            protocol: mapping.protocol,
            gateway,
            internal: mapping.internal,
            external: mapping.external,
            token: mapping.token.map(|t| t.to_hex()),
            lifetime_secs: mapping.lifetime.as_secs(),
            made_unix: unix_now(),
        }
    }

    /// The mapping to hand back to a mapper for deletion (obtained now).
    pub fn to_mapping(&self) -> Result<Mapping> {
        let token = match &self.token {
            Some(hex) => Some(
                MappingToken::from_hex(hex).ok_or_else(|| Error::JournalToken {
                    token: hex.chars().take(64).collect(),
                })?,
            ),
            None => None,
        };
        Ok(Mapping::new(
            self.mechanism,
            self.protocol,
            self.external,
            self.internal,
            Duration::from_secs(self.lifetime_secs),
            Instant::now(),
        )
        .with_token(token))
    }

    /// Whether this is an IPv6 pinhole (see [`Mapping::is_pinhole`]): its
    /// external endpoint is its internal one and [`token`](Self::token)
    /// names it (UPnP: the pinhole's UniqueID; PCP: the nonce).
    pub fn is_pinhole(&self) -> bool {
        match self.internal.ip() {
            std::net::IpAddr::V4(_) => false,
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
        }
    }

    /// Whether the lease ran out by `now_unix` (never for permanent ones):
    /// the router has dropped the mapping by itself.
    pub fn expired(&self, now_unix: u64) -> bool {
        self.lifetime_secs != 0 && self.made_unix.saturating_add(self.lifetime_secs) < now_unix
    }

    /// Whether this entry is the same mapping as `other` (mechanism,
    /// protocol and internal endpoint).
    pub fn same_mapping(&self, other: &JournalEntry) -> bool {
        self.mechanism == other.mechanism
            && self.protocol == other.protocol
            && self.internal == other.internal
    }

    fn is_mapping(&self, m: &Mapping) -> bool {
        self.mechanism == m.mechanism && self.protocol == m.protocol && self.internal == m.internal
    }
}

/// The process that wrote a journal file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (Linux `/proc/PID/stat`
    /// field 22), `None` where unknown.
    pub start: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: process_start(pid),
        }
    }

    /// Whether the owner still runs: the pid exists with the same start
    /// time. Without `/proc` (not Linux) every other owner counts as gone.
    pub fn is_running(&self) -> bool {
        match process_start(self.pid) {
            Some(start) => self.start.is_none_or(|s| s == start),
            None => false,
        }
    }
}

/// `/proc/PID/stat` field 22 (starttime), read after the last `)` since
/// the command name may hold spaces and parentheses.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards; starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    owner: Owner,
    entries: Vec<JournalEntry>,
}

/// This process's journal (see the [module docs](self)).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    owner: Owner,
    entries: Mutex<Vec<JournalEntry>>,
    claims: Mutex<u32>,
}

/// A dead process's journal file, claimed by this process for cleanup.
#[derive(Debug)]
pub struct StaleJournal {
    path: PathBuf,
    /// The process that wrote it.
    pub owner: Owner,
    /// Its mappings.
    pub entries: Vec<JournalEntry>,
}

impl StaleJournal {
    /// The claimed file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `left` (mappings still to delete later) or, when empty,
    /// removes the file.
    pub fn settle(self, left: Vec<JournalEntry>) -> Result<()> {
        if left.is_empty() {
            return remove(&self.path);
        }
        write_file(
            &self.path,
            &File {
                format: FORMAT.into(),
                version: VERSION,
                owner: self.owner,
                entries: left,
            },
        )
    }
}

impl Journal {
    /// `$XDG_STATE_HOME/natkit/portmap`, else
    /// `$HOME/.local/state/natkit/portmap`.
    pub fn default_dir() -> Result<PathBuf> {
        let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(state) => PathBuf::from(state),
            None => {
                let home = std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .ok_or(Error::NoJournalDir)?;
                PathBuf::from(home).join(".local").join("state")
            }
        };
        Ok(base.join("natkit").join("portmap"))
    }

    /// The journal in the default directory.
    pub fn open_default() -> Result<Journal> {
        Self::open(Self::default_dir()?)
    }

    /// This process's journal in `dir` (created, mode 0700, if missing).
    /// Nothing is written until the first mapping.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Journal> {
        let dir = dir.into();
        create_dir(&dir)?;
        let owner = Owner::this_process();
        let path = dir.join(format!("{}-{}.json", owner.pid, owner.start.unwrap_or(0)));
        Ok(Journal {
            dir,
            path,
            owner,
            entries: Mutex::new(Vec::new()),
            claims: Mutex::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This process's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mappings this process holds.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.lock().clone()
    }

    /// Records `mapping` (replacing an entry for the same mapping) and
    /// writes the file before returning.
    pub fn record(&self, gateway: Option<Ipv4Addr>, mapping: &Mapping) -> Result<()> {
        self.update(|entries| {
            entries.retain(|e| !e.is_mapping(mapping));
            entries.push(JournalEntry::of(gateway, mapping));
        })
    }

    /// Replaces `old` by its renewal `new`.
    pub fn replace(&self, gateway: Option<Ipv4Addr>, old: &Mapping, new: &Mapping) -> Result<()> {
        self.update(|entries| {
            entries.retain(|e| !e.is_mapping(old) && !e.is_mapping(new));
            entries.push(JournalEntry::of(gateway, new));
        })
    }

    /// Forgets a deleted mapping; the file is removed with the last one.
    pub fn forget(&self, mapping: &Mapping) -> Result<()> {
        self.update(|entries| entries.retain(|e| !e.is_mapping(mapping)))
    }

    fn update(&self, f: impl FnOnce(&mut Vec<JournalEntry>)) -> Result<()> {
        let mut entries = self.lock();
        let mut next = entries.clone();
        f(&mut next);
        if next.is_empty() {
            remove(&self.path)?;
        } else {
            write_file(
                &self.path,
                &File {
                    format: FORMAT.into(),
                    version: VERSION,
                    owner: self.owner,
                    entries: next.clone(),
                },
            )?;
        }
        *entries = next;
        Ok(())
    }

    /// The mappings of other processes that are still running (never to
    /// be touched by a cleanup).
    pub fn live_entries(&self) -> Result<Vec<JournalEntry>> {
        let mut out = Vec::new();
        for path in self.files()? {
            if path == self.path {
                continue;
            }
            if let Ok(file) = read_file(&path)
                && file.owner.is_running()
                && file.owner != self.owner
            {
                out.extend(file.entries);
            }
        }
        Ok(out)
    }

    /// Claims the files of processes that no longer run (see the
    /// [module docs](self)). Unreadable files are left in place, with a
    /// warning.
    pub fn claim_stale(&self) -> Result<Vec<StaleJournal>> {
        let mut out = Vec::new();
        for path in self.files()? {
            if path == self.path {
                continue;
            }
            let owner = match read_file(&path) {
                Ok(file) => file.owner,
                Err(e) => {
                    tracing::warn!(error = %e, "journal: skipping a file");
                    continue;
                }
            };
            if owner.is_running() || owner == self.owner {
                continue;
            }
            let claimed = self.claim_name();
            if fs::rename(&path, &claimed).is_err() {
                continue; // another process claimed it first
            }
            match read_file(&claimed) {
                Ok(file) => out.push(StaleJournal {
                    path: claimed,
                    owner: file.owner,
                    entries: file.entries,
                }),
                Err(e) => tracing::warn!(error = %e, "journal: claimed file unreadable"),
            }
        }
        Ok(out)
    }

    fn claim_name(&self) -> PathBuf {
        let mut n = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        self.dir.join(format!(
            "{}-{}.claim{}.json",
            self.owner.pid,
            self.owner.start.unwrap_or(0),
            *n
        ))
    }

    fn files(&self) -> Result<Vec<PathBuf>> {
        let read = fs::read_dir(&self.dir).map_err(|source| Error::JournalIo {
            path: self.dir.clone(),
            op: "read directory",
            source,
        })?;
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<JournalEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since 1970, as the journal stamps entries.
pub fn now_unix() -> u64 {
    unix_now()
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| Error::JournalIo {
        path: dir.to_owned(),
        op: "create directory",
        source,
    })
}

fn write_file(path: &Path, file: &File) -> Result<()> {
    let io = |op, source| Error::JournalIo {
        path: path.to_owned(),
        op,
        source,
    };
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| Error::JournalFormat {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let mut f = fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(&bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    fs::rename(&tmp, path).map_err(|e| io("rename", e))
}

fn read_file(path: &Path) -> Result<File> {
    let io = |op, source| Error::JournalIo {
        path: path.to_owned(),
        op,
        source,
    };
    let len = fs::metadata(path).map_err(|e| io("stat", e))?.len();
    let bad = |detail: String| Error::JournalFormat {
        path: path.to_owned(),
        detail: detail.chars().take(200).collect(),
    };
    if len > MAX_FILE {
        return Err(bad(format!("{len} bytes")));
    }
    let bytes = fs::read(path).map_err(|e| io("read", e))?;
    let file: File = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if file.format != FORMAT || file.version != VERSION {
        return Err(bad(format!(
            "format {:?} version {}",
            file.format, file.version
        )));
    }
    Ok(file)
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::JournalIo {
            path: path.to_owned(),
            op: "remove",
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("natkit-portmap-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn mapping(port: u16, token: Option<&[u8]>) -> Mapping {
        Mapping::new(
            Mechanism::Pcp,
            Protocol::Udp,
            SocketAddr::from(([88, 77, 66, 2], port)),
            SocketAddr::from(([192, 168, 77, 2], port)),
            Duration::from_secs(120),
            Instant::now(),
        )
        .with_token(token.and_then(MappingToken::new))
    }

    #[test]
    fn records_forgets_and_round_trips_tokens() {
        let dir = tempdir("rt");
        let j = Journal::open(&dir).unwrap();
        let gw = Some(Ipv4Addr::new(192, 168, 77, 1));
        let a = mapping(9000, Some(&[1; 12]));
        j.record(gw, &a).unwrap();
        j.record(gw, &mapping(9001, None)).unwrap();
        let on_disk = read_file(j.path()).unwrap();
        assert_eq!(on_disk.owner, Owner::this_process());
        assert_eq!(on_disk.entries.len(), 2);
        let back = on_disk.entries[0].to_mapping().unwrap();
        assert_eq!(back.token, a.token);
        assert_eq!(back.external, a.external);
        // A renewal to another external port replaces the entry.
        let mut renewed = a.clone();
        renewed.external.set_port(9100);
        j.replace(gw, &a, &renewed).unwrap();
        assert_eq!(j.entries().len(), 2);
        assert!(j.entries().iter().any(|e| e.external.port() == 9100));
        j.forget(&renewed).unwrap();
        j.forget(&mapping(9001, None)).unwrap();
        assert!(!j.path().exists(), "the file goes with the last mapping");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_dead_owners_are_claimed() {
        let dir = tempdir("claim");
        let j = Journal::open(&dir).unwrap();
        // A live other process: pid 1 with its real start time.
        let live = Owner {
            pid: 1,
            start: process_start(1),
        };
        // A dead one: pid 1 with another start time (pid reused).
        let dead = Owner {
            pid: 1,
            start: process_start(1).map(|s| s + 1).or(Some(1)),
        };
        let entry = JournalEntry::of(None, &mapping(7000, None));
        for (name, owner) in [("live.json", live), ("dead.json", dead)] {
            write_file(
                &dir.join(name),
                &File {
                    format: FORMAT.into(),
                    version: VERSION,
                    owner,
                    entries: vec![entry.clone()],
                },
            )
            .unwrap();
        }
        fs::write(dir.join("junk.json"), b"{not json").unwrap();
        let live_entries = j.live_entries().unwrap();
        let stale = j.claim_stale().unwrap();
        if live.start.is_some() {
            assert_eq!(live_entries, vec![entry.clone()]);
            assert_eq!(stale.len(), 1, "{stale:?}");
        }
        let s = stale.into_iter().find(|s| s.owner == dead).unwrap();
        assert_eq!(s.entries, vec![entry.clone()]);
        assert!(!dir.join("dead.json").exists());
        let claimed = s.path().to_owned();
        s.settle(vec![entry]).unwrap();
        assert!(claimed.exists(), "what is left stays for the next run");
        assert!(
            dir.join("junk.json").exists(),
            "never deletes what it cannot read"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A pinhole is kept like a mapping: external = internal, its handle
    /// (here a UPnP UniqueID) in the token, and read back as a pinhole.
    #[test]
    fn pinholes_round_trip() {
        let dir = tempdir("pinhole");
        let j = Journal::open(&dir).unwrap();
        let internal: SocketAddr = "[2a0d:88:77:77::2]:8080".parse().unwrap();
        let hole = Mapping::pinhole(
            Mechanism::Upnp,
            Protocol::Tcp,
            internal,
            Duration::from_secs(3600),
            Instant::now(),
        )
        .with_token(MappingToken::new(b"17"));
        let gw = Some(Ipv4Addr::new(192, 168, 77, 1));
        j.record(gw, &hole).unwrap();
        j.record(gw, &mapping(8080, None)).unwrap();
        let text = fs::read_to_string(j.path()).unwrap();
        assert!(text.contains("\"[2a0d:88:77:77::2]:8080\""), "{text}");
        let on_disk = read_file(j.path()).unwrap();
        let [e6, e4] = &on_disk.entries[..] else {
            panic!("{:?}", on_disk.entries)
        };
        assert!(e6.is_pinhole());
        assert!(!e4.is_pinhole());
        assert!(!e6.same_mapping(e4));
        let back = e6.to_mapping().unwrap();
        assert!(back.is_pinhole());
        assert_eq!(back.external, internal);
        assert_eq!(back.token, hole.token);
        assert_eq!(back.mechanism, Mechanism::Upnp);
        // A token natkit did not write is a typed error of this host's.
        let mut bad = e6.clone();
        bad.token = Some("not hex".into());
        let err = bad.to_mapping().unwrap_err();
        assert!(matches!(&err, Error::JournalToken { token } if token == "not hex"));
        assert_eq!(err.failure_kind(), natkit_core::FailureKind::Local);
        j.forget(&hole).unwrap();
        assert_eq!(j.entries().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expiry_and_bad_tokens() {
        let mut e = JournalEntry::of(None, &mapping(1, None));
        e.made_unix = 1000;
        assert!(!e.expired(1100));
        assert!(e.expired(1121));
        e.lifetime_secs = 0;
        assert!(!e.expired(u64::MAX));
        e.token = Some("xyz".into());
        assert!(e.to_mapping().is_err());
    }

    #[test]
    fn start_time_of_this_process_is_read() {
        if Path::new("/proc/self/stat").exists() {
            assert!(Owner::this_process().start.is_some());
            assert!(Owner::this_process().is_running());
        }
    }
}
