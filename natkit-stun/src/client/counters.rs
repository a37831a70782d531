//! What a transaction saw on the wire.

use std::ops::AddAssign;

/// Counts of sends, answers and dropped datagrams, by reason.
///
/// Anything that is not the answer is dropped and counted here, so a spoofing or
/// confused neighbour shows up in diagnostics instead of vanishing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BindingCounters {
    /// Requests sent, first sends and retransmissions.
    pub sent: u64,
    /// Of those, retransmissions.
    pub retransmitted: u64,
    /// Answers accepted.
    pub accepted: u64,
    /// Transactions that ended without an answer.
    pub timed_out: u64,
    /// Datagrams that are not a well-formed STUN message (or whose attributes do not
    /// decode).
    pub dropped_malformed: u64,
    /// STUN messages with another transaction id.
    pub dropped_wrong_transaction: u64,
    /// Messages with our transaction id from a source we were not told to accept.
    pub dropped_wrong_source: u64,
    /// Messages whose FINGERPRINT does not match.
    pub dropped_bad_fingerprint: u64,
    /// Messages of the wrong class or method (a request or an indication, not a
    /// Binding response).
    pub dropped_unexpected: u64,
    /// Messages that arrived after the transaction had ended.
    pub dropped_late: u64,
}

impl BindingCounters {
    /// All datagrams dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_wrong_transaction
            + self.dropped_wrong_source
            + self.dropped_bad_fingerprint
            + self.dropped_unexpected
            + self.dropped_late
    }
}

impl AddAssign for BindingCounters {
    fn add_assign(&mut self, o: BindingCounters) {
        self.sent += o.sent;
        self.retransmitted += o.retransmitted;
        self.accepted += o.accepted;
        self.timed_out += o.timed_out;
        self.dropped_malformed += o.dropped_malformed;
        self.dropped_wrong_transaction += o.dropped_wrong_transaction;
        self.dropped_wrong_source += o.dropped_wrong_source;
        self.dropped_bad_fingerprint += o.dropped_bad_fingerprint;
        self.dropped_unexpected += o.dropped_unexpected;
        self.dropped_late += o.dropped_late;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        let mut a = BindingCounters {
            dropped_malformed: 1,
            dropped_wrong_source: 2,
            sent: 5,
            ..BindingCounters::default()
        };
        a += BindingCounters {
            dropped_late: 3,
            sent: 1,
            ..BindingCounters::default()
        };
        assert_eq!(a.dropped(), 6);
        assert_eq!(a.sent, 6);
    }
}
