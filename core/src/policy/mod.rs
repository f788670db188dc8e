//! Policies as privacyIDEA admins know them: scopes, the action catalogue with privacyIDEA's
//! names, conditions (realm, resolver, user, client network, weekday/time, admin realm and
//! admin), priorities, and an evaluator that answers "what is the effective value of this action
//! for this request, and which policies say so".
//!
//! - [`actions`]: the catalogue and the check of values.
//! - [`check`]: what the policies say about one check, and for a user without a token.
//! - [`conditions`]: parsing and matching of conditions.
//! - [`enrolment`]: what the enrollment policies say about one new token.
//! - [`fido`]: the values of the WebAuthn and passkey actions (words, origins, AAGUIDs).
//! - [`push`]: what the push policies say about one enrolment and one challenge or poll.
//! - [`record`]: a policy as stored and defined.
//! - [`snapshot`]: the compiled policies evaluated on every request
//!   ([`PolicySnapshot::value`]), and explanations.
//! - [`webauthn`]: what the WebAuthn and passkey policies say about one registration and one
//!   sign-in.
//!
//! Evaluation is pure: the caller gives the time, its zone's offset and the request's names.
//! This module never enforces an action: the appliance's services read values and decide what
//! they mean.

pub mod actions;
pub mod check;
pub mod conditions;
pub mod enrolment;
pub mod fido;
pub mod push;
pub mod record;
pub mod snapshot;
pub mod webauthn;

pub use actions::{ActionSpec, ActionValue, OtpPin, RateLimit, Scope, CATALOGUE};
pub use record::PolicyRecord;
pub use snapshot::{
    CompiledPolicy, ConditionResult, Explanation, PolicyConflict, PolicyContext, PolicyExplanation, PolicySnapshot,
};
pub use webauthn::{
    AllowedOrigins, Attachment, AttestationForm, AttestationLevel, SignCount, Transport, UserVerification,
    WebauthnAuthPolicies, WebauthnEnrolPolicies,
};

/// A policy that cannot be compiled: what is wrong with it, naming the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyInvalid(pub String);
