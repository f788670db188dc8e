//! TOTP (RFC 6238) as a token plugin: finds the time step, within the window around the
//! host's clock, at which an OTP is valid, never below the lowest step the host still accepts
//! (so a code at or before the last accepted step is rejected); resynchronises on two
//! consecutive OTPs. The host computes the HMACs over the sealed seed and owns the steps.

#![warn(missing_docs, unreachable_pub)]

use countersign_oath::{find, find_pair, OathParams};
use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};

/// The time step the token's clock is in: the host's step, corrected by the learned drift.
fn current_step(host: &Host<'_>, p: &OathParams) -> Result<u64, PluginError> {
    let now = u64::try_from(host.now_ms()? / 1000).map_err(|_| PluginError::Failed("clock before 1970".into()))?;
    Ok((now.saturating_sub(p.t0) / p.step).saturating_add_signed(p.drift))
}

/// The plugin's request handler. `first` is the lowest acceptable step; `window` the number of
/// steps accepted on either side of the current one.
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let matched = match req {
        PluginRequest::CheckOtp { secret, otp, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            let now = current_step(host, &p)?;
            let lo = now.saturating_sub(u64::from(window)).max(first);
            find(host, &secret, &p, &otp, lo, now.saturating_add(u64::from(window)))?
        }
        PluginRequest::Resync { secret, otp1, otp2, first, window, params } => {
            let p = OathParams::from_json(&params)?;
            let now = current_step(host, &p)?;
            let lo = now.saturating_sub(u64::from(window)).max(first);
            find_pair(host, &secret, &p, &otp1, &otp2, lo, now.saturating_add(u64::from(window)))?
        }
        _ => return Err(PluginError::BadRequest("a token plugin checks OTPs; it does not deliver messages".into())),
    };
    Ok(matched.map_or(PluginResponse::NoMatch, |counter| PluginResponse::Matched { counter }))
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-totp",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
