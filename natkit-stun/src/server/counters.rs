//! What the server saw.

/// Counts of requests answered and dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerCounters {
    /// Datagrams received.
    pub received: u64,
    /// Success responses sent.
    pub answered: u64,
    /// Of those, answers from another socket (CHANGE-REQUEST) or to another port
    /// (RESPONSE-PORT).
    pub answered_changed: u64,
    /// 420 (Unknown Attribute) error responses sent.
    pub unknown_attribute_errors: u64,
    /// Datagrams that are not a well-formed STUN message, or whose attributes do not
    /// decode.
    pub dropped_malformed: u64,
    /// Well-formed messages that are not Binding requests (responses, indications,
    /// other methods).
    pub dropped_not_binding_request: u64,
    /// Requests whose FINGERPRINT does not match.
    pub dropped_bad_fingerprint: u64,
    /// Requests dropped by the per-source rate limit.
    pub dropped_rate_limited: u64,
    /// Requests whose answer did not fit the caller's buffer, or that arrived on a
    /// socket index the server does not have.
    pub dropped_other: u64,
}

impl ServerCounters {
    /// All dropped datagrams.
    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_not_binding_request
            + self.dropped_bad_fingerprint
            + self.dropped_rate_limited
            + self.dropped_other
    }
}

impl std::fmt::Display for ServerCounters {
    /// One line for people: what was answered, then each reason for a drop.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} received, {} answered ({} from the other address or port), {} unknown \
             attribute errors; dropped: {} malformed, {} not Binding requests, {} bad \
             fingerprint, {} rate limited, {} other",
            self.received,
            self.answered,
            self.answered_changed,
            self.unknown_attribute_errors,
            self.dropped_malformed,
            self.dropped_not_binding_request,
            self.dropped_bad_fingerprint,
            self.dropped_rate_limited,
            self.dropped_other
        )
    }
}

impl std::ops::AddAssign for ServerCounters {
    /// Adds another core's counts (a server with several configurations reports one
    /// total).
    fn add_assign(&mut self, o: ServerCounters) {
        self.received += o.received;
        self.answered += o.answered;
        self.answered_changed += o.answered_changed;
        self.unknown_attribute_errors += o.unknown_attribute_errors;
        self.dropped_malformed += o.dropped_malformed;
        self.dropped_not_binding_request += o.dropped_not_binding_request;
        self.dropped_bad_fingerprint += o.dropped_bad_fingerprint;
        self.dropped_rate_limited += o.dropped_rate_limited;
        self.dropped_other += o.dropped_other;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_for_people() {
        let c = ServerCounters {
            received: 40,
            answered: 38,
            answered_changed: 32,
            dropped_rate_limited: 2,
            ..ServerCounters::default()
        };
        assert_eq!(
            c.to_string(),
            "40 received, 38 answered (32 from the other address or port), 0 unknown \
             attribute errors; dropped: 0 malformed, 0 not Binding requests, 0 bad \
             fingerprint, 2 rate limited, 0 other"
        );
    }
}
