//! WebAuthn and passkey credentials (`webauthn_credential`, migration 0025): what a
//! registration leaves (credential id, COSE public key, AAGUID, the RP it was made for, what its
//! attestation proved), stored with a row seal and read back checked against it.
//!
//! A registration finishes in one transaction: the registration's challenge spent by
//! compare-and-set, the token's params updated (its enrolment is then complete), the credential
//! inserted and sealed, the audit row written. The credential id is unique across all tokens, so
//! one authenticator's credential cannot be registered twice, and a usernameless check finds the
//! one token it belongs to through the index, without scanning tokens.
//!
//! Nothing here judges a ceremony (the engine and its plugin do), and nothing here is secret.

use countersign_core::error::Refusal;

use super::chain::insert_audit;
use super::row_seals::{RowSeal, RowSeals, RowTable};
use super::{unique_as, Store, StoreError};
use crate::db::{args, Sql};
use crate::{AuthAuditRow, TokenRecord};

/// A registered credential, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnCredential {
    /// The credential id the authenticator chose.
    pub credential_id: Vec<u8>,
    /// The credential public key, a COSE_Key.
    pub public_key: Vec<u8>,
    /// The key's COSE algorithm.
    pub alg: i64,
    /// The authenticator model's AAGUID, 32 hex characters (all zero when unknown).
    pub aaguid: String,
    /// The RP id the credential was registered for.
    pub rp_id: String,
    /// The user handle (`user.id`) given at registration.
    pub user_handle: Option<Vec<u8>>,
    /// What the attestation proved, as `format/type` (`none/none`, `packed/self`,
    /// `packed/basic-trusted`, `fido-u2f/basic`, ...).
    pub attestation: String,
    /// authenticatorData's flags byte at registration (UV, BE, BS).
    pub flags: u8,
}

/// A registration to finish ([`Store::register_webauthn`]).
#[derive(Debug)]
pub struct Registration<'a> {
    /// The registration's challenge (made at the enrolment's first step), spent by this.
    pub challenge_id: i64,
    /// The time of the registration, Unix ms: the challenge must not have expired by then.
    pub now_ms: i64,
    /// The token's params once registered.
    pub params: &'a serde_json::Value,
    /// The token's description, when the registration gives it one.
    pub description: Option<&'a str>,
    /// The credential.
    pub credential: &'a WebauthnCredential,
}

const SELECT: &str = "SELECT credential_id, public_key, alg, aaguid, rp_id, user_handle, attestation, flags";

/// The credential of token `token_id`, checked against its row seal; `None` when the token has
/// none (its registration did not finish).
pub(crate) fn webauthn_credential(
    conn: &dyn Sql,
    seals: &RowSeals,
    token_id: i64,
) -> Result<Option<WebauthnCredential>, StoreError> {
    let found = conn.query_opt(
        &format!(
            "{SELECT}, {} FROM webauthn_credential c WHERE c.token_id = ?1",
            RowTable::Credential.select_list("c")
        ),
        args![token_id],
        |r| {
            let flags: i64 = r.get(7)?;
            let row = WebauthnCredential {
                credential_id: r.get(0)?,
                public_key: r.get(1)?,
                alg: r.get(2)?,
                aaguid: r.get(3)?,
                rp_id: r.get(4)?,
                user_handle: r.get(5)?,
                attestation: r.get(6)?,
                flags: u8::try_from(flags).unwrap_or(0),
            };
            Ok((row, RowSeal::read(r, RowTable::Credential, 8)?.unwrap_or_default()))
        },
    )?;
    let Some((row, seal)) = found else { return Ok(None) };
    seals.check(&seal, || format!("the WebAuthn credential of token #{token_id}"))?;
    Ok(Some(row))
}

/// The id of the token whose credential has this id, through the unique index (no scan). The
/// caller reads that token, and its credential, checked against their seals.
pub(crate) fn token_of_credential(conn: &dyn Sql, credential_id: &[u8]) -> Result<Option<i64>, StoreError> {
    conn.query_opt("SELECT token_id FROM webauthn_credential WHERE credential_id = ?1", args![credential_id], |r| {
        r.get(0)
    })
}

/// An open sign-in challenge, as a check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSignIn {
    /// The row id, which the accept spends.
    pub id: i64,
    /// The bytes the authenticator signs over.
    pub nonce: Vec<u8>,
    /// The user verification the challenge asked for.
    pub user_verification: String,
}

/// The open (unanswered, unexpired at `now_ms`) sign-in challenge of `transaction_id`.
pub(crate) fn open_sign_in(
    conn: &dyn Sql,
    transaction_id: &str,
    now_ms: i64,
) -> Result<Option<OpenSignIn>, StoreError> {
    conn.query_opt(
        "SELECT id, nonce, user_verification FROM sign_in_challenge
         WHERE transaction_id = ?1 AND answered_ms IS NULL AND expires_ms > ?2",
        args![transaction_id, now_ms],
        |r| Ok(OpenSignIn { id: r.get(0)?, nonce: r.get(1)?, user_verification: r.get(2)? }),
    )
}

impl Store {
    /// The credential of token `token_id` ([`webauthn_credential`]).
    pub fn webauthn_credential(&self, token_id: i64) -> Result<Option<WebauthnCredential>, StoreError> {
        self.read(|conn| webauthn_credential(conn, &self.row_seals(), token_id))
    }

    /// Records a sign-in challenge bound to no token, unless `cap` unexpired ones are open
    /// already (then refused: `/validate/initialize` needs no credential, so its rows are
    /// bounded).
    pub fn create_sign_in(
        &self,
        transaction_id: &str,
        nonce: &[u8],
        user_verification: &str,
        now_ms: i64,
        expires_ms: i64,
        cap: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let open: i64 = tx.query_row(
                "SELECT count(*) FROM sign_in_challenge WHERE expires_ms > ?1 AND answered_ms IS NULL",
                args![now_ms],
                |r| r.get(0),
            )?;
            if open >= cap {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "{open} sign-ins are open, the most the appliance keeps; try again in a minute"
                ))));
            }
            tx.execute(
                "INSERT INTO sign_in_challenge (transaction_id, nonce, user_verification, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                args![transaction_id, nonce, user_verification, now_ms, expires_ms],
            )?;
            Ok(())
        })
    }

    /// Finishes the registration of token `serial` in one transaction: `check` judges the token
    /// as read there (its type, its enrolment state, its owner), the registration's challenge
    /// is spent by compare-and-set (refused when it was used or expired), the token's params
    /// become `reg.params`, the credential is stored and both rows sealed, and `audit` written.
    /// A credential id registered already, to this or any token, is refused as a duplicate.
    pub fn register_webauthn(
        &self,
        serial: &str,
        reg: &Registration<'_>,
        audit: &AuthAuditRow,
        check: impl FnOnce(&TokenRecord) -> Result<(), StoreError>,
    ) -> Result<TokenRecord, StoreError> {
        self.write(|tx| {
            let seals = self.row_seals();
            let t = Self::token_in(tx, &seals, serial)?;
            check(&t)?;
            let spent = tx.execute(
                "UPDATE challenge SET answered_ms = ?1
                 WHERE id = ?2 AND token_id = ?3 AND answered_ms IS NULL AND expires_ms > ?1",
                args![reg.now_ms, reg.challenge_id, t.id],
            )?;
            if spent != 1 {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "the registration of token {serial} was finished already or its challenge expired; start the \
                     enrolment again"
                ))));
            }
            tx.execute(
                "UPDATE token SET params = ?1, description = coalesce(?3, description) WHERE id = ?2",
                args![reg.params.to_string(), t.id, reg.description],
            )?;
            seals.seal_row(tx, RowTable::Token, t.id)?;
            let c = reg.credential;
            tx.execute(
                "INSERT INTO webauthn_credential (token_id, credential_id, public_key, alg, aaguid, rp_id, user_handle,
                                                  attestation, flags, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                args![
                    t.id,
                    c.credential_id,
                    c.public_key,
                    c.alg,
                    c.aaguid,
                    c.rp_id,
                    c.user_handle,
                    c.attestation,
                    i64::from(c.flags),
                    reg.now_ms / 1000
                ],
            )
            .map_err(|e| {
                unique_as(e, || {
                    StoreError::Refused(Refusal::Duplicate(
                        "this authenticator's credential is registered already; use the token it belongs to, or \
                         delete that token first"
                            .into(),
                    ))
                })
            })?;
            seals.seal_row(tx, RowTable::Credential, t.id)?;
            insert_audit(tx, audit)?;
            Self::token_in(tx, &seals, serial)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::NewToken;

    fn credential(id: &[u8]) -> WebauthnCredential {
        WebauthnCredential {
            credential_id: id.to_vec(),
            public_key: vec![0xa5, 1, 2],
            alg: -7,
            aaguid: "00".repeat(16),
            rp_id: "example.com".into(),
            user_handle: Some(b"u1".to_vec()),
            attestation: "none/none".into(),
            flags: 0x45,
        }
    }

    fn token(store: &Store, serial: &str) -> TokenRecord {
        let new = NewToken {
            serial: serial.into(),
            token_type: "webauthn".into(),
            plugin: "token-webauthn".into(),
            params: serde_json::json!({ "rollout_state": "clientwait" }),
            otp_window: 0,
            sealed_seed: Vec::new(),
            counter: 0,
            pin_verifier: None,
            max_fail: 10,
            fail_clear_s: 0,
            user: None,
            description: String::new(),
            recipient: None,
            owner_limit: None,
        };
        store
            .insert_token(&new, &AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "token/init", "ok"))
            .unwrap()
    }

    /// A registration spends its challenge once, stores the credential read back as written,
    /// finds its token by credential id, and refuses the same credential on another token and
    /// a challenge that expired.
    #[test]
    fn a_registration_spends_its_challenge_once_and_a_credential_belongs_to_one_token() {
        crate::testing::each_store(|store, engine| {
            let t = token(store, "WAN1");
            let now = 1_000_000;
            let (challenge, _) = store.create_unreserved_challenge(t.id, "11", now, now + 60_000, Some(b"n")).unwrap();
            let params = serde_json::json!({ "rollout_state": "" });
            let c = credential(b"cred-1");
            let reg = Registration {
                challenge_id: challenge,
                now_ms: now + 1,
                params: &params,
                description: None,
                credential: &c,
            };
            let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "token/init", "ok");
            let done = store.register_webauthn("WAN1", &reg, &audit, |_| Ok(())).unwrap();
            assert_eq!(done.params["rollout_state"], "");
            assert_eq!(store.webauthn_credential(t.id).unwrap(), Some(c.clone()));
            assert_eq!(store.read(|conn| token_of_credential(conn, b"cred-1")).unwrap(), Some(t.id));
            assert_eq!(store.read(|conn| token_of_credential(conn, b"other")).unwrap(), None);
            // The challenge is spent.
            let again = store.register_webauthn("WAN1", &reg, &audit, |_| Ok(()));
            assert!(matches!(again, Err(StoreError::Refused(Refusal::Invalid(_)))), "{again:?}");
            // The same credential on another token: a duplicate, and nothing of it stays.
            let t2 = token(store, "WAN2");
            let (ch2, _) = store.create_unreserved_challenge(t2.id, "12", now, now + 60_000, None).unwrap();
            let reg2 =
                Registration { challenge_id: ch2, now_ms: now + 1, params: &params, description: None, credential: &c };
            let dup = store.register_webauthn("WAN2", &reg2, &audit, |_| Ok(()));
            assert!(matches!(dup, Err(StoreError::Refused(Refusal::Duplicate(_)))), "{dup:?}");
            assert_eq!(store.webauthn_credential(t2.id).unwrap(), None);
            assert_eq!(store.token("WAN2").unwrap().params["rollout_state"], "clientwait");
            // An expired challenge.
            let late = Registration {
                challenge_id: ch2,
                now_ms: now + 60_000,
                params: &params,
                description: None,
                credential: &credential(b"c2"),
            };
            assert!(store.register_webauthn("WAN2", &late, &audit, |_| Ok(())).is_err(), "{engine}");
        });
    }

    /// Sign-in challenges: open until answered or expired, and no more than the cap at once.
    #[test]
    fn sign_in_challenges_are_open_until_expiry_and_capped() {
        crate::testing::each_store(|store, engine| {
            store.create_sign_in("tx1", b"nonce-1", "preferred", 1_000, 61_000, 2).unwrap();
            store.create_sign_in("tx2", b"nonce-2", "required", 1_000, 61_000, 2).unwrap();
            let full = store.create_sign_in("tx3", b"nonce-3", "preferred", 1_000, 61_000, 2);
            assert!(matches!(full, Err(StoreError::Refused(Refusal::Invalid(_)))), "{engine}: {full:?}");
            let open = store.read(|conn| open_sign_in(conn, "tx2", 2_000)).unwrap().unwrap();
            assert_eq!((open.nonce.as_slice(), open.user_verification.as_str()), (&b"nonce-2"[..], "required"));
            assert_eq!(store.read(|conn| open_sign_in(conn, "tx2", 61_000)).unwrap(), None, "{engine}: expired");
            // Expired ones no longer count against the cap.
            store.create_sign_in("tx3", b"nonce-3", "preferred", 70_000, 130_000, 2).unwrap();
        });
    }
}
