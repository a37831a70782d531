//! What a PCP answer means for the mapper's caller: a delete done, a
//! typed error, the nonce a mapping's token holds.

use natkit_core::Mapping;

use crate::error::{Error, Result};
use crate::pcp::PcpResultCode;
use crate::pcp::exchange::PcpAnswer;
use crate::pcp::wire::Nonce;

/// Whether a delete's answer after `sends` sends means the mapping is gone.
pub(super) fn deleted(answer: PcpAnswer, sends: u32) -> Result<()> {
    match answer {
        PcpAnswer::Mapped { .. } => Ok(()),
        // miniupnpd (2.3.1) answers a delete of a mapping it does not hold
        // NO_RESOURCES instead of SUCCESS (RFC 6887 §15). After a
        // retransmission that is the answer to our own earlier copy having
        // deleted it (seen under 30 % loss in the lab); a mapping of this
        // client on the port with another nonce would be NOT_AUTHORIZED
        // instead. On a first send it proves nothing, so it stays an error
        // there.
        PcpAnswer::Failure {
            code: PcpResultCode::NoResources,
            ..
        } if sends > 1 => {
            tracing::debug!(
                sends,
                "PCP delete retransmission answered NO_RESOURCES: the first copy deleted it"
            );
            Ok(())
        }
        other => Err(failure(other)),
    }
}

/// The nonce a PCP mapping carries as its token; a token that is not a
/// nonce is refused rather than replaced by another nonce.
pub(super) fn token_nonce(mapping: &Mapping) -> Result<Option<Nonce>> {
    mapping
        .token
        .map(|t| {
            <[u8; 12]>::try_from(t.as_bytes())
                .map(Nonce)
                .map_err(|_| Error::InvalidRequest {
                    reason: "the mapping's token is not a 12-byte PCP nonce",
                })
        })
        .transpose()
}

/// The error for an answer that is not the success expected.
pub(super) fn failure(answer: PcpAnswer) -> Error {
    match answer {
        PcpAnswer::Failure {
            code: PcpResultCode::UnsuppVersion,
            version,
            ..
        } if version != crate::pcp::PCP_VERSION => Error::UnsupportedServerVersion {
            server_version: version,
        },
        PcpAnswer::Failure {
            code,
            lifetime,
            epoch,
            ..
        } => Error::PcpResult {
            code,
            lifetime,
            epoch,
        },
        PcpAnswer::NatPmpOnly { .. } => Error::UnsupportedServerVersion { server_version: 0 },
        // The exchange matched the opcode, so the other success cannot come.
        PcpAnswer::Announced { .. } => Error::UnknownOpcode { opcode: 0 },
        PcpAnswer::Mapped { .. } => Error::UnknownOpcode { opcode: 1 },
    }
}
