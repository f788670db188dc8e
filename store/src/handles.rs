//! The connections the executor's workers hold, as opaque handles: a [`Reader`] for the check
//! path's look-ups and a [`Writer`] for group commits. Callers never see SQLite: they ask these
//! handles for domain values, whichever engine is behind them.
//!
//! A handle never outlives its thread's use and is never shared between threads.

use std::sync::{Mutex, PoisonError};

use crate::db::Conn;

use super::audit::SignatureAuditRow;
use super::chain::ChainTail;
use super::challenges::{open_challenges, OpenChallenge};
use super::hardware::{token_certificate, CertificateRow};
use super::row_seals::RowSeals;
use super::tokens::{
    accepted_digest, commit_check, foreseen, recent_owner_checks, throttle_state, token_by_id, token_for_check,
    tokens_by_public_id, tokens_of_owner, CheckRecord, Owner, ReadToken, TokenRecord,
};
use super::webauthn::{open_sign_in, token_of_credential, webauthn_credential, OpenSignIn, WebauthnCredential};
use super::{Store, StoreError};
use countersign_core::check::ThrottleState;

/// A read-only connection of its own, for one worker's look-ups on the check path. Token and
/// user rows read through it are checked against their seals.
#[derive(Debug)]
pub struct Reader {
    conn: Conn,
    seals: RowSeals,
    /// The token rows the latest look-up returned, as read: what [`Reader::foresee`] works
    /// out an accept's new row seal from. Replaced by each look-up, emptied by `foresee`.
    last_read: Mutex<Vec<ReadToken>>,
}

impl Reader {
    pub(super) fn open(store: &Store) -> Result<Reader, StoreError> {
        Ok(Reader { conn: store.reader_connection()?, seals: store.row_seals(), last_read: Mutex::default() })
    }

    fn read(&self, tokens: Result<Vec<TokenRecord>, StoreError>) -> Result<Vec<TokenRecord>, StoreError> {
        let mut last = self.last_read.lock().unwrap_or_else(PoisonError::into_inner);
        last.clear();
        if let Ok(t) = &tokens {
            last.extend(t.iter().map(ReadToken::from));
        }
        tokens
    }

    /// The tokens of `owner` that a check may consider.
    pub fn tokens_of_owner(&self, owner: &Owner) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(tokens_of_owner(self.conn.sql(), &self.seals, owner))
    }

    /// The tokens that learned this Yubico public id.
    pub fn tokens_by_public_id(&self, public_id: &str) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(tokens_by_public_id(self.conn.sql(), &self.seals, public_id))
    }

    /// The token with this serial (none or one).
    pub fn token_for_check(&self, serial: &str) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(token_for_check(self.conn.sql(), &self.seals, serial))
    }

    /// Before `rec` goes to its commit: when it accepts a token this reader's latest look-up
    /// returned, seals the row the accept will leave, here on the worker's thread, and puts
    /// that in `rec` ([`CheckRecord::foreseen`]): the commit (one thread for every worker)
    /// then changes the row in one statement if it is still the row that was read.
    pub fn foresee(&self, rec: &mut CheckRecord) {
        let read = std::mem::take(&mut *self.last_read.lock().unwrap_or_else(PoisonError::into_inner));
        rec.foreseen = read.iter().find_map(|t| foreseen(t, self.seals.foresee(&accepted_digest(t, rec)?)?));
    }

    /// The back-off counted for `owner` from `source` and from everywhere.
    pub fn throttle_state(&self, owner: &str, source: &str) -> Result<ThrottleState, StoreError> {
        throttle_state(self.conn.sql(), owner, source)
    }

    /// Checks of `owner` with this result since `since_ms`.
    pub fn recent_owner_checks(&self, owner: &str, result: &str, since_ms: i64) -> Result<u64, StoreError> {
        recent_owner_checks(self.conn.sql(), owner, result, since_ms)
    }

    /// The unanswered, unexpired challenges of a transaction.
    pub fn open_challenges(&self, transaction_id: &str, now_ms: i64) -> Result<Vec<OpenChallenge>, StoreError> {
        open_challenges(self.conn.sql(), transaction_id, now_ms)
    }

    /// The certificate issued for a token (PIV), if any.
    pub fn token_certificate(&self, token_id: i64) -> Result<Option<CertificateRow>, StoreError> {
        token_certificate(self.conn.sql(), &self.seals, token_id)
    }

    /// The open sign-in challenge (bound to no token) of a transaction.
    pub fn open_sign_in(&self, transaction_id: &str, now_ms: i64) -> Result<Option<OpenSignIn>, StoreError> {
        open_sign_in(self.conn.sql(), transaction_id, now_ms)
    }

    /// The push challenge of challenge row `challenge_id` (checked against its seal), if it is
    /// one.
    pub fn push_challenge(&self, challenge_id: i64) -> Result<Option<crate::PushChallenge>, StoreError> {
        crate::push::push_challenge(self.conn.sql(), &self.seals, challenge_id)
    }

    /// The WebAuthn credential of a token, if its registration finished.
    pub fn webauthn_credential(&self, token_id: i64) -> Result<Option<WebauthnCredential>, StoreError> {
        webauthn_credential(self.conn.sql(), &self.seals, token_id)
    }

    /// The token a WebAuthn credential id belongs to (by the unique index), checked against
    /// its seal, with its credential; `None` when no token has it.
    pub fn token_of_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<(TokenRecord, WebauthnCredential)>, StoreError> {
        let conn = self.conn.sql();
        let Some(token_id) = token_of_credential(conn, credential_id)? else { return Ok(None) };
        let Some(token) = token_by_id(conn, &self.seals, token_id)? else { return Ok(None) };
        Ok(webauthn_credential(conn, &self.seals, token_id)?.map(|c| (token, c)))
    }

    /// One seal MAC that decides nothing (see [`RowSeals::equal_work`]).
    pub fn equal_work(&self) {
        self.seals.equal_work();
    }
}

/// What one request leaves to commit.
#[derive(Debug)]
pub enum Record {
    /// A signature's audit row.
    Signature(SignatureAuditRow),
    /// A token check: its counter effect and audit row.
    Check(CheckRecord),
}

/// How a record fared in its commit: its audit row id, and whether a check's accept stood.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// The audit row written for it.
    pub audit_id: i64,
    /// A check's accept stood (its compare-and-set won); always false for a signature.
    pub accepted: bool,
}

/// The hot path's writer connection: commits batches of records in one transaction.
#[derive(Debug)]
pub struct Writer {
    conn: Conn,
    seals: RowSeals,
}

impl Writer {
    pub(super) fn open(store: &Store) -> Result<Writer, StoreError> {
        Ok(Writer { conn: store.writer_connection()?, seals: store.row_seals() })
    }

    /// Writes `records` in one transaction, in order, so the first of two checks racing for a
    /// counter wins (the second's record becomes a reject before its audit row is written).
    pub fn commit<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r mut Record>,
    ) -> Result<Vec<Committed>, StoreError> {
        let seals = &self.seals;
        self.conn.write(|tx| {
            // The chain's head is read once for the whole batch, in its transaction.
            let mut tail = ChainTail::default();
            let mut out = Vec::new();
            for record in records {
                out.push(match record {
                    Record::Signature(row) => Committed { audit_id: tail.signature_row(tx, row)?, accepted: false },
                    Record::Check(rec) => {
                        let (audit_id, accepted) = commit_check(tx, seals, &mut tail, rec)?;
                        Committed { audit_id, accepted }
                    }
                });
            }
            Ok(out)
        })
    }
}
