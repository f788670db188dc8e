//! Countersign's engine: the services behind the appliance's sockets and HTTP listener
//! (signing, validation and challenges, tokens, policies, resolvers and realms, gateways, the
//! CA and card enrolment, API access, the audit trail, key administration), the executor that
//! runs HSM work and commits its records, and the plugin host. It speaks domain types: HTTP
//! and the APIs' request and response formats belong to the front-ends, SQL to the store.
//!
//! Around it: `countersign-http` holds the HTTP front-ends (native API and privacyIDEA's);
//! the daemon binary `countersignd` (`daemon/`) opens the HSM and the store, wires the
//! services to the front-ends and serves them; the admin CLI `countersign-cli` (`cli/`)
//! reaches the daemon only through its socket and links none of this crate; the store, with
//! all SQL, is `countersign-store` (re-exported as [`store`]). Nothing here links cryptoki:
//! every key operation goes through `countersign_hsm`. Nothing here reads the configuration
//! file either: each service takes its own settings type, defined next to it (for instance
//! [`audit_trail::AuditSettings`], [`ca::CaSettings`], [`plugins::PluginSettings`]), which the
//! daemon resolves from the file at its edge.

#![warn(missing_docs, unreachable_pub)]

pub mod address_window;
pub mod admin;
pub mod api_access;
pub mod audit_trail;
pub use store::backup;
pub mod ca;
pub mod challenges;
pub mod clock;
pub mod config_watch;
pub mod console_access;
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
pub mod google_oauth;
pub mod hsm_status;
pub mod jobs;
pub mod metrics;
pub mod plugins;
pub mod policy;
pub mod powerauth_admin;
pub mod powerauth_operations;
pub mod powerauth_server;
pub mod powerauth_tokens;
pub mod push;
mod push_enrolment;
pub use countersign_process as process;
pub mod resolvers;
pub mod response_signing;
pub mod secret_json;
pub mod service_error;
pub mod signing;
pub mod simple_tokens;
pub use countersign_store as store;
pub mod store_status;
pub mod system_keys;
pub mod token_host;
pub mod token_secrets;
pub mod tokens;
pub mod validate;
pub mod webauthn;
mod webauthn_enrolment;
pub mod yubico_clients;
pub mod yubikey;

pub use store::now_ms;
