//! Signing applications and integrations as the native API shows them
//! (`/v1/admin/applications`, `/v1/admin/integrations`).
//!
//! The engine makes these of the store's rows: a key version's public key is never on the
//! wire, and its HSM key id is written as hex.

use countersign_core::keys::KeyAlgorithm;
use serde::{Deserialize, Serialize};

/// Where a key version is in its life; `active` or `retired` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// The version new signatures are made with.
    Active,
    /// Kept so earlier signatures still verify; never signs again.
    Retired,
}

/// One version of an application's master keypair (the HSM holds the private key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyVersion {
    /// The version number, from 1, one more at each rotation.
    pub version: u32,
    /// The keypair's algorithm (the application's).
    pub algorithm: KeyAlgorithm,
    /// The keypair's CKA_ID on the HSM, as lower-case hex.
    pub key_id: String,
    /// The keypair's CKA_LABEL, for operators using pkcs11-tool.
    pub label: String,
    /// Active (signs) or retired (only verifies).
    pub state: KeyState,
    /// When the version was recorded, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When it was retired, in seconds since the Unix epoch; `None` while active.
    pub retired_at: Option<i64>,
}

/// A signing application: a named key with versioned master keypairs in the HSM. Create,
/// show and rotate answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Application {
    /// The application's row id.
    pub id: i64,
    /// The application's unique name, which callers name its key by.
    pub name: String,
    /// The algorithm of every one of its key versions.
    pub algorithm: KeyAlgorithm,
    /// When the application was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Its key versions, oldest first.
    pub versions: Vec<KeyVersion>,
}

impl Application {
    /// The version new signatures are made with; `None` if none is active.
    pub fn active(&self) -> Option<&KeyVersion> {
        self.versions.iter().find(|v| v.state == KeyState::Active)
    }
}

/// `GET /v1/admin/applications`: every application with its key versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplicationList {
    /// The applications, by name.
    pub applications: Vec<Application>,
}

/// A local service allowed to ask for signatures: a Unix uid with a name and its grants.
/// Create, grant and revoke answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Integration {
    /// The integration's row id.
    pub id: i64,
    /// The integration's unique name.
    pub name: String,
    /// The Unix uid its requests come from (`SO_PEERCRED`).
    pub uid: u32,
    /// When it was registered, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Names of the applications whose keys it may use.
    pub grants: Vec<String>,
}

/// `GET /v1/admin/integrations`: every integration with its grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrationList {
    /// The integrations, by name.
    pub integrations: Vec<Integration>,
}
