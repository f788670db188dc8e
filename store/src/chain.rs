//! The audit hash chain over `auth_audit` and `signature_audit` (migration 0013): the link of
//! every audit row, written in the transaction that writes the row; the walk that verifies the
//! chain in bounded memory; signed checkpoints; and retention, which cuts the chain's
//! beginning in batches and leaves a signed anchor where it cut.
//!
//! A link's hash is SHA-256 over the previous link's hash and the row's canonical encoding
//! (its table, id and every column, length-prefixed), so an edited, deleted, inserted or
//! reordered row breaks the chain at that row. Whoever can write the database can recompute
//! the chain after an edit; the checkpoints, signed by the HSM's audit key, catch that. This
//! module only stores and checks: signing is the caller's ([`AuditSigner`]).

use countersign_core::error::Refusal;
use std::collections::VecDeque;

use crate::db::{args, Row, Sql};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit::{AuthAuditRow, SignatureAuditRow, AUTH_COLUMNS, SIGNATURE_COLUMNS};
use super::StoreError;
pub use countersign_core::audit_chain::{ChainProblem, ChainReport};

/// The hash before the first link.
pub const GENESIS: [u8; 32] = [0; 32];

/// What checkpoint signatures are made over, before seq, hash and time.
const CHECKPOINT_DOMAIN: &[u8] = b"countersign audit checkpoint v1";

/// What the retention anchor's signature is made over, before seq, hash and time: a domain of
/// its own, so a checkpoint's signature (made every few minutes, over any link) can never
/// stand in for an anchor and let someone with write access to the database cut the chain's
/// beginning away unseen.
const ANCHOR_DOMAIN: &[u8] = b"countersign audit retention anchor v1";

/// Which audit table a link points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTable {
    /// `auth_audit`, the authentication and token-administration audit.
    Auth,
    /// `signature_audit`, the signing-service audit.
    Signature,
}

impl ChainTable {
    /// The name links store in `audit_chain.tbl`: `auth` or `signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainTable::Auth => "auth",
            ChainTable::Signature => "signature",
        }
    }

    fn table(self) -> &'static str {
        match self {
            ChainTable::Auth => "auth_audit",
            ChainTable::Signature => "signature_audit",
        }
    }
}

/// Length-prefixed fields into a running SHA-256, so no two rows encode alike.
struct Encoder(Sha256);

impl Encoder {
    fn new(prev: &[u8; 32], table: ChainTable, id: i64) -> Encoder {
        let mut h = Sha256::new();
        h.update(prev);
        h.update(table.as_str().as_bytes());
        h.update(id.to_be_bytes());
        Encoder(h)
    }

    fn int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => {
                self.0.update([1]);
                self.0.update(v.to_be_bytes());
            }
            None => self.0.update([0]),
        }
        self
    }

    fn bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => {
                self.0.update([1]);
                self.0.update((b.len() as u64).to_be_bytes());
                self.0.update(b);
            }
            None => self.0.update([0]),
        }
        self
    }

    fn text(&mut self, v: Option<&str>) -> &mut Self {
        self.bytes(v.map(str::as_bytes))
    }

    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The link hash of auth audit row `id` after `prev`.
pub fn auth_link(prev: &[u8; 32], id: i64, r: &AuthAuditRow) -> [u8; 32] {
    let mut e = Encoder::new(prev, ChainTable::Auth, id);
    e.int(Some(r.at_ms))
        .text(Some(&r.caller))
        .text(Some(&r.action))
        .text(r.serial.as_deref())
        .text(r.login.as_deref())
        .text(r.realm.as_deref())
        .text(Some(&r.result))
        .text(r.detail.as_deref())
        .text(r.resolver.as_deref())
        .text(r.client.as_deref())
        .text(r.policies.as_deref())
        .int(r.duration_ms);
    // The resolved user (0016), which per-user limits count rows by, so an edit of it cannot
    // lift a limit unnoticed. Only when present: rows written before it existed keep the links
    // they were written with, and no two rows encode alike (every field before is fixed).
    if let Some(owner) = r.owner.as_deref() {
        e.text(Some(owner));
    }
    e.finish()
}

/// Whether each auth audit row still matches its own link: the link recomputes from the link
/// before it and the row as stored now (privacyIDEA's per-row `sig_check`). A row edited on its
/// own fails here; a forger who also rewrites every later link is caught by [`verify`] against
/// the signed checkpoints, which this does not replace. A row outside the chain (written before
/// it existed) is `false`.
///
/// The second flag is privacyIDEA's `missing_line`: the links before and after the row's own are
/// both there (so the newest row, which has none after it yet, is `false`, as in privacyIDEA).
pub(crate) fn auth_rows_linked(conn: &dyn Sql, rows: &[AuthAuditRow]) -> Result<Vec<(bool, bool)>, StoreError> {
    const OWN: &str = "SELECT seq, hash FROM audit_chain WHERE tbl = 'auth' AND row_id = ?1";
    const AT: &str = "SELECT hash FROM audit_chain WHERE seq = ?1";
    let anchor: Option<(i64, Vec<u8>)> =
        conn.query_opt("SELECT seq, hash FROM audit_anchor WHERE id = 1", args![], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some((seq, hash)) = conn.query_opt(OWN, args![r.id], |x| Ok((x.get::<i64>(0)?, x.get::<Vec<u8>>(1)?)))?
        else {
            out.push((false, false));
            continue;
        };
        let after = conn.query_opt(AT, args![seq + 1], |_| Ok(()))?.is_some();
        let prev: Option<[u8; 32]> = match conn.query_opt(AT, args![seq - 1], |x| x.get::<Vec<u8>>(0))? {
            Some(h) => h.try_into().ok(),
            None => match &anchor {
                Some((a, h)) if *a == seq - 1 => h.clone().try_into().ok(),
                _ if seq == 1 => Some(GENESIS),
                _ => None,
            },
        };
        let linked = prev.is_some_and(|p| auth_link(&p, r.id, r).as_slice() == hash.as_slice());
        out.push((linked, prev.is_some() && after));
    }
    Ok(out)
}

/// The link hash of signature audit row `id` after `prev`.
pub fn signature_link(prev: &[u8; 32], id: i64, r: &SignatureAuditRow) -> [u8; 32] {
    let mut e = Encoder::new(prev, ChainTable::Signature, id);
    e.int(Some(r.at_ms))
        .int(Some(i64::from(r.uid)))
        .int(r.pid.map(i64::from))
        .text(r.integration.as_deref())
        .text(Some(&r.operation))
        .text(Some(&r.key_name))
        .int(r.key_version.map(i64::from))
        .text(r.scheme.as_deref())
        .text(r.hash.as_deref())
        .text(r.input_kind.as_deref())
        .bytes(r.input_sha256.as_deref())
        .text(Some(&r.result))
        .text(r.detail.as_deref());
    e.finish()
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(seq: i64, hash: &[u8; 32], at_ms: i64) -> Vec<u8> {
    signed_link(CHECKPOINT_DOMAIN, seq, hash, at_ms)
}

/// The bytes the retention anchor's signature covers.
pub fn anchor_message(seq: i64, hash: &[u8; 32], at_ms: i64) -> Vec<u8> {
    signed_link(ANCHOR_DOMAIN, seq, hash, at_ms)
}

fn signed_link(domain: &[u8], seq: i64, hash: &[u8; 32], at_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 48);
    m.extend_from_slice(domain);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

fn hash32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| StoreError::Sql(crate::DbError::other(format!("a chain hash has {} bytes, not 32", v.len()))))
}

/// The newest link (or the anchor, or genesis): the seq and hash the next link builds on.
/// Seqs are given here, not by SQLite, so they never restart after retention emptied the chain.
fn head(conn: &dyn Sql) -> Result<(i64, [u8; 32]), StoreError> {
    let pair = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?));
    let last: Option<(i64, Vec<u8>)> =
        conn.query_opt("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1", args![], pair)?;
    let last = match last {
        Some(l) => Some(l),
        None => conn.query_opt("SELECT seq, hash FROM audit_anchor WHERE id = 1", args![], pair)?,
    };
    match last {
        Some((seq, h)) => Ok((seq, hash32(h)?)),
        None => Ok((0, GENESIS)),
    }
}

/// The end of the chain as one write transaction appends to it: the head is read at the
/// transaction's first link and then carried in memory, so a group commit of many audit rows
/// reads it once. It lives no longer than its transaction and is never carried into the next:
/// on PostgreSQL other appliances append between two transactions (each appends under the
/// write lock it takes first, so within one transaction nobody else does). A link written
/// behind its back in the same transaction cannot go unnoticed: the next link it writes would
/// repeat that seq, which the chain's primary key refuses, failing the transaction.
#[derive(Debug, Default)]
pub(crate) struct ChainTail {
    /// The seq and hash of the newest link, once read or written in this transaction.
    head: Option<(i64, [u8; 32])>,
}

impl ChainTail {
    /// Appends the link of a row just inserted in `tx`; `hash` computes it from the previous one.
    fn link(
        &mut self,
        tx: &dyn Sql,
        table: ChainTable,
        row_id: i64,
        at_ms: i64,
        hash: impl FnOnce(&[u8; 32]) -> [u8; 32],
    ) -> Result<(), StoreError> {
        let (seq, prev) = match self.head {
            Some(h) => h,
            None => head(tx)?,
        };
        let (seq, hash) = (seq + 1, hash(&prev));
        tx.execute(
            "INSERT INTO audit_chain (seq, tbl, row_id, at_ms, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![seq, table.as_str(), row_id, at_ms, hash.as_slice()],
        )?;
        // Only once the link is written: a failed insert leaves the head where it was.
        self.head = Some((seq, hash));
        Ok(())
    }

    /// Inserts a signature audit row and its link in the caller's transaction; the row's id.
    pub(crate) fn signature_row(&mut self, tx: &dyn Sql, r: &SignatureAuditRow) -> Result<i64, StoreError> {
        let id = tx.insert(
            "INSERT INTO signature_audit (at_ms, uid, pid, integration, operation, key_name, key_version, scheme,
                                          hash, input_kind, input_sha256, result, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            args![
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
            ],
        )?;
        self.link(tx, ChainTable::Signature, id, r.at_ms, |prev| signature_link(prev, id, r))?;
        Ok(id)
    }

    /// Inserts an authentication audit row and its link in the caller's transaction; the row's id.
    pub(crate) fn auth_row(&mut self, tx: &dyn Sql, a: &AuthAuditRow) -> Result<i64, StoreError> {
        let id = tx.insert(
            "INSERT INTO auth_audit (at_ms, caller, action, serial, login, realm, result, detail, resolver, client,
                                     policies, duration_ms, owner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            args![
                a.at_ms,
                a.caller,
                a.action,
                a.serial,
                a.login,
                a.realm,
                a.result,
                a.detail,
                a.resolver,
                a.client,
                a.policies,
                a.duration_ms,
                a.owner
            ],
        )?;
        self.link(tx, ChainTable::Auth, id, a.at_ms, |prev| auth_link(prev, id, a))?;
        Ok(id)
    }
}

/// Inserts one authentication audit row and its link in the caller's transaction (which writes
/// no other link); the row's id.
pub(crate) fn insert_audit(tx: &dyn Sql, a: &AuthAuditRow) -> Result<i64, StoreError> {
    ChainTail::default().auth_row(tx, a)
}

/// Signs and checks with the HSM's audit key: the chain's checkpoints here, backup manifests
/// in `backup.rs` (each message behind its own domain prefix, so one never passes as the other).
pub trait AuditSigner {
    /// Signs `message` with the audit key; the error says why it could not, in words.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
    /// Whether `signature` over `message` was made by the audit key.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, String>;
}

struct Checkpoint {
    seq: i64,
    hash: Vec<u8>,
    at_ms: i64,
    signature: Vec<u8>,
}

/// Rows read in key order a page at a time (`?1`: the last key read, `?2`: the page size), so
/// several walks go side by side on one connection in bounded memory, on every engine.
struct Pages<T> {
    sql: String,
    after: i64,
    buf: VecDeque<(i64, T)>,
    done: bool,
    read: fn(&Row<'_>) -> Result<(i64, T), StoreError>,
}

/// Rows per page of a walk.
const PAGE: i64 = 2_000;

impl<T> Pages<T> {
    fn new(sql: String, after: i64, read: fn(&Row<'_>) -> Result<(i64, T), StoreError>) -> Pages<T> {
        Pages { sql, after, buf: VecDeque::new(), done: false, read }
    }

    fn peek(&mut self, conn: &dyn Sql) -> Result<Option<&(i64, T)>, StoreError> {
        if self.buf.is_empty() && !self.done {
            let page = conn.query_map(&self.sql, args![self.after, PAGE], self.read)?;
            self.done = i64::try_from(page.len()).unwrap_or(i64::MAX) < PAGE;
            if let Some((k, _)) = page.last() {
                self.after = *k;
            }
            self.buf.extend(page);
        }
        Ok(self.buf.front())
    }

    fn next(&mut self, conn: &dyn Sql) -> Result<Option<(i64, T)>, StoreError> {
        self.peek(conn)?;
        Ok(self.buf.pop_front())
    }
}

/// Rows of one audit table in id order, recomputing their link hash on demand.
struct RowCursor {
    table: ChainTable,
    rows: Pages<RowData>,
}

enum RowData {
    Auth(AuthAuditRow),
    Signature(SignatureAuditRow),
}

impl RowData {
    fn link(&self, prev: &[u8; 32], id: i64) -> [u8; 32] {
        match self {
            RowData::Auth(r) => auth_link(prev, id, r),
            RowData::Signature(r) => signature_link(prev, id, r),
        }
    }
}

impl RowCursor {
    fn new(table: ChainTable, after: i64) -> RowCursor {
        let rows = match table {
            ChainTable::Auth => Pages::new(
                format!("SELECT {AUTH_COLUMNS} FROM auth_audit WHERE id > ?1 ORDER BY id LIMIT ?2"),
                after,
                |r| Ok((r.get(0)?, RowData::Auth(AuthAuditRow::from_row(r, 0)?))),
            ),
            ChainTable::Signature => Pages::new(
                format!("SELECT {SIGNATURE_COLUMNS} FROM signature_audit WHERE id > ?1 ORDER BY id LIMIT ?2"),
                after,
                |r| Ok((r.get(0)?, RowData::Signature(SignatureAuditRow::from_row(r, 0)?))),
            ),
        };
        RowCursor { table, rows }
    }

    fn peek(&mut self, conn: &dyn Sql) -> Result<Option<i64>, StoreError> {
        Ok(self.rows.peek(conn)?.map(|(id, _)| *id))
    }

    fn take(&mut self, conn: &dyn Sql) -> Result<Option<(i64, RowData)>, StoreError> {
        self.rows.next(conn)
    }
}

fn problem(seq: Option<i64>, table: Option<ChainTable>, row_id: Option<i64>, text: String) -> ChainProblem {
    ChainProblem { seq, table: table.map(|t| t.table().to_owned()), row_id, problem: text }
}

/// Walks the whole chain on `conn` (a read transaction gives it one consistent view): every
/// row against its link, every link against the one before, every checkpoint and the anchor
/// against the audit key. Memory stays bounded: rows are streamed, in id order per table.
fn verify(conn: &dyn Sql, signer: &dyn AuditSigner) -> Result<ChainReport, StoreError> {
    let legacy = |t: &str| -> Result<i64, StoreError> {
        Ok(conn.query_opt("SELECT max_id FROM audit_legacy WHERE tbl = ?1", args![t], |r| r.get(0))?.unwrap_or(0))
    };
    let (legacy_auth, legacy_sig) = (legacy("auth")?, legacy("signature")?);
    let legacy_rows: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM auth_audit WHERE id <= ?1) + (SELECT count(*) FROM signature_audit WHERE id <= ?2)",
        args![legacy_auth, legacy_sig],
        |r| r.get(0),
    )?;
    let mut report = ChainReport {
        ok: true,
        links: 0,
        first_seq: None,
        last_seq: None,
        checkpoints_verified: 0,
        last_checkpoint_seq: None,
        unsigned_tail: 0,
        anchor_seq: None,
        removed_by_retention: 0,
        legacy_rows: u64::try_from(legacy_rows).unwrap_or(0),
        first_bad: None,
    };
    let signed_as = |message: fn(i64, &[u8; 32], i64) -> Vec<u8>, c: &Checkpoint| -> Result<bool, StoreError> {
        let Ok(hash) = <[u8; 32]>::try_from(c.hash.as_slice()) else { return Ok(false) };
        signer
            .verify(&message(c.seq, &hash, c.at_ms), &c.signature)
            .map_err(|e| StoreError::AuditKey(format!("the audit key could not check a checkpoint: {e}")))
    };
    let checks = |c: &Checkpoint| signed_as(checkpoint_message, c);

    let anchor: Option<(Checkpoint, i64)> =
        conn.query_opt("SELECT seq, hash, at_ms, signature, removed FROM audit_anchor WHERE id = 1", args![], |r| {
            Ok((Checkpoint { seq: r.get(0)?, hash: r.get(1)?, at_ms: r.get(2)?, signature: r.get(3)? }, r.get(4)?))
        })?;
    let (mut prev, mut prev_seq) = (GENESIS, 0i64);
    if let Some((a, removed)) = &anchor {
        report.anchor_seq = Some(a.seq);
        report.removed_by_retention = u64::try_from(*removed).unwrap_or(0);
        if !signed_as(anchor_message, a)? {
            report.ok = false;
            let why = if checks(a)? {
                "the retention anchor carries a checkpoint's signature, not an anchor's: the start of the chain was \
                 cut away by hand (or by a Countersign from before 2026-12-07; see docs/operations.md)"
            } else {
                "the retention anchor's signature does not verify: the start of the chain was changed"
            };
            report.first_bad = Some(problem(Some(a.seq), None, None, why.into()));
            return Ok(report);
        }
        prev = hash32(a.hash.clone())?;
        prev_seq = a.seq;
    }

    let mut checkpoints: Pages<Checkpoint> = Pages::new(
        "SELECT seq, hash, at_ms, signature FROM audit_checkpoint WHERE seq > ?1 ORDER BY seq LIMIT ?2".into(),
        i64::MIN,
        |r| Ok((r.get(0)?, Checkpoint { seq: r.get(0)?, hash: r.get(1)?, at_ms: r.get(2)?, signature: r.get(3)? })),
    );
    let mut links: Pages<(String, i64, Vec<u8>)> = Pages::new(
        "SELECT seq, tbl, row_id, hash FROM audit_chain WHERE seq > ?1 ORDER BY seq LIMIT ?2".into(),
        i64::MIN,
        |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
    );
    let mut auth = RowCursor::new(ChainTable::Auth, legacy_auth);
    let mut sigs = RowCursor::new(ChainTable::Signature, legacy_sig);

    let mut since_checkpoint = 0u64;
    let bad = loop {
        let Some((seq, (tbl, row_id, stored))) = links.next(conn)? else { break None };
        let table = if tbl == "auth" { ChainTable::Auth } else { ChainTable::Signature };
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        report.links += 1;
        since_checkpoint += 1;
        if seq != prev_seq + 1 {
            break Some(problem(
                Some(prev_seq + 1),
                None,
                None,
                format!(
                    "chain links {} to {} are missing: the audit rows they covered were deleted",
                    prev_seq + 1,
                    seq - 1
                ),
            ));
        }
        let cursor = if table == ChainTable::Auth { &mut auth } else { &mut sigs };
        match cursor.peek(conn)? {
            Some(id) if id < row_id => {
                break Some(problem(
                    None,
                    Some(table),
                    Some(id),
                    format!("{} row {id} is not in the chain: it was inserted behind the audit's back", table.table()),
                ))
            }
            Some(id) if id == row_id => {}
            _ => {
                break Some(problem(
                    Some(seq),
                    Some(table),
                    Some(row_id),
                    format!("{} row {row_id} (chain link {seq}) is missing: it was deleted", table.table()),
                ))
            }
        }
        let Some((id, row)) = cursor.take(conn)? else { break None };
        let computed = row.link(&prev, id);
        if computed.as_slice() != stored.as_slice() {
            break Some(problem(
                Some(seq),
                Some(table),
                Some(id),
                format!(
                    "{} row {id} (chain link {seq}) does not match the chain: it was edited or moved, or the row \
                     before it was removed",
                    table.table()
                ),
            ));
        }
        prev = computed;
        prev_seq = seq;
        while checkpoints.peek(conn)?.is_some_and(|(s, _)| *s < seq) {
            checkpoints.next(conn)?;
        }
        if let Some((_, c)) = checkpoints.peek(conn)? {
            if c.seq == seq {
                if c.hash.as_slice() != prev.as_slice() || !checks(c)? {
                    break Some(problem(
                        Some(seq),
                        None,
                        None,
                        format!(
                            "chain link {seq} differs from the checkpoint the audit key signed: rows up to it were \
                             rewritten and the chain recomputed{}",
                            report.last_checkpoint_seq.map(|s| format!(" (after link {s})")).unwrap_or_default()
                        ),
                    ));
                }
                report.checkpoints_verified += 1;
                report.last_checkpoint_seq = Some(seq);
                since_checkpoint = 0;
                checkpoints.next(conn)?;
            }
        }
    };
    let bad = match bad {
        Some(b) => Some(b),
        None => {
            // Rows no link points at, and checkpoints beyond the chain's end.
            let extra = |c: &mut RowCursor| -> Result<Option<ChainProblem>, StoreError> {
                Ok(c.peek(conn)?.map(|id| {
                    problem(
                        None,
                        Some(c.table),
                        Some(id),
                        format!(
                            "{} row {id} is not in the chain: it was inserted behind the audit's back",
                            c.table.table()
                        ),
                    )
                }))
            };
            match (extra(&mut auth)?, extra(&mut sigs)?) {
                (Some(p), _) | (None, Some(p)) => Some(p),
                (None, None) => match checkpoints.next(conn)?.map(|(_, c)| c).filter(|c| c.seq > prev_seq) {
                    Some(c) => Some(problem(
                        Some(prev_seq + 1),
                        None,
                        None,
                        format!(
                            "the chain ends at link {prev_seq} but the audit key signed link {}: the newest rows were \
                             deleted",
                            c.seq
                        ),
                    )),
                    None => None,
                },
            }
        }
    };
    report.unsigned_tail = since_checkpoint;
    report.ok = bad.is_none();
    report.first_bad = bad;
    Ok(report)
}

/// Signs the newest link as a checkpoint unless one already covers it. Returns its seq.
fn checkpoint(
    store: &super::Store,
    signer: &dyn AuditSigner,
    at_ms: i64,
    kind: &str,
) -> Result<Option<i64>, StoreError> {
    let (newest, covered): (Option<(i64, Vec<u8>)>, Option<i64>) = store.read_apart(|conn| {
        let newest = conn.query_opt("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1", args![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok((newest, conn.query_value("SELECT max(seq) FROM audit_checkpoint", args![])?))
    })?;
    let Some((seq, hash)) = newest else { return Ok(None) };
    if covered.is_some_and(|c| c >= seq) {
        return Ok(None);
    }
    let hash = hash32(hash)?;
    // Signed outside any transaction: the HSM's time does not hold up writers. Two runs that
    // race sign the same link; the second insert is a no-op.
    let signature = signer
        .sign(&checkpoint_message(seq, &hash, at_ms))
        .map_err(|e| StoreError::AuditKey(format!("the audit key could not sign a checkpoint: {e}")))?;
    store.write_apart(|conn| {
        conn.execute(
            "INSERT INTO audit_checkpoint (seq, hash, at_ms, signature, kind) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (seq) DO NOTHING",
            args![seq, hash.as_slice(), at_ms, signature, kind],
        )
    })?;
    Ok(Some(seq))
}

/// How much retention keeps: links newer than `keep_after_ms`, and at most `max_links`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Keep the links stamped at or after this time (milliseconds since the Unix epoch); `None`: no
    /// age limit.
    pub keep_after_ms: Option<i64>,
    /// Keep at most this many of the newest links; `None`: no count limit.
    pub max_links: Option<u64>,
}

/// What a retention run removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionReport {
    /// Chain links removed by this run, each with its audit row.
    pub removed_links: u64,
    /// Audit rows from before the chain existed (migration 0013) removed by this run.
    pub removed_legacy_rows: u64,
    /// How many transactions the run took, each with its own signed anchor.
    pub batches: u64,
    /// The link the chain now starts after (the last one removed); `None`: nothing was cut.
    pub anchor_seq: Option<i64>,
}

/// Links removed per transaction: bounds memory and how long writers wait.
const RETENTION_BATCH: i64 = 20_000;

/// Removes the chain's beginning as `keep` says, a batch per transaction; before each batch it
/// signs the last link it removes, which becomes the anchor the rest of the chain verifies
/// from. Legacy rows go first, by the same age.
fn retain(
    store: &super::Store,
    signer: &dyn AuditSigner,
    keep: Retention,
    now_ms: i64,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    let (first, last): (Option<i64>, Option<i64>) = store.read_apart(|conn| {
        conn.query_row("SELECT min(seq), max(seq) FROM audit_chain", args![], |r| Ok((r.get(0)?, r.get(1)?)))
    })?;
    let mut cut: Option<i64> = None;
    if let (Some(max), Some(last)) = (keep.max_links, last) {
        let c = last - i64::try_from(max).unwrap_or(i64::MAX);
        cut = cut.max(Some(c).filter(|c| *c >= first.unwrap_or(0)));
    }
    if let Some(after) = keep.keep_after_ms {
        let c: Option<i64> = store
            .read_apart(|conn| conn.query_value("SELECT max(seq) FROM audit_chain WHERE at_ms < ?1", args![after]))?;
        cut = cut.max(c);
    }
    // Legacy rows are older than every link: they go when the cut reaches the chain, or by age.
    let legacy_before = match (cut, keep.keep_after_ms) {
        (Some(_), _) => Some(i64::MAX),
        (None, Some(after)) => Some(after),
        (None, None) => None,
    };
    if let Some(before) = legacy_before {
        for (table, tbl) in [("auth_audit", "auth"), ("signature_audit", "signature")] {
            let sql = format!(
                "DELETE FROM {table} WHERE id <= (SELECT max_id FROM audit_legacy WHERE tbl = ?1) AND at_ms < ?2"
            );
            let n = store.write_apart(|conn| conn.execute(&sql, args![tbl, before]))?;
            report.removed_legacy_rows += n as u64;
        }
    }
    let (Some(cut), Some(mut from)) = (cut, first) else { return Ok(report) };
    while from <= cut {
        let to = cut.min(from + RETENTION_BATCH - 1);
        let hash: Vec<u8> =
            store.read_apart(|conn| conn.query_value("SELECT hash FROM audit_chain WHERE seq = ?1", args![to]))?;
        let hash = hash32(hash)?;
        let signature = signer
            .sign(&anchor_message(to, &hash, now_ms))
            .map_err(|e| StoreError::AuditKey(format!("the audit key could not sign the retention anchor: {e}")))?;
        let removed = store.write_apart(|tx| {
            for (table, tbl) in [("auth_audit", "auth"), ("signature_audit", "signature")] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE id IN (SELECT row_id FROM audit_chain WHERE tbl = ?1 AND seq <= ?2)"
                    ),
                    args![tbl, to],
                )?;
            }
            let removed = tx.execute("DELETE FROM audit_chain WHERE seq <= ?1", args![to])?;
            tx.execute("DELETE FROM audit_checkpoint WHERE seq <= ?1", args![to])?;
            tx.execute(
                "INSERT INTO audit_anchor (id, seq, hash, at_ms, signature, removed) VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at_ms = excluded.at_ms,
                     signature = excluded.signature, removed = audit_anchor.removed + excluded.removed",
                args![to, hash.as_slice(), now_ms, signature, removed as i64],
            )?;
            Ok(removed)
        })?;
        report.removed_links += removed as u64;
        report.batches += 1;
        report.anchor_seq = Some(to);
        from = to + 1;
    }
    Ok(report)
}

/// Every row from chain link `after_seq + 1` on, in chain order, as one JSON object each
/// (`seq`, `table`, `link` hash in hex, and the row's columns), handed to `each` until it
/// returns false. Streams: memory stays flat whatever the size.
fn export(conn: &dyn Sql, after_seq: i64, mut each: impl FnMut(serde_json::Value) -> bool) -> Result<u64, StoreError> {
    /// One exported link: its seq, table, hash, and the row as JSON (`null`: the row is gone).
    type Line = (String, Vec<u8>, serde_json::Value);
    let mut rows: Pages<Line> = Pages::new(
        format!(
            "SELECT c.seq, c.tbl, c.hash, {}, {} FROM audit_chain c
             LEFT JOIN auth_audit a ON c.tbl = 'auth' AND a.id = c.row_id
             LEFT JOIN signature_audit s ON c.tbl = 'signature' AND s.id = c.row_id
             WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
            AUTH_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", "),
            SIGNATURE_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", "),
        ),
        after_seq,
        |r| {
            // A link whose row is gone exports with `row: null` (verify says why).
            const AUTH_AT: usize = 3;
            let sig_at = AUTH_AT + AUTH_COLUMNS.split(", ").count();
            let (seq, tbl, hash): (i64, String, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let row = if tbl == "auth" {
                match r.get::<Option<i64>>(AUTH_AT)? {
                    Some(_) => serde_json::to_value(AuthAuditRow::from_row(r, AUTH_AT)?),
                    None => Ok(serde_json::Value::Null),
                }
            } else {
                match r.get::<Option<i64>>(sig_at)? {
                    Some(_) => serde_json::to_value(SignatureAuditRow::from_row(r, sig_at)?),
                    None => Ok(serde_json::Value::Null),
                }
            }
            .map_err(|e| {
                StoreError::Refused(Refusal::Invalid(format!("audit row {seq} cannot be written as JSON: {e}")))
            })?;
            Ok((seq, (tbl, hash, row)))
        },
    );
    let mut n = 0u64;
    while let Some((seq, (tbl, hash, row))) = rows.next(conn)? {
        let line = serde_json::json!({
            "seq": seq,
            "table": if tbl == "auth" { "auth_audit" } else { "signature_audit" },
            "link": hex::encode(hash),
            "row": row,
        });
        n += 1;
        if !each(line) {
            break;
        }
    }
    Ok(n)
}
impl super::Store {
    /// Walks the whole chain (see `verify` above) inside one read transaction on a connection
    /// of its own.
    pub fn verify_chain(&self, signer: &dyn AuditSigner) -> Result<ChainReport, StoreError> {
        self.snapshot_apart(|conn| verify(conn, signer))
    }

    /// The newest signed checkpoint: its link and when it was made (Unix ms); `None`: none yet.
    pub fn last_checkpoint(&self) -> Result<Option<(i64, i64)>, StoreError> {
        self.read(|conn| {
            conn.query_opt("SELECT seq, at_ms FROM audit_checkpoint ORDER BY seq DESC LIMIT 1", args![], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
    }

    /// Signs the newest link unless a checkpoint covers it already; `kind` says why
    /// (`periodic`, `retention`, ...). The new checkpoint's link, if one was made.
    pub fn checkpoint_chain(
        &self,
        signer: &dyn AuditSigner,
        at_ms: i64,
        kind: &str,
    ) -> Result<Option<i64>, StoreError> {
        checkpoint(self, signer, at_ms, kind)
    }

    /// Checkpoints the newest link, then removes the oldest links `keep` lets go, leaving an
    /// anchor that the next verification starts from.
    pub fn retain_audit(
        &self,
        signer: &dyn AuditSigner,
        keep: Retention,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        // The cut's newest links must be vouched for before they become the anchor's past.
        checkpoint(self, signer, now_ms, "retention")?;
        retain(self, signer, keep, now_ms)
    }

    /// The audit rows after link `after_seq`, in chain order, from one read transaction; each
    /// row goes to `each` as JSON, which returns false to stop. The number of rows sent.
    pub fn export_chain(&self, after_seq: i64, each: impl FnMut(serde_json::Value) -> bool) -> Result<u64, StoreError> {
        self.snapshot_apart(|conn| export(conn, after_seq, each))
    }
}
