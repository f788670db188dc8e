//! User resolvers and realms as the native API shows them (`/v1/admin/resolvers`,
//! `/v1/admin/realms`).

/// A user as a resolver found them, straight from the source: the core's record, not a copy.
pub use countersign_core::user::UserInfo as FoundUser;
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

/// A realm as `/v1/admin/realms` shows it: the core's record as the store keeps it.
pub use countersign_core::realm::RealmRecord as Realm;

/// `GET /v1/admin/realms`: every realm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealmList {
    /// The realms, by name.
    pub realms: Vec<Realm>,
}

/// `POST /v1/admin/realms`: a new realm.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRealm {
    /// The realm's name.
    pub name: String,
    /// Its resolvers in the order they are asked; empty: its own internal users.
    #[serde(default)]
    pub resolvers: Vec<String>,
    /// Make it the default realm.
    #[serde(default)]
    pub default: bool,
}

/// `PUT /v1/admin/realms/{name}`: a change to a realm: its resolvers in order (replacing the
/// list), and/or make it the default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmChange {
    /// The new resolver list; `None`: keep it.
    #[serde(default)]
    pub resolvers: Option<Vec<String>>,
    /// Make it the default realm.
    #[serde(default)]
    pub default: bool,
}

/// `POST /v1/admin/resolvers/{name}/test`: a look-up straight from the source (no cache), its
/// timing, and a password check when one was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolverTest {
    /// The resolver tested.
    pub resolver: String,
    /// Its kind: `internal`, `passwd` or `ldap`.
    pub kind: String,
    /// The login looked up.
    pub login: String,
    /// Whether the look-up (and the password check, if any) ran without an error.
    pub ok: bool,
    /// Whether the source knows the login.
    pub found: bool,
    /// The user as found; `None` when not found.
    pub user: Option<FoundUser>,
    /// How long the look-up took, in milliseconds.
    pub lookup_ms: f64,
    /// Whether the resolver can check passwords at all.
    pub holds_passwords: bool,
    /// `None` when no password was given.
    pub password_accepted: Option<bool>,
    /// How long the password check took, in milliseconds; `None` when none was made.
    pub password_ms: Option<f64>,
    /// The error that stopped the test; never a password.
    pub error: Option<String>,
}
