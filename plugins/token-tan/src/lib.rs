//! The tan token type as a plugin: the code is one of the token's unused TANs, which the host
//! holds as HSM-keyed verifiers and compares itself (`verify`), spending the one that matched
//! in the transaction that accepts it.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-tan",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_simple_token::handle_verified,
}
