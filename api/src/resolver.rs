//! User resolvers as the native API shows them (`/v1/admin/resolvers`).

use serde::{Deserialize, Serialize};

/// What list and show report: everything but the bind password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolverView {
    /// Its row id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// `internal`, `passwd` or `ldap`.
    pub kind: String,
    /// Its options as stored (no password among them).
    pub options: serde_json::Value,
    /// Whether a sealed bind password is stored; the password itself is never shown.
    pub bind_password_set: bool,
    /// The realms that list it.
    pub realms: Vec<String>,
    /// When it was defined, Unix seconds.
    pub created_at: i64,
    /// When it last changed, Unix seconds.
    pub updated_at: i64,
}

/// `GET /v1/admin/resolvers`: every resolver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolverList {
    /// The resolvers, by name.
    pub resolvers: Vec<ResolverView>,
}
