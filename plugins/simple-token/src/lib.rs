//! Request handlers of the simple token types, shared by their plugins: `spass` (PIN only)
//! and the types whose value the host verifies (`pw`, `registration`, `tan`, and the answer
//! to an `indexedsecret` challenge).
//!
//! What the user typed after the PIN passes through here on its way to the host; what is
//! stored (a password's or a TAN's HSM-keyed verifier) never does: the host compares
//! ([`Host::verify`]) and owns what an accept changes (the counter, a spent TAN, a deleted
//! registration token). These handlers must never keep, log or derive anything from the value.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};

/// spass: no OTP part. A check matches at the host's counter when nothing follows the PIN
/// (the host verified the PIN before it asked).
pub fn handle_spass(_host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    match req {
        PluginRequest::CheckOtp { otp, first, .. } if otp.is_empty() => Ok(PluginResponse::Matched { counter: first }),
        PluginRequest::CheckOtp { .. } => Ok(PluginResponse::NoMatch),
        _ => Err(PluginError::BadRequest("a spass token only checks that nothing follows the PIN".into())),
    }
}

/// pw, registration, tan, indexedsecret: the host compares the value with what it holds for the token; a
/// match is at the host's counter (which counts the token's uses).
pub fn handle_verified(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    match req {
        PluginRequest::CheckOtp { secret, otp, first, .. } => Ok(if host.verify(&secret, &otp)? {
            PluginResponse::Matched { counter: first }
        } else {
            PluginResponse::NoMatch
        }),
        _ => Err(PluginError::BadRequest("this token type only checks values the host verifies".into())),
    }
}
