//! Which datagrams answer a NAT-PMP request.

use crate::natpmp::wire::{NatPmpAnswer, NatPmpRequest};
use crate::transaction::{DropReason, Exchange, Judgement};

/// Matches NAT-PMP answers to one request: the opcode must be the
/// request's, and a mapping answer must be for the request's internal port
/// (RFC 6886 §3.3). NAT-PMP has no transaction id, so that is all there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatPmpExchange {
    request: NatPmpRequest,
}

impl NatPmpExchange {
    /// The matcher for `request`.
    pub fn new(request: NatPmpRequest) -> Self {
        NatPmpExchange { request }
    }

    /// The request.
    pub fn request(&self) -> NatPmpRequest {
        self.request
    }
}

impl Exchange for NatPmpExchange {
    type Answer = NatPmpAnswer;

    fn judge(&self, datagram: &[u8]) -> Judgement<NatPmpAnswer> {
        let Ok(answer) = NatPmpAnswer::parse(datagram) else {
            return Judgement::Drop(DropReason::Malformed);
        };
        if answer.opcode() != self.request.opcode() {
            return Judgement::Drop(DropReason::Unmatched);
        }
        let answered_port = match answer {
            NatPmpAnswer::Mapping { internal_port, .. } => Some(internal_port),
            NatPmpAnswer::Failure { internal_port, .. } => internal_port,
            NatPmpAnswer::ExternalAddress { .. } => None,
        };
        if let (NatPmpRequest::Map { internal_port, .. }, Some(answered)) =
            (self.request, answered_port)
        {
            // Failure answers of some servers carry zeros instead of the port.
            let failure_with_zero = matches!(answer, NatPmpAnswer::Failure { .. }) && answered == 0;
            if answered != internal_port && !failure_with_zero {
                return Judgement::Drop(DropReason::Unmatched);
            }
        }
        Judgement::Accept(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::Protocol;

    fn map(port: u16) -> NatPmpExchange {
        NatPmpExchange::new(NatPmpRequest::Map {
            protocol: Protocol::Udp,
            internal_port: port,
            suggested_external_port: port,
            lifetime: 3600,
        })
    }

    fn mapping_answer(op: u8, internal: u16) -> Vec<u8> {
        let mut b = vec![0, 128 + op, 0, 0, 0, 0, 0, 9];
        b.extend(internal.to_be_bytes());
        b.extend(40000u16.to_be_bytes());
        b.extend(3600u32.to_be_bytes());
        b
    }

    #[test]
    fn matches_opcode_and_internal_port() {
        assert!(matches!(
            map(5000).judge(&mapping_answer(1, 5000)),
            Judgement::Accept(NatPmpAnswer::Mapping {
                external_port: 40000,
                ..
            })
        ));
        // TCP answer to a UDP request, or another port: not ours.
        assert_eq!(
            map(5000).judge(&mapping_answer(2, 5000)),
            Judgement::Drop(DropReason::Unmatched)
        );
        assert_eq!(
            map(5000).judge(&mapping_answer(1, 5001)),
            Judgement::Drop(DropReason::Unmatched)
        );
        assert_eq!(
            map(5000).judge(&[0, 128, 0]),
            Judgement::Drop(DropReason::Malformed)
        );
        let addr = NatPmpExchange::new(NatPmpRequest::ExternalAddress);
        assert_eq!(
            addr.judge(&mapping_answer(1, 5000)),
            Judgement::Drop(DropReason::Unmatched)
        );
    }

    #[test]
    fn short_failure_answers_are_accepted() {
        assert!(matches!(
            map(5000).judge(&[0, 129, 0, 4, 0, 0, 0, 9]),
            Judgement::Accept(NatPmpAnswer::Failure { .. })
        ));
    }
}
