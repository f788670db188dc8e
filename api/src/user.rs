//! Users of the internal user store as the native API shows them (`/v1/admin/users`).
//!
//! A user on the wire is the core's [`User`] as the store keeps it: re-exported, not copied.

use serde::{Deserialize, Serialize};

pub use countersign_core::user::User;

/// `GET /v1/admin/users`: the internal users, of one realm when asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserList {
    /// The users.
    pub users: Vec<User>,
}

/// `POST /v1/admin/users`: a new internal user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The login, unique within its realm.
    pub login: String,
    /// The realm; `None`: the default realm.
    pub realm: Option<String>,
    /// The user's e-mail address.
    pub email: Option<String>,
    /// The user's phone number.
    pub phone: Option<String>,
    /// The user's given name.
    pub given_name: Option<String>,
    /// The user's surname.
    pub surname: Option<String>,
}
