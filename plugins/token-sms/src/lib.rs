//! The SMS token type as a plugin: a challenge carries an HOTP code (RFC 4226) for the
//! counter the host reserved, in a message rendered from the host's template; the answer is
//! checked at exactly that counter. The host computes the MACs over the sealed seed, owns
//! counters and challenges, and delivers the message through its gateways.

use countersign_oath::{challenge, find, OathParams};
use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};

/// The plugin's request handler.
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    match req {
        PluginRequest::CreateChallenge { secret, counter, params, template, variables } => {
            let p = OathParams::from_json(&params)?;
            let (otp, text) = challenge(host, &secret, &p, counter, &template, &variables)?;
            Ok(PluginResponse::Challenge { otp, text })
        }
        PluginRequest::CheckOtp { secret, otp, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            let found = find(host, &secret, &p, &otp, first, first.saturating_add(u64::from(window)))?;
            Ok(found.map_or(PluginResponse::NoMatch, |counter| PluginResponse::Matched { counter }))
        }
        _ => Err(PluginError::BadRequest("this token type answers challenges and checks their codes".into())),
    }
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-sms",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
