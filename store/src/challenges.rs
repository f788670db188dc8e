//! Challenges and the durable delivery queue of their messages.
//!
//! A challenge reserves its token's next counter by compare-and-set, so no two challenges (and
//! no later challenge) share a code. Deliveries move `queued → sending → delivered | failed |
//! expired`; `sending` is claimed by compare-and-set, so a delivery is attempted by one sender
//! at a time, and a delivered one is never sent again. Message texts are stored sealed.

use countersign_core::error::Refusal;
use serde::Serialize;

use super::db::{args, Row, Sql};
use super::{Store, StoreError};

/// An open challenge, as the check reads it.
#[derive(Debug, Clone)]
pub struct OpenChallenge {
    /// The challenge's row id.
    pub id: i64,
    /// The row id of the token challenged.
    pub token_id: i64,
    /// The counter whose code was sent (for an OTP challenge, the token's counter when it was
    /// made).
    pub counter: u64,
    /// When the challenge expires, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// Certificate tokens: the nonce the card must sign.
    pub nonce: Option<Vec<u8>>,
}

/// A delivery as stored.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// The delivery's row id.
    pub id: i64,
    /// The token type (`sms`, `email`, ...), which chooses the gateway route.
    pub token_type: String,
    /// The serial of the token whose code the message carries.
    pub serial: String,
    /// The challenge's transaction id; `None` once the challenge was cleaned up.
    pub transaction_id: Option<String>,
    /// Where the message goes: a phone number or an e-mail address.
    pub recipient: String,
    /// The message (subject, text, variables as JSON) AES-GCM sealed under the HSM key
    /// `token-seal`, bound to the transaction id and serial. It carries the code: never stored in
    /// the clear.
    pub sealed_message: Vec<u8>,
    /// `queued`, `sending`, `delivered`, `failed` or `expired`.
    pub status: String,
    /// Gateway attempts made so far, over all rounds.
    pub attempts: u32,
    /// When the delivery is given up if not sent, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// When the row last changed, in milliseconds since the Unix epoch. While `sending`, the
    /// sender's claim: renewing it and recording the round both require it unchanged, so a
    /// sender whose claim was taken over after the lease can do neither.
    pub updated_ms: i64,
}

/// One attempt through one gateway.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// When the attempt was made, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The name of the gateway tried.
    pub gateway: String,
    /// Whether the gateway took the message.
    pub delivered: bool,
    /// What the gateway said, or why it failed; empty when nothing.
    pub detail: String,
}

/// How a round of attempts ended.
#[derive(Debug, Clone)]
pub enum RoundOutcome {
    /// Delivered: the delivery is done.
    Delivered {
        /// The name of the gateway that took the message.
        via: String,
    },
    /// Try again at `next_ms`.
    Retry {
        /// When the next round is due, in milliseconds since the Unix epoch.
        next_ms: i64,
        /// Why this round failed, kept as the delivery's last error.
        error: String,
    },
    /// Given up: expired, or nothing left to try.
    Failed {
        /// Why the delivery failed, kept as its last error.
        error: String,
        /// Whether it ran out of time (status `expired`) rather than failing for good (status
        /// `failed`).
        expired: bool,
    },
}

/// A delivery as `countersign delivery list` shows it (never the message); the native API
/// shows it as `countersign_api::gateway::Delivery`, which the engine makes of this row.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    /// The delivery's row id.
    pub id: i64,
    /// The serial of the token whose code the message carries.
    pub serial: String,
    /// The token type, which chose the gateway route.
    pub token_type: String,
    /// The challenge's transaction id; `None` once the challenge was cleaned up.
    pub transaction_id: Option<String>,
    /// The phone number or e-mail address the message goes to.
    pub recipient: String,
    /// `queued`, `sending`, `delivered`, `failed` or `expired`.
    pub status: String,
    /// Gateway attempts made so far.
    pub attempts: u32,
    /// The gateway that delivered it; `None` until one did.
    pub delivered_via: Option<String>,
    /// The last round's error; `None` when none failed, or once delivered.
    pub last_error: Option<String>,
    /// When it was queued, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it is given up if not sent, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// Every attempt, oldest first.
    pub log: Vec<AttemptRow>,
}

/// Open challenges of `transaction_id` at `now_ms`, read on the caller's connection.
pub(crate) fn open_challenges(
    conn: &dyn Sql,
    transaction_id: &str,
    now_ms: i64,
) -> Result<Vec<OpenChallenge>, StoreError> {
    conn.query_map(
        "SELECT id, token_id, counter, expires_ms, nonce FROM challenge
         WHERE transaction_id = ?1 AND answered_ms IS NULL AND expires_ms > ?2",
        args![transaction_id, now_ms],
        |r| {
            Ok(OpenChallenge {
                id: r.get(0)?,
                token_id: r.get(1)?,
                counter: u64::try_from(r.get::<i64>(2)?).unwrap_or(0),
                expires_ms: r.get(3)?,
                nonce: r.get(4)?,
            })
        },
    )
}

/// Inserts a challenge of token `token_id` that reserves no counter, on `conn` (a write
/// transaction's or the writer's): its id and the token's counter as it was. Refused when the
/// token is disabled or revoked since it was read: no challenge, and no id of some other row.
pub(crate) fn insert_unreserved(
    conn: &dyn Sql,
    token_id: i64,
    transaction_id: &str,
    now_ms: i64,
    expires_ms: i64,
    nonce: Option<&[u8]>,
) -> Result<(i64, u64), StoreError> {
    let inserted: Option<(i64, i64)> = conn.query_opt(
        "INSERT INTO challenge (transaction_id, token_id, counter, created_ms, expires_ms, nonce)
         SELECT ?1, id, counter, ?3, ?4, ?5 FROM token WHERE id = ?2 AND active = 1 AND revoked = 0
         RETURNING id, counter",
        args![transaction_id, token_id, now_ms, expires_ms, nonce],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (id, counter) = inserted.ok_or_else(|| StoreError::Refused(Refusal::NotFound("an active token".into())))?;
    Ok((id, u64::try_from(counter).unwrap_or(0)))
}

/// An unanswered challenge as admins list it: which token, which transaction, when. Never the
/// counter or the code (a listed code could be typed in by whoever reads the list).
#[derive(Debug, Clone, Serialize)]
pub struct ChallengeRow {
    /// The challenge's row id.
    pub id: i64,
    /// The transaction id (20 digits) shared by the challenges of one request.
    pub transaction_id: String,
    /// The serial of the token challenged.
    pub serial: String,
    /// When the challenge was made, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it expires, in milliseconds since the Unix epoch (an expired one is listed until it is
    /// cleaned up).
    pub expires_ms: i64,
}

/// Which challenges to list: a serial (`*` matches any run of characters) and a transaction
/// id, each optional; oldest first unless `newest_first`.
#[derive(Debug, Clone, Default)]
pub struct ChallengeQuery {
    /// Only tokens whose serial matches this pattern; `None` (or only `*`): any.
    pub serial: Option<String>,
    /// Only challenges whose transaction id matches this pattern; `None` (or only `*`): any.
    pub transaction_id: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Matching challenges to skip (paging).
    pub offset: u64,
    /// At most this many challenges.
    pub limit: u64,
}

/// A `*` pattern as a `LIKE ... ESCAPE '\'` pattern: `%`, `_` and `\` match only themselves.
fn like_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.token_type, d.serial, c.transaction_id, d.recipient, d.sealed_message, d.status,
    d.attempts, d.expires_ms, d.updated_ms";

fn delivery_from_row(r: &Row<'_>) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: r.get(0)?,
        token_type: r.get(1)?,
        serial: r.get(2)?,
        transaction_id: r.get(3)?,
        recipient: r.get(4)?,
        sealed_message: r.get(5)?,
        status: r.get(6)?,
        attempts: r.get(7)?,
        expires_ms: r.get(8)?,
        updated_ms: r.get(9)?,
    })
}

impl Store {
    /// Reserves the token's next counter and records a challenge for it (with the nonce a
    /// certificate token must sign); returns the challenge id and the counter. Fails if the
    /// token changed meanwhile (try again).
    pub fn create_challenge(
        &self,
        token_id: i64,
        transaction_id: &str,
        now_ms: i64,
        expires_ms: i64,
        nonce: Option<&[u8]>,
    ) -> Result<(i64, u64), StoreError> {
        self.write(|tx| {
            let counter: i64 = tx
                .query_opt(
                    "SELECT counter FROM token WHERE id = ?1 AND active = 1 AND revoked = 0",
                    args![token_id],
                    |r| r.get(0),
                )?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound("an active token".into())))?;
            // The token row is checked against its seal before its counter moves, and sealed after.
            self.row_seals().update(tx, super::row_seals::RowTable::Token, token_id, || {
                tx.execute(
                    "UPDATE token SET counter = ?1 WHERE id = ?2 AND counter = ?3",
                    args![counter + 1, token_id, counter],
                )
            })?;
            let id = tx.insert(
                "INSERT INTO challenge (transaction_id, token_id, counter, created_ms, expires_ms, nonce)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                args![transaction_id, token_id, counter, now_ms, expires_ms, nonce],
            )?;
            Ok((id, u64::try_from(counter).unwrap_or(0)))
        })
    }

    /// The open (unanswered, unexpired at `now_ms`) challenge of `transaction_id` for token
    /// `token_id`, if there is one.
    pub fn open_challenge(
        &self,
        transaction_id: &str,
        token_id: i64,
        now_ms: i64,
    ) -> Result<Option<OpenChallenge>, StoreError> {
        let open = self.read(|conn| open_challenges(conn, transaction_id, now_ms))?;
        Ok(open.into_iter().find(|c| c.token_id == token_id))
    }

    /// Records a challenge that reserves no counter: an OTP token's (policy challenge_response;
    /// its answer is any OTP the token accepts next), or a webauthn token's, whose counter is
    /// the authenticator's sign count and whose `nonce` holds the bytes to sign over. Returns
    /// the challenge id and the token's counter as it was.
    pub fn create_unreserved_challenge(
        &self,
        token_id: i64,
        transaction_id: &str,
        now_ms: i64,
        expires_ms: i64,
        nonce: Option<&[u8]>,
    ) -> Result<(i64, u64), StoreError> {
        self.read(|conn| insert_unreserved(conn, token_id, transaction_id, now_ms, expires_ms, nonce))
    }

    /// Queues a delivery (status `queued`, due now).
    #[allow(clippy::too_many_arguments, reason = "one row's columns")]
    pub fn queue_delivery(
        &self,
        challenge_id: i64,
        token_type: &str,
        serial: &str,
        recipient: &str,
        sealed_message: &[u8],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.insert(
                "INSERT INTO delivery (challenge_id, token_type, serial, recipient, sealed_message, status, next_attempt_ms,
                                       expires_ms, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?6, ?6) RETURNING id",
                args![challenge_id, token_type, serial, recipient, sealed_message, now_ms, expires_ms],
            )
        })
    }

    /// Claims a queued delivery for sending; `None` if someone else has it or it is done.
    pub fn claim_delivery(&self, id: i64, now_ms: i64) -> Result<Option<DeliveryRecord>, StoreError> {
        self.read(|conn| {
            let claimed = conn.execute(
                "UPDATE delivery SET status = 'sending', updated_ms = ?2 WHERE id = ?1 AND status = 'queued'",
                args![id, now_ms],
            )?;
            if claimed == 0 {
                return Ok(None);
            }
            conn.query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM delivery d LEFT JOIN challenge c ON c.id = d.challenge_id WHERE d.id = ?1"
                ),
                args![id],
                delivery_from_row,
            )
        })
    }

    /// Ids of queued deliveries that are due.
    pub fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT id FROM delivery WHERE status = 'queued' AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2",
                args![now_ms, limit],
                |r| r.get(0),
            )
        })
    }

    /// How many deliveries queued at or after `since_ms` were given up (failed: every gateway
    /// refused; or expired): one count, for the console's dashboard.
    pub fn deliveries_given_up_since(&self, since_ms: i64) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn.query_value(
                "SELECT count(*) FROM delivery WHERE status IN ('failed', 'expired') AND created_ms >= ?1",
                args![since_ms],
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// Records a round of attempts and its outcome, in one transaction, for the sender whose
    /// claim is `held` (the delivery's `updated_ms` as it claimed or last renewed it). The
    /// attempts are history and always kept; the outcome only while the claim is still this
    /// sender's: `false` when it was taken over (the other sender decides the delivery).
    pub fn finish_round(
        &self,
        id: i64,
        held: i64,
        attempts: &[AttemptRow],
        outcome: &RoundOutcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            for a in attempts {
                tx.execute(
                    "INSERT INTO delivery_attempt (delivery_id, at_ms, gateway, result, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    args![id, a.at_ms, a.gateway, if a.delivered { "delivered" } else { "failed" }, a.detail],
                )?;
            }
            let n = i64::try_from(attempts.len()).unwrap_or(0);
            let recorded = match outcome {
                RoundOutcome::Delivered { via } => tx.execute(
                    "UPDATE delivery SET status = 'delivered', delivered_via = ?2, attempts = attempts + ?3, updated_ms = ?4,
                            last_error = NULL WHERE id = ?1 AND status = 'sending' AND updated_ms = ?5",
                    args![id, via, n, now_ms, held],
                )?,
                RoundOutcome::Retry { next_ms, error } => tx.execute(
                    "UPDATE delivery SET status = 'queued', next_attempt_ms = ?2, attempts = attempts + ?3, updated_ms = ?4,
                            last_error = ?5 WHERE id = ?1 AND status = 'sending' AND updated_ms = ?6",
                    args![id, next_ms, n, now_ms, error, held],
                )?,
                RoundOutcome::Failed { error, expired } => tx.execute(
                    "UPDATE delivery SET status = ?2, attempts = attempts + ?3, updated_ms = ?4, last_error = ?5
                     WHERE id = ?1 AND status = 'sending' AND updated_ms = ?6",
                    args![id, if *expired { "expired" } else { "failed" }, n, now_ms, error, held],
                )?,
            };
            Ok(recorded == 1)
        })
    }

    /// Deliveries left `sending` by a sender that stopped (a crash, a node that died) go back to
    /// the queue once their claim is older than `lease_ms`: a live sender renews its claim
    /// before every attempt ([`Store::renew_delivery_claim`]), so only an abandoned one ages.
    /// At-least-once: a message whose provider accepted it just before the crash may be sent
    /// again.
    pub fn requeue_interrupted(&self, now_ms: i64, lease_ms: i64) -> Result<usize, StoreError> {
        self.read(|conn| {
            conn.execute(
                "UPDATE delivery SET status = 'queued', next_attempt_ms = ?1, updated_ms = ?1
                 WHERE status = 'sending' AND updated_ms < ?2",
                args![now_ms, now_ms - lease_ms],
            )
        })
    }

    /// Renews this sender's claim on delivery `id` (held since `held`, the delivery's
    /// `updated_ms` as it claimed or last renewed it) before its next attempt; the claim is then
    /// held since `now_ms`. `false`: the claim was lost (it aged past the lease and was queued
    /// again, and maybe claimed by another sender, whose claim this is not), so this sender
    /// must not send.
    pub fn renew_delivery_claim(&self, id: i64, held: i64, now_ms: i64) -> Result<bool, StoreError> {
        let n = self.read(|conn| {
            conn.execute(
                "UPDATE delivery SET updated_ms = ?2 WHERE id = ?1 AND status = 'sending' AND updated_ms = ?3",
                args![id, now_ms, held],
            )
        })?;
        Ok(n == 1)
    }

    /// Challenges not answered yet (an answered one is spent, as privacyIDEA deletes it), and
    /// how many match in all.
    pub fn challenge_list(&self, q: &ChallengeQuery) -> Result<(Vec<ChallengeRow>, u64), StoreError> {
        let serial = q.serial.as_deref().filter(|s| !s.trim_matches('*').is_empty()).map(like_pattern);
        let tx = q.transaction_id.as_deref().filter(|s| !s.trim_matches('*').is_empty()).map(like_pattern);
        // Patterns match regardless of ASCII case, on every engine (SQLite's LIKE does so by
        // itself, PostgreSQL's does not).
        let filter = "FROM challenge c JOIN token t ON t.id = c.token_id
             WHERE c.answered_ms IS NULL
               AND (?1 IS NULL OR lower(t.serial) LIKE lower(?1) ESCAPE '\\')
               AND (?2 IS NULL OR lower(c.transaction_id) LIKE lower(?2) ESCAPE '\\')";
        let order = if q.newest_first { "DESC" } else { "ASC" };
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        let (rows, total) = self.read(|conn| {
            let total: i64 = conn.query_value(&format!("SELECT count(*) {filter}"), args![serial, tx])?;
            let rows = conn.query_map(
                &format!(
                    "SELECT c.id, c.transaction_id, t.serial, c.created_ms, c.expires_ms {filter}
                     ORDER BY c.created_ms {order}, c.id {order} LIMIT ?3 OFFSET ?4"
                ),
                args![serial, tx, limit, offset],
                |r| {
                    Ok(ChallengeRow {
                        id: r.get(0)?,
                        transaction_id: r.get(1)?,
                        serial: r.get(2)?,
                        created_ms: r.get(3)?,
                        expires_ms: r.get(4)?,
                    })
                },
            )?;
            Ok((rows, total))
        })?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    /// Deliveries, newest first, with their attempts.
    pub fn deliveries(&self, status: Option<&str>, limit: u32) -> Result<Vec<DeliveryView>, StoreError> {
        self.read(|conn| {
            let mut out: Vec<DeliveryView> = conn.query_map(
                "SELECT d.id, d.serial, d.token_type, c.transaction_id, d.recipient, d.status, d.attempts, d.delivered_via,
                        d.last_error, d.created_ms, d.expires_ms
                 FROM delivery d LEFT JOIN challenge c ON c.id = d.challenge_id
                 WHERE ?1 IS NULL OR d.status = ?1 ORDER BY d.id DESC LIMIT ?2",
                args![status, limit],
                |r| {
                    Ok(DeliveryView {
                        id: r.get(0)?,
                        serial: r.get(1)?,
                        token_type: r.get(2)?,
                        transaction_id: r.get(3)?,
                        recipient: r.get(4)?,
                        status: r.get(5)?,
                        attempts: r.get(6)?,
                        delivered_via: r.get(7)?,
                        last_error: r.get(8)?,
                        created_ms: r.get(9)?,
                        expires_ms: r.get(10)?,
                        log: Vec::new(),
                    })
                },
            )?;
            for d in &mut out {
                d.log = conn.query_map(
                    "SELECT at_ms, gateway, result, detail FROM delivery_attempt WHERE delivery_id = ?1 ORDER BY id",
                    args![d.id],
                    |r| {
                        Ok(AttemptRow {
                            at_ms: r.get(0)?,
                            gateway: r.get(1)?,
                            delivered: r.get::<String>(2)? == "delivered",
                            detail: r.get::<Option<String>>(3)?.unwrap_or_default(),
                        })
                    },
                )?;
            }
            Ok(out)
        })
    }

    /// Removes challenges expired before `challenges_before_ms` and finished deliveries last
    /// changed before `deliveries_before_ms`. Returns (challenges, deliveries) removed.
    pub fn clean_up_challenges(
        &self,
        challenges_before_ms: i64,
        deliveries_before_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        self.write(|tx| {
            let d = tx.execute(
                "DELETE FROM delivery WHERE status IN ('delivered', 'failed', 'expired') AND updated_ms < ?1",
                args![deliveries_before_ms],
            )?;
            let c = tx.execute("DELETE FROM challenge WHERE expires_ms < ?1", args![challenges_before_ms])?;
            let s = tx.execute("DELETE FROM sign_in_challenge WHERE expires_ms < ?1", args![challenges_before_ms])?;
            Ok((c + s, d))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::{AuthAuditRow, NewToken, TokenChange};

    fn audit() -> AuthAuditRow {
        AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok")
    }

    #[test]
    fn an_otp_challenge_is_only_made_for_an_active_token_and_names_its_own_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), crate::Synchronous::Normal).unwrap();
        let a = store.insert_token(&NewToken::for_test("A", None), &audit()).unwrap();
        let b = store.insert_token(&NewToken::for_test("B", None), &audit()).unwrap();
        let first = store.create_unreserved_challenge(a.id, "tx1", 0, 60_000, None).unwrap().0;
        let second = store.create_unreserved_challenge(a.id, "tx2", 0, 60_000, None).unwrap().0;
        assert_ne!(first, second);
        store.change_token("B", &audit(), |_| Ok(vec![TokenChange::SetActive(false)])).unwrap();
        // Nothing is inserted for the disabled token, and the answer is not the id of the last
        // row this connection inserted (A's challenge).
        let r = store.create_unreserved_challenge(b.id, "tx3", 0, 60_000, None);
        assert!(matches!(r, Err(StoreError::Refused(Refusal::NotFound(_)))), "{r:?}");
        assert!(open_challenges(&store.conn(), "tx3", 0).unwrap().is_empty());
    }

    #[test]
    fn a_delivery_is_sent_by_one_sender_and_taken_over_only_after_its_lease() {
        crate::testing::each_store(|store, engine| {
            let t = store.insert_token(&NewToken::for_test("D", None), &audit()).unwrap();
            let ch = store.create_unreserved_challenge(t.id, "txd", 0, 600_000, None).unwrap().0;
            let id = store.queue_delivery(ch, "sms", "D", "+100", b"sealed", 1_000, 600_000).unwrap();
            let first = store.claim_delivery(id, 1_000).unwrap().unwrap().updated_ms;
            assert_eq!(first, 1_000, "{engine}");
            assert!(store.claim_delivery(id, 1_001).unwrap().is_none(), "{engine}: claimed twice");
            // A live sender renews before each attempt; the claim does not age.
            assert!(store.renew_delivery_claim(id, first, 50_000).unwrap(), "{engine}");
            assert_eq!(store.requeue_interrupted(100_000, 90_000).unwrap(), 0, "{engine}: taken from a live sender");
            // The sender stalls (a slow gateway); past the lease another sender takes the
            // delivery over. The first, when it comes back, can neither renew the other's claim
            // nor record its round over the other's.
            assert_eq!(store.requeue_interrupted(141_000, 90_000).unwrap(), 1, "{engine}");
            let second = store.claim_delivery(id, 141_000).unwrap().expect("taken over").updated_ms;
            assert!(!store.renew_delivery_claim(id, 50_000, 150_000).unwrap(), "{engine}: renewed another's claim");
            let retry = RoundOutcome::Retry { next_ms: 200_000, error: "later".into() };
            assert!(
                !store.finish_round(id, 50_000, &[], &retry, 150_000).unwrap(),
                "{engine}: recorded over another's"
            );
            let delivered = RoundOutcome::Delivered { via: "gw".into() };
            assert!(store.finish_round(id, second, &[], &delivered, 151_000).unwrap(), "{engine}");
            assert_eq!(
                store.requeue_interrupted(400_000, 90_000).unwrap(),
                0,
                "{engine}: a delivered one queued again"
            );
            // Given up: counted from its queueing time on (a second delivery).
            let id = store.queue_delivery(ch, "sms", "D", "+100", b"sealed", 1_000, 600_000).unwrap();
            let held = store.claim_delivery(id, 2_000).unwrap().unwrap().updated_ms;
            assert_eq!(store.deliveries_given_up_since(0).unwrap(), 0, "{engine}");
            let failed = RoundOutcome::Failed { error: "refused".into(), expired: false };
            assert!(store.finish_round(id, held, &[], &failed, 401_000).unwrap(), "{engine}");
            assert_eq!(store.deliveries_given_up_since(1_000).unwrap(), 1, "{engine}");
            assert_eq!(store.deliveries_given_up_since(1_001).unwrap(), 0, "{engine}: queued before");
        });
    }

    #[test]
    fn a_job_runs_once_per_interval_whoever_claims_it() {
        crate::testing::each_store(|store, engine| {
            assert!(store.claim_job("checkpoint", 100_000, 60_000).unwrap(), "{engine}");
            assert!(!store.claim_job("checkpoint", 100_500, 60_000).unwrap(), "{engine}: a second node ran it too");
            store.job_ended("checkpoint", 101_000, true, "ok").unwrap();
            assert!(!store.claim_job("checkpoint", 130_000, 60_000).unwrap(), "{engine}: ran twice in one interval");
            assert!(store.claim_job("checkpoint", 160_000, 60_000).unwrap(), "{engine}: the next interval's run");
            // Still running (its node died): the next run waits until the claim is stale.
            assert!(!store.claim_job("checkpoint", 220_000, 60_000).unwrap(), "{engine}: started beside a running one");
            assert!(store.claim_job("checkpoint", 341_000, 60_000).unwrap(), "{engine}: a dead node's claim held");
        });
    }
}
