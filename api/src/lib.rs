//! The native API's wire types: the JSON bodies `countersignd` answers on `admin.sock` and
//! `api.sock` (and the request bodies it parses), as `docs/api.md` documents them. The server
//! builds these types and serialises them; the admin CLI and the tests deserialise them, so a
//! renamed or retyped field is a compile error on both sides instead of a blank column.
//!
//! - [`application`]: signing applications with their key versions, and integrations.
//! - [`token`]: tokens, the answers of enrolment and of a lost token, and the token
//!   requests' bodies.
//! - [`user`]: users of the internal user store.
//! - [`plugin`]: the plugins the daemon runs and the plugin directories it refused.
//! - [`gateway`]: gateways, a delivery attempt through a gateway, the gateway routes, and the
//!   deliveries of codes.
//! - [`audit`]: the signature and authentication audit rows, and what `audit verify` found.
//! - [`jobs`]: the periodic jobs' last runs.
//! - [`health`]: the daemon's health (the HSM, the store, the process).
//! - [`resolver`]: user resolvers (the internal store, passwd files, LDAP directories), a
//!   resolver test, and realms.
//! - [`powerauth`]: PowerAuth applications, their versions (APP_KEY; APP_SECRET shown only
//!   when made or asked for) and signed activation codes.
//! - [`policy`]: policies, the action catalogue and `policy check` (the core's policy model).
//!
//! Secrets shown once (an enrolment URI, a password, a PIN) are [`SecretString`] on both sides:
//! zeroized when dropped, never in `Debug`.
//!
//! The server writes an answer's keys in sorted order (it passes through `serde_json::Value`,
//! `http/src/answer.rs`), as the API always has, so declaration order here is for readers.
//!
//! It must never do I/O, nor depend on the engine, the store, the HSM, the HTTP crate or tokio
//! (`make lint` checks it): it is data both sides of a socket share, nothing more. Rows are
//! turned into these types on the server side (the engine), never in the store.

#![warn(missing_docs, unreachable_pub)]

pub mod application;
pub mod audit;
pub mod gateway;
pub mod health;
pub mod jobs;
pub mod plugin;
pub mod policy;
pub mod powerauth;
pub mod resolver;
mod secret;
pub mod token;
pub mod user;

pub use secrecy::{ExposeSecret, SecretString};
pub use token::{Enrolled, PushState, Replacement, Token, TokenList, WebauthnEnrolment};
pub use user::{User, UserList};
