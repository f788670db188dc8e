//! The signature audit: one row per signing or verification request, written by a group-commit
//! writer thread and acknowledged only after its transaction committed.
//!
//! Rows record a SHA-256 of the signed input, never the input itself.

use std::sync::mpsc;

use rusqlite::{params, Connection, ToSql};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Rows committed in one transaction at most.
const MAX_BATCH: usize = 512;

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
    /// Hex SHA-256 of the signed or verified input.
    pub input_sha256: Option<String>,
    /// ok | invalid | denied | error
    pub result: String,
    pub detail: Option<String>,
}

type Job = (SignatureAuditRow, oneshot::Sender<Result<i64, String>>);

/// Hands audit rows to the writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
}

impl AuditWriter {
    pub(super) fn start(
        conn: Connection,
        checkpointer: Connection,
    ) -> Result<AuditWriter, StoreError> {
        // The writer never checkpoints (that would stall every request waiting on its commit);
        // a second connection checkpoints in the background instead.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer))
            .map_err(|e| StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        Ok(AuditWriter { tx })
    }

    /// Records `row` and waits until it is committed; returns its id.
    pub async fn record(&self, row: SignatureAuditRow) -> Result<i64, StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((row, ack))
            .map_err(|_| StoreError::AuditStopped)?;
        match done.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(msg)) => Err(StoreError::Sql(rusqlite::Error::InvalidParameterName(msg))),
            Err(_) => Err(StoreError::AuditStopped),
        }
    }
}

/// Copies the WAL back into the database once a second, without blocking writers (PASSIVE).
fn checkpoint_loop(conn: Connection) {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match insert_batch(&mut conn, &batch) {
            Ok(ids) => {
                for ((_, ack), id) in batch.drain(..).zip(ids) {
                    let _ = ack.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "signature audit write failed");
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn insert_batch(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(batch.len());
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO signature_audit (at_ms, uid, pid, integration, operation, key_name, key_version, scheme, hash,
                                          input_sha256, result, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for (r, _) in batch {
            let digest = r.input_sha256.as_deref().and_then(|h| hex::decode(h).ok());
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
                digest,
                r.result,
                r.detail
            ])?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit()?;
    Ok(ids)
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
        let mut sql = String::from(
            "SELECT id, at_ms, uid, pid, integration, operation, key_name, key_version, scheme, hash, input_sha256,
                    result, detail FROM signature_audit WHERE 1=1",
        );
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
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let digest: Option<Vec<u8>> = r.get(10)?;
            Ok(SignatureAuditRow {
                id: r.get(0)?,
                at_ms: r.get(1)?,
                uid: r.get(2)?,
                pid: r.get(3)?,
                integration: r.get(4)?,
                operation: r.get(5)?,
                key_name: r.get(6)?,
                key_version: r.get(7)?,
                scheme: r.get(8)?,
                hash: r.get(9)?,
                input_sha256: digest.map(hex::encode),
                result: r.get(11)?,
                detail: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
