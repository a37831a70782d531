//! What a transaction or a mapper saw: sends, answers and dropped datagrams.

use std::ops::AddAssign;

/// Counts of what happened on the wire.
///
/// Dropped datagrams are counted by reason, so a spoofing or confused
/// neighbour shows up in diagnostics instead of vanishing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent, first sends and retransmissions.
    pub sent: u64,
    /// Of those, retransmissions.
    pub retransmitted: u64,
    /// Answers accepted (one per completed exchange).
    pub answered: u64,
    /// Exchanges that ended without an answer.
    pub timed_out: u64,
    /// Datagrams dropped because they did not come from the server's
    /// address and port.
    pub dropped_wrong_source: u64,
    /// PCP answers dropped because their mapping nonce was not ours.
    pub dropped_wrong_nonce: u64,
    /// Datagrams from the server that did not parse.
    pub dropped_malformed: u64,
    /// Well-formed answers from the server to another request (other
    /// opcode, protocol or internal port).
    pub dropped_unmatched: u64,
    /// Times the server's epoch showed it lost its state (RFC 6887 §8.5).
    pub epoch_resets: u64,
}

impl Counters {
    /// All datagrams dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_wrong_source
            + self.dropped_wrong_nonce
            + self.dropped_malformed
            + self.dropped_unmatched
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.sent += o.sent;
        self.retransmitted += o.retransmitted;
        self.answered += o.answered;
        self.timed_out += o.timed_out;
        self.dropped_wrong_source += o.dropped_wrong_source;
        self.dropped_wrong_nonce += o.dropped_wrong_nonce;
        self.dropped_malformed += o.dropped_malformed;
        self.dropped_unmatched += o.dropped_unmatched;
        self.epoch_resets += o.epoch_resets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_sums_drops() {
        let mut a = Counters {
            sent: 2,
            dropped_wrong_source: 1,
            ..Counters::default()
        };
        a += Counters {
            sent: 1,
            dropped_wrong_nonce: 2,
            dropped_malformed: 3,
            dropped_unmatched: 4,
            epoch_resets: 1,
            ..Counters::default()
        };
        assert_eq!(a.sent, 3);
        assert_eq!(a.dropped(), 10);
        assert_eq!(a.epoch_resets, 1);
    }
}
