//! The Countersign appliance as a library: configuration, the store, the signing, token,
//! validation and admin services, the plugin host, the HTTP layer, and a small client for the
//! appliance's sockets.
//!
//! The two binaries (`countersignd`, `countersign`) are thin shells over this crate. Nothing
//! here links cryptoki: every key operation goes through `countersign_hsm`.

pub mod admin;
pub mod api_access;
pub mod audit_trail;
pub use store::backup;
pub mod ca;
pub mod challenges;
pub mod clock;
pub mod config;
pub use countersign_card as devices;
pub use countersign_core::dates;
pub mod directory;
pub mod enrolment;
pub mod enrolment_qr;
pub mod error_kinds;
pub mod executor;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway_host;
pub mod gateways;
pub mod hsm_status;
pub mod jobs;
pub mod metrics;
pub mod plugins;
pub mod policy;
pub use countersign_process as process;
pub mod resolvers;
pub mod response_signing;
pub mod service_error;
pub mod signing;
pub mod simple_tokens;
pub use countersign_store as store;
pub mod system_keys;
pub mod token_host;
pub mod token_secrets;
pub mod tokens;
pub mod validate;
pub mod yubico_clients;
pub mod yubikey;

pub use store::now_ms;
