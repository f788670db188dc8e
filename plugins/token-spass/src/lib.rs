//! The spass token type (privacyIDEA's "simple pass") as a plugin: no OTP part, so a check
//! matches when nothing follows the PIN. The host checks the PIN before the plugin is asked.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-spass",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_simple_token::handle_spass,
}
