//! Tokens as the native API shows them (`/v1/admin/tokens`).

use serde::{Deserialize, Serialize};

/// What list/show report of a token: everything but its secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    /// The token's serial.
    pub serial: String,
    /// The token type (`hotp`, `totp`, ...); `type` in JSON.
    #[serde(rename = "type")]
    pub token_type: String,
    /// The token plugin that checks the token.
    pub plugin: String,
    /// The plugin's options as JSON (digits, hash, step, validity period, ...).
    pub params: serde_json::Value,
    /// How far a check searches: HOTP counters ahead, TOTP time steps on either side of now.
    pub otp_window: u32,
    /// HOTP: the next counter a code may have; TOTP: the first time step that may be accepted.
    pub counter: u64,
    /// TOTP: the clock drift learned, in time steps; 0 otherwise.
    pub drift: i64,
    /// Whether the token has a PIN (its verifier, never shown, is stored).
    pub pin_set: bool,
    /// Failed checks counted since the last accept or reset.
    pub fail_count: u32,
    /// The `fail_count` at which the token locks.
    pub max_fail: u32,
    /// Seconds after the last failure at which a locked token opens again; 0: only an admin reset
    /// opens it.
    pub fail_clear_s: u32,
    /// When the last failure was counted, in milliseconds since the Unix epoch; `None`: none since
    /// the last admin reset or resync.
    pub last_fail_ms: Option<i64>,
    /// When the token last accepted a check, in milliseconds since the Unix epoch; `None`: never.
    pub last_auth_ms: Option<i64>,
    /// Whether the token is enabled.
    pub active: bool,
    /// Whether the token was revoked (for good).
    pub revoked: bool,
    /// The owner's login; `None`: assigned to no one.
    pub user: Option<String>,
    /// The owner's realm; `None`: assigned to no one.
    pub realm: Option<String>,
    /// The admin's description; empty when none was given.
    pub description: String,
    /// When the token was stored, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Challenge-response tokens: the phone number or address codes go to; `None`: the owner's.
    pub recipient: Option<String>,
    /// The card the token lives on (`yubikey 12345678`, `piv 1234`), for hardware-enrolled tokens.
    pub device: Option<String>,
    /// Where the owner lives: a resolver's name, or `None` for the internal user store.
    pub resolver: Option<String>,
    /// The owner's id in their resolver (a directory's stable id, an internal user's row id);
    /// `None` without an owner, or for a directory owner not bound to a stable id yet.
    pub user_id: Option<String>,
}
