//! PowerAuth applications, their versions and activation codes as the native API shows them
//! (`/v1/admin/powerauth/...`).
//!
//! APP_SECRET is on the wire only in the two answers made to show it (a new version, and
//! `show --secret`), as a [`SecretString`]; an activation code likewise, since it is a bearer
//! credential until the activation it starts is committed. Everything else here is public.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::secret::expose;

/// One version of a PowerAuth application (never its APP_SECRET).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerAuthVersion {
    /// The version's name, unique in its application.
    pub name: String,
    /// APP_KEY: 16 random bytes, Base64 (the SDK sends it; no secret).
    pub app_key: String,
    /// Whether clients of this version may activate and sign.
    pub supported: bool,
    /// When the version was added, in seconds since the Unix epoch.
    pub created_at: i64,
}

/// A PowerAuth application: its master public key and versions. Create and show answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerAuthApplication {
    /// The application's (and its signing application's) unique name.
    pub name: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// The master key pair's CKA_ID on the HSM, as lower-case hex.
    pub master_key_id: String,
    /// The master public key (P-256) as PowerAuth configures it in the mobile SDK: the
    /// uncompressed SEC1 point, Base64.
    pub master_public_key: String,
    /// Its versions, oldest first.
    pub versions: Vec<PowerAuthVersion>,
    /// Its roles, sorted: answered with every signature verification, for the back-end to
    /// authorise by.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Its configuration, by key: each a JSON array.
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The body of `POST /v1/admin/powerauth/applications/{name}/roles`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// Roles to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Roles to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// The body of `PUT /v1/admin/powerauth/applications/{name}/config/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigValues {
    /// The values: a JSON array.
    pub values: serde_json::Value,
}

/// `GET /v1/admin/powerauth/applications`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerAuthApplicationList {
    /// The applications, by name.
    pub applications: Vec<PowerAuthApplication>,
}

/// A version with its APP_SECRET: the answer of `version-add` and of `show --secret`, the only
/// two places the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerAuthVersionSecret {
    /// The application's name.
    pub application: String,
    /// The version.
    pub version: PowerAuthVersion,
    /// APP_SECRET: 16 bytes from the HSM's generator, Base64.
    #[serde(serialize_with = "expose")]
    pub app_secret: SecretString,
}

/// The body of `POST /v1/admin/powerauth/applications`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPowerAuthApplication {
    /// The new application's name.
    pub name: String,
}

/// The body of `POST /v1/admin/powerauth/applications/{name}/versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPowerAuthVersion {
    /// The new version's name.
    pub name: String,
}

/// The body of `POST /v1/admin/powerauth/applications/{name}/versions/{version}/support`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSupport {
    /// Supported (`true`) or not.
    pub supported: bool,
}

/// The body of `POST /v1/admin/powerauth/activations`: a new activation for a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewActivation {
    /// The PowerAuth application whose master key signs the code.
    pub application: String,
    /// The user id the bank knows the user by.
    pub user: String,
    /// Failed signatures that block it (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<i64>,
    /// Seconds it may wait for the phone and the commit (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<i64>,
    /// An activation OTP the user must type (sealed as a verifier; never stored in the clear).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::secret::expose_opt")]
    pub otp: Option<SecretString>,
    /// When the OTP is checked: `ON_KEY_EXCHANGE` (default with an OTP) or `ON_COMMIT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_validation: Option<String>,
}

/// An activation code and the master key's signature of it: what the QR code or deeplink
/// carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivationCodeIssued {
    /// The activation the code leads to.
    pub activation_id: String,
    /// Its user.
    pub user: String,
    /// When it expires unless the phone activates and it is committed, ms since the epoch.
    pub expires_ms: i64,
    /// The application whose master key signed it.
    pub application: String,
    /// `XXXXX-XXXXX-XXXXX-XXXXX`: 10 bytes from the HSM's generator and their CRC-16, Base32.
    #[serde(serialize_with = "expose")]
    pub activation_code: SecretString,
    /// ECDSA-SHA256 over the code's bytes by the master private key in the HSM, DER, Base64.
    pub activation_signature: String,
    /// `CODE#SIGNATURE`, the QR code's or deeplink's data.
    #[serde(serialize_with = "expose")]
    pub qr_data: SecretString,
}
