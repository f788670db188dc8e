//! The registration token type as a plugin: the code is a one-time registration code, held by
//! the host as an HSM-keyed verifier and compared by it (`verify`); the host deletes the token
//! in the transaction that accepts it.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-registration",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_simple_token::handle_verified,
}
