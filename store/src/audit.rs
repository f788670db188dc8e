//! The audit's rows: the signature audit (one row per signing or verification request) and
//! the authentication audit (one row per check or token-administration event), how they are
//! read back, and the signature audit's filters. Rows are written, each with its chain link, by the
//! chain module.
//!
//! Rows record a SHA-256 of the signed input, never the input itself.

use crate::db::{Param, Row};
use countersign_core::caller::Caller;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// One signing-service request (sign, verify, public-key, list-keys) as the signature audit records
/// it. Written before the answer: a request whose row cannot be committed gets no signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignatureAuditRow {
    /// The row's id in `signature_audit`, given when it is inserted; 0 on a row not written yet.
    #[serde(default)]
    pub id: i64,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The caller's Unix uid, from `SO_PEERCRED` on the socket (not what the caller claims).
    pub uid: u32,
    /// The caller's process id from `SO_PEERCRED`, when the kernel gave one.
    pub pid: Option<i32>,
    /// The name of the integration registered for `uid` at the time; `None`: the uid was not
    /// registered.
    pub integration: Option<String>,
    /// What was asked: `sign`, `verify`, `public-key` or `list-keys`.
    pub operation: String,
    /// The application key the request named (`*` for `list-keys`).
    pub key_name: String,
    /// The key version the request resolved to; `None` when it was refused before one was chosen.
    pub key_version: Option<u32>,
    /// The signature scheme used (sign and verify only); `None` when refused before one was chosen.
    pub scheme: Option<String>,
    /// The hash algorithm used with `scheme`; `None` for Ed25519, which takes none, or when refused
    /// before one was chosen.
    pub hash: Option<String>,
    /// What the caller sent: `message`, or a `digest` it computed itself.
    pub input_kind: Option<String>,
    /// SHA-256 of what the caller sent (the message, or the digest); hex in JSON.
    #[serde(default, with = "hex_digest")]
    pub input_sha256: Option<Vec<u8>>,
    /// ok | invalid | denied | error
    pub result: String,
    /// Why the request failed or was refused, in words; `None` on success.
    pub detail: Option<String>,
}

/// The columns [`SignatureAuditRow::from_row`] reads, in its order.
pub(crate) const SIGNATURE_COLUMNS: &str =
    "id, at_ms, uid, pid, integration, operation, key_name, key_version, scheme, hash, input_kind, input_sha256, \
     result, detail";

impl SignatureAuditRow {
    /// The row whose [`SIGNATURE_COLUMNS`] start at column `at` of `r`.
    pub(crate) fn from_row(r: &Row<'_>, at: usize) -> Result<SignatureAuditRow, StoreError> {
        Ok(SignatureAuditRow {
            id: r.get(at)?,
            at_ms: r.get(at + 1)?,
            uid: r.get(at + 2)?,
            pid: r.get(at + 3)?,
            integration: r.get(at + 4)?,
            operation: r.get(at + 5)?,
            key_name: r.get(at + 6)?,
            key_version: r.get(at + 7)?,
            scheme: r.get(at + 8)?,
            hash: r.get(at + 9)?,
            input_kind: r.get(at + 10)?,
            input_sha256: r.get(at + 11)?,
            result: r.get(at + 12)?,
            detail: r.get(at + 13)?,
        })
    }
}

/// One authentication or token-administration event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthAuditRow {
    /// The row's id in `auth_audit`, given when it is inserted; 0 on a row not written yet.
    #[serde(default)]
    pub id: i64,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who asked: `uid:N` on a socket, `ip:ADDR` on the HTTP listener, or the daemon itself
    /// (`daemon`, `countersignd`) for its own events.
    pub caller: String,
    /// What was done: `validate/check`, `token/init`, `token/reset`, `plugin/restart`, ...
    pub action: String,
    /// The token the event is about, if one.
    pub serial: Option<String>,
    /// The login of the user the event is about, as the request or the admin named it; `None`: no
    /// user named.
    pub login: Option<String>,
    /// The realm of the user the event is about; `None`: no user, or none named.
    pub realm: Option<String>,
    /// accept | reject | ok | refused | error
    pub result: String,
    /// More about the outcome in words (a reject's or an error's reason); `None`: nothing to add.
    pub detail: Option<String>,
    /// The resolver the user was found through.
    #[serde(default)]
    pub resolver: Option<String>,
    /// The caller's network address (HTTP callers); none on the sockets.
    #[serde(default)]
    pub client: Option<String>,
    /// The policies that decided, comma-separated.
    #[serde(default)]
    pub policies: Option<String>,
    /// How long the request took until this row was written.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// The resolved user the row is about ([`Owner::key`]), which per-user limits count by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The columns [`AuthAuditRow::from_row`] reads, in its order.
pub(crate) const AUTH_COLUMNS: &str =
    "id, at_ms, caller, action, serial, login, realm, result, detail, resolver, client, policies, duration_ms, owner";

impl AuthAuditRow {
    /// The row whose [`AUTH_COLUMNS`] start at column `at` of `r`.
    pub(crate) fn from_row(r: &Row<'_>, at: usize) -> Result<AuthAuditRow, StoreError> {
        Ok(AuthAuditRow {
            id: r.get(at)?,
            at_ms: r.get(at + 1)?,
            caller: r.get(at + 2)?,
            action: r.get(at + 3)?,
            serial: r.get(at + 4)?,
            login: r.get(at + 5)?,
            realm: r.get(at + 6)?,
            result: r.get(at + 7)?,
            detail: r.get(at + 8)?,
            resolver: r.get(at + 9)?,
            client: r.get(at + 10)?,
            policies: r.get(at + 11)?,
            duration_ms: r.get(at + 12)?,
            owner: r.get(at + 13)?,
        })
    }

    /// A row stamped now for `caller`, naming no token, user or detail yet.
    pub fn new(caller: &Caller, action: impl Into<String>, result: impl Into<String>) -> AuthAuditRow {
        AuthAuditRow {
            id: 0,
            at_ms: crate::now_ms(),
            client: caller.client().map(|ip| ip.to_string()),
            caller: caller.to_string(),
            action: action.into(),
            serial: None,
            login: None,
            realm: None,
            result: result.into(),
            detail: None,
            resolver: None,
            policies: None,
            duration_ms: None,
            owner: None,
        }
    }
}

/// The digest travels as hex in JSON and as bytes in the database.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?.map(|h| hex::decode(h).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Filters for reading the audit, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only requests that named this application key.
    pub key: Option<String>,
    /// Only requests from this Unix uid.
    pub uid: Option<u32>,
    /// Only rows with this result (`ok`, `invalid`, `denied`, `error`).
    pub result: Option<String>,
    /// Only rows with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many rows; 100 when `None`, never more than 10,000.
    pub limit: Option<u32>,
}

impl Store {
    /// The signature audit rows that match `q`, newest first.
    pub fn signature_audit(&self, q: &AuditQuery) -> Result<Vec<SignatureAuditRow>, StoreError> {
        let mut sql = format!("SELECT {SIGNATURE_COLUMNS} FROM signature_audit WHERE 1=1");
        let mut args: Vec<Box<dyn Param>> = Vec::new();
        if let Some(k) = &q.key {
            args.push(Box::new(k.clone()));
            sql.push_str(&format!(" AND key_name = ?{}", args.len()));
        }
        if let Some(u) = q.uid {
            args.push(Box::new(u));
            sql.push_str(&format!(" AND uid = ?{}", args.len()));
        }
        if let Some(r) = &q.result {
            args.push(Box::new(r.clone()));
            sql.push_str(&format!(" AND result = ?{}", args.len()));
        }
        if let Some(b) = q.before_id {
            args.push(Box::new(b));
            sql.push_str(&format!(" AND id < ?{}", args.len()));
        }
        args.push(Box::new(i64::from(q.limit.unwrap_or(100).min(10_000))));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let args: Vec<&dyn Param> = args.iter().map(|a| a.as_ref() as &dyn Param).collect();
        self.read(|conn| conn.query_map(&sql, &args, |r| SignatureAuditRow::from_row(r, 0)))
    }
}
