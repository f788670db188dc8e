//! The signature audit: one row per signing or verification request. Rows are written in
//! batches by the executor's workers (one transaction per batch) and read back with
//! filters here.
//!
//! Rows record a SHA-256 of the signed input, never the input itself.

use rusqlite::{params, ToSql};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignatureAuditRow {
    #[serde(default)]
    pub id: i64,
    pub at_ms: i64,
    pub uid: u32,
    pub pid: Option<i32>,
    pub integration: Option<String>,
    pub operation: String,
    pub key_name: String,
    pub key_version: Option<u32>,
    pub scheme: Option<String>,
    pub hash: Option<String>,
    /// What the caller sent: `message`, or a `digest` it computed itself.
    pub input_kind: Option<String>,
    /// SHA-256 of what the caller sent (the message, or the digest); hex in JSON.
    #[serde(default, with = "hex_digest")]
    pub input_sha256: Option<Vec<u8>>,
    /// ok | invalid | denied | error
    pub result: String,
    pub detail: Option<String>,
}

/// The columns [`SignatureAuditRow::from_row`] reads, in its order.
pub(crate) const SIGNATURE_COLUMNS: &str =
    "id, at_ms, uid, pid, integration, operation, key_name, key_version, scheme, hash, input_kind, input_sha256, \
     result, detail";

impl SignatureAuditRow {
    /// The row whose [`SIGNATURE_COLUMNS`] start at column `at` of `r`.
    pub(crate) fn from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SignatureAuditRow> {
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

/// Inserts `rows` in the caller's transaction and returns their ids, in order.
pub(crate) fn insert_signature_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[&SignatureAuditRow],
) -> rusqlite::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO signature_audit (at_ms, uid, pid, integration, operation, key_name, key_version, scheme, hash,
                                          input_kind, input_sha256, result, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for r in rows {
            st.execute(params![
                r.at_ms,
                r.uid,
                r.pid,
                r.integration,
                r.operation,
                r.key_name,
                r.key_version,
                r.scheme,
                r.hash,
                r.input_kind,
                r.input_sha256,
                r.result,
                r.detail
            ])?;
            let id = tx.last_insert_rowid();
            super::chain::link(tx, super::chain::ChainTable::Signature, id, r.at_ms, |prev| {
                super::chain::signature_link(prev, id, r)
            })?;
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The digest travels as hex in JSON and as bytes in the database.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?.map(|h| hex::decode(h).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Filters for reading the audit, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub key: Option<String>,
    pub uid: Option<u32>,
    pub result: Option<String>,
    /// Only rows with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

impl Store {
    pub fn signature_audit(&self, q: &AuditQuery) -> Result<Vec<SignatureAuditRow>, StoreError> {
        let mut sql = format!("SELECT {SIGNATURE_COLUMNS} FROM signature_audit WHERE 1=1");
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
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
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| SignatureAuditRow::from_row(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
