//! The e-mail token type as a plugin: a challenge carries an HOTP code (RFC 4226) for the
//! counter the host reserved, in a message rendered from the host's template; the answer is
//! checked at exactly that counter (`countersign_oath::handle_challenge_token`). The host
//! computes the MACs over the sealed seed, owns counters and challenges, and delivers the
//! message through its gateways.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-email",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_oath::handle_challenge_token,
}
