//! PowerAuth activations (issue 19, part 2): the rows behind `/pa/v3/activation/*`, the
//! back-end's lookups and state changes, and the signature counter; their history; the 3.3
//! temporary ECIES keys; the replay table of ECIES requests and token nonces.
//!
//! Every change of an activation is one transaction with its history row (when the state
//! changes) and its audit row, and is made only if the row still holds the state, counter and
//! failure count the decision was taken on (compare-and-set: two nodes, or two requests,
//! deciding on the same row cannot both win; the loser gets [`ActivationChange::Conflict`] and
//! decides again on the row as it now is). The row is sealed (`row_seals.rs`) and checked on
//! every read for a decision.
//!
//! Owns: `powerauth_activation`, `powerauth_activation_history`, `powerauth_temporary_key`,
//! `powerauth_replay`. Must never: hold an activation code, an OTP, a private key or a master
//! secret in the clear (the engine hands in verifiers and sealed bytes), or change an
//! activation without its audit row.

use countersign_core::error::Refusal;

use super::chain::insert_audit;
use super::db::{args, Param, Row, Sql};
use super::row_seals::{RowSeal, RowTable};
use super::{unique_as, AuthAuditRow, Store, StoreError};

/// The states of an activation, as the reference server names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivationState {
    /// Made by the back-end; waiting for the device's key exchange.
    Created,
    /// Keys exchanged; waiting for the back-end's commit.
    PendingCommit,
    /// Signs.
    Active,
    /// Blocked by the back-end or by too many failed signatures; may be unblocked.
    Blocked,
    /// Removed for good.
    Removed,
}

impl ActivationState {
    /// The name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::PendingCommit => "PENDING_COMMIT",
            Self::Active => "ACTIVE",
            Self::Blocked => "BLOCKED",
            Self::Removed => "REMOVED",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "CREATED" => Self::Created,
            "PENDING_COMMIT" => Self::PendingCommit,
            "ACTIVE" => Self::Active,
            "BLOCKED" => Self::Blocked,
            "REMOVED" => Self::Removed,
            other => return Err(StoreError::Tampered(format!("an activation has the unknown state '{other}'"))),
        })
    }
}

/// When the activation OTP (if any) is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OtpValidation {
    /// No activation OTP.
    None,
    /// The device sends it with the key exchange; a right one commits at once.
    OnKeyExchange,
    /// The back-end sends it with the commit.
    OnCommit,
}

impl OtpValidation {
    /// The name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::OnKeyExchange => "ON_KEY_EXCHANGE",
            Self::OnCommit => "ON_COMMIT",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "NONE" => Self::None,
            "ON_KEY_EXCHANGE" => Self::OnKeyExchange,
            "ON_COMMIT" => Self::OnCommit,
            other => return Err(StoreError::Tampered(format!("an activation has the unknown OTP mode '{other}'"))),
        })
    }
}

/// An activation as stored (sealed bytes stay sealed).
#[derive(Debug, Clone)]
pub struct Activation {
    /// The row id.
    pub id: i64,
    /// `ACTIVATION_ID`, a UUID.
    pub activation_id: String,
    /// The application's row id.
    pub application_id: i64,
    /// The application's name.
    pub application: String,
    /// The user id the back-end named (opaque to the appliance).
    pub user_id: String,
    /// Its state.
    pub state: ActivationState,
    /// Whether the activation code still leads here (until the key exchange).
    pub has_code: bool,
    /// The activation OTP's verifier, if one was set.
    pub otp_verifier: Option<Vec<u8>>,
    /// When the OTP is checked.
    pub otp_validation: OtpValidation,
    /// APP_KEY of the version the device activated with.
    pub app_key: Option<String>,
    /// The protocol version of the key exchange (`3.3`).
    pub protocol_version: Option<String>,
    /// The device's name for itself.
    pub name: Option<String>,
    /// `ios`, `android`, ...
    pub platform: Option<String>,
    /// The device model.
    pub device_info: Option<String>,
    /// The client's extras.
    pub extras: Option<String>,
    /// `KEY_DEVICE_PUBLIC`, SEC1 as the device sent it.
    pub device_public_key: Option<Vec<u8>>,
    /// `KEY_SERVER_PUBLIC`, uncompressed SEC1.
    pub server_public_key: Option<Vec<u8>>,
    /// The server private key and master secret, sealed by the HSM for this activation.
    pub sealed_secrets: Option<Vec<u8>>,
    /// `CTR_DATA`, the hash-based counter's current value.
    pub ctr_data: Option<Vec<u8>>,
    /// The numeric counter (signatures accepted, with skipped steps).
    pub counter: i64,
    /// Failed signatures since the last good one (knowledge or biometry factor).
    pub failed_attempts: i64,
    /// Failed signatures that block it.
    pub max_failed_attempts: i64,
    /// Why it is blocked.
    pub blocked_reason: Option<String>,
    /// Made, ms.
    pub created_ms: i64,
    /// When a CREATED or PENDING_COMMIT activation expires, ms.
    pub expires_ms: Option<i64>,
    /// Last change, ms.
    pub changed_ms: i64,
    /// Last signature (good or bad), ms.
    pub last_used_ms: Option<i64>,
    seal: RowSeal,
}

/// An activation to make (state CREATED).
#[derive(Debug, Clone)]
pub struct NewActivation {
    /// `ACTIVATION_ID`.
    pub activation_id: String,
    /// The application's name.
    pub application: String,
    /// The back-end's user id.
    pub user_id: String,
    /// The activation code's lookup value (HSM HMAC).
    pub code_lookup: Vec<u8>,
    /// The OTP's verifier, with its mode.
    pub otp: Option<(OtpValidation, Vec<u8>)>,
    /// Failed signatures that block it.
    pub max_failed_attempts: i64,
    /// When it expires unless activated and committed, ms.
    pub expires_ms: i64,
}

/// What the device's key exchange records.
#[derive(Debug, Clone)]
pub struct KeyExchange {
    /// APP_KEY used.
    pub app_key: String,
    /// Protocol version (`3.3`).
    pub protocol_version: String,
    /// The device's name.
    pub name: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Device model.
    pub device_info: Option<String>,
    /// Extras.
    pub extras: Option<String>,
    /// `KEY_DEVICE_PUBLIC`.
    pub device_public_key: Vec<u8>,
    /// `KEY_SERVER_PUBLIC`.
    pub server_public_key: Vec<u8>,
    /// Server private key and master secret, sealed.
    pub sealed_secrets: Vec<u8>,
    /// The initial `CTR_DATA`.
    pub ctr_data: Vec<u8>,
}

/// A change the engine decided on an activation as read.
#[derive(Debug, Clone, Default)]
pub struct ActivationUpdate {
    /// The new state; a history row is written when it differs.
    pub state: Option<ActivationState>,
    /// Why (history and blocked reason).
    pub reason: Option<String>,
    /// The key exchange (clears the code).
    pub key_exchange: Option<KeyExchange>,
    /// The counter and `CTR_DATA` after an accepted signature.
    pub counter: Option<(i64, Vec<u8>)>,
    /// The failure count.
    pub failed_attempts: Option<i64>,
    /// The blocked reason (`Some(None)` clears it).
    pub blocked_reason: Option<Option<String>>,
    /// The expiry (`Some(None)` clears it).
    pub expires_ms: Option<Option<i64>>,
    /// When it was last used for a signature.
    pub last_used_ms: Option<i64>,
    /// Drop the OTP verifier (once used).
    pub clear_otp: bool,
}

/// The outcome of [`Store::change_powerauth_activation`].
#[derive(Debug)]
pub enum ActivationChange {
    /// Changed (or left as it was, for an empty update): the row before and after, and the
    /// audit row's id.
    Done {
        /// As decided on.
        before: Box<Activation>,
        /// As committed.
        after: Box<Activation>,
    },
    /// The row moved between the read and the write (another request or node changed its
    /// state, counter or failures): nothing was written; decide again.
    Conflict,
}

/// One entry of an activation's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActivationHistory {
    /// The state entered.
    pub state: String,
    /// Why.
    pub reason: Option<String>,
    /// Who.
    pub actor: String,
    /// When, ms.
    pub at_ms: i64,
}

/// A 3.3 temporary ECIES key.
#[derive(Debug, Clone)]
pub struct TemporaryKey {
    /// Its id (`sub` of the JWT, `temporaryKeyId` of requests).
    pub key_id: String,
    /// The APP_KEY it was made for.
    pub app_key: String,
    /// The activation it was made for (activation scope).
    pub activation_id: Option<String>,
    /// Its public key, uncompressed SEC1.
    pub public_key: Vec<u8>,
    /// Its private key, sealed by the HSM (AAD: id, APP_KEY, activation).
    pub sealed_private_key: Vec<u8>,
    /// When it stops being accepted, ms.
    pub expires_ms: i64,
}

const SELECT: &str = "SELECT a.id, a.activation_id, a.application_id, app.name, a.user_id, a.state, \
     a.code_lookup IS NOT NULL, a.otp_verifier, a.otp_validation, a.app_key, a.protocol_version, a.name, a.platform, \
     a.device_info, a.extras, a.device_public_key, a.server_public_key, a.sealed_secrets, a.ctr_data, a.counter, \
     a.failed_attempts, a.max_failed_attempts, a.blocked_reason, a.created_ms, a.expires_ms, a.changed_ms, \
     a.last_used_ms";

/// Columns of [`SELECT`] before the row seal's.
const WIDTH: usize = 27;

fn select(filter: &str) -> String {
    format!(
        "{SELECT}, {} FROM powerauth_activation a JOIN application app ON app.id = a.application_id WHERE {filter}",
        RowTable::PowerAuthActivation.select_list("a")
    )
}

fn from_row(r: &Row<'_>) -> Result<Activation, StoreError> {
    Ok(Activation {
        id: r.get(0)?,
        activation_id: r.get(1)?,
        application_id: r.get(2)?,
        application: r.get(3)?,
        user_id: r.get(4)?,
        state: ActivationState::parse(&r.get::<String>(5)?)?,
        has_code: r.get(6)?,
        otp_verifier: r.get(7)?,
        otp_validation: OtpValidation::parse(&r.get::<String>(8)?)?,
        app_key: r.get(9)?,
        protocol_version: r.get(10)?,
        name: r.get(11)?,
        platform: r.get(12)?,
        device_info: r.get(13)?,
        extras: r.get(14)?,
        device_public_key: r.get(15)?,
        server_public_key: r.get(16)?,
        sealed_secrets: r.get(17)?,
        ctr_data: r.get(18)?,
        counter: r.get(19)?,
        failed_attempts: r.get(20)?,
        max_failed_attempts: r.get(21)?,
        blocked_reason: r.get(22)?,
        created_ms: r.get(23)?,
        expires_ms: r.get(24)?,
        changed_ms: r.get(25)?,
        last_used_ms: r.get(26)?,
        seal: RowSeal::read(r, RowTable::PowerAuthActivation, WIDTH)?.unwrap_or_default(),
    })
}

fn history(
    tx: &dyn Sql,
    activation_id: &str,
    state: ActivationState,
    reason: Option<&str>,
    actor: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO powerauth_activation_history (activation_id, state, reason, actor, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![activation_id, state.as_str(), reason, actor, at_ms],
    )?;
    Ok(())
}

impl Activation {
    /// Whether `self`, read now, still holds what a decision made on `earlier` depended on: the
    /// state, the counter and its data, and the failure count.
    pub fn unchanged_since(&self, earlier: &Activation) -> bool {
        self.state == earlier.state
            && self.counter == earlier.counter
            && self.ctr_data == earlier.ctr_data
            && self.failed_attempts == earlier.failed_attempts
    }
}

impl Store {
    fn activation_in(
        &self,
        conn: &dyn Sql,
        filter: &str,
        params: &[&dyn Param],
    ) -> Result<Option<Activation>, StoreError> {
        let Some(a) = conn.query_opt(&select(filter), params, from_row)? else { return Ok(None) };
        self.row_seals().check(&a.seal, || format!("PowerAuth activation {}", a.activation_id))?;
        Ok(Some(a))
    }

    /// Records activation `new` (CREATED) with its history and `audit` row. A code whose lookup
    /// value another activation holds is a [`Refusal::Duplicate`] (80 random bits: only a
    /// broken generator repeats one).
    pub fn create_powerauth_activation(
        &self,
        new: &NewActivation,
        audit: &AuthAuditRow,
    ) -> Result<Activation, StoreError> {
        let now = crate::now_ms();
        self.write(|tx| {
            self.check_seals(tx, &["application", "powerauth_application"])?;
            let app_id: i64 = tx
                .query_opt(
                    "SELECT a.id FROM application a JOIN powerauth_application p ON p.application_id = a.id WHERE a.name = ?1",
                    args![new.application],
                    |r| r.get(0),
                )?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("PowerAuth application '{}'", new.application))))?;
            let (mode, otp) = match &new.otp {
                Some((mode, verifier)) => (*mode, Some(verifier.clone())),
                None => (OtpValidation::None, None),
            };
            let id = tx
                .insert(
                    "INSERT INTO powerauth_activation (activation_id, application_id, user_id, state, code_lookup, \
                     otp_verifier, otp_validation, max_failed_attempts, created_ms, expires_ms, changed_ms) \
                     VALUES (?1, ?2, ?3, 'CREATED', ?4, ?5, ?6, ?7, ?8, ?9, ?8) RETURNING id",
                    args![
                        new.activation_id,
                        app_id,
                        new.user_id,
                        new.code_lookup,
                        otp,
                        mode.as_str(),
                        new.max_failed_attempts,
                        now,
                        new.expires_ms
                    ],
                )
                .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate("the activation code".into()))))?;
            self.row_seals().seal_row(tx, RowTable::PowerAuthActivation, id)?;
            history(tx, &new.activation_id, ActivationState::Created, None, &audit.caller, now)?;
            insert_audit(tx, audit)?;
            self.activation_in(tx, "a.id = ?1", args![id])?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound("the new activation".into())))
        })
    }

    /// Activation `activation_id`, its seal checked; `None` if there is none.
    pub fn powerauth_activation(&self, activation_id: &str) -> Result<Option<Activation>, StoreError> {
        self.read(|conn| self.activation_in(conn, "a.activation_id = ?1", args![activation_id]))
    }

    /// The activation whose code has lookup value `code_lookup` (until its key exchange).
    pub fn powerauth_activation_by_code(&self, code_lookup: &[u8]) -> Result<Option<Activation>, StoreError> {
        self.read(|conn| self.activation_in(conn, "a.code_lookup = ?1", args![code_lookup]))
    }

    /// The activations of `user_id` in application `app` (every one when `app` is `None`),
    /// newest first, at most `limit`.
    pub fn powerauth_activations_of(
        &self,
        app: Option<&str>,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<Activation>, StoreError> {
        self.read(|conn| {
            let rows = conn.query_map(
                &format!("{} ORDER BY a.id DESC LIMIT ?3", select("a.user_id = ?1 AND (?2 IS NULL OR app.name = ?2)")),
                args![user_id, app, limit],
                from_row,
            )?;
            for a in &rows {
                self.row_seals().check(&a.seal, || format!("PowerAuth activation {}", a.activation_id))?;
            }
            Ok(rows)
        })
    }

    /// Activation `activation_id`'s history, oldest first.
    pub fn powerauth_activation_history(&self, activation_id: &str) -> Result<Vec<ActivationHistory>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT state, reason, actor, at_ms FROM powerauth_activation_history WHERE activation_id = ?1 ORDER BY id",
                args![activation_id],
                |r| Ok(ActivationHistory { state: r.get(0)?, reason: r.get(1)?, actor: r.get(2)?, at_ms: r.get(3)? }),
            )
        })
    }

    /// Applies what `decide` makes of activation `activation_id` as read in the transaction,
    /// with `audit` (and a history row by `audit.caller` when the state changes), if the row
    /// still holds the state, counter and failure count it was read with. `decide` may refuse
    /// (its error is returned and nothing is written) or answer `None`: the row is not the one
    /// its caller decided on earlier (a verification made outside the transaction), so
    /// nothing is written and the answer is [`ActivationChange::Conflict`].
    pub fn change_powerauth_activation(
        &self,
        activation_id: &str,
        audit: &AuthAuditRow,
        decide: impl FnOnce(&Activation) -> Result<Option<ActivationUpdate>, StoreError>,
    ) -> Result<ActivationChange, StoreError> {
        let now = crate::now_ms();
        self.write(|tx| {
            let before = self
                .activation_in(tx, "a.activation_id = ?1", args![activation_id])?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("activation {activation_id}"))))?;
            let Some(u) = decide(&before)? else { return Ok(ActivationChange::Conflict) };
            let state = u.state.unwrap_or(before.state);
            let (counter, ctr_data) = match (&u.counter, &u.key_exchange) {
                (Some((c, d)), _) => (*c, Some(d.clone())),
                (None, Some(kx)) => (0, Some(kx.ctr_data.clone())),
                (None, None) => (before.counter, before.ctr_data.clone()),
            };
            let blocked_reason = match &u.blocked_reason {
                Some(r) => r.clone(),
                None => before.blocked_reason.clone(),
            };
            let expires_ms = u.expires_ms.unwrap_or(before.expires_ms);
            let kx = u.key_exchange.as_ref();
            let changed = tx.execute(
                "UPDATE powerauth_activation SET state = ?1, counter = ?2, ctr_data = ?3, failed_attempts = ?4, \
                 blocked_reason = ?5, expires_ms = ?6, last_used_ms = ?7, changed_ms = ?8, \
                 otp_verifier = CASE WHEN ?9 = 1 THEN NULL ELSE otp_verifier END, \
                 code_lookup = CASE WHEN ?10 = 1 THEN NULL ELSE code_lookup END, \
                 app_key = COALESCE(?11, app_key), protocol_version = COALESCE(?12, protocol_version), \
                 name = COALESCE(?13, name), platform = COALESCE(?14, platform), \
                 device_info = COALESCE(?15, device_info), extras = COALESCE(?16, extras), \
                 device_public_key = COALESCE(?17, device_public_key), \
                 server_public_key = COALESCE(?18, server_public_key), \
                 sealed_secrets = COALESCE(?19, sealed_secrets) \
                 WHERE id = ?20 AND state = ?21 AND counter = ?22 AND failed_attempts = ?23",
                args![
                    state.as_str(),
                    counter,
                    ctr_data,
                    u.failed_attempts.unwrap_or(before.failed_attempts),
                    blocked_reason,
                    expires_ms,
                    u.last_used_ms.or(before.last_used_ms),
                    now,
                    i64::from(u.clear_otp),
                    i64::from(kx.is_some()),
                    kx.map(|k| k.app_key.as_str()),
                    kx.map(|k| k.protocol_version.as_str()),
                    kx.and_then(|k| k.name.as_deref()),
                    kx.and_then(|k| k.platform.as_deref()),
                    kx.and_then(|k| k.device_info.as_deref()),
                    kx.and_then(|k| k.extras.as_deref()),
                    kx.map(|k| k.device_public_key.as_slice()),
                    kx.map(|k| k.server_public_key.as_slice()),
                    kx.map(|k| k.sealed_secrets.as_slice()),
                    before.id,
                    before.state.as_str(),
                    before.counter,
                    before.failed_attempts
                ],
            )?;
            if changed == 0 {
                return Ok(ActivationChange::Conflict);
            }
            self.row_seals().seal_row(tx, RowTable::PowerAuthActivation, before.id)?;
            if state != before.state {
                history(tx, activation_id, state, u.reason.as_deref(), &audit.caller, now)?;
            }
            insert_audit(tx, audit)?;
            let after = self
                .activation_in(tx, "a.id = ?1", args![before.id])?
                .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("activation {activation_id}"))))?;
            Ok(ActivationChange::Done { before: Box::new(before), after: Box::new(after) })
        })
    }

    /// Records that the request identified by `digest` was seen, until `expires_ms`: `false`
    /// when it was seen before (a replay), on this node or another. Expired entries are
    /// removed by [`Store::purge_powerauth_expired`].
    pub fn claim_powerauth_replay(&self, digest: &[u8], expires_ms: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            match tx
                .execute("INSERT INTO powerauth_replay (digest, expires_ms) VALUES (?1, ?2)", args![digest, expires_ms])
            {
                Ok(_) => Ok(true),
                Err(e) => match unique_as(e, || StoreError::Refused(Refusal::Duplicate("request".into()))) {
                    StoreError::Refused(Refusal::Duplicate(_)) => Ok(false),
                    e => Err(e),
                },
            }
        })
    }

    /// Records a temporary key.
    pub fn insert_powerauth_temporary_key(&self, key: &TemporaryKey) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO powerauth_temporary_key (key_id, app_key, activation_id, public_key, sealed_private_key, \
                 expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![
                    key.key_id,
                    key.app_key,
                    key.activation_id,
                    key.public_key,
                    key.sealed_private_key,
                    key.expires_ms
                ],
            )?;
            Ok(())
        })
    }

    /// Temporary key `key_id`, if it is there (expired or not: the caller judges).
    pub fn powerauth_temporary_key(&self, key_id: &str) -> Result<Option<TemporaryKey>, StoreError> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT key_id, app_key, activation_id, public_key, sealed_private_key, expires_ms \
                 FROM powerauth_temporary_key WHERE key_id = ?1",
                args![key_id],
                |r| {
                    Ok(TemporaryKey {
                        key_id: r.get(0)?,
                        app_key: r.get(1)?,
                        activation_id: r.get(2)?,
                        public_key: r.get(3)?,
                        sealed_private_key: r.get(4)?,
                        expires_ms: r.get(5)?,
                    })
                },
            )
        })
    }

    /// Removes replay entries and temporary keys past their expiry at `now_ms`; returns how
    /// many rows went.
    pub fn purge_powerauth_expired(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            let replays = tx.execute("DELETE FROM powerauth_replay WHERE expires_ms < ?1", args![now_ms])?;
            let keys = tx.execute("DELETE FROM powerauth_temporary_key WHERE expires_ms < ?1", args![now_ms])?;
            Ok(replays + keys)
        })
    }
}
