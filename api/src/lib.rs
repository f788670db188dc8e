//! The native API's wire types: the JSON bodies `countersignd` answers on `admin.sock` and
//! `api.sock` (and the request bodies it parses), as `docs/api.md` documents them. The server
//! builds these types and serialises them; the admin CLI and the tests deserialise them, so a
//! renamed or retyped field is a compile error on both sides instead of a blank column.
//!
//! - [`token`]: tokens, internal users, and the answers of enrolment and of a lost token.
//!
//! Field order is wire order: serde writes fields in declaration order, and the answers are
//! held byte for byte by the integration tests, so fields are never reordered.
//!
//! It must never do I/O, nor depend on the engine, the store, the HSM, the HTTP crate or tokio
//! (`make lint` checks it): it is data both sides of a socket share, nothing more. Rows are
//! turned into these types on the server side (the engine), never in the store.

#![warn(missing_docs, unreachable_pub)]

pub mod token;

pub use token::Token;
