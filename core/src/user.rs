//! A user of the internal user store: the store keeps it, the native API shows it.

use serde::{Deserialize, Serialize};

/// A user of the internal user store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// The login, unique within its realm.
    pub login: String,
    /// The realm's name; empty when creating a user means the default realm.
    pub realm: String,
    /// The user's e-mail address; `None`: none recorded.
    pub email: Option<String>,
    /// The user's phone number; `None`: none recorded.
    pub phone: Option<String>,
    /// The user's given name; `None`: none recorded.
    pub given_name: Option<String>,
    /// The user's surname; `None`: none recorded.
    pub surname: Option<String>,
}
