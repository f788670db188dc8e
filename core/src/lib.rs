//! Countersign's core: domain types and decision rules with no I/O (no tokio, no database, no
//! HTTP, no HSM, no file system). Everything here works on values the caller gives it, so it is
//! tested without a daemon; the appliance's services feed it and act on what it decides.
//!
//! - [`audit_chain`]: what a verification of the audit chain found.
//! - [`caller`]: who a request is from, typed once by the front-ends.
//! - [`check`]: what a check's commit does to its tokens and its user's throttle.
//! - [`dates`]: dates as admins and privacyIDEA's clients type them.
//! - [`error`]: the one error vocabulary ([`error::ErrorKind`]) the front-ends map once.
//! - [`jobs`]: a periodic job's last run.
//! - [`gateway`]: a message gateway's transport (allowed hosts, SMTP server, time limit).
//! - [`keys`]: the names of key algorithms, hashes, signature schemes and HSM key ids.
//! - [`names`]: serials, logins and object names, each checked once where it is made.
//! - [`validity`]: a token's validity period and why a token takes part in no check.
//! - [`rules`]: the check's decision rules (PIN and code, fail counter, counters, drift).
//! - [`token_kind`]: how a check treats a token of a given type.
//! - [`truth`]: privacyIDEA's yes and no words.
//! - [`policy`]: the policy model: the action catalogue, conditions, and evaluation.
//! - [`realm`]: a realm and its resolvers' order.
//! - [`user`]: a user of the internal user store.
//!
//! It must never do I/O or depend on another workspace crate (`make lint` checks both).

#![warn(missing_docs, unreachable_pub)]

pub mod audit_chain;
pub mod caller;
pub mod check;
pub mod dates;
pub mod error;
pub mod gateway;
pub mod jobs;
pub mod keys;
pub mod names;
pub mod policy;
pub mod realm;
pub mod rules;
pub mod token_kind;
pub mod truth;
pub mod user;
pub mod validity;
