//! PowerAuth MAC tokens (issue 19, part 3): the rows behind `/pa/v3/token/create` and
//! `/pa/v3/token/remove`, and the one-time use of a token's nonce.
//!
//! A token row names the activation it speaks for and the signature type it was made with; its
//! secret is only the HSM's ciphertext (`sealed_secret`, AAD naming token and activation). The
//! row is sealed (`row_seals.rs`) and checked on every read. A token's use is accepted once:
//! the digest of its token and nonce enters `powerauth_replay` in the transaction that
//! writes the acceptance's audit row, so two nodes, or two requests, presenting the same header
//! cannot both be accepted.
//!
//! Owns: `powerauth_token`, and its entries in `powerauth_replay`. Must never: hold a token
//! secret in the clear, or make or remove a token, or accept a use, without its audit row.

use countersign_core::error::Refusal;

use super::chain::insert_audit;
use super::db::{args, Row};
use super::row_seals::{RowSeal, RowTable};
use super::{unique_as, AuthAuditRow, Store, StoreError};

/// A MAC token as stored (its secret sealed).
#[derive(Debug, Clone)]
pub struct MacToken {
    /// The row id.
    pub id: i64,
    /// `TOKEN_ID`, a UUID, which the header names.
    pub token_id: String,
    /// The activation it speaks for.
    pub activation_id: String,
    /// The token secret, sealed by the HSM for this token and activation.
    pub sealed_secret: Vec<u8>,
    /// The signature type it was made with (`possession_knowledge`, as the wire writes it).
    pub signature_type: String,
    /// Made, ms.
    pub created_ms: i64,
    seal: RowSeal,
}

/// A token to record.
#[derive(Debug, Clone)]
pub struct NewMacToken {
    /// `TOKEN_ID`.
    pub token_id: String,
    /// Its activation, which must exist.
    pub activation_id: String,
    /// The sealed secret.
    pub sealed_secret: Vec<u8>,
    /// The signature type of the request that made it.
    pub signature_type: String,
}

const SELECT: &str = "SELECT t.id, t.token_id, t.activation_id, t.sealed_secret, t.signature_type, t.created_ms";
const WIDTH: usize = 6;

fn select(filter: &str) -> String {
    format!("{SELECT}, {} FROM powerauth_token t WHERE {filter}", RowTable::PowerAuthToken.select_list("t"))
}

fn from_row(r: &Row<'_>) -> Result<MacToken, StoreError> {
    Ok(MacToken {
        id: r.get(0)?,
        token_id: r.get(1)?,
        activation_id: r.get(2)?,
        sealed_secret: r.get(3)?,
        signature_type: r.get(4)?,
        created_ms: r.get(5)?,
        seal: RowSeal::read(r, RowTable::PowerAuthToken, WIDTH)?.unwrap_or_default(),
    })
}

impl Store {
    fn mac_token_in(&self, conn: &dyn super::db::Sql, token_id: &str) -> Result<Option<MacToken>, StoreError> {
        let Some(t) = conn.query_opt(&select("t.token_id = ?1"), args![token_id], from_row)? else { return Ok(None) };
        self.row_seals().check(&t.seal, || format!("PowerAuth token {}", t.token_id))?;
        Ok(Some(t))
    }

    /// Records token `new` with its `audit` row, sealed, in one transaction. An id another
    /// token has is a [`Refusal::Duplicate`] (122 random bits: only a broken generator repeats).
    pub fn create_powerauth_token(&self, new: &NewMacToken, audit: &AuthAuditRow) -> Result<MacToken, StoreError> {
        let now = crate::now_ms();
        self.write(|tx| {
            let id = tx
                .insert(
                    "INSERT INTO powerauth_token (token_id, activation_id, sealed_secret, signature_type, created_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    args![new.token_id, new.activation_id, new.sealed_secret, new.signature_type, now],
                )
                .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate("the token id".into()))))?;
            self.row_seals().seal_row(tx, RowTable::PowerAuthToken, id)?;
            insert_audit(tx, audit)?;
            self.mac_token_in(tx, &new.token_id)?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound("the new token".into())))
        })
    }

    /// Token `token_id`, its seal checked; `None` if there is none.
    pub fn powerauth_token(&self, token_id: &str) -> Result<Option<MacToken>, StoreError> {
        self.read(|conn| self.mac_token_in(conn, token_id))
    }

    /// Removes token `token_id` if it is one of activation `activation_id`'s, with the audit
    /// row `audit` makes of what was found (`None`: no such token of that activation, nothing
    /// removed), in one transaction. Returns whether a token was removed.
    pub fn remove_powerauth_token(
        &self,
        token_id: &str,
        activation_id: &str,
        audit: impl FnOnce(Option<&MacToken>) -> AuthAuditRow,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let found = self.mac_token_in(tx, token_id)?.filter(|t| t.activation_id == activation_id);
            if let Some(t) = &found {
                tx.execute("DELETE FROM powerauth_token WHERE id = ?1", args![t.id])?;
            }
            insert_audit(tx, &audit(found.as_ref()))?;
            Ok(found.is_some())
        })
    }

    /// Accepts one use of a token: records `digest` (its token and nonce) in the
    /// replay table until `expires_ms` and writes `audit`, in one transaction. `false`, with
    /// nothing written, when the digest was recorded before (a replay, on this node or
    /// another): the caller audits the refusal.
    pub fn accept_powerauth_token_use(
        &self,
        digest: &[u8],
        expires_ms: i64,
        audit: &AuthAuditRow,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let fresh = tx.execute(
                "INSERT INTO powerauth_replay (digest, expires_ms) VALUES (?1, ?2) ON CONFLICT (digest) DO NOTHING",
                args![digest, expires_ms],
            )?;
            if fresh == 0 {
                return Ok(false);
            }
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::Arc;

    use super::*;
    use crate::seals::TestKey;
    use crate::testing::each_store;
    use crate::{NewActivation, NewKeyVersion};
    use countersign_core::keys::KeyId;

    fn audit(result: &str) -> AuthAuditRow {
        AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "powerauth/test", result)
    }

    /// An application `bank` with activations `a-1` and `a-2` of user `alice`.
    pub(crate) fn bank(store: &Store) {
        store.start_sealing(Arc::new(TestKey), true).unwrap();
        let master = NewKeyVersion {
            key_id: KeyId::from_bytes(vec![0x9a, 1]),
            label: "countersign/powerauth/test/1".into(),
            public_key_der: vec![1, 2, 3],
        };
        store.create_powerauth_application("bank", &master, &audit("ok")).unwrap();
        for (n, id) in ["a-1", "a-2"].iter().enumerate() {
            let new = NewActivation {
                activation_id: (*id).into(),
                application: "bank".into(),
                user_id: "alice".into(),
                code_lookup: vec![u8::try_from(n).unwrap(); 32],
                otp: None,
                max_failed_attempts: 5,
                expires_ms: i64::MAX,
            };
            store.create_powerauth_activation(&new, &audit("ok")).unwrap();
        }
    }

    fn token(id: &str, activation: &str) -> NewMacToken {
        NewMacToken {
            token_id: id.into(),
            activation_id: activation.into(),
            sealed_secret: vec![0xee; 44],
            signature_type: "possession_knowledge".into(),
        }
    }

    #[test]
    fn tokens_are_kept_sealed_and_removed_only_by_their_activation() {
        each_store(|store, engine| {
            bank(store);
            let t = store.create_powerauth_token(&token("t-1", "a-1"), &audit("ok")).unwrap();
            assert_eq!((t.activation_id.as_str(), t.signature_type.as_str()), ("a-1", "possession_knowledge"));
            assert!(matches!(
                store.create_powerauth_token(&token("t-1", "a-2"), &audit("ok")),
                Err(StoreError::Refused(Refusal::Duplicate(_)))
            ));
            assert!(store.create_powerauth_token(&token("t-x", "no-such-activation"), &audit("ok")).is_err());
            assert_eq!(store.powerauth_token("t-1").unwrap().unwrap().sealed_secret, vec![0xee; 44], "{engine}");
            assert!(store.powerauth_token("t-2").unwrap().is_none());

            // Another activation's removal finds nothing and removes nothing (audited all the same).
            let mut seen = None;
            assert!(!store
                .remove_powerauth_token("t-1", "a-2", |t| {
                    seen = Some(t.is_some());
                    audit("refused")
                })
                .unwrap());
            assert_eq!(seen, Some(false));
            assert!(store.powerauth_token("t-1").unwrap().is_some());
            assert!(store.remove_powerauth_token("t-1", "a-1", |_| audit("ok")).unwrap());
            assert!(store.powerauth_token("t-1").unwrap().is_none());

            // A token moved to another activation (or made stronger) behind the appliance's back
            // is refused.
            store.create_powerauth_token(&token("t-3", "a-1"), &audit("ok")).unwrap();
            store
                .write(|tx| {
                    tx.execute("UPDATE powerauth_token SET activation_id = 'a-2' WHERE token_id = 't-3'", args![])?;
                    Ok(())
                })
                .unwrap();
            assert!(matches!(store.powerauth_token("t-3"), Err(StoreError::Tampered(_))), "{engine}");
        });
    }

    #[test]
    fn a_use_is_accepted_once_and_audited_once() {
        each_store(|store, engine| {
            let before = store.read(|c| c.query_value::<i64>("SELECT count(*) FROM auth_audit", args![])).unwrap();
            assert!(store.accept_powerauth_token_use(b"digest-1", i64::MAX, &audit("accept")).unwrap());
            assert!(!store.accept_powerauth_token_use(b"digest-1", i64::MAX, &audit("accept")).unwrap());
            assert!(store.accept_powerauth_token_use(b"digest-2", i64::MAX, &audit("accept")).unwrap());
            let rows = store.read(|c| c.query_value::<i64>("SELECT count(*) FROM auth_audit", args![])).unwrap();
            assert_eq!(rows - before, 2, "{engine}: the replay wrote no audit row of its own");
            // Purged past its expiry like every replay entry.
            assert!(store.accept_powerauth_token_use(b"digest-3", 5, &audit("accept")).unwrap());
            store.purge_powerauth_expired(10).unwrap();
            assert!(store.accept_powerauth_token_use(b"digest-3", 5, &audit("accept")).unwrap());
        });
    }
}
