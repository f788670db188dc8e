//! The contract between a Countersign plugin and the worker process that loads it.
//!
//! Two layers, each versioned on its own:
//! - the **C ABI** ([`abi`]): one exported symbol, [`ENTRY_SYMBOL`], returning a `#[repr(C)]`
//!   [`abi::PluginDescriptor`] (magic, ABI major/minor, kind, name, version, protocol version,
//!   function pointers). Bytes cross it as pointer + length; memory a side allocates is freed by
//!   that side. A change that breaks old plugins bumps [`abi::ABI_MAJOR`].
//! - the **message protocol** ([`protocol`]): JSON messages with their own version number,
//!   [`protocol::PROTOCOL_VERSION`], for requests to the plugin and the plugin's calls to host
//!   capabilities (HMAC over a sealed secret, random bytes, the time).
//!
//! Plugin authors use [`declare_plugin!`], which exports the entry symbol and wraps every call
//! in `catch_unwind`, so a panicking plugin returns [`abi::Status::Panic`] instead of unwinding
//! into the worker.
//!
//! This crate never loads a library (only the worker does) and never sees a secret: host
//! capabilities name secrets by reference.

#![warn(missing_docs, unreachable_pub)]

pub mod abi;
pub mod guest;
pub mod protocol;

pub use abi::ENTRY_SYMBOL;
