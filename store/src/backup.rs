//! Backups of the database while the daemon runs, with a manifest, and restoring one into
//! place while it is stopped.
//!
//! A backup is a directory holding `countersign.db` (a consistent copy made by SQLite's
//! `VACUUM INTO` from one read transaction: nothing half-committed, WAL folded in) and
//! `manifest.json` (what it holds, its SHA-256, the schema version, which HSM keys it names,
//! where the audit chain stands). Keys stay in the HSM: the token is backed up with the HSM's
//! own means (docs/operations.md), and a restored database works only with that token.
//!
//! Never writes into an existing backup, and never replaces a database unless told to.
//!
//! A backup is signed: `manifest.sig` holds the HSM audit key's signature over the manifest's
//! exact bytes (domain-separated from audit checkpoints), and the manifest binds the copy by
//! its SHA-256. A restore verifies that signature with the audit key found on the token by its
//! label (never with a key the backup names), reads only `countersign.db` inside the backup
//! directory (no other name, no symbolic link), and hashes the very bytes it puts in place.

use countersign_core::error::{ErrorKind, Kinded};
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chain::AuditSigner;
use super::{Store, StoreError};

/// The database file inside a backup directory.
pub const DB_FILE: &str = "countersign.db";
/// The manifest inside a backup directory: what the backup holds ([`Manifest`]).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The audit key's signature over `manifest.json`.
pub const SIGNATURE_FILE: &str = "manifest.sig";
const FORMAT: u32 = 1;
/// Prefixed to the manifest's bytes before signing, so a manifest signature can never pass as
/// an audit checkpoint's or the other way round.
const SIGNATURE_DOMAIN: &[u8] = b"countersign backup manifest v1\n";

/// `manifest.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// The signature file's format version (1).
    pub format: u32,
    /// Always `ecdsa-p256-sha256` by the key labelled `countersign/system/audit-signing`.
    pub algorithm: String,
    /// Raw `r || s`, hex.
    pub signature: String,
}

fn signed_message(manifest_bytes: &[u8]) -> Vec<u8> {
    [SIGNATURE_DOMAIN, manifest_bytes].concat()
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Refused, in words an operator acts on: a bad path, an existing backup or database, a
    /// signature that does not verify, a damaged copy, an unknown format or a newer schema.
    #[error("{0}")]
    Invalid(String),
    /// A file of the backup or of the database could not be read, written, created or moved.
    #[error("{what} {path}: {source}")]
    Io {
        /// What could not be done (`cannot read`, `cannot create`, ...).
        what: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database failed while copying or describing it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Store(StoreError::from(e))
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

/// One migration the backed-up database has applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationEntry {
    /// The migration's number.
    pub version: u32,
    /// The migration's name.
    pub name: String,
    /// The SHA-256 (hex) of the migration's SQL as it was applied.
    pub sha256: String,
}

/// One of the appliance's own HSM keys that the backed-up database names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemKeyEntry {
    /// The key's role (`token-seal`, `pin-verifier`, ...).
    pub role: String,
    /// The key's CKA_ID on the HSM token, hex; the key itself is not in the backup.
    pub key_id: String,
}

/// Where the audit chain stood in the copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditState {
    /// The newest chain link; `None`: the chain was empty.
    pub last_seq: Option<i64>,
    /// The newest signed checkpoint's link; `None`: none yet.
    pub last_checkpoint_seq: Option<i64>,
    /// Where retention had cut the chain; `None`: never cut.
    pub anchor_seq: Option<i64>,
}

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest's format version (1); a restore refuses any other.
    pub format: u32,
    /// When the backup was made, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The Countersign version that made it.
    pub appliance_version: String,
    /// The newest migration applied to the copy; a restore refuses one newer than it knows.
    pub schema_version: u32,
    /// Every migration applied to the copy, in order.
    pub migrations: Vec<MigrationEntry>,
    /// The copy's file name inside the backup directory: always [`DB_FILE`].
    pub database_file: String,
    /// The copy's size in bytes.
    pub database_bytes: u64,
    /// The SHA-256 (hex) of the copy, which a restore checks the bytes it puts in place against.
    pub database_sha256: String,
    /// The HSM token the keys are on (its label, as configured).
    pub hsm_token: String,
    /// The appliance's own keys the database names (all on that token).
    pub system_keys: Vec<SystemKeyEntry>,
    /// Application key versions the database names (on that token).
    pub application_key_versions: u64,
    /// How many tokens the copy holds.
    pub tokens: u64,
    /// Where the audit chain stood in the copy.
    pub audit: AuditState,
}

fn sha256_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut f = std::fs::File::open(path).map_err(io("cannot read", path))?;
    hash_copy(&mut f, &mut std::io::sink(), path)
}

/// Reads `src` to its end, writing every byte to `sink` as well; the SHA-256 and length of what
/// was read. `path` names the file in errors.
fn hash_copy(src: &mut impl Read, sink: &mut impl std::io::Write, path: &Path) -> Result<(String, u64), BackupError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = src.read(&mut buf).map_err(io("cannot read", path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        sink.write_all(&buf[..k]).map_err(io("cannot write", path))?;
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Describes the database at `path` (a finished copy, opened read-only).
fn describe(path: &Path, hsm_token: &str) -> Result<Manifest, BackupError> {
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let migrations: Vec<MigrationEntry> = c
        .prepare("SELECT version, name, sha256 FROM schema_migration ORDER BY version")?
        .query_map([], |r| Ok(MigrationEntry { version: r.get(0)?, name: r.get(1)?, sha256: r.get(2)? }))?
        .collect::<Result<_, _>>()?;
    let system_keys: Vec<SystemKeyEntry> = c
        .prepare("SELECT role, hsm_key_id FROM system_key ORDER BY role")?
        .query_map([], |r| Ok(SystemKeyEntry { role: r.get(0)?, key_id: r.get(1)? }))?
        .collect::<Result<_, _>>()?;
    let count = |sql: &str| -> Result<u64, BackupError> {
        let n: i64 = c.query_row(sql, [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let audit = AuditState {
        last_seq: c.query_row("SELECT max(seq) FROM audit_chain", [], |r| r.get(0))?,
        last_checkpoint_seq: c.query_row("SELECT max(seq) FROM audit_checkpoint", [], |r| r.get(0))?,
        anchor_seq: c.query_row("SELECT seq FROM audit_anchor WHERE id = 1", [], |r| r.get(0)).optional()?,
    };
    let (sha, bytes) = sha256_file(path)?;
    Ok(Manifest {
        format: FORMAT,
        created_at_ms: super::now_ms(),
        appliance_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: migrations.last().map_or(0, |m| m.version),
        migrations,
        database_file: DB_FILE.into(),
        database_bytes: bytes,
        database_sha256: sha,
        hsm_token: hsm_token.to_owned(),
        system_keys,
        application_key_versions: count("SELECT count(*) FROM master_keypair")?,
        tokens: count("SELECT count(*) FROM token")?,
        audit,
    })
}

/// Writes a backup of the live database into `dir` (created if missing; must not hold a
/// backup already). Blocking: run it off the async runtime.
pub fn backup(store: &Store, hsm_token: &str, dir: &Path, key: &dyn AuditSigner) -> Result<Manifest, BackupError> {
    if !dir.is_absolute() {
        return Err(BackupError::Invalid(format!("the backup directory {} must be an absolute path", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let db = dir.join(DB_FILE);
    let manifest_path = dir.join(MANIFEST_FILE);
    if db.exists() || manifest_path.exists() {
        return Err(BackupError::Invalid(format!(
            "{} already holds a backup; choose a new directory (backups are never overwritten)",
            dir.display()
        )));
    }
    let target = db.to_str().ok_or_else(|| BackupError::Invalid("the backup path is not UTF-8".into()))?;
    // A read transaction on the main database; it writes only the new file (a read-only
    // connection may not write even that).
    match store.writer_connection()? {
        crate::db::Conn::Sqlite(conn) => {
            conn.execute("VACUUM INTO ?1", [target])?;
        }
        // A PostgreSQL store is copied, from one snapshot, into a SQLite file of the same
        // schema: the backup has one format whatever the engine, and restores into either.
        crate::db::Conn::Pg(_) => snapshot_of_postgres(store, dir, target)?,
    }
    let manifest = describe(&db, hsm_token)?;
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let signature = key
        .sign(&signed_message(&text))
        .map_err(|e| BackupError::Invalid(format!("the audit key could not sign the backup manifest: {e}")))?;
    let sig =
        ManifestSignature { format: FORMAT, algorithm: "ecdsa-p256-sha256".into(), signature: hex::encode(signature) };
    let sig_text = serde_json::to_vec_pretty(&sig).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let sig_path = dir.join(SIGNATURE_FILE);
    std::fs::write(&sig_path, sig_text).map_err(io("cannot write", &sig_path))?;
    std::fs::write(&manifest_path, text).map_err(io("cannot write", &manifest_path))?;
    Ok(manifest)
}

/// Copies the PostgreSQL `store` into a new SQLite file `target` in `dir`: first into a working
/// file (a store of its own), then `VACUUM INTO` the target, so the backup is one file with no
/// WAL beside it. The working files are removed whatever happens.
fn snapshot_of_postgres(store: &Store, dir: &Path, target: &str) -> Result<(), BackupError> {
    let work = dir.join(".copying.db");
    let result = (|| -> Result<(), BackupError> {
        let file = Store::open(&work, super::Synchronous::Normal)?;
        super::copy::copy(store, &file)?;
        let crate::db::Conn::Sqlite(conn) = file.writer_connection()? else {
            return Err(BackupError::Invalid("the working copy is not a SQLite file".into()));
        };
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    })();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", work.display()));
    }
    result
}

/// Reads a file of the backup directory by its fixed name: a regular file, not a symbolic link.
fn open_in_backup(from: &Path, name: &str) -> Result<std::fs::File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = from.join(name);
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|f| if f.metadata()?.is_file() { Ok(f) } else { Err(std::io::Error::other("not a regular file")) })
        .map_err(|e| {
            BackupError::Invalid(format!(
                "{} cannot be read as a backup file ({e}); a backup holds plain files only",
                path.display()
            ))
        })
}

fn read_in_backup(from: &Path, name: &str, limit: u64) -> Result<Vec<u8>, BackupError> {
    let mut bytes = Vec::new();
    open_in_backup(from, name)?.take(limit).read_to_end(&mut bytes).map_err(io("cannot read", &from.join(name)))?;
    Ok(bytes)
}

/// The manifest of the backup in `from`, once its signature verified with `key` (the token's
/// audit key), its format and database file name are this version's, and its schema is not
/// newer than this version knows.
fn verified_manifest(from: &Path, key: &dyn AuditSigner) -> Result<Manifest, BackupError> {
    // Manifests are a few KiB; a huge file is not one.
    let text = read_in_backup(from, MANIFEST_FILE, 1 << 20)?;
    let sig_bytes = read_in_backup(from, SIGNATURE_FILE, 1 << 16).map_err(|e| {
        BackupError::Invalid(format!(
            "{e}; an unsigned backup is not restored (backups made before signing: make a new one)"
        ))
    })?;
    let sig: ManifestSignature = serde_json::from_slice(&sig_bytes)
        .map_err(|e| BackupError::Invalid(format!("{SIGNATURE_FILE} is not a Countersign manifest signature: {e}")))?;
    let signature = hex::decode(&sig.signature)
        .map_err(|_| BackupError::Invalid(format!("{SIGNATURE_FILE}: the signature is not hex")))?;
    match key.verify(&signed_message(&text), &signature) {
        Ok(true) => {}
        Ok(false) => {
            return Err(BackupError::Invalid(format!(
                "the signature of {} does not verify with this token's audit key: the backup was changed, or it \
                 belongs to another appliance's token; nothing was restored",
                from.join(MANIFEST_FILE).display()
            )))
        }
        Err(e) => return Err(BackupError::Invalid(format!("cannot verify the backup's signature: {e}"))),
    }
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        BackupError::Invalid(format!("{} is not a Countersign manifest: {e}", from.join(MANIFEST_FILE).display()))
    })?;
    if manifest.format != FORMAT {
        return Err(BackupError::Invalid(format!(
            "backup format {} is not supported (this version reads {FORMAT})",
            manifest.format
        )));
    }
    // Only the name this appliance writes, inside the backup directory: never a path.
    if manifest.database_file != DB_FILE {
        return Err(BackupError::Invalid(format!(
            "the manifest names database file '{}'; a backup's database is always {DB_FILE} in its own directory",
            manifest.database_file
        )));
    }
    let newest = super::MIGRATIONS.last().map_or(0, |m| m.0);
    if manifest.schema_version > newest {
        return Err(BackupError::Invalid(format!(
            "the backup has schema version {}, newer than this appliance knows ({newest}); restore it with a newer \
             Countersign",
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

/// Copies the backup's database to `tmp` (a new file), hashing the bytes on their way, and
/// checks them against `manifest`: what is checked is what is used. `tmp` is removed when they
/// do not match.
fn copy_checked(from: &Path, manifest: &Manifest, tmp: &Path) -> Result<(), BackupError> {
    let (sha, bytes) = copy_hashed(&mut open_in_backup(from, DB_FILE)?, tmp).inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })?;
    if sha != manifest.database_sha256 || bytes != manifest.database_bytes {
        let _ = std::fs::remove_file(tmp);
        return Err(BackupError::Invalid(format!(
            "{} does not match its manifest (SHA-256 or size differs): the backup is damaged",
            from.join(DB_FILE).display()
        )));
    }
    Ok(())
}

/// Restores the backup in `from` into the store `to`, which must hold no data yet (a new
/// PostgreSQL database for a cluster, with every daemon stopped): the manifest verified as
/// [`restore`] does, the backup's database copied and checked into a working file in `work`,
/// then every row copied into `to` in one transaction. The caller proves the result with the
/// HSM (seals, `audit verify`).
pub fn restore_into(
    from: &Path,
    to: &Store,
    work: &Path,
    key: &dyn AuditSigner,
) -> Result<(Manifest, super::copy::CopyReport), BackupError> {
    let manifest = verified_manifest(from, key)?;
    std::fs::create_dir_all(work).map_err(io("cannot create", work))?;
    let tmp = work.join(format!("countersign-restore-{}.db", super::now_ms()));
    copy_checked(from, &manifest, &tmp)?;
    let result = (|| -> Result<super::copy::CopyReport, StoreError> {
        let source = Store::open(&tmp, super::Synchronous::Normal)?;
        super::copy::copy(&source, to)
    })();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    Ok((manifest, result?))
}

/// Puts the backup in `from` in place as the SQLite database `to_db`, with the daemon stopped.
/// Verifies the manifest's signature with `key` (the token's audit key) and the copy against
/// the manifest first; refuses a schema newer than this version knows; replaces an existing
/// database only with `force` (the old one is kept beside it).
pub fn restore(from: &Path, to_db: &Path, force: bool, key: &dyn AuditSigner) -> Result<Manifest, BackupError> {
    let manifest = verified_manifest(from, key)?;
    if to_db.exists() && !force {
        return Err(BackupError::Invalid(format!(
            "{} exists; stop the daemon and give --force to replace it (it is kept as {}.replaced-<time>)",
            to_db.display(),
            to_db.display()
        )));
    }
    if let Some(parent) = to_db.parent() {
        std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    }
    // Copy first, hashing the bytes on their way: what is checked is what is put in place.
    let tmp = PathBuf::from(format!("{}.restoring", to_db.display()));
    if tmp.exists() {
        // Never removed here: it may be another restore's, running now.
        return Err(BackupError::Invalid(format!(
            "{} exists: an earlier restore was interrupted, or another is running now; if none is running, \
             remove it and restore again",
            tmp.display()
        )));
    }
    copy_checked(from, &manifest, &tmp)?;
    // The database replaced is kept with its write-ahead log (after an unclean stop, the usual
    // reason to restore, the log holds committed transactions not yet in the file: moved OTP
    // counters among them), so the kept copy opens as it stood.
    let kept = to_db.exists().then(|| PathBuf::from(format!("{}.replaced-{}", to_db.display(), super::now_ms())));
    for suffix in ["-wal", "-shm"] {
        let stale = PathBuf::from(format!("{}{suffix}", to_db.display()));
        if !stale.exists() {
            continue;
        }
        match &kept {
            Some(k) => {
                let aside = PathBuf::from(format!("{}{suffix}", k.display()));
                std::fs::rename(&stale, &aside).map_err(io("cannot move aside", &stale))?;
            }
            None => std::fs::remove_file(&stale).map_err(io("cannot remove", &stale))?,
        }
    }
    if let Some(k) = &kept {
        std::fs::rename(to_db, k).map_err(io("cannot move aside", to_db))?;
    }
    std::fs::rename(&tmp, to_db).map_err(io("cannot move into place", to_db))?;
    Ok(manifest)
}

/// Copies `src` to a new file `to` (0600, never over an existing one), returning the SHA-256
/// and length of what was written.
fn copy_hashed(src: &mut std::fs::File, to: &Path) -> Result<(String, u64), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io("cannot create", to))?;
    let copied = hash_copy(src, &mut out, to)?;
    out.sync_all().map_err(io("cannot write", to))?;
    Ok(copied)
}

/// What kind of failure each BackupError is, for the front-ends' one mapping to their words.
impl Kinded for BackupError {
    fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Invalid(_) => ErrorKind::Invalid,
            BackupError::Io { .. } | BackupError::Store(_) => ErrorKind::Internal,
        }
    }
}
