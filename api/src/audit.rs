//! The audit trail as the native API shows it (`/v1/admin/audit`).
//!
//! `audit verify` answers the core's [`ChainReport`] as the store's walk of the chain made it:
//! re-exported, not copied. The signature audit's and the authentication audit's rows are
//! the engine's copies of the store's rows, as `GET /v1/admin/audit/signatures` and
//! `GET /v1/admin/audit/auth` answer them.

use serde::{Deserialize, Serialize};

pub use countersign_core::audit_chain::{ChainProblem, ChainReport};

/// One signing-service request (sign, verify, public-key, list-keys) as the signature audit
/// recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureAuditRow {
    /// The row's id.
    pub id: i64,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The caller's Unix uid, from `SO_PEERCRED` on the socket.
    pub uid: u32,
    /// The caller's process id, when the kernel gave one.
    pub pid: Option<i32>,
    /// The integration registered for `uid` at the time; `None`: the uid was not registered.
    pub integration: Option<String>,
    /// What was asked: `sign`, `verify`, `public-key` or `list-keys`.
    pub operation: String,
    /// The application key the request named (`*` for `list-keys`).
    pub key_name: String,
    /// The key version the request resolved to; `None` when refused before one was chosen.
    pub key_version: Option<u32>,
    /// The signature scheme used (sign and verify only).
    pub scheme: Option<String>,
    /// The hash algorithm used with `scheme`; `None` for Ed25519, or when refused early.
    pub hash: Option<String>,
    /// What the caller sent: `message`, or a `digest` it computed itself.
    pub input_kind: Option<String>,
    /// SHA-256 of what the caller sent, as lower-case hex.
    pub input_sha256: Option<String>,
    /// `ok`, `invalid`, `denied` or `error`.
    pub result: String,
    /// Why the request failed or was refused, in words; `None` on success.
    pub detail: Option<String>,
}

/// `GET /v1/admin/audit/signatures`: the signature audit rows asked for, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureAudit {
    /// The rows.
    pub rows: Vec<SignatureAuditRow>,
}

/// One authentication or token-administration event as the authentication audit recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAuditRow {
    /// The row's id.
    pub id: i64,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who asked: `uid:N` on a socket, `ip:ADDR` on the HTTP listener, or the daemon itself.
    pub caller: String,
    /// What was done: `validate/check`, `token/init`, `token/reset`, ...
    pub action: String,
    /// The token the event is about, if one.
    pub serial: Option<String>,
    /// The login of the user the event is about; `None`: no user named.
    pub login: Option<String>,
    /// The realm of the user the event is about; `None`: no user, or none named.
    pub realm: Option<String>,
    /// `accept`, `reject`, `ok`, `refused` or `error`.
    pub result: String,
    /// More about the outcome in words; `None`: nothing to add.
    pub detail: Option<String>,
    /// The resolver the user was found through.
    pub resolver: Option<String>,
    /// The caller's network address (HTTP callers); none on the sockets.
    pub client: Option<String>,
    /// The policies that decided, comma-separated.
    pub policies: Option<String>,
    /// How long the request took until the row was written.
    pub duration_ms: Option<i64>,
    /// The resolved user the row is about, which per-user limits count by; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `GET /v1/admin/audit/auth`: the authentication audit rows asked for, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthAudit {
    /// The rows.
    pub rows: Vec<AuthAuditRow>,
}
