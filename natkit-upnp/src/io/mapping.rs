//! Port mapping actions on an [`Igd`]: add (with lease fallback and
//! read-back), add-any (IGD:2), look up, list, delete, and clean up.

use std::net::{Ipv4Addr, SocketAddrV4};

use natkit_core::Protocol;

use crate::decide::add::{AddAnyMapping, AddMapping, Added, AnyStep, Step, delete_outcome};
use crate::decide::lease::{LeaseOutcome, outcome};
use crate::error::{Error, Result};
use crate::io::bridge::{
    from_add_port, from_generic_entry, from_igd_protocol, from_remove_port, to_igd_protocol,
};
use crate::io::igd::Igd;
use crate::wire::code::UpnpErrorCode;
use crate::wire::entry::{PortMappingEntry, tag_description};

/// The most entries [`Igd::list_entries`] reads before giving up.
pub const MAX_LIST_ENTRIES: u32 = 1024;

/// What to ask the IGD for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMappingRequest {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The external port wanted (for add-any: the suggestion).
    pub external_port: u16,
    /// Where inbound traffic should go. `0.0.0.0` means this host
    /// ([`Igd::local_ip`]).
    pub internal: SocketAddrV4,
    /// The lease wanted, in seconds; 0 asks for a permanent mapping
    /// (IGD:2 routers treat it as their maximum, 604800 s).
    pub lease_secs: u32,
    /// The caller's description; natkit stores it behind its tag.
    pub description: String,
}

/// A mapping the IGD granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The external port granted.
    pub external_port: u16,
    /// Where inbound traffic goes.
    pub internal: SocketAddrV4,
    /// The lease in seconds as the router reports it after the grant, else
    /// as accepted; 0 means permanent: the holder must delete it.
    pub lease_secs: u32,
    /// How the lease relates to what was asked.
    pub lease: LeaseOutcome,
    /// The description stored (with natkit's tag).
    pub description: String,
    /// The entry as read back with `GetSpecificPortMappingEntry`, when the
    /// router answered that.
    pub read_back: Option<PortMappingEntry>,
}

/// What [`Igd::cleanup`] did.
#[derive(Debug, Default)]
pub struct CleanupReport {
    /// This host's stale natkit entries, now deleted.
    pub removed: Vec<PortMappingEntry>,
    /// This host's natkit entries that could not be deleted, and why.
    pub failed: Vec<(PortMappingEntry, Error)>,
    /// How many entries belong to others (other hosts, other programs,
    /// other natkit hosts) and were left alone.
    pub others: usize,
}

impl Igd {
    /// `AddPortMapping` for exactly `request.external_port`.
    ///
    /// On 725 the lease becomes 0 (permanent); on 402 shorter leases are
    /// tried (see [`crate::decide::lease`]); on 724 the external port is set to the
    /// internal one. On 718 the holder is looked up and returned in
    /// [`Error::Conflict`], except when the request was hedged (sent again
    /// on a fresh connection, see [`HttpConfig::hedge_after`]) and the
    /// holder is exactly this mapping: then one copy made it and the 718
    /// answered the other. The result is read back from the router.
    ///
    /// [`HttpConfig::hedge_after`]: crate::HttpConfig::hedge_after
    pub async fn add_port_mapping(&self, request: &PortMappingRequest) -> Result<Grant> {
        let description = tag_description(self.local_ip(), &request.description);
        self.add_described(request, description).await
    }

    /// [`add_port_mapping`](Igd::add_port_mapping) with the description stored as
    /// given (control characters dropped, at most [`MAX_DESCRIPTION`](crate::MAX_DESCRIPTION)
    /// bytes), without natkit's tag: for forwards the user keeps, such as a
    /// forwarding table moved from another router. Untagged, they are never
    /// taken for a dead natkit run's mappings and swept by [`Igd::cleanup`].
    pub async fn add_port_mapping_untagged(&self, request: &PortMappingRequest) -> Result<Grant> {
        let mut description = String::new();
        for c in request
            .description
            .trim()
            .chars()
            .filter(|c| !c.is_control())
        {
            if description.len() + c.len_utf8() > crate::MAX_DESCRIPTION {
                break;
            }
            description.push(c);
        }
        self.add_described(request, description).await
    }

    async fn add_described(
        &self,
        request: &PortMappingRequest,
        description: String,
    ) -> Result<Grant> {
        let internal = self.internal_for(request)?;
        if request.external_port == 0 {
            return Err(Error::InvalidRequest {
                reason: "external port 0 (use add_any_port_mapping to let the router choose)",
            });
        }
        let url = self.control_url().to_string();
        let (mut add, mut step) = AddMapping::new(
            request.protocol,
            request.external_port,
            internal,
            request.lease_secs,
            description.clone(),
        );
        let added = loop {
            step = match step {
                Step::Add { external, lease } => {
                    let sent = self
                        .bounded_counting(self.gateway.add_port(
                            to_igd_protocol(request.protocol),
                            external,
                            internal.into(),
                            lease,
                            &description,
                        ))
                        .await;
                    match sent {
                        Ok((r, copies)) => add.added(r.map_err(|e| from_add_port(&url, e)), copies),
                        Err(e) => add.added(Err(e), 1),
                    }
                }
                Step::ReadEntry { external } => {
                    add.entry(self.get_specific_entry(request.protocol, external).await)
                }
                Step::FindHolder { external } => {
                    add.holder(self.holder(request.protocol, external).await)
                }
                Step::Done(done) => break done?,
            };
        };
        let Added {
            external,
            lease,
            read_back,
        } = added;
        Ok(self.grant(request, internal, external, lease, description, read_back))
    }

    /// `AddAnyPortMapping` (IGD:2 only): the router maps
    /// `request.external_port` if free, else a port of its choice.
    pub async fn add_any_port_mapping(&self, request: &PortMappingRequest) -> Result<Grant> {
        const A: &str = "AddAnyPortMapping";
        if !self.service().is_igd2() {
            return Err(Error::NotSupported {
                action: A,
                service: self.service(),
            });
        }
        let internal = self.internal_for(request)?;
        let description = tag_description(self.local_ip(), &request.description);
        let (mut any, mut step) = AddAnyMapping::new(request.lease_secs);
        let (reserved, lease) = loop {
            step = match step {
                AnyStep::Call { lease } => {
                    let (ext, int_port, client, lease_s) = (
                        request.external_port.to_string(),
                        internal.port().to_string(),
                        internal.ip().to_string(),
                        lease.to_string(),
                    );
                    let args = [
                        ("NewRemoteHost", ""),
                        ("NewExternalPort", ext.as_str()),
                        ("NewProtocol", request.protocol.as_upnp_str()),
                        ("NewInternalPort", int_port.as_str()),
                        ("NewInternalClient", client.as_str()),
                        ("NewEnabled", "1"),
                        ("NewPortMappingDescription", description.as_str()),
                        ("NewLeaseDuration", lease_s.as_str()),
                    ];
                    let answer = self.call(A, &args).await;
                    any.answered(answer.and_then(|out| out.number::<u16>(A, "NewReservedPort")))
                }
                AnyStep::Sweep(e) => {
                    self.delete_entries_of(request.protocol, internal, &description)
                        .await;
                    return Err(e);
                }
                AnyStep::Done(done) => break done?,
            };
        };
        let read_back = self
            .get_specific_entry(request.protocol, reserved)
            .await
            .ok();
        Ok(self.grant(request, internal, reserved, lease, description, read_back))
    }

    /// Deletes every entry of `protocol` that is exactly `internal` with
    /// `description` (best effort).
    async fn delete_entries_of(
        &self,
        protocol: Protocol,
        internal: SocketAddrV4,
        description: &str,
    ) {
        let Ok(entries) = self.list_entries().await else {
            return;
        };
        for e in entries
            .iter()
            .filter(|e| e.protocol == protocol && e.is_mapping_of(internal, description))
        {
            if let Err(err) = self.delete(e.protocol, e.external_port).await {
                tracing::warn!(error = %err, entry = %e, "could not delete an unreported permanent mapping");
            }
        }
    }

    /// `GetSpecificPortMappingEntry`: who holds `external_port`/`protocol`.
    pub async fn get_specific_entry(
        &self,
        protocol: Protocol,
        external_port: u16,
    ) -> Result<PortMappingEntry> {
        const A: &str = "GetSpecificPortMappingEntry";
        let port = external_port.to_string();
        let out = self
            .call(
                A,
                &[
                    ("NewRemoteHost", ""),
                    ("NewExternalPort", port.as_str()),
                    ("NewProtocol", protocol.as_upnp_str()),
                ],
            )
            .await?;
        let internal_client = out
            .get("NewInternalClient")
            .filter(|c| !c.is_empty())
            .ok_or(Error::BadArgument {
                action: A,
                argument: "NewInternalClient",
                value: String::new(),
            })?;
        Ok(PortMappingEntry {
            remote_host: String::new(),
            external_port,
            protocol,
            internal_client: internal_client.chars().take(64).collect(),
            internal_port: out.number(A, "NewInternalPort")?,
            enabled: !matches!(out.get("NewEnabled"), Some("0" | "false")),
            description: out
                .get("NewPortMappingDescription")
                .unwrap_or("")
                .chars()
                .take(256)
                .collect(),
            lease_secs: out.number(A, "NewLeaseDuration")?,
        })
    }

    /// Every entry of the mapping table (`GetGenericPortMappingEntry` by
    /// index until 713 SpecifiedArrayIndexInvalid; 714 is taken as the end
    /// too, as some routers answer it). At most [`MAX_LIST_ENTRIES`].
    pub async fn list_entries(&self) -> Result<Vec<PortMappingEntry>> {
        let url = self.control_url().to_string();
        let mut entries = Vec::new();
        for index in 0..MAX_LIST_ENTRIES {
            let result = self
                .bounded(self.gateway.get_generic_port_mapping_entry(index))
                .await?
                .map_err(|e| from_generic_entry(&url, e));
            match result {
                Ok(e) => entries.push(PortMappingEntry {
                    remote_host: e.remote_host.chars().take(64).collect(),
                    external_port: e.external_port,
                    protocol: from_igd_protocol(e.protocol),
                    internal_client: e.internal_client.chars().take(64).collect(),
                    internal_port: e.internal_port,
                    enabled: e.enabled,
                    description: e.port_mapping_description.chars().take(256).collect(),
                    lease_secs: e.lease_duration,
                }),
                Err(e)
                    if matches!(
                        e.upnp_code(),
                        Some(
                            UpnpErrorCode::SpecifiedArrayIndexInvalid
                                | UpnpErrorCode::NoSuchEntryInArray
                        )
                    ) =>
                {
                    return Ok(entries);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::TableTooLong {
            limit: MAX_LIST_ENTRIES,
        })
    }

    /// `DeletePortMapping`. A mapping that is already gone is reported as
    /// [`Error::Upnp`] with 714 NoSuchEntryInArray, except when the request
    /// was hedged (sent again on a fresh connection under loss): then 714
    /// is what the second copy gets after the first deleted it, and the
    /// mapping is gone either way, so it is success.
    pub async fn delete(&self, protocol: Protocol, external_port: u16) -> Result<()> {
        let url = self.control_url().to_string();
        let (result, copies) = self
            .bounded_counting(
                self.gateway
                    .remove_port(to_igd_protocol(protocol), external_port),
            )
            .await?;
        delete_outcome(result.map_err(|e| from_remove_port(&url, e)), copies)
    }

    /// Deletes this host's own stale natkit mappings: entries whose
    /// description carries natkit's tag with `local_ip` *and* whose
    /// internal client is `local_ip`. Everything else (other programs,
    /// other hosts, other natkit hosts) is left alone.
    pub async fn cleanup(&self, local_ip: Ipv4Addr) -> Result<CleanupReport> {
        let mut report = CleanupReport::default();
        for entry in self.list_entries().await? {
            if !entry.is_natkit_entry_of(local_ip) {
                report.others += 1;
                continue;
            }
            match self.delete(entry.protocol, entry.external_port).await {
                Ok(()) => report.removed.push(entry),
                Err(e) => report.failed.push((entry, e)),
            }
        }
        Ok(report)
    }

    fn internal_for(&self, request: &PortMappingRequest) -> Result<SocketAddrV4> {
        if request.internal.port() == 0 {
            return Err(Error::InvalidRequest {
                reason: "internal port 0",
            });
        }
        let ip = if request.internal.ip().is_unspecified() {
            self.local_ip()
        } else {
            *request.internal.ip()
        };
        Ok(SocketAddrV4::new(ip, request.internal.port()))
    }

    /// After a 718: who holds the port, if the router tells.
    async fn holder(&self, protocol: Protocol, external_port: u16) -> Option<PortMappingEntry> {
        match self.get_specific_entry(protocol, external_port).await {
            Ok(e) => Some(e),
            Err(_) => self.list_entries().await.ok().and_then(|all| {
                all.into_iter()
                    .find(|e| e.protocol == protocol && e.external_port == external_port)
            }),
        }
    }

    /// The grant, with the entry as the router reported it on read-back.
    fn grant(
        &self,
        request: &PortMappingRequest,
        internal: SocketAddrV4,
        external_port: u16,
        lease: u32,
        description: String,
        read_back: Option<PortMappingEntry>,
    ) -> Grant {
        let read_lease = read_back.as_ref().map(|e| e.lease_secs);
        Grant {
            protocol: request.protocol,
            external_port,
            internal,
            lease_secs: read_lease.unwrap_or(lease),
            lease: outcome(request.lease_secs, lease, read_lease),
            description,
            read_back,
        }
    }
}
