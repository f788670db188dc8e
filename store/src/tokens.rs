//! Realms, internal users, the appliance's own HSM keys (by role), users' tokens, and the
//! authentication audit.
//!
//! A token row carries its seed only sealed (AES-GCM by an HSM key, bound to the serial) and
//! its PIN only as an HMAC verifier made in the HSM; nothing here can open either. Counters
//! only move forward, by compare-and-set in the same transaction as the audit row that
//! records the acceptance ([`commit_check`]).

use countersign_core::check::{AfterAccept, ThrottleEffect, ThrottleState, TokenEffect};
use countersign_core::error::Refusal;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use super::audit::{AuthAuditRow, AUTH_COLUMNS};
use super::chain::{insert_audit, ChainTail};
use super::row_seals::{Identity, RowSeal, RowSeals, RowTable};
use super::{unique_as, Store, StoreError};
use crate::db::{args, Dialect, Param, Row, Sql, Value};
use countersign_core::rules::FailCounter;
pub use countersign_core::user::User;
pub use countersign_core::validity::{Unusable, Validity};

/// A directory user about to be recorded as a token owner ([`Store::bind_directory_user`]).
#[derive(Debug, Clone, Copy)]
pub struct DirectoryUser<'a> {
    /// The name of the resolver that found the user.
    pub resolver: &'a str,
    /// The resolver's stable id of the user.
    pub uid: &'a str,
    /// As the directory spells it.
    pub login: &'a str,
    /// The resolver matches logins in any case.
    pub nocase: bool,
    /// The e-mail address the directory gives; `None`: it gives none.
    pub email: Option<&'a str>,
    /// The phone number the directory gives; `None`: it gives none.
    pub phone: Option<&'a str>,
    /// The given name the directory gives; `None`: it gives none.
    pub given_name: Option<&'a str>,
    /// The surname the directory gives; `None`: it gives none.
    pub surname: Option<&'a str>,
}

/// A token as stored. `sealed_seed` and `pin_verifier` never leave the appliance: the API
/// shows a `countersign_api::Token`, which the engine makes of this row.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The token's row id (0 on a record not stored yet, [`TokenRecord::unsaved`]).
    pub id: i64,
    /// The token's serial, unique; the sealed seed is bound to it.
    pub serial: String,
    /// The token type (`hotp`, `totp`, `sms`, `yubikey`, ...).
    pub token_type: String,
    /// The token plugin that checks this token.
    pub plugin: String,
    /// The options passed to the plugin, as JSON (digits, hash, step, the validity period, a
    /// yubikey's public id as `prefix`); `Null` if the stored text does not parse. Never a secret.
    pub params: serde_json::Value,
    /// How far a check searches: HOTP counters ahead of `counter`, TOTP time steps on either side
    /// of now.
    pub otp_window: u32,
    /// The token's secret as only the HSM can open or check it: the seed AES-GCM sealed under the
    /// `token-seal` key with the serial as associated data, or HSM-keyed verifiers (pw,
    /// registration and tan tokens); empty when the token has none (spass, certificate tokens).
    /// Never a secret in the clear.
    pub sealed_seed: Vec<u8>,
    /// HOTP: the next counter a code may have. TOTP: the first time step that may be accepted (the
    /// last accepted step + 1). Only ever moves forward.
    pub counter: u64,
    /// TOTP: the clock drift learned from accepted codes, in time steps; 0 otherwise.
    pub drift: i64,
    /// The PIN's HMAC-SHA-256 verifier under the HSM key `pin-verifier`; `None`: the token has no
    /// PIN. Never the PIN.
    pub pin_verifier: Option<Vec<u8>>,
    /// Failed checks, the count that locks the token, its clear timeout and the last failure.
    pub fails: FailCounter,
    /// When the token last accepted a check, in milliseconds since the Unix epoch; `None`: never.
    pub last_auth_ms: Option<i64>,
    /// Whether the token is enabled; a disabled token takes part in no check.
    pub active: bool,
    /// Whether the token was revoked: disabled for good, it can never be enabled again.
    pub revoked: bool,
    /// The owner's login; `None`: the token is assigned to no one.
    pub login: Option<String>,
    /// The owner's realm; `None`: the token is assigned to no one.
    pub realm: Option<String>,
    /// The admin's description of the token; empty when none was given.
    pub description: String,
    /// When the token was stored, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Challenge-response tokens: the phone number or address codes go to; `None`: the user's.
    pub recipient: Option<String>,
    /// The owner's phone number as their user row holds it; `None`: no owner, or none recorded.
    pub user_phone: Option<String>,
    /// The owner's e-mail address as their user row holds it; `None`: no owner, or none recorded.
    pub user_email: Option<String>,
    /// The card the token lives on (`yubikey 12345678`), for hardware-enrolled tokens.
    pub device: Option<String>,
    /// The resolver the owner was found through; `None`: the internal user store.
    pub owner_resolver: Option<String>,
    /// The owner's `app_user` row.
    pub owner_id: Option<i64>,
    /// The owner's stable id in `owner_resolver` (`None`: an internal user, or a directory
    /// user recorded before stable ids were kept and not bound yet).
    pub owner_uid: Option<String>,
    /// The row's seal as read, and its owner row's ([`super::row_seals`]).
    pub(crate) seal: RowSeal,
    pub(crate) owner_seal: Option<RowSeal>,
}

impl TokenRecord {
    /// The record `new` will be once stored, for a plugin call before it is (a paper token's
    /// sheet): no id, owner or seal yet.
    pub fn unsaved(new: &NewToken) -> TokenRecord {
        TokenRecord {
            id: 0,
            serial: new.serial.clone(),
            token_type: new.token_type.clone(),
            plugin: new.plugin.clone(),
            params: new.params.clone(),
            otp_window: new.otp_window,
            sealed_seed: new.sealed_seed.clone(),
            counter: new.counter,
            drift: 0,
            pin_verifier: None,
            fails: FailCounter { count: 0, max: new.max_fail, clear_s: new.fail_clear_s, last_fail_ms: None },
            last_auth_ms: None,
            active: false,
            revoked: false,
            login: None,
            realm: None,
            description: String::new(),
            created_at: 0,
            recipient: None,
            user_phone: None,
            user_email: None,
            device: None,
            owner_resolver: None,
            owner_id: None,
            owner_uid: None,
            seal: RowSeal::default(),
            owner_seal: None,
        }
    }

    /// The token's fail counter, for the rules that judge it.
    pub fn fail_counter(&self) -> FailCounter {
        self.fails
    }

    /// Whether the fail counter locks the token at `now_ms`.
    pub fn locked(&self, now_ms: i64) -> bool {
        self.fail_counter().locked(now_ms)
    }

    /// Why the token takes part in no check at `now_ms`, if it does not: disabled, revoked,
    /// or outside its validity period. Every check path filters on this one rule.
    pub fn unusable(&self, now_ms: i64) -> Option<Unusable> {
        if self.revoked {
            Some(Unusable::Revoked)
        } else if !self.active {
            Some(Unusable::Disabled)
        } else if self.rollout_state() == CLIENTWAIT {
            Some(Unusable::Unfinished)
        } else {
            Validity::of(&self.params).outside(now_ms)
        }
    }

    /// How far a two-step enrolment got ([`ROLLOUT_STATE`]): [`CLIENTWAIT`], [`ENROLLED`], or
    /// empty for a token enrolled in one step.
    pub fn rollout_state(&self) -> &str {
        self.params.get(ROLLOUT_STATE).and_then(serde_json::Value::as_str).unwrap_or_default()
    }

    /// Whether the token takes part in checks at `now_ms` ([`Self::unusable`]).
    pub fn usable(&self, now_ms: i64) -> bool {
        self.unusable(now_ms).is_none()
    }
}

/// The params member that says how far a two-step enrolment got (privacyIDEA's
/// `rollout_state`); [`CLIENTWAIT`] while the second step is missing.
pub const ROLLOUT_STATE: &str = "rollout_state";
/// [`ROLLOUT_STATE`] of a token whose enrolment waits for its client's second step.
pub const CLIENTWAIT: &str = "clientwait";
/// [`ROLLOUT_STATE`] of a token whose two-step enrolment finished.
pub const ENROLLED: &str = "enrolled";

/// A token about to be stored (its seed already sealed).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The serial, which must not be taken yet.
    pub serial: String,
    /// The token type (`hotp`, `totp`, ...).
    pub token_type: String,
    /// The token plugin that will check the token.
    pub plugin: String,
    /// The plugin's options as JSON (digits, hash, step, ...); never a secret.
    pub params: serde_json::Value,
    /// How far a check searches: HOTP counters ahead, TOTP time steps on either side of now.
    pub otp_window: u32,
    /// The secret as the HSM sealed it (or its verifiers, for pw, registration and tan tokens);
    /// never the seed in the clear.
    pub sealed_seed: Vec<u8>,
    /// The counter to start from (HOTP: the first counter a code may have).
    pub counter: u64,
    /// The PIN's HMAC verifier under the HSM key `pin-verifier`; `None`: no PIN. Never the PIN.
    pub pin_verifier: Option<Vec<u8>>,
    /// The number of failures at which the token locks.
    pub max_fail: u32,
    /// Seconds after the last failure at which a locked token opens again; 0: only an admin reset.
    pub fail_clear_s: u32,
    /// The owner's (login, realm), a user row that exists already; an empty realm means the default
    /// realm; `None`: assigned to no one.
    pub user: Option<(String, String)>,
    /// The admin's description; may be empty.
    pub description: String,
    /// Challenge-response tokens: the phone number or address codes go to; `None`: the owner's.
    pub recipient: Option<String>,
    /// The most tokens `user` may then own (enrolment policy `max_token_per_user`).
    pub owner_limit: Option<i64>,
}

#[cfg(any(test, feature = "test-support"))]
impl NewToken {
    /// An HOTP token for unit tests of the store and the services above it (its "sealed" seed
    /// is one byte: nothing opens it). Built only for tests (feature `test-support`).
    pub fn for_test(serial: &str, user: Option<(&str, &str)>) -> NewToken {
        NewToken {
            serial: serial.into(),
            token_type: "hotp".into(),
            plugin: "token-hotp".into(),
            params: serde_json::json!({}),
            otp_window: 10,
            sealed_seed: vec![1],
            counter: 0,
            pin_verifier: None,
            max_fail: 10,
            fail_clear_s: 0,
            user: user.map(|(l, r)| (l.to_owned(), r.to_owned())),
            description: String::new(),
            recipient: None,
            owner_limit: None,
        }
    }
}

/// What an audit listing shows beside the rows: for each row, whether it matches its chain link
/// and whether the links on both sides of it are there; and the current type of each token the
/// rows name.
#[derive(Debug, Clone, Default)]
pub struct AuditFacts {
    /// For each row, in order: whether it matches its own chain link, and whether the links before
    /// and after it are both there (the newest row has none after it yet).
    pub links: Vec<(bool, bool)>,
    /// The current type of each serial the rows name; a deleted token's serial is absent.
    pub token_types: std::collections::HashMap<String, String>,
}

/// Filters for reading the authentication audit, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthAuditQuery {
    /// Only rows about this token serial.
    pub serial: Option<String>,
    /// Only rows naming this login (as the row spells it).
    pub user: Option<String>,
    /// Only rows about this resolved user: [`Owner::key`] (or [`unknown_owner_key`]), as checks
    /// record it, whatever login spelling or realm reached them. Rows that record no owner
    /// (admin changes, rows older than migration 0016) never match.
    pub owner: Option<String>,
    /// Only rows naming this realm.
    #[serde(default)]
    pub realm: Option<String>,
    /// Only rows that record no owner (admin changes, rows older than migration 0016).
    #[serde(default)]
    pub without_owner: bool,
    /// Only rows of this action (`validate/check`, `token/init`, ...).
    pub action: Option<String>,
    /// Only rows with this result (`accept`, `reject`, `ok`, `refused`, `error`).
    pub result: Option<String>,
    /// Only rows written at or after this time (Unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// Only rows written before this time (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Only rows with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many rows; 100 when `None`, never more than 10,000.
    pub limit: Option<u32>,
}

impl AuthAuditQuery {
    /// The `WHERE` clause of the filters that are set (`before_id` only when `paged`) and the
    /// values it binds, in order. Only the filters set are written into the statement: SQLite
    /// plans a statement once whatever it binds (query-planner stability), so a catch-all
    /// `(?N IS NULL OR at_ms >= ?N)` would never use an index and a time range would read the
    /// whole table. The clauses are the code's own; every value is bound.
    fn filters(&self, paged: bool) -> (String, Vec<&dyn Param>) {
        let mut clauses: Vec<String> = Vec::new();
        let mut values: Vec<&dyn Param> = Vec::new();
        let text = [
            ("serial =", &self.serial),
            ("login =", &self.user),
            ("owner =", &self.owner),
            ("realm =", &self.realm),
            ("action =", &self.action),
            ("result =", &self.result),
        ];
        for (clause, value) in text {
            if let Some(v) = value {
                values.push(v);
                clauses.push(format!("{clause} ?{}", values.len()));
            }
        }
        if self.without_owner {
            clauses.push("owner IS NULL".to_owned());
        }
        let before = if paged { &self.before_id } else { &None };
        for (clause, value) in [("at_ms >=", &self.since_ms), ("at_ms <", &self.until_ms), ("id <", before)] {
            if let Some(v) = value {
                values.push(v);
                clauses.push(format!("{clause} ?{}", values.len()));
            }
        }
        match clauses.is_empty() {
            true => (String::new(), values),
            false => (format!("WHERE {}", clauses.join(" AND ")), values),
        }
    }
}

/// Counts a resolved user's recent `validate/check` rows with `result` since `since_ms`,
/// however the checks named the user (any spelling or realm of the login, or a token serial):
/// the per-user limits `auth_max_fail` and `auth_max_success`.
pub(crate) fn recent_owner_checks(conn: &dyn Sql, owner: &str, result: &str, since_ms: i64) -> Result<u64, StoreError> {
    let n: i64 = conn.query_value(
        "SELECT count(*) FROM auth_audit WHERE owner = ?1 AND action = 'validate/check' AND result = ?2
         AND at_ms >= ?3",
        args![owner, result, since_ms],
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A user as the realm's resolvers resolved them: the one owner their tokens belong to,
/// whatever login spelling or realm a request used to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A user of the internal user store: their `app_user` row (an internal resolver's uid).
    Internal {
        /// The user's `app_user` row id.
        user_id: i64,
    },
    /// A directory user: the resolver and the stable id it gave. `login` is the login as the
    /// directory spells it and `nocase` whether the resolver matches logins in any case; both
    /// only find rows recorded before stable ids were kept (`resolver_uid` NULL).
    Directory {
        /// The name of the resolver that found the user.
        resolver: String,
        /// The stable id the resolver gave the user (LDAP: the mapped uid attribute; passwd:
        /// the numeric uid).
        uid: String,
        /// The login as the directory spells it.
        login: String,
        /// Whether the resolver matches logins in any case (LDAP).
        nocase: bool,
    },
}

impl Owner {
    /// The owner's key in the audit and the throttle: `internal#<row id>` or
    /// `<resolver>:<stable id>` (resolver names never contain `#` or `:`).
    pub fn key(&self) -> String {
        match self {
            Owner::Internal { user_id } => format!("internal#{user_id}"),
            Owner::Directory { resolver, uid, .. } => format!("{resolver}:{uid}"),
        }
    }
}

/// The key of a login that no resolver of `realm` knows, so unknown users are limited and
/// throttled exactly like known ones (a difference would tell who exists).
pub fn unknown_owner_key(realm: &str, login: &str) -> String {
    format!("unknown:{realm}:{}", login.to_lowercase())
}

/// The tokens of `owner`, read on the caller's connection: a directory user's rows bound to
/// their stable id, and rows recorded for them before ids were kept (found by login under
/// the resolver's matching rule). The owner's rows and the tokens are checked against their
/// seals, and the tokens found against each owner row's sealed count.
pub(crate) fn tokens_of_owner(conn: &dyn Sql, seals: &RowSeals, owner: &Owner) -> Result<Vec<TokenRecord>, StoreError> {
    // The statements are built once: this runs on every check by user.
    static INTERNAL: LazyLock<String> =
        LazyLock::new(|| format!("{} WHERE u.id = ?1 AND u.resolver IS NULL", owner_select()));
    // Two look-ups, each on its own index (an OR across them would scan every user).
    static DIRECTORY: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} WHERE u.id IN (SELECT id FROM app_user WHERE resolver = ?1 AND resolver_uid = ?2
                 UNION SELECT id FROM app_user WHERE resolver = ?1 AND resolver_uid IS NULL
                     AND (login = ?3 OR (?4 = 1 AND lower(login) = lower(?3))))
             ORDER BY u.id",
            owner_select()
        )
    });
    static TOKENS: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {} {TOKEN_FROM} WHERE t.user_id = ?1", token_columns()));
    fn owner_select() -> String {
        format!("SELECT u.id, u.token_count, u.login, {} FROM app_user u", RowTable::User.select_list("u"))
    }
    let row = |r: &Row<'_>| -> Result<(i64, i64, String, Option<RowSeal>), StoreError> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, RowSeal::read(r, RowTable::User, 3)?))
    };
    let owners = match owner {
        Owner::Internal { user_id } => conn.query_map(&INTERNAL, args![user_id], row)?,
        Owner::Directory { resolver, uid, login, nocase } => {
            conn.query_map(&DIRECTORY, args![resolver, uid, login, nocase], row)?
        }
    };
    if owners.is_empty() {
        // No row for this user: prove it was never there (not deleted behind the appliance's back).
        if let Owner::Directory { resolver, uid, login, .. } = owner {
            seals
                .check_absent(conn, &[Identity::Directory { resolver, uid }, Identity::Unbound { resolver, login }])?;
        }
    }
    let mut tokens = Vec::new();
    for (id, count, login, seal) in owners {
        if let Some(seal) = &seal {
            seals.check(seal, || format!("user {login} (#{id})"))?;
        }
        // Read straight into `tokens`; this owner's are those from `first` on.
        let first = tokens.len();
        conn.each_row(&TOKENS, args![id], &mut |r| {
            tokens.push(token_from_row(r)?);
            Ok(())
        })?;
        seals.check_count(id, count, tokens.len() - first, &login)?;
        for t in &tokens[first..] {
            seals.check(&t.seal, || format!("token {}", t.serial))?;
        }
    }
    tokens.sort_by_key(|t| t.id);
    Ok(tokens)
}

/// The owner key of an assigned token's owner as the row records it; `None` when the token
/// has no owner or its directory owner is not bound to a stable id yet (the caller asks the
/// resolver then).
pub fn recorded_owner_key(t: &TokenRecord) -> Option<String> {
    match (t.owner_id, &t.owner_resolver, &t.owner_uid) {
        (Some(id), None, _) => Some(Owner::Internal { user_id: id }.key()),
        (Some(_), Some(r), Some(uid)) => Some(format!("{r}:{uid}")),
        _ => None,
    }
}

/// Refuses to give user `user_id` another token when they own `limit` already (`except`: a
/// token being re-assigned, which does not count). Called inside the transaction that gives
/// the token, so two concurrent enrolments cannot both pass the limit.
fn owner_within_limit(
    tx: &dyn Sql,
    user_id: i64,
    except: Option<i64>,
    limit: Option<i64>,
    who: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    let Some(limit) = limit else { return Ok(()) };
    let have: i64 = tx.query_value(
        "SELECT count(*) FROM token WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)",
        args![user_id, except],
    )?;
    if have >= limit {
        return Err(StoreError::Refused(Refusal::Invalid(format!(
            "{} already has {have} token(s); policy max_token_per_user allows {limit}",
            who()
        ))));
    }
    Ok(())
}

/// Reads `owner`'s throttle counts (all sources, and `source`).
pub(crate) fn throttle_state(conn: &dyn Sql, owner: &str, source: &str) -> Result<ThrottleState, StoreError> {
    let read = |src: &str| -> Result<(u32, i64), StoreError> {
        Ok(conn
            .query_opt(
                "SELECT failures, last_ms FROM auth_throttle WHERE owner = ?1 AND source = ?2",
                args![owner, src],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .unwrap_or((0, 0)))
    };
    Ok(ThrottleState { user: read("*")?, source: read(source)? })
}

/// A check ready to commit: its effect and its audit row. The commit may turn an accept into a
/// reject (another request used the counter first); the row then says so.
#[derive(Debug, Clone)]
pub struct CheckRecord {
    /// What the commit does to the token(s).
    pub effect: TokenEffect,
    /// The check's audit row, written in the same transaction.
    pub audit: AuthAuditRow,
    /// What the commit does to the user's throttle counts.
    pub throttle: ThrottleEffect,
    /// An accept's new row seal, worked out by the worker ([`crate::Reader::foresee`]); `None`
    /// when nothing was foreseen (the commit then seals the row itself).
    pub foreseen: Option<Box<Foreseen>>,
}

/// The row an accept will leave, sealed ahead by the worker that decided it: the token row's
/// seal as the worker read (and checked) it, and the seal of the row once the accept's
/// changes are made. The commit makes the change in one statement when the row still has the
/// seal it was read with (so it is the row the forecast was made from).
#[derive(Clone)]
pub struct Foreseen {
    token_id: i64,
    seal_as_read: Vec<u8>,
    seal_after: Vec<u8>,
}

impl std::fmt::Debug for Foreseen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Foreseen").field("token_id", &self.token_id).finish_non_exhaustive()
    }
}

const TOKEN_FIELDS: &str = "t.id, t.serial, t.type, t.plugin, t.params, t.otp_window, t.sealed_seed, t.counter,
    t.drift, t.pin_verifier, t.fail_count, t.max_fail, t.fail_clear_s, t.last_fail_ms, t.last_auth_ms, t.active,
    t.revoked, u.login, r.name, t.description, t.created_at, t.recipient, u.phone, u.email, d.kind, d.serial, u.resolver,
    u.id, u.resolver_uid";
/// Where [`token_from_row`] finds the token row's sealed values (after the 29 of
/// [`TOKEN_FIELDS`]), and then its owner row's.
const TOKEN_SEAL_AT: usize = 29;
const OWNER_SEAL_AT: usize = TOKEN_SEAL_AT + RowTable::Token.width();

/// What [`token_from_row`] reads: the token's fields, then the sealed values of the token row
/// and of its owner's row.
fn token_columns() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("{TOKEN_FIELDS}, {}, {}", RowTable::Token.select_list("t"), RowTable::User.select_list("u"))
    });
    &COLUMNS
}
const TOKEN_FROM: &str = "FROM token t LEFT JOIN app_user u ON u.id = t.user_id LEFT JOIN realm r ON r.id = u.realm_id
    LEFT JOIN device d ON d.id = t.device_id";

/// The token with serial `?1` (none or one), as [`token_from_row`] reads it; built once, for
/// the check path.
fn token_by_serial() -> &'static str {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {} {TOKEN_FROM} WHERE t.serial = ?1", token_columns()));
    &SQL
}

fn token_from_row(r: &Row<'_>) -> Result<TokenRecord, StoreError> {
    let params: String = r.get(4)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        serial: r.get(1)?,
        token_type: r.get(2)?,
        plugin: r.get(3)?,
        params: serde_json::from_str(&params).unwrap_or(serde_json::Value::Null),
        otp_window: r.get(5)?,
        sealed_seed: r.get(6)?,
        counter: u64::try_from(r.get::<i64>(7)?).unwrap_or(0),
        drift: r.get(8)?,
        pin_verifier: r.get(9)?,
        fails: FailCounter { count: r.get(10)?, max: r.get(11)?, clear_s: r.get(12)?, last_fail_ms: r.get(13)? },
        last_auth_ms: r.get(14)?,
        active: r.get(15)?,
        revoked: r.get(16)?,
        login: r.get(17)?,
        realm: r.get(18)?,
        description: r.get(19)?,
        created_at: r.get(20)?,
        recipient: r.get(21)?,
        user_phone: r.get(22)?,
        user_email: r.get(23)?,
        device: match (r.get::<Option<String>>(24)?, r.get::<Option<String>>(25)?) {
            (Some(kind), Some(serial)) => Some(format!("{kind} {serial}")),
            _ => None,
        },
        owner_resolver: r.get(26)?,
        owner_id: r.get(27)?,
        owner_uid: r.get(28)?,
        seal: RowSeal::read(r, RowTable::Token, TOKEN_SEAL_AT)?.unwrap_or_default(),
        owner_seal: RowSeal::read(r, RowTable::User, OWNER_SEAL_AT)?,
    })
}

/// Checks the seals of a token row as read and of its owner's row.
fn check_token(seals: &RowSeals, t: &TokenRecord) -> Result<(), StoreError> {
    seals.check(&t.seal, || format!("token {}", t.serial))?;
    if let Some(owner) = &t.owner_seal {
        seals.check(owner, || format!("the owner of token {}", t.serial))?;
    }
    Ok(())
}

/// `tokens` once each is checked against its seals ([`check_token`]).
fn checked(seals: &RowSeals, tokens: Vec<TokenRecord>) -> Result<Vec<TokenRecord>, StoreError> {
    for t in &tokens {
        check_token(seals, t)?;
    }
    Ok(tokens)
}

fn counter_sql(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Refused(Refusal::Invalid(format!("counter {v} is out of range"))))
}

/// The yubikey tokens enrolled with `public_id` (`params.prefix`), checked as
/// [`token_for_check`] checks its row.
pub(crate) fn tokens_by_public_id(
    conn: &dyn Sql,
    seals: &RowSeals,
    public_id: &str,
) -> Result<Vec<TokenRecord>, StoreError> {
    // `params` is JSON kept as text; each engine reads a member of it with its own functions.
    static SQLITE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {} {TOKEN_FROM} WHERE t.type = 'yubikey' AND json_extract(t.params, '$.prefix') = ?1",
            token_columns()
        )
    });
    static POSTGRES: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {} {TOKEN_FROM} WHERE t.type = 'yubikey' AND (CAST(t.params AS JSONB) ->> 'prefix') = ?1",
            token_columns()
        )
    });
    let sql = match conn.dialect() {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    checked(seals, conn.query_map(sql, args![public_id], token_from_row)?)
}

/// The token a check by serial is about (none or one), read on the caller's connection (a
/// worker's reader). A check by user reads [`tokens_of_owner`] of the user the login resolves
/// to: there is deliberately no look-up of tokens by the login string.
pub(crate) fn token_for_check(conn: &dyn Sql, seals: &RowSeals, serial: &str) -> Result<Vec<TokenRecord>, StoreError> {
    checked(seals, conn.query_map(token_by_serial(), args![serial], token_from_row)?)
}

/// The token with row id `id` (none or one), checked as [`token_for_check`] checks its row: a
/// usernameless check finds it through its credential's index.
pub(crate) fn token_by_id(conn: &dyn Sql, seals: &RowSeals, id: i64) -> Result<Option<TokenRecord>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {} {TOKEN_FROM} WHERE t.id = ?1", token_columns()));
    Ok(checked(seals, conn.query_map(&SQL, args![id], token_from_row)?)?.pop())
}

/// Applies one check's effect and writes its audit row, inside the caller's transaction.
/// Returns the row id and whether an accept stood (false: the compare-and-set lost, and the
/// audit row was rewritten as a reject before it was written).
/// Every token row it changes is checked against its seal first and sealed again after. The
/// audit row's link goes after `tail`, the chain as the transaction has written it so far.
pub(crate) fn commit_check(
    tx: &dyn Sql,
    seals: &RowSeals,
    tail: &mut ChainTail,
    rec: &mut CheckRecord,
) -> Result<(i64, bool), StoreError> {
    let at = rec.audit.at_ms;
    let accepted = match &rec.effect {
        TokenEffect::None => false,
        // A policy let the user through without a token (passOnNoToken, passOnNoUser, passthru).
        TokenEffect::Pass => true,
        TokenEffect::Accept { token_id, seen_counter, new_counter, drift, then } => {
            let then = then.clone();
            advance_counter(tx, seals, rec, *token_id, *seen_counter, *new_counter, *drift, &then)?
        }
        TokenEffect::AcceptChallenge { challenge_id, token_id, seen_counter, new_counter, drift } => {
            let (challenge_id, token_id) = (*challenge_id, *token_id);
            let (seen_counter, new_counter, drift) = (*seen_counter, *new_counter, *drift);
            // The counter first: its compare-and-set reads the fail count that answering resets.
            // A challenge lost after it means the OTP is spent and the check still refused.
            advance_counter(tx, seals, rec, token_id, seen_counter, new_counter, drift, &AfterAccept::Keep)?
                && answer_challenge(tx, seals, rec, challenge_id, token_id)?
        }
        TokenEffect::AnswerChallenge { challenge_id, token_id } => {
            answer_challenge(tx, seals, rec, *challenge_id, *token_id)?
        }
        TokenEffect::AcceptSignIn { sign_in_id, token_id, seen_counter, new_counter } => {
            let (sign_in_id, token_id, seen_counter, new_counter) =
                (*sign_in_id, *token_id, *seen_counter, *new_counter);
            advance_counter(tx, seals, rec, token_id, seen_counter, new_counter, None, &AfterAccept::Keep)?
                && spend_sign_in(tx, rec, sign_in_id)?
        }
        TokenEffect::Fail(tokens) => {
            for t in tokens {
                seals.update(tx, RowTable::Token, t.token_id, || {
                    tx.execute(
                        "UPDATE token SET fail_count = CASE WHEN ?3 = 1 THEN 1 ELSE fail_count + 1 END, last_fail_ms = ?1
                         WHERE id = ?2",
                        args![at, t.token_id, t.restart],
                    )
                })?;
            }
            false
        }
    };
    match &rec.throttle {
        ThrottleEffect::None => {}
        ThrottleEffect::Failure { owner, source } => {
            for src in ["*", source.as_str()] {
                // The stored count qualified by the table's name: PostgreSQL finds a bare
                // `failures` ambiguous beside `excluded.failures`.
                tx.execute(
                    "INSERT INTO auth_throttle (owner, source, failures, last_ms) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (owner, source) DO UPDATE SET failures = auth_throttle.failures + 1, last_ms = ?3",
                    args![owner, src, at],
                )?;
            }
        }
        ThrottleEffect::Success { owner } if accepted => {
            tx.execute("DELETE FROM auth_throttle WHERE owner = ?1", args![owner])?;
        }
        ThrottleEffect::Success { .. } => {}
    }
    Ok((tail.auth_row(tx, &rec.audit)?, accepted))
}

/// What a check's worker keeps of a token row it read, to foresee an accept's new seal: the
/// row's id, its counter and its seal (with the values it was computed over).
#[derive(Debug, Clone)]
pub(crate) struct ReadToken {
    id: i64,
    counter: u64,
    seal: RowSeal,
}

impl From<&TokenRecord> for ReadToken {
    fn from(t: &TokenRecord) -> ReadToken {
        ReadToken { id: t.id, counter: t.counter, seal: t.seal.clone() }
    }
}

/// The token's new `sealed_seed` an accept stores (`Some(None)`: none), or `None` when the
/// change is not known ahead: a learned public id rewrites `params` in SQL, a registration
/// code's row is deleted.
fn new_secret(then: &AfterAccept) -> Option<Option<&[u8]>> {
    match then {
        AfterAccept::Keep | AfterAccept::Learn { secret: None, public_id: None } => Some(None),
        AfterAccept::Spend { secret } | AfterAccept::Learn { secret: Some(secret), public_id: None } => {
            Some(Some(secret))
        }
        AfterAccept::Delete | AfterAccept::Learn { public_id: Some(_), .. } => None,
    }
}

/// The digest token row `t` (as read) will have if `rec` accepts it: the columns
/// [`advance_counter`]'s UPDATE sets when it wins, in its place (both of its statements share
/// `not_locked!` and [`new_secret`] with this; keep the columns in step). `None` when `rec` accepts no
/// counter of `t` as read, or the change is not known ahead ([`new_secret`]).
pub(crate) fn accepted_digest(t: &ReadToken, rec: &CheckRecord) -> Option<[u8; 32]> {
    let (token_id, seen_counter, new_counter, drift, then) = match &rec.effect {
        TokenEffect::Accept { token_id, seen_counter, new_counter, drift, then } => {
            (*token_id, *seen_counter, *new_counter, *drift, then)
        }
        TokenEffect::AcceptChallenge { token_id, seen_counter, new_counter, drift, .. } => {
            (*token_id, *seen_counter, *new_counter, *drift, &AfterAccept::Keep)
        }
        TokenEffect::AcceptSignIn { token_id, seen_counter, new_counter, .. } => {
            (*token_id, *seen_counter, *new_counter, None, &AfterAccept::Keep)
        }
        _ => return None,
    };
    if t.id != token_id || t.counter != seen_counter {
        return None;
    }
    let mut changes = vec![
        ("counter", Value::Int(i64::try_from(new_counter).ok()?)),
        ("fail_count", Value::Int(0)),
        ("last_auth_ms", Value::Int(rec.audit.at_ms)),
    ];
    if let Some(d) = drift {
        changes.push(("drift", Value::Int(d)));
    }
    if let Some(secret) = new_secret(then)? {
        changes.push(("sealed_seed", Value::Blob(secret)));
    }
    t.seal.digest_after(RowTable::Token, &changes)
}

/// [`Foreseen`] for an accept of `t` as read, given the seal of the row it leaves (`mac`).
pub(crate) fn foreseen(t: &ReadToken, mac: Vec<u8>) -> Option<Box<Foreseen>> {
    Some(Box::new(Foreseen { token_id: t.id, seal_as_read: t.seal.mac()?.to_vec(), seal_after: mac }))
}

/// The condition under which an accept may move a token's counter: not locked as the token
/// stands now (failures counted meanwhile, on this or another appliance, lock it only if they
/// reached max_fail before the clear timeout, as `FailCounter::locked` says; `?2` is the
/// check's time).
macro_rules! not_locked {
    () => {
        "(fail_count < max_fail
          OR (fail_clear_s > 0 AND last_fail_ms IS NOT NULL AND ?2 - last_fail_ms >= fail_clear_s * 1000))"
    };
}
/// The counter compare-and-set of an accept, then what the accept does beyond it (`then`);
/// a lost race turns the record into a reject and does nothing else.
#[allow(clippy::too_many_arguments, reason = "the fields of TokenEffect::Accept, plus where to apply them")]
fn advance_counter(
    tx: &dyn Sql,
    seals: &RowSeals,
    rec: &mut CheckRecord,
    token_id: i64,
    seen_counter: u64,
    new_counter: u64,
    drift: Option<i64>,
    then: &AfterAccept,
) -> Result<bool, StoreError> {
    let at = rec.audit.at_ms;
    let counter = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    // Foreseen: the row still has the seal the worker read and checked, so it is that row, and
    // the worker sealed the row this change leaves. One statement instead of the check, the
    // change and the new seal; if the row moved on, the way below decides as before.
    let foreseen = rec.foreseen.as_ref().filter(|f| f.token_id == token_id);
    if let (Some(f), Some(secret)) = (foreseen, new_secret(then)) {
        let moved = tx.execute(
            concat!(
                "UPDATE token SET counter = ?1, fail_count = 0, last_auth_ms = ?2, drift = coalesce(?3, drift),
                                  sealed_seed = coalesce(?6, sealed_seed), row_mac = ?7
                 WHERE id = ?4 AND counter = ?5 AND active = 1 AND revoked = 0 AND row_mac = ?8 AND ",
                not_locked!()
            ),
            args![
                counter(new_counter),
                at,
                drift,
                token_id,
                counter(seen_counter),
                secret,
                f.seal_after.as_slice(),
                f.seal_as_read.as_slice()
            ],
        )?;
        if moved == 1 {
            return Ok(true);
        }
    }
    let changed = seals.update(tx, RowTable::Token, token_id, || {
        let moved = tx.execute(
            // The counter as the check read it (so a code is spent once), and the token not locked
            // as it stands now (`not_locked!`); below the lock, the accept resets the count as it
            // would in any serial order.
            concat!(
                "UPDATE token SET counter = ?1, fail_count = 0, last_auth_ms = ?2, drift = coalesce(?3, drift)
                 WHERE id = ?4 AND counter = ?5 AND active = 1 AND revoked = 0 AND ",
                not_locked!()
            ),
            args![counter(new_counter), at, drift, token_id, counter(seen_counter)],
        )?;
        if let (1, AfterAccept::Spend { secret } | AfterAccept::Learn { secret: Some(secret), .. }) = (moved, then) {
            tx.execute("UPDATE token SET sealed_seed = ?1 WHERE id = ?2", args![secret, token_id])?;
        }
        if let (1, AfterAccept::Learn { public_id: Some(public_id), .. }) = (moved, then) {
            // `params` is JSON kept as text; each engine sets a member with its own functions.
            let sql = match tx.dialect() {
                Dialect::Sqlite => {
                    "UPDATE token SET params = json_set(params, '$.prefix', ?1)
                     WHERE id = ?2 AND json_extract(params, '$.prefix') IS NULL"
                }
                Dialect::Postgres => {
                    "UPDATE token
                     SET params = CAST(jsonb_set(CAST(params AS JSONB), '{prefix}', to_jsonb(CAST(?1 AS TEXT))) AS TEXT)
                     WHERE id = ?2 AND (CAST(params AS JSONB) ->> 'prefix') IS NULL"
                }
            };
            tx.execute(sql, args![public_id, token_id])?;
        }
        Ok(moved)
    })?;
    if changed == 1 && *then == AfterAccept::Delete {
        // Used once: gone in the transaction that accepted it, with its owner's sealed count.
        let owner: Option<i64> = tx
            .query_opt("SELECT user_id FROM token WHERE id = ?1", args![token_id], |r| r.get::<Option<i64>>(0))?
            .flatten();
        tx.execute("DELETE FROM token WHERE id = ?1", args![token_id])?;
        if let Some(user_id) = owner {
            seals.recount(tx, user_id)?;
        }
    }
    if changed == 0 {
        rec.audit.result = "reject".into();
        rec.audit.detail = Some("the OTP was already used, or the token changed meanwhile".into());
    }
    Ok(changed == 1)
}

/// Marks an open challenge answered (compare-and-set), then resets the token's fail count
/// only if the token, as it stands now, is still active, not revoked and not locked (the same
/// conditions as [`advance_counter`]'s): the worker judged the lock on a read that concurrent
/// wrong answers in the same group commit, or on another node, may have overtaken. A lost race
/// or a token locked, disabled or revoked meanwhile turns the record into a reject; the
/// challenge stays spent.
fn answer_challenge(
    tx: &dyn Sql,
    seals: &RowSeals,
    rec: &mut CheckRecord,
    challenge_id: i64,
    token_id: i64,
) -> Result<bool, StoreError> {
    let at = rec.audit.at_ms;
    let changed = tx.execute(
        "UPDATE challenge SET answered_ms = ?1 WHERE id = ?2 AND answered_ms IS NULL AND expires_ms > ?1",
        args![at, challenge_id],
    )?;
    if changed != 1 {
        rec.audit.result = "reject".into();
        rec.audit.detail = Some("the challenge was already answered or has expired".into());
        return Ok(false);
    }
    let reset = seals.update(tx, RowTable::Token, token_id, || {
        tx.execute(
            concat!(
                "UPDATE token SET fail_count = 0, last_auth_ms = ?2 WHERE id = ?1 AND active = 1 AND revoked = 0 AND ",
                not_locked!()
            ),
            args![token_id, at],
        )
    })?;
    if reset != 1 {
        rec.audit.result = "reject".into();
        rec.audit.detail = Some("the token was locked, disabled or revoked while the answer was checked".into());
    }
    Ok(reset == 1)
}

/// Spends sign-in challenge `sign_in_id` for the accept in `rec`: only if it is still open
/// (not answered, not expired when the request arrived). A sign-in challenge is answered once,
/// by whichever credential comes first.
fn spend_sign_in(tx: &dyn Sql, rec: &mut CheckRecord, sign_in_id: i64) -> Result<bool, StoreError> {
    let at = rec.audit.at_ms;
    let changed = tx.execute(
        "UPDATE sign_in_challenge SET answered_ms = ?1 WHERE id = ?2 AND answered_ms IS NULL AND expires_ms > ?1",
        args![at, sign_in_id],
    )?;
    if changed != 1 {
        rec.audit.result = "reject".into();
        rec.audit.detail = Some("the sign-in challenge was already answered or has expired".into());
    }
    Ok(changed == 1)
}

impl Store {
    /// The CKA_ID (hex) of the appliance key with this role, if it was created.
    pub fn system_key(&self, role: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["system_key"])?;
            conn.query_opt("SELECT hsm_key_id FROM system_key WHERE role = ?1", args![role], |r| r.get(0))
        })
    }

    /// The CKA_ID (hex) of `role`'s system key, made by `make` (which generates it on the HSM
    /// and gives its id) when the store names none yet; `true` when it was made now. The look-up,
    /// `make` and the insert run in one write transaction, so appliances sharing the database
    /// that need the key at the same moment make it once: the others wait and find it. When the
    /// made key cannot be recorded, `undo` gets its id (to destroy it: the token keeps no key the
    /// store does not name).
    pub fn system_key_or_make<E: From<StoreError>>(
        &self,
        role: &str,
        make: impl FnOnce() -> Result<String, E>,
        undo: impl FnOnce(&str),
    ) -> Result<(String, bool), E> {
        let mut failed: Option<E> = None;
        let mut made: Option<String> = None;
        let out = self.write(|tx| {
            self.check_seals(tx, &["system_key"])?;
            if let Some(hex) =
                tx.query_opt("SELECT hsm_key_id FROM system_key WHERE role = ?1", args![role], |r| r.get(0))?
            {
                return Ok(Some((hex, false)));
            }
            let hex = match make() {
                Ok(hex) => hex,
                Err(e) => {
                    failed = Some(e);
                    return Ok(None);
                }
            };
            made = Some(hex.clone());
            tx.execute(
                "INSERT INTO system_key (role, hsm_key_id, created_at) VALUES (?1, ?2, ?3)",
                args![role, hex, crate::now_ms() / 1000],
            )?;
            self.reseal(tx, &["system_key"])?;
            Ok(Some((hex, true)))
        });
        match (out, failed) {
            (_, Some(e)) => Err(e),
            (Ok(Some(found)), None) => Ok(found),
            (Ok(None), None) => {
                Err(StoreError::Refused(Refusal::Invalid(format!("system key {role} was not made"))).into())
            }
            (Err(e), None) => {
                if let Some(hex) = made {
                    undo(&hex);
                }
                Err(e.into())
            }
        }
    }

    fn realm_id(conn: &dyn Sql, realm: Option<&str>) -> Result<(i64, String), StoreError> {
        conn.query_opt(
            "SELECT id, name FROM realm WHERE (?1 IS NULL AND is_default = 1) OR name = ?1",
            args![realm],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("realm {}", realm.unwrap_or("(default)")))))
    }

    pub(super) fn user_id(conn: &dyn Sql, login: &str, realm: Option<&str>) -> Result<(i64, String), StoreError> {
        let (realm_id, realm_name) = Self::realm_id(conn, realm)?;
        let id = conn
            .query_opt("SELECT id FROM app_user WHERE realm_id = ?1 AND login = ?2", args![realm_id, login], |r| {
                r.get(0)
            })?
            .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("user {login} in realm {realm_name}"))))?;
        Ok((id, realm_name))
    }

    /// Adds a user to the internal store of `realm` (the default realm when `None`).
    pub fn create_user(&self, u: &User, audit: &AuthAuditRow) -> Result<User, StoreError> {
        self.write(|tx| {
            let realm = if u.realm.is_empty() { None } else { Some(u.realm.as_str()) };
            let (realm_id, realm_name) = Self::realm_id(tx, realm)?;
            let seals = self.row_seals();
            seals.check_absent(tx, &[Identity::Internal { realm_id, login: &u.login }])?;
            let id = tx
                .insert(
                    "INSERT INTO app_user (realm_id, login, email, phone, given_name, surname, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                    args![realm_id, u.login, u.email, u.phone, u.given_name, u.surname, crate::now_ms() / 1000],
                )
                .map_err(|e| {
                    unique_as(e, || {
                        StoreError::Refused(Refusal::Duplicate(format!("user {} in realm {realm_name}", u.login)))
                    })
                })?;
            seals.seal_row(tx, RowTable::User, id)?;
            seals.users_changed(tx, &[id], &[])?;
            let mut a = audit.clone();
            a.realm = Some(realm_name.clone());
            insert_audit(tx, &a)?;
            Ok(User { realm: realm_name, ..u.clone() })
        })
    }

    /// The users of the internal user store, of `realm` only when given, ordered by realm and
    /// login. Directory users recorded as token owners are not listed.
    pub fn users(&self, realm: Option<&str>) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT u.login, r.name, u.email, u.phone, u.given_name, u.surname FROM app_user u
                 JOIN realm r ON r.id = u.realm_id WHERE (?1 IS NULL OR r.name = ?1) AND u.resolver IS NULL
                 ORDER BY r.name, u.login",
                args![realm],
                |r| {
                    Ok(User {
                        login: r.get(0)?,
                        realm: r.get(1)?,
                        email: r.get(2)?,
                        phone: r.get(3)?,
                        given_name: r.get(4)?,
                        surname: r.get(5)?,
                    })
                },
            )
        })
    }

    /// Records a directory user as a token owner and returns the owner row's (login, realm).
    ///
    /// One row per (resolver, stable id), whatever realm or spelling reached the user: a row
    /// already bound to `u.uid` is reused (its contact details refreshed); else rows recorded
    /// before stable ids were kept, with the user's login under the resolver's matching rule,
    /// are bound to it and merged into one (their tokens moved to it); else a row is added in
    /// `realm`. Refused when `realm` already has another user of that login.
    pub fn bind_directory_user(
        &self,
        realm: Option<&str>,
        u: &DirectoryUser<'_>,
    ) -> Result<(String, String), StoreError> {
        self.write(|tx| {
            let (realm_id, realm_name) = Self::realm_id(tx, realm)?;
            let contact = |tx: &dyn Sql, id: i64| {
                tx.execute(
                    "UPDATE app_user SET email = ?2, phone = ?3, given_name = ?4, surname = ?5 WHERE id = ?1",
                    args![id, u.email, u.phone, u.given_name, u.surname],
                )
            };
            let owner_of = |tx: &dyn Sql, id: i64| -> Result<(String, String), StoreError> {
                tx.query_row(
                    "SELECT u.login, r.name FROM app_user u JOIN realm r ON r.id = u.realm_id WHERE u.id = ?1",
                    args![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            };
            let bound: Option<i64> = tx.query_opt(
                "SELECT id FROM app_user WHERE resolver = ?1 AND resolver_uid = ?2",
                args![u.resolver, u.uid],
                |r| r.get(0),
            )?;
            let legacy: Vec<i64> = tx.query_map(
                "SELECT id FROM app_user WHERE resolver = ?1 AND resolver_uid IS NULL
                   AND (login = ?2 OR (?3 = 1 AND lower(login) = lower(?2)))
                 ORDER BY realm_id = ?4 DESC, id",
                args![u.resolver, u.login, u.nocase, realm_id],
                |r| r.get(0),
            )?;
            // Every row this changes is checked before it is changed, and sealed again at the end.
            let seals = self.row_seals();
            let mut buckets = vec![Identity::Directory { resolver: u.resolver, uid: u.uid }.bucket()];
            for &id in bound.iter().chain(&legacy) {
                seals.verify_row(tx, RowTable::User, id)?;
                buckets.extend(seals.buckets_of(tx, id)?);
            }
            seals.check_buckets(tx, &buckets)?;
            let keep = match (bound, legacy.first()) {
                (Some(id), _) => id,
                (None, Some(&id)) => {
                    tx.execute("UPDATE app_user SET resolver_uid = ?2 WHERE id = ?1", args![id, u.uid])?;
                    id
                }
                (None, None) => {
                    let taken: Option<Option<String>> = tx.query_opt(
                        "SELECT resolver FROM app_user WHERE realm_id = ?1 AND login = ?2",
                        args![realm_id, u.login],
                        |r| r.get(0),
                    )?;
                    if let Some(other) = taken {
                        return Err(StoreError::Refused(Refusal::Invalid(format!(
                            "realm {realm_name} already has a user {} ({}), who is not the user resolver {} found; \
                             remove that user or use another realm",
                            u.login,
                            other.map_or_else(
                                || "an internal user".to_owned(),
                                |r| format!("recorded from resolver {r}")
                            ),
                            u.resolver
                        ))));
                    }
                    tx.insert(
                        "INSERT INTO app_user (realm_id, login, created_at, resolver, resolver_uid)
                         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                        args![realm_id, u.login, crate::now_ms() / 1000, u.resolver, u.uid],
                    )?
                }
            };
            // Rows of the same person recorded under other realms or spellings: one owner now.
            for &other in legacy.iter().filter(|&&id| id != keep) {
                for token in Self::token_ids_of(tx, other)? {
                    seals.update(tx, RowTable::Token, token, || {
                        tx.execute("UPDATE token SET user_id = ?1 WHERE id = ?2", args![keep, token])
                    })?;
                }
                tx.execute("DELETE FROM app_user WHERE id = ?1", args![other])?;
            }
            contact(tx, keep)?;
            seals.recount_verified(tx, keep)?;
            seals.users_changed(tx, &[keep], &buckets)?;
            owner_of(tx, keep)
        })
    }

    /// An internal user's (login, realm) by row id.
    pub fn internal_user_by_id(&self, id: i64) -> Result<(String, String), StoreError> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT u.login, r.name FROM app_user u JOIN realm r ON r.id = u.realm_id
                 WHERE u.id = ?1 AND u.resolver IS NULL",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("internal user #{id}"))))
        })
    }

    /// Directory users recorded before stable ids were kept: (resolver, login), for binding.
    pub fn unbound_directory_users(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT u.resolver, u.login, r.name FROM app_user u JOIN realm r ON r.id = u.realm_id
                 WHERE u.resolver IS NOT NULL AND u.resolver_uid IS NULL ORDER BY u.id",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
    }

    /// Removes a user; their tokens stay, unassigned.
    pub fn delete_user(&self, login: &str, realm: Option<&str>, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.write(|tx| {
            let (id, _) = Self::user_id(tx, login, realm)?;
            let seals = self.row_seals();
            seals.verify_row(tx, RowTable::User, id)?;
            let buckets = seals.buckets_of(tx, id)?;
            seals.check_buckets(tx, &buckets)?;
            // Explicitly, not by the foreign key's ON DELETE SET NULL: each token row is sealed again.
            for token in Self::token_ids_of(tx, id)? {
                seals.update(tx, RowTable::Token, token, || {
                    tx.execute("UPDATE token SET user_id = NULL WHERE id = ?1", args![token])
                })?;
            }
            tx.execute("DELETE FROM app_user WHERE id = ?1", args![id])?;
            seals.users_changed(tx, &[], &buckets)?;
            insert_audit(tx, audit)?;
            Ok(())
        })
    }

    /// Stores a new token with its audit row in one transaction: sealed, counted on its owner,
    /// refused beyond `t.owner_limit` or for a serial already taken. Returns the token as stored.
    pub fn insert_token(&self, t: &NewToken, audit: &AuthAuditRow) -> Result<TokenRecord, StoreError> {
        self.write(|tx| {
            let seals = self.row_seals();
            Self::insert_token_in(tx, &seals, t, None)?;
            insert_audit(tx, audit)?;
            Self::token_in(tx, &seals, &t.serial)
        })
    }

    /// Inserts a token inside `tx`, sealed, and counts it on its owner; returns its row id.
    pub(super) fn insert_token_in(
        tx: &dyn Sql,
        seals: &RowSeals,
        t: &NewToken,
        device_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        let user_id = match &t.user {
            Some((login, realm)) => {
                let (id, realm) = Self::user_id(tx, login, Some(realm).filter(|r| !r.is_empty()).map(|r| r.as_str()))?;
                owner_within_limit(tx, id, None, t.owner_limit, || format!("user {login} in realm {realm}"))?;
                Some(id)
            }
            None => None,
        };
        let id = tx
            .insert(
                "INSERT INTO token (serial, type, plugin, params, otp_window, sealed_seed, counter, pin_verifier,
                                    max_fail, fail_clear_s, user_id, description, created_at, recipient, device_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING id",
                args![
                    t.serial,
                    t.token_type,
                    t.plugin,
                    t.params.to_string(),
                    t.otp_window,
                    t.sealed_seed,
                    counter_sql(t.counter)?,
                    t.pin_verifier,
                    t.max_fail,
                    t.fail_clear_s,
                    user_id,
                    t.description,
                    crate::now_ms() / 1000,
                    t.recipient,
                    device_id
                ],
            )
            .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("token {}", t.serial)))))?;
        seals.seal_row(tx, RowTable::Token, id)?;
        if let Some(user_id) = user_id {
            seals.recount(tx, user_id)?;
        }
        Ok(id)
    }

    /// The ids of user `user_id`'s tokens.
    fn token_ids_of(conn: &dyn Sql, user_id: i64) -> Result<Vec<i64>, StoreError> {
        conn.query_map("SELECT id FROM token WHERE user_id = ?1 ORDER BY id", args![user_id], |r| r.get(0))
    }

    /// Whether `login` in `realm` may receive another token under `limit`: an early answer for
    /// enrolments that touch a card first. Their insert checks again, in its transaction.
    pub fn owner_within_limit(&self, login: &str, realm: &str, limit: Option<i64>) -> Result<(), StoreError> {
        self.snapshot(|tx| {
            let (id, realm) = Self::user_id(tx, login, Some(realm))?;
            owner_within_limit(tx, id, None, limit, || format!("user {login} in realm {realm}"))
        })
    }

    /// A token by serial, checked against its seal (and its owner row's).
    pub(super) fn token_in(conn: &dyn Sql, seals: &RowSeals, serial: &str) -> Result<TokenRecord, StoreError> {
        let t = conn
            .query_opt(token_by_serial(), args![serial], token_from_row)?
            .ok_or_else(|| StoreError::Refused(Refusal::NotFound(format!("token {serial}"))))?;
        check_token(seals, &t)?;
        Ok(t)
    }

    /// The token with `serial`, checked against its row seal and its owner row's.
    pub fn token(&self, serial: &str) -> Result<TokenRecord, StoreError> {
        self.read(|conn| Self::token_in(conn, &self.row_seals(), serial))
    }

    /// Tokens, optionally only a user's (login, realm) or one type's.
    pub fn tokens(
        &self,
        user: Option<(&str, Option<&str>)>,
        token_type: Option<&str>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(|conn| {
            let user_id = match user {
                Some((login, realm)) => Some(Self::user_id(conn, login, realm)?.0),
                None => None,
            };
            let rows = conn.query_map(
                &format!(
                    "SELECT {} {TOKEN_FROM} WHERE (?1 IS NULL OR t.user_id = ?1) AND (?2 IS NULL OR t.type = ?2)
                     ORDER BY t.serial",
                    token_columns()
                ),
                args![user_id, token_type],
                token_from_row,
            )?;
            checked(&self.row_seals(), rows)
        })
    }

    /// The tokens of a resolved user ([`tokens_of_owner`]).
    pub fn tokens_of_owner(&self, owner: &Owner) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(|conn| tokens_of_owner(conn, &self.row_seals(), owner))
    }

    /// Changes one token in a transaction that also writes `audit`: `decide` gets the token as
    /// read (and checked) in that transaction and says what changes, or refuses; the changes
    /// are applied in order. Returns the token as it is now.
    pub fn change_token(
        &self,
        serial: &str,
        audit: &AuthAuditRow,
        decide: impl FnOnce(&TokenRecord) -> Result<Vec<TokenChange>, StoreError>,
    ) -> Result<TokenRecord, StoreError> {
        self.write(|tx| {
            let seals = self.row_seals();
            // Read (and checked against its seal) before `change` touches it; sealed again after,
            // and the token counts of its owners before and after renewed.
            let before = Self::token_in(tx, &seals, serial)?;
            for change in decide(&before)? {
                change.apply(tx, &before)?;
            }
            seals.seal_row(tx, RowTable::Token, before.id)?;
            let owner_now: Option<i64> = tx
                .query_opt("SELECT user_id FROM token WHERE id = ?1", args![before.id], |r| r.get::<Option<i64>>(0))?
                .flatten();
            for user_id in before.owner_id.into_iter().chain(owner_now.filter(|o| Some(*o) != before.owner_id)) {
                seals.recount(tx, user_id)?;
            }
            insert_audit(tx, audit)?;
            // A deleted token is answered as it was; any other failure fails the change (on
            // PostgreSQL a failed statement aborts the transaction, which must not then commit).
            match Self::token_in(tx, &seals, serial) {
                Ok(after) => Ok(after),
                Err(StoreError::Refused(Refusal::NotFound(_))) => Ok(before),
                Err(e) => Err(e),
            }
        })
    }

    /// Stores `new` in place of the token `old_serial` in one transaction (privacyIDEA's lost
    /// token): `prepare` gets the old token as read (checked against its seal) and the token
    /// already named `new.serial` if there is one (an earlier replacement), completes `new`
    /// from the old token (its owner, its PIN) and says whether that earlier token may go.
    /// Then the earlier token is deleted, `new` inserted, the old token disabled, both owners'
    /// counts and seals renewed and `audits` written. Returns the old token and the new one.
    pub fn replace_token(
        &self,
        old_serial: &str,
        mut new: NewToken,
        audits: &[AuthAuditRow],
        prepare: impl FnOnce(&TokenRecord, Option<&TokenRecord>, &mut NewToken) -> Result<(), StoreError>,
    ) -> Result<(TokenRecord, TokenRecord), StoreError> {
        self.write(|tx| {
            let seals = self.row_seals();
            let old = Self::token_in(tx, &seals, old_serial)?;
            let earlier = match Self::token_in(tx, &seals, &new.serial) {
                Ok(t) => Some(t),
                Err(StoreError::Refused(Refusal::NotFound(_))) => None,
                Err(e) => return Err(e),
            };
            prepare(&old, earlier.as_ref(), &mut new)?;
            if let Some(e) = &earlier {
                TokenChange::Delete.apply(tx, e)?;
                if let Some(user_id) = e.owner_id {
                    seals.recount(tx, user_id)?;
                }
            }
            Self::insert_token_in(tx, &seals, &new, None)?;
            TokenChange::SetActive(false).apply(tx, &old)?;
            seals.seal_row(tx, RowTable::Token, old.id)?;
            for audit in audits {
                insert_audit(tx, audit)?;
            }
            let replacement = Self::token_in(tx, &seals, &new.serial)?;
            if replacement.owner_id != old.owner_id {
                // `new.user` names the old token's owner row; anything else is a bug, not a state.
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "the replacement of token {old_serial} would not belong to its owner; nothing was changed"
                ))));
            }
            let old = Self::token_in(tx, &seals, old_serial)?;
            Ok((old, replacement))
        })
    }

    /// Writes one audit row, with its chain link, in a transaction of its own (refusals, plugin
    /// restarts); returns its id.
    pub fn audit_auth(&self, audit: &AuthAuditRow) -> Result<i64, StoreError> {
        self.write(|tx| insert_audit(tx, audit))
    }

    /// How many rows match `q`'s filters (`before_id` and `limit` aside), counted on a read
    /// connection of its own so a long count never holds up writers.
    pub fn auth_audit_count(&self, q: &AuthAuditQuery) -> Result<u64, StoreError> {
        let (filters, values) = q.filters(false);
        let n: i64 =
            self.read_apart(|conn| conn.query_value(&format!("SELECT count(*) FROM auth_audit {filters}"), &values))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// For each row: whether it still matches its chain link and has both neighbours
    /// ([`super::chain::auth_rows_linked`]),
    /// and the current type of each token the rows name (a deleted token has none).
    pub fn auth_audit_facts(&self, rows: &[AuthAuditRow]) -> Result<AuditFacts, StoreError> {
        self.read(|conn| {
            let linked = super::chain::auth_rows_linked(conn, rows)?;
            let mut types = std::collections::HashMap::new();
            for serial in rows.iter().filter_map(|r| r.serial.as_deref()) {
                if !types.contains_key(serial) {
                    if let Some(t) = conn
                        .query_opt("SELECT type FROM token WHERE serial = ?1", args![serial], |r| r.get::<String>(0))?
                    {
                        types.insert(serial.to_owned(), t);
                    }
                }
            }
            Ok(AuditFacts { links: linked, token_types: types })
        })
    }

    /// The authentication audit rows that match `q`, newest first.
    pub fn auth_audit(&self, q: &AuthAuditQuery) -> Result<Vec<AuthAuditRow>, StoreError> {
        let (filters, mut values) = q.filters(true);
        let limit = i64::from(q.limit.unwrap_or(100).min(10_000));
        values.push(&limit);
        let sql = format!("SELECT {AUTH_COLUMNS} FROM auth_audit {filters} ORDER BY id DESC LIMIT ?{}", values.len());
        self.read(|conn| conn.query_map(&sql, &values, |r| AuthAuditRow::from_row(r, 0)))
    }
}

/// One change to a token, applied by [`Store::change_token`] inside its transaction. Services
/// say what changes as data; only the store knows how it is written.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenChange {
    /// Gives the token to `user` (login and realm; `None`: to no one), who may then own at
    /// most `limit` tokens.
    Assign {
        /// The new owner, or none.
        user: Option<(String, Option<String>)>,
        /// The most tokens the new owner may have, if limited.
        limit: Option<i64>,
    },
    /// Enables or disables the token; a revoked token cannot be enabled again.
    SetActive(bool),
    /// Sets the PIN verifier (`None`: no PIN).
    SetPin(Option<Vec<u8>>),
    /// Sets the fail limit, the time after which failures clear, and the OTP window; `None`
    /// keeps what is stored.
    SetLimits {
        /// Failures before the token locks.
        max_fail: Option<u32>,
        /// Seconds after the last failure when the failures clear.
        clear_s: Option<u32>,
        /// Codes searched ahead of the counter.
        otp_window: Option<u32>,
    },
    /// Sets the description.
    SetDescription(String),
    /// Sets the validity period ([`Validity`], kept in the token's params).
    SetValidity(Validity),
    /// Replaces the token's params (a push token's second enrolment step, its phone's new
    /// Firebase token); the caller built them from the params as read in the transaction.
    SetParams(serde_json::Value),
    /// Clears the fail counter, and the back-off of the token's owner (or of the token when it
    /// has none): an admin reset opens both.
    ResetFail,
    /// Moves the counter to this value after a resync; never backwards, so an OTP accepted
    /// before cannot become valid again.
    Resync(u64),
    /// Revokes the token for good (and disables it).
    Revoke,
    /// Deletes the token.
    Delete,
}

impl TokenChange {
    /// Writes this change of token `t` (as read in this transaction).
    fn apply(&self, tx: &dyn Sql, t: &TokenRecord) -> Result<(), StoreError> {
        match self {
            TokenChange::Assign { user, limit } => {
                let user_id = match user {
                    Some((login, realm)) => {
                        let (id, realm) = Store::user_id(tx, login, realm.as_deref())?;
                        owner_within_limit(tx, id, Some(t.id), *limit, || format!("user {login} in realm {realm}"))?;
                        Some(id)
                    }
                    None => None,
                };
                tx.execute("UPDATE token SET user_id = ?1 WHERE id = ?2", args![user_id, t.id])?;
            }
            TokenChange::SetActive(active) => {
                if t.revoked && *active {
                    return Err(StoreError::Revoked(format!(
                        "token {} is revoked and cannot be enabled again",
                        t.serial
                    )));
                }
                tx.execute("UPDATE token SET active = ?1 WHERE id = ?2", args![active, t.id])?;
            }
            TokenChange::SetPin(verifier) => {
                tx.execute("UPDATE token SET pin_verifier = ?1 WHERE id = ?2", args![verifier, t.id])?;
            }
            TokenChange::SetLimits { max_fail, clear_s, otp_window } => {
                tx.execute(
                    "UPDATE token SET max_fail = coalesce(?1, max_fail), fail_clear_s = coalesce(?2, fail_clear_s),
                                      otp_window = coalesce(?3, otp_window) WHERE id = ?4",
                    args![max_fail, clear_s, otp_window, t.id],
                )?;
            }
            TokenChange::SetDescription(d) => {
                tx.execute("UPDATE token SET description = ?1 WHERE id = ?2", args![d, t.id])?;
            }
            TokenChange::SetValidity(validity) => {
                let mut p = t.params.clone();
                validity.write_into(&mut p);
                tx.execute("UPDATE token SET params = ?1 WHERE id = ?2", args![p.to_string(), t.id])?;
            }
            TokenChange::SetParams(p) => {
                tx.execute("UPDATE token SET params = ?1 WHERE id = ?2", args![p.to_string(), t.id])?;
            }
            TokenChange::ResetFail => {
                tx.execute("UPDATE token SET fail_count = 0, last_fail_ms = NULL WHERE id = ?1", args![t.id])?;
                let key = match recorded_owner_key(t) {
                    Some(key) => key,
                    None => format!("token:{}", t.serial),
                };
                tx.execute("DELETE FROM auth_throttle WHERE owner = ?1", args![key])?;
            }
            TokenChange::Resync(next) => {
                let changed = tx.execute(
                    "UPDATE token SET counter = ?1, fail_count = 0, last_fail_ms = NULL WHERE id = ?2 AND counter <= ?1",
                    args![counter_sql(*next)?, t.id],
                )?;
                if changed == 0 {
                    return Err(StoreError::Refused(Refusal::Invalid(
                        "those OTPs were already used; resync needs two new ones".into(),
                    )));
                }
            }
            TokenChange::Revoke => {
                tx.execute("UPDATE token SET revoked = 1, active = 0 WHERE id = ?1", args![t.id])?;
            }
            TokenChange::Delete => {
                tx.execute("DELETE FROM token WHERE id = ?1", args![t.id])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::handles::Record;
    use crate::Synchronous;
    use rusqlite::params;

    #[test]
    fn the_sealed_values_start_where_the_fields_end() {
        assert_eq!(TOKEN_FIELDS.split(',').count(), TOKEN_SEAL_AT);
    }

    /// privacyIDEA's per-row `sig_check` and `missing_line`: a row edited behind the store's
    /// back fails its own link check and only its own; the newest row lacks a link after it.
    #[test]
    fn an_audit_row_edited_offline_fails_its_link_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        let ids: Vec<i64> = (0..3)
            .map(|i| {
                store
                    .audit_auth(&AuthAuditRow::new(
                        &countersign_core::caller::Caller::uid(0),
                        "validate/check",
                        if i == 1 { "reject" } else { "accept" },
                    ))
                    .unwrap()
            })
            .collect();
        let rows = |store: &Store| {
            let mut r = store.auth_audit(&AuthAuditQuery { limit: Some(10), ..AuthAuditQuery::default() }).unwrap();
            r.retain(|a| ids.contains(&a.id));
            r.sort_by_key(|a| a.id);
            r
        };
        let before = store.auth_audit_facts(&rows(&store)).unwrap().links;
        assert_eq!(before.iter().map(|l| l.0).collect::<Vec<_>>(), [true, true, true]);
        assert!(!before[2].1, "the newest row has no link after it");
        store.conn().execute("UPDATE auth_audit SET result = 'accept' WHERE id = ?1", [ids[1]]).unwrap();
        let after = store.auth_audit_facts(&rows(&store)).unwrap().links;
        assert_eq!(after.iter().map(|l| l.0).collect::<Vec<_>>(), [true, false, true]);
    }

    /// A time range and an owner are filters in the statement, on every engine: a range finds
    /// old rows however many newer ones exist, `since_ms` is inclusive and `until_ms`
    /// exclusive, paging by id works inside a range, an owner finds a person's rows under every
    /// login and never a row that records no owner, and the count agrees with the rows.
    #[test]
    fn audit_is_searched_by_time_range_and_owner_in_the_statement() {
        crate::testing::each_store(|store, engine| {
            let caller = countersign_core::caller::Caller::uid(0);
            let day = 86_400_000_i64;
            let write = |at_ms: i64, login: &str, owner: Option<&str>| {
                let mut row = AuthAuditRow::new(&caller, "validate/check", "accept");
                row.at_ms = at_ms;
                row.login = Some(login.into());
                row.realm = Some("staff".into());
                row.owner = owner.map(str::to_owned);
                store.audit_auth(&row).unwrap()
            };
            // Day 10 (three rows), then a day 9 row written later (a clock set back), then
            // day 11: ids and times disagree, as they may across nodes.
            let old: Vec<i64> = (0..3).map(|i| write(10 * day + i, "alice", Some("corp:u-1"))).collect();
            let earlier = write(9 * day + 5, "ALICE", Some("corp:u-1"));
            let ownerless = write(10 * day + 500, "alice", None);
            let other = write(10 * day + 600, "alice", Some("internal#7"));
            let newer = write(11 * day, "alice", Some("corp:u-1"));
            let ids = |q: AuthAuditQuery| store.auth_audit(&q).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
            let range = AuthAuditQuery { since_ms: Some(10 * day), until_ms: Some(11 * day), ..Default::default() };
            assert_eq!(ids(range.clone()), [other, ownerless, old[2], old[1], old[0]], "{engine}");
            assert_eq!(store.auth_audit_count(&range).unwrap(), 5, "{engine}");
            // Inclusive start, exclusive end.
            let edge = AuthAuditQuery { since_ms: Some(11 * day), until_ms: Some(11 * day + 1), ..Default::default() };
            assert_eq!(ids(edge), [newer], "{engine}");
            let before = AuthAuditQuery { until_ms: Some(10 * day), ..Default::default() };
            assert_eq!(ids(before), [earlier], "{engine}");
            // Pages inside the range.
            let first = AuthAuditQuery { limit: Some(2), ..range.clone() };
            assert_eq!(ids(first), [other, ownerless], "{engine}");
            let next = AuthAuditQuery { limit: Some(2), before_id: Some(ownerless), ..range.clone() };
            assert_eq!(ids(next), [old[2], old[1]], "{engine}");
            // By owner: every spelling, no ownerless row, no other person of the same login.
            let owner = AuthAuditQuery { owner: Some("corp:u-1".into()), ..Default::default() };
            assert_eq!(ids(owner.clone()), [newer, earlier, old[2], old[1], old[0]], "{engine}");
            assert_eq!(store.auth_audit_count(&owner).unwrap(), 5, "{engine}");
            let both = AuthAuditQuery { since_ms: Some(10 * day), ..owner };
            assert_eq!(ids(both), [newer, old[2], old[1], old[0]], "{engine}");
            let by_login =
                AuthAuditQuery { user: Some("alice".into()), until_ms: Some(11 * day), ..Default::default() };
            assert_eq!(ids(by_login), [other, ownerless, old[2], old[1], old[0]], "{engine}");
            // The rows without an owner that name the login in a realm (a user page's admin
            // changes), selected by the statement itself.
            let ownerless_rows = AuthAuditQuery {
                user: Some("alice".into()),
                realm: Some("staff".into()),
                without_owner: true,
                ..Default::default()
            };
            assert_eq!(ids(ownerless_rows.clone()), [ownerless], "{engine}");
            assert_eq!(store.auth_audit_count(&ownerless_rows).unwrap(), 1, "{engine}");
            let elsewhere = AuthAuditQuery { realm: Some("partners".into()), ..ownerless_rows };
            assert!(ids(elsewhere).is_empty(), "{engine}");
        });
    }

    /// The time range is read through its index, not by scanning the table (SQLite's plan;
    /// PostgreSQL chooses by its statistics).
    #[test]
    fn a_time_range_uses_the_time_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        let q = AuthAuditQuery { since_ms: Some(1), until_ms: Some(2), ..Default::default() };
        let (filters, _) = q.filters(true);
        let conn = store.conn();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN SELECT id FROM auth_audit {filters} ORDER BY id DESC LIMIT ?3"))
            .unwrap();
        let plan: Vec<String> =
            stmt.query_map(params![1, 2, 10], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
        assert!(plan.iter().any(|p| p.contains("auth_audit_by_time")), "{plan:?}");
    }

    fn token(store: &Store, serial: &str, user: Option<(&str, &str)>) {
        let t = NewToken::for_test(serial, user);
        store
            .insert_token(&t, &AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "token/init", "ok"))
            .unwrap();
    }

    /// The seal an accept's worker computes ahead is over the row its commit leaves: for each
    /// change known ahead, the forecast digest equals the digest of the row as read after the
    /// real commit, and the row the one-statement commit leaves verifies; changes made in SQL
    /// (a learned public id) or deleting the row have none. A row changed between the
    /// forecast and the commit (here, a failure counted meanwhile) is committed the long way
    /// and verifies too.
    #[test]
    fn an_accepts_forecast_seal_is_the_seal_of_the_row_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        token(&store, "F1", None);
        // The test key, counting its MACs: a foreseen accept's commit needs none.
        #[derive(Debug, Default)]
        struct Counting(std::sync::atomic::AtomicUsize);
        impl crate::seals::SealKey for Counting {
            fn mac(&self, digest: &[u8]) -> Result<Vec<u8>, String> {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                crate::seals::TestKey.mac(digest)
            }
        }
        let key = std::sync::Arc::new(Counting::default());
        let macs = || key.0.load(std::sync::atomic::Ordering::SeqCst);
        store.start_sealing(key.clone(), true).unwrap();
        let reader = store.reader().unwrap();
        let mut writer = store.writer().unwrap();
        let cases = [
            (AfterAccept::Keep, None, true),
            (AfterAccept::Keep, Some(-3), true),
            (AfterAccept::Spend { secret: vec![7; 40] }, Some(2), true),
            (AfterAccept::Learn { secret: Some(vec![9; 48]), public_id: None }, None, true),
            (AfterAccept::Learn { secret: None, public_id: None }, None, true),
            (AfterAccept::Learn { secret: None, public_id: Some("cccccccccccb".into()) }, None, false),
            (AfterAccept::Delete, None, false),
        ];
        let caller = countersign_core::caller::Caller::uid(0);
        let fail = |writer: &mut crate::Writer, id: i64| {
            let effect = TokenEffect::Fail(vec![countersign_core::check::FailedToken { token_id: id, restart: false }]);
            let audit = AuthAuditRow::new(&caller, "validate/check", "reject");
            let rec = CheckRecord { effect, audit, throttle: ThrottleEffect::None, foreseen: None };
            writer.commit([&mut Record::Check(rec)]).unwrap();
        };
        for (i, (then, drift, known)) in cases.iter().cloned().chain(cases.iter().cloned()).enumerate() {
            // The second time round, the row changes between the forecast and the commit.
            let disturbed = i >= cases.len();
            // A failure first, so the accept has a fail count to reset.
            let id = reader.token_for_check("F1").unwrap()[0].id;
            fail(&mut writer, id);
            let t = reader.token_for_check("F1").unwrap().remove(0);
            assert!(t.fails.count >= 1);
            let mut audit = AuthAuditRow::new(&caller, "validate/check", "accept");
            audit.at_ms = 1_000_000 + i64::try_from(i).unwrap();
            let effect = TokenEffect::Accept {
                token_id: t.id,
                seen_counter: t.counter,
                new_counter: t.counter + 3,
                drift,
                then: then.clone(),
            };
            let mut rec = CheckRecord { effect, audit, throttle: ThrottleEffect::None, foreseen: None };
            let forecast = accepted_digest(&ReadToken::from(&t), &rec);
            assert_eq!(forecast.is_some(), known, "{then:?}");
            let mut stale = rec.clone();
            if let TokenEffect::Accept { seen_counter, .. } = &mut stale.effect {
                *seen_counter += 1;
            }
            assert_eq!(
                accepted_digest(&ReadToken::from(&t), &stale),
                None,
                "a counter the row no longer has forecasts nothing"
            );
            reader.foresee(&mut rec);
            assert_eq!(rec.foreseen.is_some(), known, "{then:?}");
            if then == AfterAccept::Delete {
                continue;
            }
            if disturbed {
                fail(&mut writer, t.id);
            }
            let mut record = Record::Check(rec);
            let before = macs();
            let committed = writer.commit([&mut record]).unwrap();
            assert!(committed[0].accepted, "{then:?}");
            // Foreseen and undisturbed: one statement, no MAC; otherwise the row was checked
            // and sealed again in the commit.
            assert_eq!(macs() == before, known && !disturbed, "{then:?}, disturbed: {disturbed}");
            // Read back through the seal check: the row verifies whichever way it was committed.
            let after = reader.token_for_check("F1").unwrap().remove(0);
            assert_eq!((after.counter, after.fails.count), (t.counter + 3, 0), "{then:?}");
            if let (Some(forecast), false) = (forecast, disturbed) {
                assert_eq!(after.seal.digest(), forecast, "{then:?}");
            }
        }
    }

    /// An answer to a challenge is accepted only if the token, as it stands at the commit, is
    /// neither locked nor disabled: wrong answers committed after the worker read the row (in
    /// the same group commit, or on another node) lock it, and a right answer after them is
    /// refused and leaves the lock in place.
    #[test]
    fn an_answer_committed_after_the_lock_or_a_disable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        store.start_sealing(std::sync::Arc::new(crate::seals::TestKey), true).unwrap();
        token(&store, "C1", None);
        let reader = store.reader().unwrap();
        let mut writer = store.writer().unwrap();
        let caller = countersign_core::caller::Caller::uid(0);
        let t = reader.token_for_check("C1").unwrap().remove(0);
        let commit = |writer: &mut crate::Writer, effect: TokenEffect, result: &str| {
            let mut audit = AuthAuditRow::new(&caller, "validate/check", result);
            audit.at_ms = crate::now_ms();
            let rec = CheckRecord { effect, audit, throttle: ThrottleEffect::None, foreseen: None };
            writer.commit([&mut Record::Check(rec)]).unwrap().remove(0).accepted
        };
        let challenge = |tx: &str| {
            let now = crate::now_ms();
            store.create_unreserved_challenge(t.id, tx, now, now + 60_000, None).unwrap().0
        };
        let answer_to = |writer: &mut crate::Writer, challenge_id: i64| {
            commit(writer, TokenEffect::AnswerChallenge { challenge_id, token_id: t.id }, "accept")
        };
        let answer = |writer: &mut crate::Writer, tx: &str| answer_to(writer, challenge(tx));
        // Below the lock the answer is accepted and resets the count.
        assert!(answer(&mut writer, "tx-1"));
        // The worker read the row unlocked; wrong answers reach max_fail before the commit.
        for _ in 0..t.fails.max {
            let failed = vec![countersign_core::check::FailedToken { token_id: t.id, restart: false }];
            assert!(!commit(&mut writer, TokenEffect::Fail(failed), "reject"));
        }
        assert!(!answer(&mut writer, "tx-2"), "a right answer after the lock");
        let after = reader.token_for_check("C1").unwrap().remove(0);
        assert_eq!(after.fails.count, t.fails.max, "the lock stays");
        // Unlocked again (an admin's reset), then disabled before the commit: refused.
        let admin = AuthAuditRow::new(&caller, "token/change", "ok");
        store.change_token("C1", &admin, |_| Ok(vec![TokenChange::ResetFail])).unwrap();
        let open = challenge("tx-3");
        store.change_token("C1", &admin, |_| Ok(vec![TokenChange::SetActive(false)])).unwrap();
        assert!(!answer_to(&mut writer, open), "a right answer after a disable");
        store.change_token("C1", &admin, |_| Ok(vec![TokenChange::SetActive(true)])).unwrap();
        assert!(answer(&mut writer, "tx-4"), "enabled and unlocked again");
    }

    /// Rows recorded before stable ids (resolver set, resolver_uid NULL), as migration 0016
    /// finds them: checks find them by login under the resolver's rule, and binding merges
    /// one person's rows into one owner with all their tokens.
    #[test]
    fn rows_recorded_before_stable_ids_are_found_by_login_then_bound_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Synchronous::Normal).unwrap();
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "realm/create", "ok");
        store.create_realm("other", &audit).unwrap();
        {
            let conn = store.conn();
            for (realm, login) in [("default", "alice"), ("other", "ALICE")] {
                conn.execute(
                    "INSERT INTO app_user (realm_id, login, created_at, resolver)
                     VALUES ((SELECT id FROM realm WHERE name = ?1), ?2, 0, 'corp')",
                    params![realm, login],
                )
                .unwrap();
            }
        }
        token(&store, "T1", Some(("alice", "default")));
        token(&store, "T2", Some(("ALICE", "other")));
        let owner =
            Owner::Directory { resolver: "corp".into(), uid: "uuid-1".into(), login: "alice".into(), nocase: true };
        let serials = |o: &Owner| store.tokens_of_owner(o).unwrap().into_iter().map(|t| t.serial).collect::<Vec<_>>();
        assert_eq!(serials(&owner), ["T1", "T2"]);
        // A resolver that matches exactly (passwd) finds only the exact spelling.
        let exact =
            Owner::Directory { resolver: "corp".into(), uid: "uuid-1".into(), login: "alice".into(), nocase: false };
        assert_eq!(serials(&exact), ["T1"]);
        let user = DirectoryUser {
            resolver: "corp",
            uid: "uuid-1",
            login: "alice",
            nocase: true,
            email: Some("alice@example.org"),
            phone: None,
            given_name: None,
            surname: None,
        };
        assert_eq!(store.bind_directory_user(Some("other"), &user).unwrap(), ("ALICE".to_owned(), "other".to_owned()));
        // One bound row now holds both tokens; binding again reuses it.
        assert_eq!(store.bind_directory_user(None, &user).unwrap(), ("ALICE".to_owned(), "other".to_owned()));
        let rows: i64 =
            store.conn().query_row("SELECT count(*) FROM app_user WHERE resolver = 'corp'", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1);
        assert_eq!(serials(&owner), ["T1", "T2"]);
        let t = store.token("T1").unwrap();
        assert_eq!(recorded_owner_key(&t).as_deref(), Some("corp:uuid-1"));
        // Another person of the same login in a realm is refused, not merged.
        let other = DirectoryUser { uid: "uuid-2", login: "ALICE", ..user };
        assert!(matches!(
            store.bind_directory_user(Some("other"), &other),
            Err(StoreError::Refused(Refusal::Invalid(_)))
        ));
    }

    #[test]
    fn a_system_key_is_made_once_however_many_appliances_need_it_at_once() {
        crate::testing::each_store(|store, engine| {
            let made = std::sync::atomic::AtomicU32::new(0);
            let handles: Vec<Store> = (0..4).map(|_| Store::open_at(store.location()).unwrap()).collect();
            let ids: Vec<(String, bool)> = std::thread::scope(|s| {
                let runs: Vec<_> = handles
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let made = &made;
                        s.spawn(move || {
                            h.system_key_or_make(
                                "response-signing",
                                || -> Result<String, StoreError> {
                                    made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    std::thread::sleep(std::time::Duration::from_millis(50));
                                    Ok(format!("{i:032x}"))
                                },
                                |_| panic!("nothing to undo"),
                            )
                            .unwrap()
                        })
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1, "{engine}: made {made:?} times");
            assert_eq!(ids.iter().filter(|(_, m)| *m).count(), 1, "{engine}");
            assert!(ids.iter().all(|(h, _)| *h == ids[0].0), "{engine}: {ids:?}");
            assert_eq!(store.system_key("response-signing").unwrap(), Some(ids[0].0.clone()));
            // A make that fails records nothing.
            let failed = store.system_key_or_make(
                "audit-signing",
                || Err(StoreError::Refused(Refusal::Invalid("the HSM said no".into()))),
                |_| {},
            );
            assert!(failed.is_err());
            assert_eq!(store.system_key("audit-signing").unwrap(), None, "{engine}");
        });
    }
}
