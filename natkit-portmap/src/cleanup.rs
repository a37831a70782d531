//! [`AutoMapper::cleanup`]: delete what a killed run left on the router,
//! and nothing of anyone else's.

use std::collections::HashSet;

use natkit_core::{IntoCore, Mechanism, Protocol};
use natkit_upnp::PortMappingEntry;
use serde::Serialize;

use crate::auto::AutoMapper;
use crate::error::{Error, Result};
use crate::journal::{JournalEntry, now_unix};
use crate::report::MechanismError;

/// What [`AutoMapper::cleanup`] does besides the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Also delete UPnP entries tagged as natkit's for this host (see
    /// [`natkit_upnp::tag_description`]) that no running process's
    /// journal holds: mappings of natkit runs that had no journal. Default on.
    pub upnp_tag_sweep: bool,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            upnp_tag_sweep: true,
        }
    }
}

/// What [`AutoMapper::cleanup`] did.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    /// Journal mappings deleted from the router.
    pub removed: Vec<JournalEntry>,
    /// Journal mappings whose lease had run out: dropped from the journal
    /// without asking the router.
    pub expired: Vec<JournalEntry>,
    /// Journal mappings that are no longer ours on the router (UPnP entry
    /// gone or now someone else's): forgotten, not deleted.
    pub gone: Vec<JournalEntry>,
    /// Journal mappings made on another gateway: kept for later.
    pub other_gateway: Vec<JournalEntry>,
    /// Deletions that failed (kept in the journal for the next run), each
    /// with its typed error.
    pub failed: Vec<(JournalEntry, MechanismError)>,
    /// UPnP entries tagged for this host that no journal held, deleted by
    /// the tag sweep.
    pub swept: Vec<String>,
}

impl CleanupReport {
    /// How many mappings were deleted from the router.
    pub fn deleted(&self) -> usize {
        self.removed.len() + self.swept.len()
    }
}

impl AutoMapper {
    /// Deletes the mappings recorded by journal files of processes that no
    /// longer run (a crash or SIGKILL), on this gateway only; with
    /// [`CleanupOptions::upnp_tag_sweep`], also this host's natkit-tagged
    /// UPnP entries that no running process holds.
    ///
    /// Other hosts' mappings, other programs' mappings, and mappings that
    /// running natkit processes hold are never touched: journal entries
    /// are deleted through their own mechanism (a PCP entry with its own
    /// nonce), a UPnP entry only while the router still shows it forwarded
    /// to the recorded internal endpoint.
    pub async fn cleanup(&self, options: CleanupOptions) -> Result<CleanupReport> {
        let journal = self.journal().ok_or(Error::NoJournalDir)?;
        let gateway = self.gateway_address();
        let mut report = CleanupReport::default();
        let live = journal.live_entries()?;
        let now = now_unix();
        for stale in journal.claim_stale()? {
            let mut left = Vec::new();
            for entry in stale.entries.clone() {
                if entry.expired(now) {
                    report.expired.push(entry);
                } else if entry.gateway.is_some() && entry.gateway != gateway {
                    report.other_gateway.push(entry.clone());
                    left.push(entry);
                } else if live.iter().any(|l| l.same_mapping(&entry)) {
                    // A running process holds the same mapping now.
                    report.gone.push(entry);
                } else {
                    match self.delete_entry(&entry).await {
                        Ok(true) => report.removed.push(entry),
                        Ok(false) => report.gone.push(entry),
                        Err(e) => {
                            report
                                .failed
                                .push((entry.clone(), MechanismError::from_core(e)));
                            left.push(entry);
                        }
                    }
                }
            }
            stale.settle(left)?;
        }
        if options.upnp_tag_sweep && self.order().contains(&Mechanism::Upnp) {
            let mut held: HashSet<(Protocol, u16)> = live
                .iter()
                .chain(journal.entries().iter())
                // A pinhole's port is no IPv4 port mapping's.
                .filter(|e| e.mechanism == Mechanism::Upnp && !e.is_pinhole())
                .map(|e| (e.protocol, e.external.port()))
                .collect();
            held.extend(
                report
                    .failed
                    .iter()
                    .filter(|(e, _)| !e.is_pinhole())
                    .map(|(e, _)| (e.protocol, e.external.port())),
            );
            self.sweep_upnp(&held, &mut report).await;
        }
        Ok(report)
    }

    /// Deletes one journal entry. `Ok(false)`: it is no longer there (or
    /// no longer ours).
    async fn delete_entry(&self, entry: &JournalEntry) -> natkit_core::Result<bool> {
        let m = entry.mechanism;
        let mapping = entry.to_mapping().map_err(|e| e.into_core(m))?;
        let mapper = self.mapper_for(m).await.map_err(|e| e.into_core(m))?;
        // A UPnP port mapping is checked first (still forwarded to the
        // recorded endpoint?); a pinhole has no such lookup and needs none:
        // its UniqueID (the token) names it, a deletion comes from the
        // pinhole's own address, and one the router no longer has is done.
        if entry.mechanism == Mechanism::Upnp
            && !entry.is_pinhole()
            && let Some(upnp) = self.upnp()
        {
            match upnp
                .igd()
                .get_specific_entry(entry.protocol, entry.external.port())
                .await
            {
                Ok(e) if !is_entry_for(&e, entry) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.upnp_code() == Some(natkit_upnp::UpnpErrorCode::NoSuchEntryInArray) => {
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
        match mapper.unmap(&mapping).await {
            Ok(()) => Ok(true),
            // miniupnpd answers a PCP delete of a mapping it no longer has
            // with NO_RESOURCES (see natkit-pmp's PCP mapper docs).
            Err(e)
                if entry.mechanism == Mechanism::Pcp
                    && e.failure_kind() == Some(natkit_core::FailureKind::NoResources) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn sweep_upnp(&self, held: &HashSet<(Protocol, u16)>, report: &mut CleanupReport) {
        if self.mapper_for(Mechanism::Upnp).await.is_err() {
            return;
        }
        let Some(upnp) = self.upnp() else { return };
        let igd = upnp.igd();
        let host = igd.local_ip();
        let entries = match igd.list_entries().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cleanup: could not list the IGD's mappings");
                return;
            }
        };
        for e in entries {
            if !e.is_natkit_entry_of(host) || held.contains(&(e.protocol, e.external_port)) {
                continue;
            }
            match igd.delete(e.protocol, e.external_port).await {
                Ok(()) => report.swept.push(e.to_string()),
                Err(err) => tracing::warn!(entry = %e, error = %err, "cleanup: sweep failed"),
            }
        }
    }
}

/// Whether the router's entry still forwards to the journal's endpoint.
fn is_entry_for(e: &PortMappingEntry, entry: &JournalEntry) -> bool {
    e.internal_port == entry.internal.port()
        && e.internal_client.parse::<std::net::IpAddr>().ok() == Some(entry.internal.ip())
}
