//! Push challenges and when each phone was last seen (migration 0032).
//!
//! A push challenge is a `challenge` row (its transaction id, expiry, and `answered_ms`, which
//! the finalising check spends by compare-and-set as for every challenge) plus a row-sealed
//! `push_challenge` row: the nonce the phone signs, what it is shown (signed by the server's
//! key), number matching's answer, and the phone's answer with its signature. The phone's
//! answer moves `status` from `open` to `accepted` or `declined` once, by compare-and-set, in
//! the transaction of its audit row.
//!
//! Owns: `push_challenge`, `push_device`. Must never: change a push challenge's status twice,
//! or write one without renewing its seal.

use super::chain::insert_audit;
use super::db::{args, Row, Sql};
use super::row_seals::{RowSeal, RowSeals, RowTable};
use super::{AuthAuditRow, Store, StoreError};

/// A push challenge as stored (its seal checked when read for a decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushChallenge {
    /// The `challenge` row's id, which the finalising check spends.
    pub challenge_id: i64,
    /// The token challenged.
    pub token_id: i64,
    /// The transaction id the login client finalises with.
    pub transaction_id: String,
    /// The Base32 challenge the phone signs its answer over.
    pub nonce: String,
    /// Until when it may be answered, Unix ms.
    pub expires_ms: i64,
    /// What the phone is shown, as JSON, with the server's signature in it.
    pub payload: String,
    /// Number matching: the option the login screen shows; `None` without number matching.
    pub presence_answer: Option<String>,
    /// `open`, `accepted` or `declined`.
    pub status: PushStatus,
    /// Why it was declined (`declined on the phone`, `wrong number tapped`).
    pub reason: Option<String>,
    /// The phone's signature of its answer (Base32), kept so the finalising check can verify
    /// it again.
    pub answer_signature: Option<String>,
    /// When the phone answered, Unix ms.
    pub answered_ms: Option<i64>,
    /// Whether the `challenge` row was spent by a finalising check.
    pub used: bool,
}

/// Where a push challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    /// Waiting for the phone.
    Open,
    /// The phone accepted; a check may finalise the login once.
    Accepted,
    /// The phone declined (or the wrong number was tapped).
    Declined,
}

impl PushStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            PushStatus::Open => "open",
            PushStatus::Accepted => "accepted",
            PushStatus::Declined => "declined",
        }
    }

    fn parse(s: &str) -> Result<PushStatus, StoreError> {
        match s {
            "open" => Ok(PushStatus::Open),
            "accepted" => Ok(PushStatus::Accepted),
            "declined" => Ok(PushStatus::Declined),
            other => Err(StoreError::Tampered(format!("a push challenge has the unknown status '{other}'"))),
        }
    }
}

/// A new push challenge.
#[derive(Debug, Clone)]
pub struct NewPushChallenge<'a> {
    /// The token challenged.
    pub token_id: i64,
    /// The transaction id shared by the trigger's challenges.
    pub transaction_id: &'a str,
    /// The Base32 challenge.
    pub nonce: &'a str,
    /// When it was made, Unix ms.
    pub now_ms: i64,
    /// Until when it may be answered, Unix ms.
    pub expires_ms: i64,
    /// What the phone is shown (signed JSON).
    pub payload: &'a str,
    /// Number matching's answer, if any.
    pub presence_answer: Option<&'a str>,
}

/// The phone's answer to a push challenge.
#[derive(Debug, Clone)]
pub struct PushAnswer {
    /// `Accepted` or `Declined`.
    pub status: PushStatus,
    /// Why declined.
    pub reason: Option<String>,
    /// The phone's signature (Base32).
    pub signature: String,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// When a phone last polled and last answered, Unix ms (`None`: never).
pub type LastSeen = (Option<i64>, Option<i64>);

/// How a transaction's push challenges stand, for `/validate/polltransaction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// A phone accepted one that is still valid and not used.
    Accepted,
    /// None accepted; a phone declined one.
    Declined,
    /// Nothing answered (or no such transaction).
    Pending,
}

const SELECT: &str = "SELECT p.challenge_id, p.token_id, p.transaction_id, p.nonce, p.expires_ms, p.payload, \
     p.presence_answer, p.status, p.reason, p.answer_signature, p.answered_ms, c.answered_ms";
const WIDTH: usize = 12;

fn from_row(r: &Row<'_>) -> Result<(PushChallenge, RowSeal), StoreError> {
    let status: String = r.get(7)?;
    let used: Option<i64> = r.get(11)?;
    let row = PushChallenge {
        challenge_id: r.get(0)?,
        token_id: r.get(1)?,
        transaction_id: r.get(2)?,
        nonce: r.get(3)?,
        expires_ms: r.get(4)?,
        payload: r.get(5)?,
        presence_answer: r.get(6)?,
        status: PushStatus::parse(&status)?,
        reason: r.get(8)?,
        answer_signature: r.get(9)?,
        answered_ms: r.get(10)?,
        used: used.is_some(),
    };
    Ok((row, RowSeal::read(r, RowTable::PushChallenge, WIDTH)?.unwrap_or_default()))
}

/// The push challenges matching `filter` (on `p` and `c`), each checked against its seal.
fn push_challenges_in(
    conn: &dyn Sql,
    seals: &RowSeals,
    filter: &str,
    values: &[&dyn super::db::Param],
) -> Result<Vec<PushChallenge>, StoreError> {
    let sql = format!(
        "{SELECT}, {} FROM push_challenge p JOIN challenge c ON c.id = p.challenge_id WHERE {filter} \
         ORDER BY p.challenge_id",
        RowTable::PushChallenge.select_list("p")
    );
    let rows = conn.query_map(&sql, values, from_row)?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, seal) in rows {
        seals.check(&seal, || format!("push challenge #{}", row.challenge_id))?;
        out.push(row);
    }
    Ok(out)
}

/// The push challenge of challenge row `challenge_id`, checked against its seal.
pub(crate) fn push_challenge(
    conn: &dyn Sql,
    seals: &RowSeals,
    challenge_id: i64,
) -> Result<Option<PushChallenge>, StoreError> {
    Ok(push_challenges_in(conn, seals, "p.challenge_id = ?1", args![challenge_id])?.pop())
}

impl Store {
    /// Records a push challenge: the `challenge` row (no counter reserved) and its sealed
    /// `push_challenge` row, in one transaction; the token must still be active.
    pub fn create_push_challenge(&self, new: &NewPushChallenge<'_>) -> Result<i64, StoreError> {
        self.write(|tx| {
            let (id, _) = super::challenges::insert_unreserved(
                tx,
                new.token_id,
                new.transaction_id,
                new.now_ms,
                new.expires_ms,
                Some(new.nonce.as_bytes()),
            )?;
            tx.execute(
                "INSERT INTO push_challenge (challenge_id, token_id, transaction_id, nonce, expires_ms, payload,
                     presence_answer, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open')",
                args![
                    id,
                    new.token_id,
                    new.transaction_id,
                    new.nonce,
                    new.expires_ms,
                    new.payload,
                    new.presence_answer
                ],
            )?;
            self.row_seals().seal_row(tx, RowTable::PushChallenge, id)?;
            Ok(id)
        })
    }

    /// The token's push challenges the phone may still answer at `now_ms` (open, unexpired,
    /// not used), oldest first, each checked against its seal.
    pub fn open_push_challenges(&self, token_id: i64, now_ms: i64) -> Result<Vec<PushChallenge>, StoreError> {
        self.read(|conn| {
            push_challenges_in(
                conn,
                &self.row_seals(),
                "p.token_id = ?1 AND p.status = 'open' AND p.expires_ms > ?2 AND c.answered_ms IS NULL",
                args![token_id, now_ms],
            )
        })
    }

    /// The token's push challenge with this nonce, whatever its state, checked against its
    /// seal.
    pub fn push_challenge_by_nonce(&self, token_id: i64, nonce: &str) -> Result<Option<PushChallenge>, StoreError> {
        self.read(|conn| {
            Ok(push_challenges_in(conn, &self.row_seals(), "p.token_id = ?1 AND p.nonce = ?2", args![token_id, nonce])?
                .pop())
        })
    }

    /// The token's push challenge the phone answered with exactly this signature (a replay of
    /// that answer), if any.
    pub fn push_challenge_by_signature(
        &self,
        token_id: i64,
        signature: &str,
    ) -> Result<Option<PushChallenge>, StoreError> {
        self.read(|conn| {
            Ok(push_challenges_in(
                conn,
                &self.row_seals(),
                "p.token_id = ?1 AND p.answer_signature = ?2",
                args![token_id, signature],
            )?
            .pop())
        })
    }

    /// Records the phone's answer to the open challenge `c` (as read), with `audit`, in one
    /// transaction; `false` (and nothing written) when it was answered, used or expired since.
    pub fn answer_push_challenge(
        &self,
        c: &PushChallenge,
        answer: &PushAnswer,
        audit: &AuthAuditRow,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = self.row_seals().update(tx, RowTable::PushChallenge, c.challenge_id, || {
                tx.execute(
                    "UPDATE push_challenge SET status = ?1, reason = ?2, answer_signature = ?3, answered_ms = ?4
                     WHERE challenge_id = ?5 AND status = 'open' AND expires_ms > ?4
                       AND NOT EXISTS (SELECT 1 FROM challenge WHERE id = ?5 AND answered_ms IS NOT NULL)",
                    args![answer.status.as_str(), answer.reason, answer.signature, answer.at_ms, c.challenge_id],
                )
            })?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO push_device (token_id, last_answer_ms) VALUES (?1, ?2)
                 ON CONFLICT (token_id) DO UPDATE SET last_answer_ms = excluded.last_answer_ms",
                args![c.token_id, answer.at_ms],
            )?;
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    /// How the push challenges of `transaction_id` stand at `now_ms`.
    pub fn push_transaction_state(&self, transaction_id: &str, now_ms: i64) -> Result<TransactionState, StoreError> {
        let all = self.read(|conn| {
            push_challenges_in(
                conn,
                &self.row_seals(),
                "p.transaction_id = ?1 AND p.expires_ms > ?2",
                args![transaction_id, now_ms],
            )
        })?;
        Ok(if all.iter().any(|c| c.status == PushStatus::Accepted && !c.used) {
            TransactionState::Accepted
        } else if all.iter().any(|c| c.status == PushStatus::Declined) {
            TransactionState::Declined
        } else {
            TransactionState::Pending
        })
    }

    /// Notes that the token's phone polled at `now_ms`.
    pub fn push_polled(&self, token_id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.execute(
                "INSERT INTO push_device (token_id, last_poll_ms) VALUES (?1, ?2)
                 ON CONFLICT (token_id) DO UPDATE SET last_poll_ms = excluded.last_poll_ms",
                args![token_id, now_ms],
            )?;
            Ok(())
        })
    }

    /// When each phone that was ever seen last polled and last answered, by token id: one read
    /// for a whole listing of tokens.
    pub fn push_last_seen_all(&self) -> Result<std::collections::HashMap<i64, LastSeen>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .query_map("SELECT token_id, last_poll_ms, last_answer_ms FROM push_device", args![], |r| {
                    Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
                })?
                .into_iter()
                .collect())
        })
    }

    /// When the token's phone last polled and last answered, Unix ms.
    pub fn push_last_seen(&self, token_id: i64) -> Result<LastSeen, StoreError> {
        self.read(|conn| {
            Ok(conn
                .query_opt(
                    "SELECT last_poll_ms, last_answer_ms FROM push_device WHERE token_id = ?1",
                    args![token_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .unwrap_or((None, None)))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::testing::each_store;

    fn audit() -> AuthAuditRow {
        AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "push/answer", "ok")
    }

    #[test]
    fn a_push_challenge_is_answered_once_and_its_transaction_reports_it() {
        each_store(|s, backend| {
            let t = s.insert_token(&crate::NewToken::for_test("PIPU0001", None), &audit()).unwrap().id;
            let new = |tx: &'static str, nonce: &'static str| NewPushChallenge {
                token_id: t,
                transaction_id: tx,
                nonce,
                now_ms: 1_000,
                expires_ms: 121_000,
                payload: "{}",
                presence_answer: Some("B"),
            };
            s.create_push_challenge(&new("11", "NONCEA")).unwrap();
            s.create_push_challenge(&new("22", "NONCEB")).unwrap();
            s.create_push_challenge(&new("33", "NONCEC")).unwrap();
            assert_eq!(s.open_push_challenges(t, 2_000).unwrap().len(), 3, "{backend}");
            assert_eq!(s.open_push_challenges(t, 121_000).unwrap().len(), 0, "{backend}: expired");
            assert_eq!(s.push_transaction_state("11", 2_000).unwrap(), TransactionState::Pending);
            let c = s.push_challenge_by_nonce(t, "NONCEA").unwrap().unwrap();
            let yes = PushAnswer { status: PushStatus::Accepted, reason: None, signature: "SIG".into(), at_ms: 3_000 };
            assert!(s.answer_push_challenge(&c, &yes, &audit()).unwrap(), "{backend}");
            assert!(!s.answer_push_challenge(&c, &yes, &audit()).unwrap(), "{backend}: answered once");
            assert_eq!(s.push_transaction_state("11", 4_000).unwrap(), TransactionState::Accepted);
            let d = s.push_challenge_by_nonce(t, "NONCEB").unwrap().unwrap();
            let no = PushAnswer {
                status: PushStatus::Declined,
                reason: Some("declined on the phone".into()),
                signature: "SIG2".into(),
                at_ms: 3_000,
            };
            assert!(s.answer_push_challenge(&d, &no, &audit()).unwrap(), "{backend}");
            assert_eq!(s.push_transaction_state("22", 4_000).unwrap(), TransactionState::Declined, "{backend}");
            let late = s.push_challenge_by_nonce(t, "NONCEB").unwrap().unwrap();
            assert_eq!((late.status, late.answer_signature.as_deref()), (PushStatus::Declined, Some("SIG2")));
            let e = s.push_challenge_by_nonce(t, "NONCEC").unwrap().unwrap();
            let too_late = PushAnswer { at_ms: 121_000, ..yes };
            assert!(!s.answer_push_challenge(&e, &too_late, &audit()).unwrap(), "{backend}: expired");
            s.push_polled(t, 5_000).unwrap();
            assert_eq!(s.push_last_seen(t).unwrap(), (Some(5_000), Some(3_000)), "{backend}");
            assert_eq!(s.push_last_seen_all().unwrap().get(&t), Some(&(Some(5_000), Some(3_000))), "{backend}");
        });
    }
}
