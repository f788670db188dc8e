//! The yubikey token type (Yubico OTP in AES mode, privacyIDEA's `yubikey`) as a plugin.
//!
//! It owns reading an OTP: the public id and the modhex token ([`countersign_yubico_otp`]),
//! the CRC of the plaintext, and the counter (`usage << 8 | session use`) against the host's
//! first acceptable one. The AES key stays with the host: the plugin hands the one 16-byte
//! block to the host's `aes_ecb_decrypt` and gets the plaintext back. The private id is
//! compared by the host (which holds it sealed), and the host accepts only what it saw in the
//! block it decrypted, so this plugin must never be the only judge of a match; it must never
//! keep or log a plaintext.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};

/// Checks a Yubico OTP: a match at its counter when the CRC holds and the counter is at or
/// above `first` (the host passes the last accepted counter + 1, or the last accepted one to
/// recognise a replay).
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let PluginRequest::CheckOtp { secret, otp, first, .. } = req else {
        return Err(PluginError::BadRequest("a yubikey token only checks OTPs".into()));
    };
    let Some(typed) = countersign_yubico_otp::split(&otp) else { return Ok(PluginResponse::NoMatch) };
    let plain = host.aes_ecb_decrypt(&secret, &typed.token)?;
    let Some(fields) = countersign_yubico_otp::parse(&plain) else { return Ok(PluginResponse::NoMatch) };
    let counter = fields.counter();
    Ok(if counter >= first { PluginResponse::Matched { counter } } else { PluginResponse::NoMatch })
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-yubikey",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
