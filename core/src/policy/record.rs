//! A policy as stored and as admins define it: names, lists and values, not yet checked. The
//! store keeps it; [`super::snapshot::CompiledPolicy::compile`] checks and compiles it.

use serde::{Deserialize, Serialize};

/// A policy as stored: names, lists and values, unparsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    /// authentication | authorization | enrollment | admin
    pub scope: String,
    pub active: bool,
    /// Lower number wins; at least 1.
    pub priority: u32,
    /// Action name → `true`/`false`, integer or text.
    pub actions: serde_json::Map<String, serde_json::Value>,
    pub realms: Vec<String>,
    pub resolvers: Vec<String>,
    pub users: Vec<String>,
    pub clients: Vec<String>,
    /// Weekday/time ranges; empty: always.
    pub time: String,
    pub admin_realms: Vec<String>,
    pub admin_users: Vec<String>,
    pub description: String,
    /// Unix seconds; set by the store.
    pub created_at: i64,
    pub updated_at: i64,
}
