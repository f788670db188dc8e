//! HOTP (RFC 4226) as a token plugin: finds the counter at which an OTP is valid within the
//! look-ahead window the host allows, and resynchronises on two consecutive OTPs. The host
//! computes the HMACs over the sealed seed and owns the counter.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse};

/// The plugin's request handler ([`countersign_oath::handle_counter_token`]).
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    countersign_oath::handle_counter_token(host, req)
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-hotp",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}
