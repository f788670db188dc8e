//! Users as the appliance knows them: a user of the internal user store (the store keeps it,
//! the native API shows it), and a user as a resolver found them in its source (the engine
//! resolves them, `resolver test` shows them).

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

/// A user as a resolver found them, straight from the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The login as the source spells it.
    pub login: String,
    /// The user's stable id in its source (LDAP: the mapped uid attribute, else the DN;
    /// passwd: the numeric uid; internal: the row id).
    pub uid: String,
    /// The e-mail address, when the source has one.
    pub email: Option<String>,
    /// A phone number, when the source has one (passwd: the home-phone field of GECOS).
    pub phone: Option<String>,
    /// A mobile number apart from `phone`, where the source has one (passwd: the office-phone
    /// field of GECOS, as privacyIDEA reads it); text messages go here first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// The given name, when the source has one.
    pub given_name: Option<String>,
    /// The surname, when the source has one.
    pub surname: Option<String>,
    /// Free text about the user (passwd: the whole GECOS field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The resolver that found the user.
    pub resolver: String,
}
