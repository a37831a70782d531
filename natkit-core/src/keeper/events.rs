//! A listener for the keeper's events: a bounded broadcast that says what a slow
//! listener missed instead of growing without bound.

use tokio::sync::broadcast;

use super::KeeperEvent;

/// How many unread events the keeper keeps for each listener; past that the
/// oldest are dropped and the listener gets [`KeeperEvent::Lagged`]. Events
/// come a handful per renewal period, so only a listener that never reads
/// reaches it.
pub const EVENT_CAPACITY: usize = 64;

/// Why [`KeeperEvents::try_recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No event is waiting.
    Empty,
    /// The keeper has stopped; no more events will come.
    Closed,
}

/// The keeper's events, for one listener ([`LeaseKeeper::new`](super::LeaseKeeper::new),
/// [`LeaseKeeper::subscribe`](super::LeaseKeeper::subscribe)).
#[derive(Debug)]
pub struct KeeperEvents {
    rx: broadcast::Receiver<KeeperEvent>,
}

impl KeeperEvents {
    pub(super) fn new(rx: broadcast::Receiver<KeeperEvent>) -> Self {
        KeeperEvents { rx }
    }

    /// The next event; `None` once the keeper has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<KeeperEvent> {
        match self.rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Some(KeeperEvent::Lagged { missed })
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<KeeperEvent, TryRecvError> {
        match self.rx.try_recv() {
            Ok(event) => Ok(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Ok(KeeperEvent::Lagged { missed })
            }
            Err(broadcast::error::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(broadcast::error::TryRecvError::Closed) => Err(TryRecvError::Closed),
        }
    }
}
