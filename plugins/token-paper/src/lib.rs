//! The paper token type as a plugin: an HOTP token (RFC 4226) whose next codes are printed at
//! enrolment (`codes`) and checked as HOTP codes are (`countersign_oath::handle_counter_token`).
//! The host computes the MACs over the sealed seed and owns the counter.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-paper",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_oath::handle_counter_token,
}
