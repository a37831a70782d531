//! AddPortMapping's and AddAnyPortMapping's decisions, with no I/O: which lease and port to ask
//! for next after a refusal, when to read the entry back and what that
//! read says, and when a fault is the answer to our own hedged duplicate.
//! [`Igd::add_port_mapping`](crate::Igd::add_port_mapping) runs the
//! [`Step`]s and feeds their outcomes back.
//!
//! - 725 OnlyPermanentLeasesSupported and 402 Invalid Args step the lease
//!   down ([`next_lease`]).
//! - 724 SamePortValuesRequired: the external port becomes the internal one.
//! - A grant is read back; an entry gone at once (a router that says
//!   success and keeps nothing but permanent leases) is asked for once more
//!   with a permanent lease ([`lease_after_vanishing`]).
//! - No answer in time: the router may have made the mapping all the same,
//!   so the entry is read; exactly ours is a grant (a permanent one must
//!   never be left unknown), anything else the timeout.
//! - 718 ConflictInMappingEntry: the holder is looked up. After hedged
//!   copies (see [`crate::decide::hedge`]) a holder that is exactly this mapping
//!   means one copy made it and the 718 answered another: granted.
//!   Otherwise it is [`Error::Conflict`], naming the holder.

use std::net::SocketAddrV4;

use natkit_core::Protocol;

use crate::decide::lease::{lease_after_vanishing, next_lease};
use crate::error::{Error, Result};
use crate::wire::code::UpnpErrorCode;
use crate::wire::entry::PortMappingEntry;
use crate::wire::http::HttpError;

/// What the driver is to do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send AddPortMapping for `external` with `lease`; report with
    /// [`AddMapping::added`].
    Add {
        /// The external port.
        external: u16,
        /// The lease, in seconds (0: permanent).
        lease: u32,
    },
    /// Read the entry of `external` (GetSpecificPortMappingEntry); report
    /// with [`AddMapping::entry`].
    ReadEntry {
        /// The external port.
        external: u16,
    },
    /// Find who holds `external`; report with [`AddMapping::holder`].
    FindHolder {
        /// The external port.
        external: u16,
    },
    /// Over.
    Done(Result<Added>),
}

/// A mapping the router made.
#[derive(Debug)]
pub(crate) struct Added {
    /// The external port.
    pub(crate) external: u16,
    /// The lease it was asked for with, in seconds.
    pub(crate) lease: u32,
    /// The entry as read back, if the router answered that.
    pub(crate) read_back: Option<PortMappingEntry>,
}

/// What the last [`Step`] that asked the router was for.
#[derive(Debug)]
enum Awaiting {
    Add,
    ReadBack,
    /// The add went unanswered with this error.
    Unanswered(Error),
    Holder,
}

/// One AddPortMapping, from the first request to a grant or an error.
#[derive(Debug)]
pub(crate) struct AddMapping {
    protocol: Protocol,
    internal: SocketAddrV4,
    description: String,
    external: u16,
    lease: u32,
    vanished_once: bool,
    /// How many copies the last add request took (more than one: hedged).
    copies: u8,
    awaiting: Awaiting,
}

impl AddMapping {
    /// Maps `external` to `internal` with `lease`, storing `description`;
    /// the first step is the add.
    pub(crate) fn new(
        protocol: Protocol,
        external: u16,
        internal: SocketAddrV4,
        lease: u32,
        description: String,
    ) -> (AddMapping, Step) {
        let add = AddMapping {
            protocol,
            internal,
            description,
            external,
            lease,
            vanished_once: false,
            copies: 1,
            awaiting: Awaiting::Add,
        };
        let step = add.add();
        (add, step)
    }

    fn add(&self) -> Step {
        Step::Add {
            external: self.external,
            lease: self.lease,
        }
    }

    fn done(&self, read_back: Option<PortMappingEntry>) -> Step {
        Step::Done(Ok(Added {
            external: self.external,
            lease: self.lease,
            read_back,
        }))
    }

    fn read(&mut self, awaiting: Awaiting) -> Step {
        self.awaiting = awaiting;
        Step::ReadEntry {
            external: self.external,
        }
    }

    fn is_ours(&self, entry: &PortMappingEntry) -> bool {
        entry.is_mapping_of(self.internal, &self.description)
    }

    /// The add was answered (or not): `copies` of the request were sent.
    pub(crate) fn added(&mut self, result: Result<()>, copies: u8) -> Step {
        self.copies = copies;
        let e = match result {
            Ok(()) => return self.read(Awaiting::ReadBack),
            Err(e) if outcome_unknown(&e) => return self.read(Awaiting::Unanswered(e)),
            Err(e) => e,
        };
        if let Some(next) = e.upnp_code().and_then(|c| next_lease(self.lease, c)) {
            self.lease = next;
            return self.add();
        }
        match e.upnp_code() {
            Some(UpnpErrorCode::SamePortValuesRequired)
                if self.external != self.internal.port() =>
            {
                self.external = self.internal.port();
                self.add()
            }
            Some(UpnpErrorCode::ConflictInMappingEntry) => {
                self.awaiting = Awaiting::Holder;
                Step::FindHolder {
                    external: self.external,
                }
            }
            _ => Step::Done(Err(e)),
        }
    }

    /// The entry read after [`Step::ReadEntry`].
    pub(crate) fn entry(&mut self, read: Result<PortMappingEntry>) -> Step {
        match std::mem::replace(&mut self.awaiting, Awaiting::Add) {
            Awaiting::Unanswered(e) => match read {
                Ok(entry) if self.is_ours(&entry) => {
                    tracing::info!(
                        port = self.external,
                        lease = self.lease,
                        "AddPortMapping went unanswered but the router holds our mapping"
                    );
                    self.done(Some(entry))
                }
                _ => Step::Done(Err(e)),
            },
            _ => {
                let vanished = matches!(&read, Err(e)
                    if e.upnp_code() == Some(UpnpErrorCode::NoSuchEntryInArray));
                if vanished
                    && !self.vanished_once
                    && let Some(next) = lease_after_vanishing(self.lease)
                {
                    tracing::info!(
                        lease = self.lease,
                        port = self.external,
                        "the router accepted a lease and dropped the entry at once; asking for a permanent one"
                    );
                    self.vanished_once = true;
                    self.lease = next;
                    return self.add();
                }
                self.done(read.ok())
            }
        }
    }

    /// Who holds the port after a 718, if the router told.
    pub(crate) fn holder(&mut self, holder: Option<PortMappingEntry>) -> Step {
        let ours = holder.as_ref().is_some_and(|h| self.is_ours(h));
        if self.copies > 1 && ours {
            return self.done(holder);
        }
        Step::Done(Err(Error::Conflict {
            protocol: self.protocol,
            external_port: self.external,
            holder: holder.map(Box::new),
        }))
    }
}

/// What to do next in an AddAnyPortMapping (IGD:2).
#[derive(Debug)]
pub(crate) enum AnyStep {
    /// Send AddAnyPortMapping with `lease`; report with
    /// [`AddAnyMapping::answered`].
    Call {
        /// The lease, in seconds (0: permanent).
        lease: u32,
    },
    /// A permanent request went unanswered: the port granted, if any, is
    /// unknown, and a permanent entry must not be left behind. Delete this
    /// host's entries that hold exactly this mapping, then fail with the
    /// error. (A finite lease runs out by itself.)
    Sweep(Error),
    /// The router reserved the port, with the lease asked for; or the
    /// error.
    Done(Result<(u16, u32)>),
}

/// One AddAnyPortMapping: the lease step-downs, and what an unanswered
/// request leaves to clean up.
#[derive(Debug)]
pub(crate) struct AddAnyMapping {
    lease: u32,
}

impl AddAnyMapping {
    /// Asks for `lease` first.
    pub(crate) fn new(lease: u32) -> (AddAnyMapping, AnyStep) {
        (AddAnyMapping { lease }, AnyStep::Call { lease })
    }

    /// The router's answer: the reserved port, or the error.
    pub(crate) fn answered(&mut self, result: Result<u16>) -> AnyStep {
        match result {
            Ok(0) => AnyStep::Done(Err(Error::BadArgument {
                action: "AddAnyPortMapping",
                argument: "NewReservedPort",
                value: "0".into(),
            })),
            Ok(port) => AnyStep::Done(Ok((port, self.lease))),
            Err(e) if self.lease == 0 && outcome_unknown(&e) => AnyStep::Sweep(e),
            Err(e) => match e.upnp_code().and_then(|c| next_lease(self.lease, c)) {
                Some(next) => {
                    self.lease = next;
                    AnyStep::Call { lease: next }
                }
                None => AnyStep::Done(Err(e)),
            },
        }
    }
}

/// A DeletePortMapping answer, sent as `copies` copies: after hedged
/// copies, 714 NoSuchEntryInArray is what the second copy gets after the
/// first deleted the entry, so the mapping is gone either way.
pub(crate) fn delete_outcome(result: Result<()>, copies: u8) -> Result<()> {
    match result {
        Err(e) if copies > 1 && e.upnp_code() == Some(UpnpErrorCode::NoSuchEntryInArray) => Ok(()),
        other => other,
    }
}

/// Whether a failed action may still have been carried out: no complete
/// answer within the time limit (under loss, the answer is what got lost).
/// A reset or a cut answer is the router's own doing, and a refusal more
/// often than not; it is taken as one.
pub(crate) fn outcome_unknown(e: &Error) -> bool {
    matches!(
        e,
        Error::Http {
            source: HttpError::Timeout { .. },
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
    const DESC: &str = "natkit 192.168.77.2 test";

    fn start(external: u16, lease: u32) -> (AddMapping, Step) {
        AddMapping::new(
            Protocol::Tcp,
            external,
            SocketAddrV4::new(HOST, 5000),
            lease,
            DESC.into(),
        )
    }

    fn fault(code: UpnpErrorCode) -> Result<()> {
        Err(upnp(code))
    }

    fn upnp(code: UpnpErrorCode) -> Error {
        Error::Upnp {
            action: "AddPortMapping",
            code,
            description: String::new(),
        }
    }

    fn timeout() -> Error {
        Error::Http {
            url: "http://192.168.77.1:5000/ctl".into(),
            source: HttpError::Timeout { ms: 3000 },
        }
    }

    fn entry(client: Ipv4Addr, description: &str, lease_secs: u32) -> PortMappingEntry {
        PortMappingEntry {
            remote_host: String::new(),
            external_port: 6000,
            protocol: Protocol::Tcp,
            internal_client: client.to_string(),
            internal_port: 5000,
            enabled: true,
            description: description.into(),
            lease_secs,
        }
    }

    fn ours(lease_secs: u32) -> PortMappingEntry {
        entry(HOST, DESC, lease_secs)
    }

    fn other_host() -> PortMappingEntry {
        entry(Ipv4Addr::new(192, 168, 77, 3), "someone else", 0)
    }

    /// The (external, lease) of every add the steps ask for, until one
    /// that is not an add.
    fn adds(add: &mut AddMapping, first: Step, answers: &[Result<()>]) -> (Vec<(u16, u32)>, Step) {
        let mut sent = Vec::new();
        let mut step = first;
        for answer in answers {
            let Step::Add { external, lease } = step else {
                panic!("expected an add, got {step:?}");
            };
            sent.push((external, lease));
            let answer = match answer {
                Ok(()) => Ok(()),
                Err(e) => Err(upnp(e.upnp_code().unwrap())),
            };
            step = add.added(answer, 1);
        }
        (sent, step)
    }

    fn granted(step: Step) -> Added {
        match step {
            Step::Done(Ok(a)) => a,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn a_grant_is_read_back() {
        let (mut add, step) = start(6000, 3600);
        let (sent, step) = adds(&mut add, step, &[Ok(())]);
        assert_eq!(sent, [(6000, 3600)]);
        assert!(matches!(step, Step::ReadEntry { external: 6000 }));
        let done = granted(add.entry(Ok(ours(3590))));
        assert_eq!((done.external, done.lease), (6000, 3600));
        assert_eq!(done.read_back.map(|e| e.lease_secs), Some(3590));
        // A router that does not answer the read: still granted.
        let (mut add, step) = start(6000, 3600);
        adds(&mut add, step, &[Ok(())]);
        assert!(
            granted(add.entry(Err(upnp(UpnpErrorCode::InvalidAction))))
                .read_back
                .is_none()
        );
    }

    #[test]
    fn lease_refusals_step_down() {
        use UpnpErrorCode::{InvalidArgs, OnlyPermanentLeasesSupported as Only};
        // 725: permanent at once.
        let (mut add, step) = start(6000, 3600);
        let (sent, step) = adds(&mut add, step, &[fault(Only), Ok(())]);
        assert_eq!(sent, [(6000, 3600), (6000, 0)]);
        assert!(matches!(step, Step::ReadEntry { .. }));
        // 402: a week, a day, an hour, permanent; then nothing left.
        let (mut add, step) = start(6000, 1_000_000);
        let (sent, step) = adds(
            &mut add,
            step,
            &[
                fault(InvalidArgs),
                fault(InvalidArgs),
                fault(InvalidArgs),
                fault(InvalidArgs),
                fault(InvalidArgs),
            ],
        );
        assert_eq!(
            sent,
            [
                (6000, 1_000_000),
                (6000, 604_800),
                (6000, 86_400),
                (6000, 3_600),
                (6000, 0)
            ]
        );
        assert!(matches!(
            step,
            Step::Done(Err(Error::Upnp {
                code: InvalidArgs,
                ..
            }))
        ));
    }

    #[test]
    fn same_port_values_required_takes_the_internal_port_once() {
        use UpnpErrorCode::SamePortValuesRequired as Same;
        let (mut add, step) = start(6000, 3600);
        let (sent, step) = adds(&mut add, step, &[fault(Same), fault(Same)]);
        assert_eq!(sent, [(6000, 3600), (5000, 3600)]);
        assert!(matches!(
            step,
            Step::Done(Err(Error::Upnp { code: Same, .. }))
        ));
    }

    #[test]
    fn an_entry_gone_at_once_is_asked_for_permanently_once() {
        let gone = || Err(upnp(UpnpErrorCode::NoSuchEntryInArray));
        let (mut add, step) = start(6000, 3600);
        adds(&mut add, step, &[Ok(())]);
        assert!(matches!(
            add.entry(gone()),
            Step::Add {
                external: 6000,
                lease: 0
            }
        ));
        assert!(matches!(add.added(Ok(()), 1), Step::ReadEntry { .. }));
        // Gone again: granted as asked, without a read-back, no third try.
        let done = granted(add.entry(gone()));
        assert_eq!((done.lease, done.read_back), (0, None));
    }

    #[test]
    fn an_unanswered_add_is_granted_only_if_the_router_holds_exactly_ours() {
        let (mut add, _) = start(6000, 0);
        assert!(matches!(
            add.added(Err(timeout()), 2),
            Step::ReadEntry { external: 6000 }
        ));
        assert_eq!(granted(add.entry(Ok(ours(0)))).lease, 0);
        for read in [
            Ok(other_host()),
            Ok(entry(HOST, "another program", 0)),
            Err(timeout()),
        ] {
            let (mut add, _) = start(6000, 0);
            add.added(Err(timeout()), 1);
            assert!(matches!(
                add.entry(read),
                Step::Done(Err(Error::Http {
                    source: HttpError::Timeout { .. },
                    ..
                }))
            ));
        }
    }

    #[test]
    fn a_conflict_names_the_holder_unless_our_own_copy_made_it() {
        use UpnpErrorCode::ConflictInMappingEntry as Taken;
        // Another host holds it.
        let (mut add, _) = start(6000, 3600);
        assert!(matches!(
            add.added(fault(Taken), 2),
            Step::FindHolder { external: 6000 }
        ));
        match add.holder(Some(other_host())) {
            Step::Done(Err(Error::Conflict {
                external_port: 6000,
                holder: Some(h),
                ..
            })) => {
                assert_eq!(h.internal_client, "192.168.77.3");
            }
            other => panic!("{other:?}"),
        }
        // Hedged, and the holder is exactly ours: one copy made it.
        let (mut add, _) = start(6000, 3600);
        add.added(fault(Taken), 2);
        let done = granted(add.holder(Some(ours(3600))));
        assert_eq!(done.read_back, Some(ours(3600)));
        // Not hedged: a 718 for our own entry is a conflict all the same
        // (we did not just make it), and so is an unknown holder.
        let (mut add, _) = start(6000, 3600);
        add.added(fault(Taken), 1);
        assert!(matches!(
            add.holder(Some(ours(3600))),
            Step::Done(Err(Error::Conflict { .. }))
        ));
        let (mut add, _) = start(6000, 3600);
        add.added(fault(Taken), 2);
        assert!(matches!(
            add.holder(None),
            Step::Done(Err(Error::Conflict { holder: None, .. }))
        ));
    }

    #[test]
    fn add_any_steps_the_lease_down_and_sweeps_only_an_unknown_permanent_grant() {
        use UpnpErrorCode::{InvalidArgs, OnlyPermanentLeasesSupported as Only};
        let (mut any, step) = AddAnyMapping::new(1_000_000);
        assert!(matches!(step, AnyStep::Call { lease: 1_000_000 }));
        assert!(matches!(
            any.answered(Err(upnp(InvalidArgs))),
            AnyStep::Call { lease: 604_800 }
        ));
        assert!(matches!(
            any.answered(Err(upnp(Only))),
            AnyStep::Call { lease: 0 }
        ));
        assert!(matches!(
            any.answered(Err(timeout())),
            AnyStep::Sweep(Error::Http { .. })
        ));
        // A finite lease unanswered: just the error, it runs out by itself.
        let (mut any, _) = AddAnyMapping::new(3600);
        assert!(matches!(
            any.answered(Err(timeout())),
            AnyStep::Done(Err(Error::Http { .. }))
        ));
        // Granted with the lease that was taken.
        let (mut any, _) = AddAnyMapping::new(3600);
        any.answered(Err(upnp(Only)));
        assert!(matches!(
            any.answered(Ok(6001)),
            AnyStep::Done(Ok((6001, 0)))
        ));
        // Port 0 is no port.
        let (mut any, _) = AddAnyMapping::new(3600);
        assert!(matches!(
            any.answered(Ok(0)),
            AnyStep::Done(Err(Error::BadArgument {
                argument: "NewReservedPort",
                ..
            }))
        ));
        // Other faults end it.
        let (mut any, _) = AddAnyMapping::new(0);
        assert!(matches!(
            any.answered(Err(upnp(UpnpErrorCode::ConflictInMappingEntry))),
            AnyStep::Done(Err(Error::Upnp { .. }))
        ));
    }

    #[test]
    fn a_hedged_delete_answered_714_is_done() {
        let gone = || Err(upnp(UpnpErrorCode::NoSuchEntryInArray));
        assert!(delete_outcome(gone(), 2).is_ok());
        assert!(delete_outcome(gone(), 1).is_err());
        assert!(delete_outcome(Err(upnp(UpnpErrorCode::ActionFailed)), 2).is_err());
        assert!(delete_outcome(Ok(()), 1).is_ok());
    }
}
