//! Policies as privacyIDEA admins know them: scopes, the action catalogue with privacyIDEA's
//! names, conditions (realm, resolver, user, client network, weekday/time, admin realm and
//! admin), priorities, and an evaluator that answers "what is the effective value of this action
//! for this request, and which policies say so".
//!
//! - [`actions`]: the catalogue and the check of values.
//! - [`conditions`]: parsing and matching of conditions.
//! - [`snapshot`]: the compiled, in-memory policies the daemon evaluates on every request
//!   ([`PolicyHandle::current`] → [`PolicySnapshot::value`]), and explanations.
//! - [`service`]: admin changes (each stored with its audit row, then the snapshot reloaded
//!   before the change is acknowledged) and `policy check`.
//!
//! This module never enforces an action: /validate/check, enrolment and the admin API read
//! values from the snapshot and decide what they mean. Evaluation never reads the database.

pub mod actions;
pub mod conditions;
pub mod service;
pub mod snapshot;

pub use actions::{ActionSpec, ActionValue, OtpPin, RateLimit, Scope, CATALOGUE};
pub use conditions::local_utc_offset_s;
pub use service::{CheckRequest, PolicyDefinition, PolicyService};
pub use snapshot::{
    client_of, CompiledPolicy, ConditionResult, Explanation, PolicyConflict, PolicyContext, PolicyExplanation,
    PolicyHandle, PolicySnapshot,
};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("store: {0}")]
    Store(StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for PolicyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => PolicyError::NotFound(m),
            StoreError::Duplicate(m) => PolicyError::Duplicate(m),
            StoreError::Invalid(m) => PolicyError::Invalid(m),
            other => PolicyError::Store(other),
        }
    }
}
