//! The appliance's persistent state in SQLite (WAL, foreign keys on), behind one type whose
//! methods speak in domain types. Services call these methods and never write SQL, so a
//! PostgreSQL backend later replaces this module, not the services.
//!
//! The store never holds key material: master keypairs are referenced by their HSM CKA_ID.
//!
//! Every write transaction is `BEGIN IMMEDIATE`: a deferred one that reads first and writes
//! later fails at once ("database is locked") when another connection committed in between,
//! which `busy_timeout` cannot wait out.

mod api_access;
mod audit;
pub mod chain;
mod challenges;
mod gateways;
mod gauges;
mod hardware;
mod jobs;
mod keys;
mod migrate;
mod policies;
mod resolvers;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use crate::config::Synchronous;

pub use api_access::{ApiAdminView, ServiceAccountView};
pub(crate) use audit::insert_signature_rows;
pub use audit::{AuditQuery, SignatureAuditRow};
pub use challenges::{open_challenges, AttemptRow, DeliveryRecord, DeliveryView, OpenChallenge, RoundOutcome};
pub use gateways::{GatewayRecord, GatewayView, SmtpServer, SmtpTls, Transport};
pub use gauges::{store_answers, store_gauges, StoreGauges};
pub use hardware::{token_certificate, CaRecord, CertificateRow, DeviceRecord, DeviceView, SystemCertificate};
pub use jobs::JobRun;
pub use keys::{Application, Integration, KeyState, KeyVersion, NewKeyVersion};
pub use migrate::MIGRATIONS;
pub use policies::PolicyRecord;
pub use resolvers::{InternalUser, RealmRecord, ResolverRecord};
pub(crate) use tokens::commit_check;
pub use tokens::{
    change, recent_audit, recent_owner_checks, recorded_owner_key, throttle_state, token_for_check, tokens_of_owner,
    unknown_owner_key, AuthAuditQuery, AuthAuditRow, CheckRecord, CheckTarget, DirectoryUser, FailedToken, NewToken,
    Owner, RecentAudit, ThrottleEffect, ThrottleState, TokenEffect, TokenRecord, TokenView, User,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("migration {version} ({name}) was changed after it was applied; restore the original file")]
    MigrationEdited { version: u32, name: String },
    #[error("the database was written by a newer Countersign (schema version {0}); upgrade countersignd")]
    TooNew(u32),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the audit writer has stopped")]
    AuditStopped,
}

/// The store. Admin reads and writes share one connection; the executor's workers write the
/// signature audit on connections of their own ([`Store::writer_connection`]).
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    sync: Synchronous,
}

pub(crate) fn connect(path: &Path, sync: Synchronous) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;"
    ))?;
    // Query planner stability: without it, SQLite (built with STAT4) re-prepares a statement
    // whenever a new value is bound to some parameters, which on the validation path cost more
    // than the query itself. Our queries are point look-ups whose plan never depends on values.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let mut conn = connect(path, sync)?;
        migrate::apply(&mut conn)?;
        Ok(Store { conn: Mutex::new(conn), path: path.to_owned(), sync })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction drops the Transaction, which rolls back; the connection
        // itself stays usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for a hot-path writer. It never checkpoints the WAL itself (that would
    /// stall the requests waiting on its commit): [`Store::start_checkpointer`] does.
    pub fn writer_connection(&self) -> Result<Connection, StoreError> {
        let conn = connect(&self.path, self.sync)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(conn)
    }

    /// A read-only connection for a worker thread's hot-path reads.
    pub fn reader_connection(&self) -> Result<Connection, StoreError> {
        let conn = connect(&self.path, self.sync)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Copies the WAL back into the database once a second on a thread of its own, without
    /// blocking writers (PASSIVE checkpoints).
    pub fn start_checkpointer(&self) -> Result<(), StoreError> {
        let conn = connect(&self.path, self.sync)?;
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            })
            .map_err(|e| StoreError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A unique-constraint violation as `duplicate()` says it; any other error as it is.
fn unique_as(e: rusqlite::Error, duplicate: impl FnOnce() -> StoreError) -> StoreError {
    if is_unique_violation(&e) {
        duplicate()
    } else {
        e.into()
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
