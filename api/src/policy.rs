//! Policies as the native API shows them (`/v1/admin/policies`).
//!
//! A policy on the wire is the core's policy as stored ([`Policy`], names, lists and values
//! unparsed) and `policy check` answers the core's [`PolicyCheck`]: the policy model is the
//! API's vocabulary, and it lives in the core (which this crate may link), so it is re-exported
//! here rather than copied.

use serde::{Deserialize, Serialize};

pub use countersign_core::policy::{
    ActionValue, ConditionResult, Explanation as PolicyCheck, PolicyExplanation, PolicyRecord as Policy, Scope,
};

/// `GET /v1/admin/policies`: every policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyList {
    /// The policies, by name.
    pub policies: Vec<Policy>,
}

/// One action of the catalogue (`GET /v1/admin/policies/actions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyAction {
    /// privacyIDEA's name of the action.
    pub name: String,
    /// The scope it belongs to.
    pub scope: Scope,
    /// The values it takes, in words.
    pub value: String,
    /// What it does, in words.
    pub meaning: String,
}

/// `GET /v1/admin/policies/actions`: the action catalogue, of one scope when asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyActions {
    /// The actions, in catalogue order.
    pub actions: Vec<PolicyAction>,
}
