//! The tamper-evident audit trail as a service: the audit key (an EC P-256 pair generated in
//! the HSM on first use, system key role `audit-signing`), signed checkpoints of the hash
//! chain (periodically, and at shutdown), verification, and retention by age or count.
//!
//! The chain itself is written by the store with every audit row ([`crate::store::chain`]).
//! This service never edits a row: only retention removes rows, from the chain's beginning,
//! leaving a signed anchor where it cut.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use countersign_hsm::{HashAlg, Hsm, KeyAlgorithm, KeyId, SignInput, SignScheme};

use crate::clock::Clock;
use crate::store::chain::{AuditSigner, ChainReport, Retention, RetentionReport};
use crate::store::{AuthAuditRow, Store, StoreError};

const ROLE: &str = "audit-signing";

/// How often the chain is vouched for and how long its rows are kept: resolved values, read
/// from the configuration by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Time between signed checkpoints of the chain (when rows were added); a second at least
    /// is used. Rows newer than the last checkpoint are chained but not yet signed.
    pub checkpoint_interval: Duration,
    /// Rows older than this many days are removed; `None`: rows are kept whatever their age.
    pub retention_days: Option<u32>,
    /// At most this many rows are kept; `None`: no limit.
    pub retention_max_rows: Option<u64>,
    /// Time between retention runs; a minute at least is used.
    pub retention_interval: Duration,
}

/// Why a checkpoint, verification or retention run failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditTrailError {
    /// The store failed, or the audit key could not sign or check a checkpoint.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The blocking task doing the work failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// The audit key, found or generated on first use.
#[derive(Debug, Clone)]
struct AuditKey {
    hsm: Hsm,
    store: Arc<Store>,
    id: Arc<Mutex<Option<KeyId>>>,
}

impl AuditKey {
    fn id(&self) -> Result<KeyId, String> {
        let mut guard = self.id.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = guard.as_ref() {
            return Ok(id.clone());
        }
        let id = crate::system_keys::key_pair(&self.hsm, &self.store, ROLE, KeyAlgorithm::EcP256)
            .map_err(|e| e.to_string())?;
        *guard = Some(id.clone());
        Ok(id)
    }
}

impl AuditSigner for AuditKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.id()?;
        self.hsm
            .sign(&id, KeyAlgorithm::EcP256, SignScheme::Ecdsa, HashAlg::Sha256, SignInput::Message(message))
            .map_err(|e| e.to_string())
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, String> {
        let id = self.id()?;
        self.hsm
            .verify(
                &id,
                KeyAlgorithm::EcP256,
                SignScheme::Ecdsa,
                HashAlg::Sha256,
                SignInput::Message(message),
                signature,
            )
            .map_err(|e| e.to_string())
    }
}

/// The audit key as found on the token by its label, for checks made without the store (an
/// offline restore): a database, or a backup, could name any key; the label is set only when
/// the appliance generates the key.
#[derive(Debug, Clone)]
pub struct TokenAuditKey {
    hsm: Hsm,
    ids: Vec<KeyId>,
}

impl TokenAuditKey {
    /// Finds the audit key pair on the token; none is an error that says what it means.
    pub fn find(hsm: &Hsm) -> Result<TokenAuditKey, String> {
        let label = format!("countersign/system/{ROLE}");
        let ids = hsm.keys_labelled(&label, false).map_err(|e| e.to_string())?;
        if ids.is_empty() {
            return Err(format!(
                "the token holds no audit key ({label}); a backup can only be restored onto the token of the \
                 appliance that made it"
            ));
        }
        Ok(TokenAuditKey { hsm: hsm.clone(), ids })
    }
}

impl AuditSigner for TokenAuditKey {
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, String> {
        Err("an offline restore only verifies".into())
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, String> {
        for id in &self.ids {
            let ok = self
                .hsm
                .verify(
                    id,
                    KeyAlgorithm::EcP256,
                    SignScheme::Ecdsa,
                    HashAlg::Sha256,
                    SignInput::Message(message),
                    signature,
                )
                .map_err(|e| e.to_string())?;
            if ok {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Checkpoints, verification and retention of the audit chain. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    key: AuditKey,
    store: Arc<Store>,
    clock: Clock,
    cfg: AuditSettings,
    /// The outcome of the newest verification this daemon ran (from any front-end).
    last_verified: Arc<Mutex<Option<Verified>>>,
    /// The newest link this daemon signed a checkpoint of since it started: a verification
    /// that finds no checkpoint at or after it (someone deleted checkpoints to make the
    /// rewritable tail longer than the checkpoint interval) fails.
    last_signed: Arc<Mutex<Option<i64>>>,
}

/// The outcome of a verification of the whole chain, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// When it finished, Unix ms on the service's clock.
    pub at_ms: i64,
    /// Whether the chain verified.
    pub ok: bool,
    /// Links walked and checkpoints verified, or the first problem, in words.
    pub summary: String,
}

impl Verified {
    fn of(at_ms: i64, r: &Result<ChainReport, AuditTrailError>) -> Verified {
        match r {
            Ok(c) if c.ok => Verified {
                at_ms,
                ok: true,
                summary: format!("{} links, {} signed checkpoints verified", c.links, c.checkpoints_verified),
            },
            Ok(c) => Verified {
                at_ms,
                ok: false,
                summary: c.first_bad.as_ref().map(|b| b.problem.clone()).unwrap_or_else(|| "a problem".into()),
            },
            Err(e) => Verified { at_ms, ok: false, summary: format!("the verification did not finish: {e}") },
        }
    }
}

/// An admin's limits for one retention run, instead of the configured ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionLimits {
    /// Remove rows older than this many days; `None`: no age limit.
    pub older_than_days: Option<u32>,
    /// Keep at most this many rows; `None`: no count limit.
    pub max_rows: Option<u64>,
}

/// Runs `f` on its own connection from a blocking thread: a verification or retention run is
/// long and must not hold the daemon's writer.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuditTrailError> + Send + 'static,
) -> Result<T, AuditTrailError> {
    crate::service_error::off_runtime(f, AuditTrailError::Internal).await
}

/// `report`, failed when `signed` (the newest link this daemon signed a checkpoint of) is
/// past the chain's anchor but no checkpoint at or after it is left: checkpoints were deleted,
/// so more of the chain's end could be rewritten than the checkpoint interval allows. (What a
/// daemon signed before its last start it does not know; that part rests on the checkpoints
/// as found.)
fn held_to(mut report: ChainReport, signed: Option<i64>) -> ChainReport {
    let Some(signed) = signed else { return report };
    let cut_away = report.anchor_seq.is_some_and(|a| a >= signed);
    if report.ok && !cut_away && report.last_checkpoint_seq.is_none_or(|c| c < signed) {
        report.ok = false;
        report.first_bad = Some(countersign_core::audit_chain::ChainProblem {
            seq: Some(signed),
            table: None,
            row_id: None,
            problem: format!(
                "this appliance signed a checkpoint of link {signed}, but no checkpoint at or after it is left: \
                 checkpoints were deleted (the chain's end since the last one left could have been rewritten)"
            ),
        });
    }
    report
}

impl AuditTrail {
    /// The service; the audit key is found (or generated) at its first use.
    pub fn new(hsm: Hsm, store: Arc<Store>, clock: Clock, cfg: AuditSettings) -> AuditTrail {
        let key = AuditKey { hsm, store: store.clone(), id: Arc::new(Mutex::new(None)) };
        AuditTrail {
            key,
            store,
            clock,
            cfg,
            last_verified: Arc::new(Mutex::new(None)),
            last_signed: Arc::new(Mutex::new(None)),
        }
    }

    /// Walks the whole chain (see [`Store::verify_chain`]) inside one read transaction, then
    /// holds it against the newest checkpoint this daemon signed (see `last_signed`).
    pub async fn verify(&self) -> Result<ChainReport, AuditTrailError> {
        let t = self.clone();
        let signed = *self.last_signed.lock().unwrap_or_else(PoisonError::into_inner);
        let r = blocking(move || Ok(t.store.verify_chain(&t.key)?)).await.map(|r| held_to(r, signed));
        let done = Verified::of(self.clock.now_ms(), &r);
        *self.last_verified.lock().unwrap_or_else(PoisonError::into_inner) = Some(done);
        r
    }

    /// The outcome of the newest verification since the daemon started; `None`: none ran.
    pub fn last_verification(&self) -> Option<Verified> {
        self.last_verified.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The newest signed checkpoint: its link and when it was made (Unix ms).
    pub async fn last_checkpoint(&self) -> Result<Option<(i64, i64)>, AuditTrailError> {
        let store = self.store.clone();
        blocking(move || Ok(store.last_checkpoint()?)).await
    }

    /// Records `row` in the audit trail on its own (an admin's read: it changes nothing, but
    /// who read what is on the record).
    pub async fn record(&self, row: AuthAuditRow) -> Result<(), AuditTrailError> {
        let store = self.store.clone();
        blocking(move || {
            store.audit_auth(&row)?;
            Ok(())
        })
        .await
    }

    /// The rows after link `after_seq`, each with its link, in chain order from one read
    /// transaction, handed to `each` until it returns `false`; how many it was given.
    /// Blocking: the caller streams from a thread of its own.
    pub fn export(&self, after_seq: i64, each: impl FnMut(serde_json::Value) -> bool) -> Result<u64, AuditTrailError> {
        Ok(self.store.export_chain(after_seq, each)?)
    }

    /// Signs the newest link unless a checkpoint covers it already.
    pub async fn checkpoint(&self) -> Result<Option<i64>, AuditTrailError> {
        let t = self.clone();
        blocking(move || t.checkpoint_blocking()).await
    }

    fn checkpoint_blocking(&self) -> Result<Option<i64>, AuditTrailError> {
        let signed = self.store.checkpoint_chain(&self.key, self.clock.now_ms(), "periodic")?;
        if let Some(seq) = signed {
            let mut last = self.last_signed.lock().unwrap_or_else(PoisonError::into_inner);
            *last = Some(last.map_or(seq, |l| l.max(seq)));
        }
        Ok(signed)
    }

    /// The configured retention (`audit.retention_days`, `audit.retention_max_rows`), or
    /// `limits` when an admin runs it with other ones; ages count back from the service's clock.
    /// Leaves an `audit/retain` row after the cut (who, what was removed, where the chain now
    /// starts): always when an admin (`by`) ran it, and when the periodic job removed anything.
    pub async fn retain(
        &self,
        limits: Option<RetentionLimits>,
        by: Option<countersign_core::caller::Caller>,
    ) -> Result<RetentionReport, AuditTrailError> {
        let t = self.clone();
        blocking(move || {
            let now = t.clock.now_ms();
            let keep = match limits {
                Some(l) => Retention {
                    keep_after_ms: l.older_than_days.map(|d| now - i64::from(d) * 86_400_000),
                    max_links: l.max_rows,
                },
                None => t.configured_retention(now),
            };
            let report = t.store.retain_audit(&t.key, keep, now)?;
            let removed = report.removed_links > 0 || report.removed_legacy_rows > 0;
            if removed {
                tracing::info!(
                    removed = report.removed_links,
                    legacy = report.removed_legacy_rows,
                    anchor = ?report.anchor_seq,
                    "audit retention removed the oldest rows"
                );
            }
            if removed || by.is_some() {
                let caller = by.unwrap_or_else(|| countersign_core::caller::Caller::appliance("audit-retention"));
                let mut row = AuthAuditRow::new(&caller, "audit/retain", "ok");
                row.at_ms = t.clock.now_ms();
                row.detail = Some(format!(
                    "removed {} audit rows ({} from before the chain); the chain starts after link {}; limits: {}",
                    report.removed_links + report.removed_legacy_rows,
                    report.removed_legacy_rows,
                    report.anchor_seq.map_or("-".into(), |s| s.to_string()),
                    match (keep.keep_after_ms, keep.max_links) {
                        (None, None) => "none".to_owned(),
                        (days, rows) => format!(
                            "{}{}",
                            days.map(|ms| format!("rows older than {ms} ms since the epoch ")).unwrap_or_default(),
                            rows.map(|n| format!("beyond the newest {n}")).unwrap_or_default()
                        ),
                    }
                ));
                t.store.audit_auth(&row)?;
            }
            Ok(report)
        })
        .await
    }

    fn configured_retention(&self, now_ms: i64) -> Retention {
        Retention {
            keep_after_ms: self.cfg.retention_days.map(|days| now_ms - i64::from(days) * 86_400_000),
            max_links: self.cfg.retention_max_rows,
        }
    }

    /// Registers the periodic jobs: a checkpoint every `checkpoint_interval`, and retention
    /// every `retention_interval` when a limit is set.
    pub fn schedule(&self, jobs: &crate::jobs::Jobs) {
        let t = self.clone();
        jobs.spawn("audit-checkpoint", self.cfg.checkpoint_interval.max(Duration::from_secs(1)), move || {
            let t = t.clone();
            Box::pin(async move {
                match t.checkpoint().await {
                    Ok(Some(seq)) => Ok(format!("signed link {seq}")),
                    Ok(None) => Ok("nothing new to sign".into()),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
        if self.cfg.retention_days.is_some() || self.cfg.retention_max_rows.is_some() {
            let t = self.clone();
            jobs.spawn("audit-retention", self.cfg.retention_interval.max(Duration::from_secs(60)), move || {
                let t = t.clone();
                Box::pin(async move {
                    let r = t.retain(None, None).await.map_err(|e| e.to_string())?;
                    Ok(format!(
                        "removed {} rows ({} from before the chain); chain starts after link {}",
                        r.removed_links + r.removed_legacy_rows,
                        r.removed_legacy_rows,
                        r.anchor_seq.map_or("-".into(), |s| s.to_string())
                    ))
                })
            });
        }
    }

    /// An online backup into `dir`: a signed checkpoint first (so the copy's audit tail is
    /// vouched for), then the copy and its manifest signed by the audit key.
    /// Its `backup/create` row (who, where) is written first, so the copy carries it under
    /// the checkpoint; a backup that fails gets an `error` row with the reason.
    pub async fn backup(
        &self,
        by: countersign_core::caller::Caller,
        hsm_token: String,
        dir: std::path::PathBuf,
    ) -> Result<crate::backup::Manifest, crate::backup::BackupError> {
        self.record_backup(&by, "ok", format!("a backup into {} begins", dir.display())).await?;
        let made = self.backup_into(hsm_token, dir.clone()).await;
        if let Err(e) = &made {
            self.record_backup(&by, "error", format!("the backup into {} failed: {e}", dir.display())).await?;
        }
        made
    }

    /// A `backup/create` row, written off the runtime (the store may be PostgreSQL's blocking
    /// client).
    async fn record_backup(
        &self,
        by: &countersign_core::caller::Caller,
        result: &'static str,
        detail: String,
    ) -> Result<(), crate::backup::BackupError> {
        let mut row = AuthAuditRow::new(by, "backup/create", result);
        row.at_ms = self.clock.now_ms();
        row.detail = Some(detail);
        let store = self.store.clone();
        blocking(move || Ok(store.audit_auth(&row).map(drop)?)).await.map_err(|e| {
            crate::backup::BackupError::Invalid(format!("the backup's audit row could not be written: {e}"))
        })
    }

    async fn backup_into(
        &self,
        hsm_token: String,
        dir: std::path::PathBuf,
    ) -> Result<crate::backup::Manifest, crate::backup::BackupError> {
        self.checkpoint().await.map_err(|e| {
            crate::backup::BackupError::Invalid(format!("the audit checkpoint before the backup failed: {e}"))
        })?;
        let t = self.clone();
        tokio::task::spawn_blocking(move || crate::backup::backup(&t.store, &hsm_token, &dir, &t.key))
            .await
            .map_err(|e| crate::backup::BackupError::Invalid(e.to_string()))?
    }

    /// A last checkpoint at shutdown, so the newest rows are vouched for.
    pub fn checkpoint_now(&self) {
        if let Err(e) = self.checkpoint_blocking() {
            tracing::warn!(error = %e, "could not sign the shutdown audit checkpoint");
        }
    }
}
