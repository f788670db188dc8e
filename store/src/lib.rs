//! The appliance's persistent state in SQLite (WAL, foreign keys on), behind one type whose
//! methods speak in domain types. Services call these methods and never write SQL, so a
//! PostgreSQL backend later replaces this module, not the services.
//!
//! The store never holds key material: master keypairs are referenced by their HSM CKA_ID.
//!
//! Every write transaction is `BEGIN IMMEDIATE`: a deferred one that reads first and writes
//! later fails at once ("database is locked") when another connection committed in between,
//! which `busy_timeout` cannot wait out.

#![warn(missing_docs, unreachable_pub)]

mod api_access;
mod audit;
pub mod backup;
pub mod chain;
mod challenges;
mod config_version;
mod console_users;
pub mod copy;
pub mod db;
mod gateways;
mod gauges;
mod handles;
mod hardware;
mod jobs;
mod keys;
mod login_throttle;
mod migrate;
mod owner_set;
mod policies;
mod powerauth;
mod powerauth_activations;
mod powerauth_operations;
mod powerauth_tokens;
mod push;
mod resolvers;
pub mod row_seals;
mod sealing;
pub mod seals;
#[cfg(test)]
mod testing;
mod tokens;
mod webauthn;
mod yubikey_clients;

use countersign_core::error::Refusal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use countersign_core::error::{Dependency, ErrorKind, Kinded};
use db::{args, Sql};
use rusqlite::Connection;

pub use api_access::{ApiAdminView, ServiceAccountView};
pub use audit::{AuditQuery, AuthAuditRow, SignatureAuditRow};
pub use challenges::{
    AttemptRow, ChallengeQuery, ChallengeRow, DeliveryRecord, DeliveryView, OpenChallenge, RoundOutcome,
};
pub use config_version::VersionWatch;
pub use console_users::{ConsoleCredential, ConsoleUserRow};
pub use countersign_core::check::{AfterAccept, CheckTarget, FailedToken, ThrottleEffect, ThrottleState, TokenEffect};
pub use db::pg::PgTarget;
pub use gateways::{GatewayRecord, SmtpServer, SmtpTls, Transport};
use gauges::store_commits;
pub use gauges::{free_bytes, StoreGauges};
pub use handles::{Committed, Reader, Record, Writer};
pub use hardware::{CaRecord, CertificateRow, DeviceRecord, DeviceView, SystemCertificate};
pub use jobs::JobRun;
pub use keys::{Application, Integration, KeyState, KeyVersion, NewKeyVersion};
pub use login_throttle::LoginLog;
pub use migrate::{MIGRATIONS, PG_MIGRATIONS};
pub use policies::PolicyRecord;
pub use powerauth::{NewPowerAuthVersion, PowerAuthAppKey, PowerAuthApplication, PowerAuthVersion};
pub use powerauth_activations::{
    Activation as PowerAuthActivation, ActivationChange, ActivationHistory, ActivationState, ActivationUpdate,
    KeyExchange, NewActivation, OtpValidation, TemporaryKey,
};
pub use powerauth_operations::{
    NewOperation, NewOperationTemplate, Operation as PowerAuthOperation, OperationStatus, OperationTemplate,
    OperationUpdate,
};
pub use powerauth_tokens::{MacToken, NewMacToken};
pub use push::{LastSeen, NewPushChallenge, PushAnswer, PushChallenge, PushStatus, TransactionState};
pub use resolvers::{InternalUser, RealmRecord, ResolverRecord};
pub use tokens::{
    recorded_owner_key, unknown_owner_key, AuditFacts, AuthAuditQuery, CheckRecord, DirectoryUser, NewToken, Owner,
    TokenChange, TokenRecord, Unusable, User, Validity, CLIENTWAIT, ENROLLED, ROLLOUT_STATE,
};
pub use webauthn::{OpenSignIn, Registration, WebauthnCredential};
pub use yubikey_clients::{Stored, YubikeyClientView};

/// Milliseconds since the Unix epoch: the wall clock rows and audit rows are stamped with.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How hard SQLite works to keep a commit across a power loss (`store.synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is on disk before it is answered.
    Full,
    /// A commit may be lost on power loss (never on a crash of the daemon); the WAL stays
    /// consistent.
    Normal,
}

/// What the database engine reported. Opaque on purpose: callers branch on [`StoreError`]'s
/// variants and on [`DbError::code`], never on an engine's own error codes, so every backend
/// reports the same way.
#[derive(Debug)]
pub struct DbError {
    code: db::DbCode,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl DbError {
    /// A failure the store itself found (a row missing, a value of the wrong type).
    pub(crate) fn other(text: String) -> DbError {
        DbError { code: db::DbCode::Other, source: text.into() }
    }

    /// A failure of kind `code` with `text` as its cause: for the engines, and for callers'
    /// tests of how they answer each kind.
    pub fn new(code: db::DbCode, text: &str) -> DbError {
        DbError { code, source: text.to_owned().into() }
    }

    /// What kind of failure it was.
    pub fn code(&self) -> db::DbCode {
        self.code
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// Why a store operation failed. Callers branch on the variant ([`Kinded`] maps each to a kind
/// of failure); the text is for people.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened (or its directory created).
    #[error("database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the engine or the file system said.
        source: DbError,
    },
    /// The database engine failed a statement.
    #[error("database: {0}")]
    Sql(DbError),
    /// An operating system call around the store failed (a thread that could not be started).
    #[error("{what}: {source}")]
    Io {
        /// What could not be done, in words.
        what: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An applied migration's SQL no longer matches what was applied: the store refuses to open.
    #[error("migration {version} ({name}) was changed after it was applied; restore the original file")]
    MigrationEdited {
        /// The migration's number.
        version: u32,
        /// The migration's name.
        name: String,
    },
    /// The database has a schema version (the one given) newer than this build knows.
    #[error("the database was written by a newer Countersign (schema version {0}); upgrade countersignd")]
    TooNew(u32),
    /// The request names something that does not exist or exists already, or cannot be
    /// carried out as asked; services pass it on unchanged.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The object's state forbids the change (a revoked token enabled again).
    #[error("{0}")]
    Revoked(String),
    /// The audit key (in the HSM) could not sign or check a checkpoint or anchor; the text
    /// says which. The chain is unchanged; the same request may succeed once the HSM answers.
    #[error("{0}")]
    AuditKey(String),
    /// A sealed table's content does not match its seal: changed outside the appliance.
    #[error("{0}; the database was edited behind Countersign's back: restore it from a backup (docs/operations.md, \"Backup and restore\") and find out who had write access to it")]
    Tampered(String),
    /// The HSM could not compute a seal: the change or read fails closed.
    #[error("{0}")]
    SealUnavailable(String),
}

/// Where the store's database is: a SQLite file (the embedded default) or a PostgreSQL
/// database that several appliances share.
#[derive(Debug, Clone)]
pub enum Location {
    /// A SQLite database file, and how hard commits are kept.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// `store.synchronous`.
        sync: Synchronous,
    },
    /// A PostgreSQL database.
    Postgres(Box<db::pg::PgTarget>),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite { path, .. } => write!(f, "sqlite:{}", path.display()),
            Location::Postgres(t) => write!(f, "postgres:{t}"),
        }
    }
}

/// The store. Admin reads and writes share one connection; the executor's workers read and
/// write on connections of their own ([`Store::reader`], [`Store::writer`]).
#[derive(Debug)]
pub struct Store {
    conn: Mutex<db::Conn>,
    location: Location,
    /// The HSM key of the table seals; set once at start, before the first change. Unset only
    /// in the store's own unit tests, which run without an HSM.
    seal_key: OnceLock<Arc<dyn seals::SealKey>>,
    /// PostgreSQL: the readiness probe's connection, kept between probes.
    probe: Mutex<Option<db::Conn>>,
}

pub(crate) fn connect(path: &Path, sync: Synchronous) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open { path: path.to_owned(), source: e.into() })?;
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
    // Every statement goes through `prepare_cached`. rusqlite keeps 16 by default, fewer than a
    // PowerAuth verification or a token check cycles through on one connection, so each was
    // evicted before its next use and compiled again every time (bench-powerauth: 28 % of the
    // daemon's CPU). The distinct statements are a few hundred at most, each a few KB.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Prepared statements kept per SQLite connection.
const STATEMENT_CACHE: usize = 256;

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Store, StoreError> {
        Store::open_at(&Location::Sqlite { path: path.to_owned(), sync })
    }

    /// Opens the database at `location` and applies pending migrations (on PostgreSQL under a
    /// lock, so nodes starting together apply each once).
    pub fn open_at(location: &Location) -> Result<Store, StoreError> {
        let mut conn = match location {
            Location::Sqlite { path, sync } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                        path: path.to_owned(),
                        source: DbError { code: db::DbCode::Unavailable, source: Box::new(e) },
                    })?;
                }
                db::Conn::Sqlite(connect(path, *sync)?)
            }
            Location::Postgres(target) => db::Conn::Pg(Box::new(db::pg::PgConn::open(target)?)),
        };
        migrate::apply(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            location: location.clone(),
            seal_key: OnceLock::new(),
            probe: Mutex::new(None),
        })
    }

    fn admin(&self) -> MutexGuard<'_, db::Conn> {
        // A panic mid-transaction rolls the transaction back (SQLite: the Transaction's drop;
        // PostgreSQL: the connection is dropped, which ends the transaction on the server, and
        // the next use connects anew); the connection stays usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A SQLite connection of its own to the store's file, for the store's unit tests that
    /// edit rows behind the store's back.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> Connection {
        match &self.location {
            Location::Sqlite { path, sync } => connect(path, *sync).unwrap_or_else(|e| panic!("{e}")),
            Location::Postgres(_) => panic!("the store's unit tests run on SQLite"),
        }
    }

    /// A handle for one executor worker's look-ups on the check path.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::open(self)
    }

    /// The hot path's writer, for group commits.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        Writer::open(self)
    }

    /// A connection for a hot-path writer. On SQLite it never checkpoints the WAL itself (that
    /// would stall the requests waiting on its commit): [`Store::start_checkpointer`] does.
    pub(crate) fn writer_connection(&self) -> Result<db::Conn, StoreError> {
        match &self.location {
            Location::Sqlite { path, sync } => {
                let conn = connect(path, *sync)?;
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                Ok(db::Conn::Sqlite(conn))
            }
            Location::Postgres(t) => Ok(db::Conn::Pg(Box::new(db::pg::PgConn::open(t)?))),
        }
    }

    /// A read-only connection for a worker thread's hot-path reads.
    pub(crate) fn reader_connection(&self) -> Result<db::Conn, StoreError> {
        match &self.location {
            Location::Sqlite { path, sync } => {
                let conn = connect(path, *sync)?;
                conn.pragma_update(None, "query_only", true)?;
                Ok(db::Conn::Sqlite(conn))
            }
            Location::Postgres(t) => {
                let conn = db::pg::PgConn::open(t)?;
                conn.batch("SET default_transaction_read_only = on")?;
                Ok(db::Conn::Pg(Box::new(conn)))
            }
        }
    }

    /// On SQLite, copies the WAL back into the database once a second on a thread of its own,
    /// without blocking writers (PASSIVE checkpoints). PostgreSQL checkpoints itself.
    pub fn start_checkpointer(&self) -> Result<(), StoreError> {
        let Location::Sqlite { path, sync } = &self.location else { return Ok(()) };
        let conn = connect(path, *sync)?;
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            })
            .map_err(|source| StoreError::Io { what: "the WAL checkpoint thread could not be started", source })?;
        Ok(())
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite database file's path; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::Sqlite { path, .. } => Some(path),
            Location::Postgres(_) => None,
        }
    }

    /// Which SQL engine the store runs on.
    pub fn dialect(&self) -> db::Dialect {
        match &self.location {
            Location::Sqlite { .. } => db::Dialect::Sqlite,
            Location::Postgres(_) => db::Dialect::Postgres,
        }
    }

    /// Runs `f` on the admin connection outside any transaction: each statement sees what was
    /// committed when it ran, and each write commits on its own. For single look-ups, listings
    /// that need no consistent view, and writes that are one statement with no audit row and
    /// no sealed row (a delivery's claim, an unreserved challenge, a job's lease): such a
    /// statement is atomic alone, and on PostgreSQL its row lock, not the write lock
    /// ([`db::WRITE_LOCK`], which orders the audit chain's links), settles a race. Anything
    /// that writes an audit row or a sealed row goes through [`Store::write`].
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(self.admin().sql())
    }

    /// Runs `f` in a read transaction: every statement sees the database as it was when the
    /// first one ran.
    pub(crate) fn snapshot<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.admin().snapshot(f)
    }

    /// Runs `f` in a write transaction, committed when `f` returns `Ok` and rolled back when
    /// it returns an error (nothing of it is kept). SQLite takes the write lock at the start
    /// (`BEGIN IMMEDIATE`, see the module's doc).
    pub(crate) fn write<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.admin().write(f)
    }

    /// Runs `f` on a connection of its own, outside any transaction: for jobs that read much
    /// and must not hold the admin connection meanwhile.
    pub(crate) fn read_apart<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(self.reader_connection()?.sql())
    }

    /// Runs `f` in a read transaction on a connection of its own (one consistent view for a
    /// long walk, without holding the admin connection).
    pub(crate) fn snapshot_apart<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.reader_connection()?.snapshot(f)
    }

    /// Runs `f` in a write transaction on a connection of its own (jobs: checkpoints,
    /// retention), committed when it returns `Ok`.
    pub(crate) fn write_apart<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.writer_connection()?.write(f)
    }

    /// Starts sealing with `key`. `adopt`: seal every table as it is now (the key was just
    /// generated, on the first start with sealing); otherwise every seal must verify, or the
    /// store refuses with [`StoreError::Tampered`].
    pub fn start_sealing(&self, key: Arc<dyn seals::SealKey>, adopt: bool) -> Result<(), StoreError> {
        let adopted = self.write(|tx| sealing::start(tx, key.as_ref(), adopt, crate::now_ms()))?;
        if !adopted.is_empty() {
            tracing::info!(tables = ?adopted, "sealed tables as they are (first start that seals them)");
        }
        self.seal_key
            .set(key)
            .map_err(|_| StoreError::Refused(Refusal::Invalid("table sealing was started twice".into())))
    }

    /// Checks the seals of `tables` first thing in a change's transaction `tx` (and on reads of
    /// the gateways, which are not held in memory): a table edited behind the daemon's back
    /// while it runs is refused here, before a change would seal the edit in or the daemon act
    /// on what the edit says.
    pub(crate) fn check_seals(&self, tx: &dyn Sql, tables: &[&str]) -> Result<(), StoreError> {
        match self.seal_key.get() {
            Some(key) => seals::verify(tx, key.as_ref(), tables),
            None => Ok(()),
        }
    }

    /// Changes sealed tables, the one way they change: in one write transaction the seals
    /// of `tables` are checked first (a table edited behind the appliance's back is refused
    /// before the change could seal the edit in), `change` runs, `audit` is written (what is
    /// not recorded is not done), the seals of `tables` are renewed, and all of it commits
    /// together. An error from `change` (or any step) rolls everything back: nothing changed,
    /// nothing audited.
    pub(crate) fn sealed_change<T>(
        &self,
        tables: &[&str],
        audit: &AuthAuditRow,
        change: impl FnOnce(&dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write(|tx| {
            self.check_seals(tx, tables)?;
            let out = change(tx)?;
            chain::insert_audit(tx, audit)?;
            self.reseal(tx, tables)?;
            Ok(out)
        })
    }

    /// Renews the seals of `tables` inside the change's transaction `tx`.
    /// Also moves the configuration version on, so appliances sharing the database learn
    /// of the change ([`Store::config_version`]).
    pub(crate) fn reseal(&self, tx: &dyn Sql, tables: &[&str]) -> Result<(), StoreError> {
        if !tables.is_empty() {
            tx.execute("UPDATE config_version SET version = version + 1 WHERE id = 1", args![])?;
        }
        match self.seal_key.get() {
            Some(key) => seals::reseal(tx, key.as_ref(), tables, crate::now_ms()),
            None => Ok(()),
        }
    }

    /// The row seals' handle ([`row_seals`]), for readers and writers of tokens and users.
    pub fn row_seals(&self) -> row_seals::RowSeals {
        row_seals::RowSeals::new(self.seal_key.get().cloned())
    }

    /// Deletes the row of the sealed `table` whose `key_column` is `key`, writes its audit row
    /// and renews the table's seal, in one transaction; without such a row nothing changes and
    /// the answer is a [`Refusal::NotFound`](countersign_core::error::Refusal::NotFound) naming `what`. `table` and `key_column` are the
    /// code's own names, never a request's.
    pub(crate) fn delete_sealed_row(
        &self,
        table: &'static str,
        key_column: &'static str,
        key: &str,
        what: &str,
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&[table], audit, |tx| {
            if tx.execute(&format!("DELETE FROM {table} WHERE {key_column} = ?1"), args![key])? == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("{what} {key}"))));
            }
            Ok(())
        })
    }

    /// Whether the store can take writes: on SQLite at least `min_free` bytes free where the
    /// database lives, and on every engine a probe row update commits.
    /// The reason when not, in words an operator acts on.
    pub fn check_writable(&self, min_free: u64, now_ms: i64) -> Result<(), String> {
        if let Location::Sqlite { path, .. } = &self.location {
            Self::check_free(path, min_free)?;
        }
        // SQLite: a fresh connection each time (cheap, and it proves the file opens). PostgreSQL:
        // one kept connection, which reconnects by itself after a break, so probes do not open a
        // server session each.
        if self.dialect() == db::Dialect::Sqlite {
            let mut conn =
                self.writer_connection().map_err(|e| format!("the database cannot be opened for writing: {e}"))?;
            return store_commits(&mut conn, now_ms).map_err(|e| format!("the database cannot commit a write: {e}"));
        }
        let mut probe = self.probe.lock().unwrap_or_else(PoisonError::into_inner);
        if probe.is_none() {
            *probe =
                Some(self.writer_connection().map_err(|e| format!("the database cannot be reached for writing: {e}"))?);
        }
        let Some(conn) = probe.as_mut() else { return Err("no probe connection".into()) };
        store_commits(conn, now_ms).map_err(|e| format!("the database cannot commit a write: {e}"))
    }

    /// At least `min_free` bytes free where the SQLite file lives (its directory, where the
    /// -wal file grows too). PostgreSQL's server watches its own disk.
    fn check_free(path: &Path, min_free: u64) -> Result<(), String> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        match free_bytes(dir) {
            Ok(free) if free < min_free => {
                return Err(format!(
                    "the file system of {} has {} KiB free, below store.min_free_mb ({} MiB): free space before \
                     writes fail",
                    dir.display(),
                    free / 1024,
                    min_free / (1024 * 1024)
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read the free space of {}: {e}", dir.display())),
        }
        Ok(())
    }
}

/// A unique-constraint violation as `duplicate()` says it; any other error as it is.
fn unique_as(e: impl Into<StoreError>, duplicate: impl FnOnce() -> StoreError) -> StoreError {
    match e.into() {
        StoreError::Sql(d) if d.code == db::DbCode::Unique => duplicate(),
        e => e,
    }
}

/// What kind of failure each StoreError is, for the front-ends' one mapping to their words.
impl Kinded for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Refused(r) => r.kind(),
            StoreError::Revoked(_) => ErrorKind::Conflict,
            StoreError::AuditKey(_) => ErrorKind::Unavailable(Dependency::AuditKey),
            StoreError::SealUnavailable(_) => ErrorKind::Unavailable(Dependency::Hsm),
            // Nothing was changed; the same request may succeed once the database answers.
            StoreError::Sql(d) if matches!(d.code, db::DbCode::Unavailable | db::DbCode::Conflict) => {
                ErrorKind::Unavailable(Dependency::Store)
            }
            StoreError::Open { .. }
            | StoreError::Sql(_)
            | StoreError::Io { .. }
            | StoreError::MigrationEdited { .. }
            | StoreError::TooNew(_)
            | StoreError::Tampered(_) => ErrorKind::Internal,
        }
    }
}
