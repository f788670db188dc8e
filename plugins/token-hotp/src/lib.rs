//! HOTP (RFC 4226) as a token plugin: finds the counter at which an OTP is valid within the
//! look-ahead window the host allows, and resynchronises on two consecutive OTPs. The host
//! computes the HMACs over the sealed seed and owns the counter.

use countersign_oath::{find, find_pair, OathParams};
use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};

/// The plugin's request handler.
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let matched = match req {
        PluginRequest::CheckOtp { secret, otp, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            find(host, &secret, &p, &otp, first, first.saturating_add(u64::from(window)))?
        }
        PluginRequest::Resync { secret, otp1, otp2, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            find_pair(host, &secret, &p, &otp1, &otp2, first, first.saturating_add(u64::from(window)))?
        }
        _ => return Err(PluginError::BadRequest("a token plugin checks OTPs; it does not deliver messages".into())),
    };
    Ok(matched.map_or(PluginResponse::NoMatch, |counter| PluginResponse::Matched { counter }))
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-hotp",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
