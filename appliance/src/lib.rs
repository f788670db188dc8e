//! The Countersign appliance as a library: configuration, the store, the signing and admin
//! services, the HTTP layer on the Unix sockets, and a small client for those sockets.
//!
//! The two binaries (`countersignd`, `countersign`) are thin shells over this crate. Nothing
//! here links cryptoki: every key operation goes through `countersign_hsm`.

pub mod admin;
pub mod client;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod executor;
pub mod http;
pub mod plugins;
pub mod signing;
pub mod store;

/// Milliseconds since the Unix epoch (the audit's clock).
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
