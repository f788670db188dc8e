//! The indexedsecret token type as a plugin: a challenge (made by the host) asks for the
//! characters of the token's secret at random positions; the answer goes to the host's
//! `verify`, which compares it with the sealed secret at the positions that challenge asked.
//! The plugin never sees the secret or the positions.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-indexedsecret",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_simple_token::handle_verified,
}
