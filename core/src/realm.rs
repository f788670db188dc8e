//! A realm as the store keeps it and the native API shows it: a name, whether it is the
//! default, and its resolvers in the order they are asked.

use serde::{Deserialize, Serialize};

/// A realm with its resolvers in the order they are asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RealmRecord {
    /// The realm's unique name.
    pub name: String,
    /// Whether it is the default realm (exactly one is).
    pub default: bool,
    /// The names of its resolvers, in the order they are asked (first first).
    pub resolvers: Vec<String>,
    /// When the realm was made, in seconds since the Unix epoch.
    pub created_at: i64,
}
