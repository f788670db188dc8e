//! The pw token type (privacyIDEA's password token, also made by `/token/lost`) as a plugin:
//! the code is a fixed password, which the host holds only as an HSM-keyed verifier and
//! compares itself (`verify`); the plugin never sees it.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-pw",
    version: env!("CARGO_PKG_VERSION"),
    handler: countersign_simple_token::handle_verified,
}
