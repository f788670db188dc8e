//! A policy as stored and as admins define it: names, lists and values, not yet checked. The
//! store keeps it; [`super::snapshot::CompiledPolicy::compile`] checks and compiles it.

use serde::{Deserialize, Serialize};

/// A policy as stored: names, lists and values, unparsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The policy's name, unique.
    pub name: String,
    /// authentication | authorization | enrollment | admin
    pub scope: String,
    /// Whether it takes part in evaluation.
    pub active: bool,
    /// Lower number wins; at least 1.
    pub priority: u32,
    /// Action name → `true`/`false`, integer or text.
    pub actions: serde_json::Map<String, serde_json::Value>,
    /// The realms of the users it applies to; empty: all.
    pub realms: Vec<String>,
    /// The resolvers of the users it applies to; empty: all.
    pub resolvers: Vec<String>,
    /// The users it applies to; empty: all.
    pub users: Vec<String>,
    /// The client addresses and networks it applies to; empty: all.
    pub clients: Vec<String>,
    /// Weekday/time ranges; empty: always.
    pub time: String,
    /// Admin scope: the realms of the administrators it applies to; empty: all.
    pub admin_realms: Vec<String>,
    /// Admin scope: the administrators it applies to; empty: all.
    pub admin_users: Vec<String>,
    /// What it is for, in the admin's words.
    pub description: String,
    /// Unix seconds; set by the store.
    pub created_at: i64,
    /// Unix seconds of the last change; set by the store.
    pub updated_at: i64,
}

impl PolicyRecord {
    /// An active policy `name` of `scope` with these actions, priority 1 and no conditions
    /// (it applies to everyone); set the other fields for conditions.
    pub fn new(name: &str, scope: &str, actions: serde_json::Map<String, serde_json::Value>) -> PolicyRecord {
        PolicyRecord {
            name: name.to_owned(),
            scope: scope.to_owned(),
            active: true,
            priority: 1,
            actions,
            realms: Vec::new(),
            resolvers: Vec::new(),
            users: Vec::new(),
            clients: Vec::new(),
            time: String::new(),
            admin_realms: Vec::new(),
            admin_users: Vec::new(),
            description: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }
}
