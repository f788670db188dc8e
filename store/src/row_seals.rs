//! Seals of single rows, for the tables too large or too busy for a whole-table seal: users'
//! tokens (their counters move on every accepted check) and the users who own them. Each row
//! carries `row_mac`, an HMAC under the same HSM key as the table seals over every column of
//! the row (its id included, so a row copied to another id does not verify), renewed in the
//! transaction of every change the appliance makes and checked whenever the row is read for a
//! decision. A row is verified before it is changed, so a later change cannot launder an edit.
//!
//! Deletions: a user row counts its tokens (`token_count`, sealed with the row), and reading a
//! user's tokens checks the count, so deleting some or all of a user's token rows is caught.
//! What a row seal cannot tell (a whole user row deleted together with their tokens, an old
//! row put back with its old seal) is in docs/security.md with how operators detect it.
//!
//! Owns: the sealed columns of `token` and `app_user`, `row_mac`, `token_count`. Must never:
//! write a sealed row without renewing its seal, or renew the seal of a row it has not verified.

use std::sync::{Arc, LazyLock};

use sha2::{Digest, Sha256};

pub use super::owner_set::Identity;
use super::seals::{encode_value, hash_value, mark, same_mac, stored_seal, SealKey};
use super::StoreError;
use crate::db::{args, Row, Sql, Value};

/// A table whose rows are sealed one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowTable {
    /// `token`: users' tokens.
    Token,
    /// `app_user`: recorded users (internal, and directory users who own tokens), with their token
    /// counts.
    User,
    /// A certificate token's certificate (keyed by its token's id).
    Certificate,
    /// A webauthn or passkey token's credential (keyed by its token's id): its public key and
    /// credential id decide whose assertion a check accepts.
    Credential,
    /// A PowerAuth activation: its state, counter and failure count decide whether a signature
    /// is accepted (`powerauth_activations.rs`).
    PowerAuthActivation,
    /// A PowerAuth MAC token: which activation it speaks for, with which signature type it
    /// was made (`powerauth_tokens.rs`).
    PowerAuthToken,
    /// A PowerAuth operation: its status, failure count and who may approve it decide an
    /// approval (`powerauth_operations.rs`).
    PowerAuthOperation,
    /// A push challenge (keyed by its challenge's id): whether the phone accepted decides a
    /// login (`push.rs`).
    PushChallenge,
}

/// The sealed columns of `token`, in digest order: all of them but the seal.
const TOKEN_COLUMNS: &[&str] = &[
    "id",
    "serial",
    "type",
    "plugin",
    "params",
    "otp_window",
    "sealed_seed",
    "counter",
    "drift",
    "pin_verifier",
    "fail_count",
    "max_fail",
    "fail_clear_s",
    "last_fail_ms",
    "last_auth_ms",
    "active",
    "revoked",
    "user_id",
    "description",
    "created_at",
    "recipient",
    "device_id",
];

/// The sealed columns of `app_user`, in digest order: all of them but the seal.
const USER_COLUMNS: &[&str] = &[
    "id",
    "realm_id",
    "login",
    "email",
    "phone",
    "given_name",
    "surname",
    "created_at",
    "password_verifier",
    "resolver",
    "resolver_uid",
    "token_count",
];

/// The sealed columns of `token_certificate`.
const CERTIFICATE_COLUMNS: &[&str] = &["token_id", "slot", "certificate", "attestation", "not_after", "fingerprint"];

/// The sealed columns of `webauthn_credential`.
const CREDENTIAL_COLUMNS: &[&str] = &[
    "token_id",
    "credential_id",
    "public_key",
    "alg",
    "aaguid",
    "rp_id",
    "user_handle",
    "attestation",
    "flags",
    "created_at",
];

/// The sealed columns of `powerauth_activation`.
const POWERAUTH_ACTIVATION_COLUMNS: &[&str] = &[
    "id",
    "activation_id",
    "application_id",
    "user_id",
    "state",
    "code_lookup",
    "otp_verifier",
    "otp_validation",
    "app_key",
    "protocol_version",
    "name",
    "platform",
    "device_info",
    "extras",
    "device_public_key",
    "server_public_key",
    "sealed_secrets",
    "ctr_data",
    "counter",
    "failed_attempts",
    "max_failed_attempts",
    "blocked_reason",
    "created_ms",
    "expires_ms",
    "changed_ms",
    "last_used_ms",
];

/// The sealed columns of `powerauth_token`.
const POWERAUTH_TOKEN_COLUMNS: &[&str] =
    &["id", "token_id", "activation_id", "sealed_secret", "signature_type", "created_ms"];

/// The sealed columns of `powerauth_operation`.
const POWERAUTH_OPERATION_COLUMNS: &[&str] = &[
    "id",
    "operation_id",
    "user_id",
    "applications",
    "external_id",
    "activation_id",
    "operation_type",
    "template_name",
    "data",
    "parameters",
    "additional_data",
    "status",
    "status_reason",
    "signature_types",
    "failure_count",
    "max_failure_count",
    "risk_flags",
    "created_ms",
    "expires_ms",
    "finalized_ms",
];

/// The sealed columns of `push_challenge`.
const PUSH_CHALLENGE_COLUMNS: &[&str] = &[
    "challenge_id",
    "token_id",
    "transaction_id",
    "nonce",
    "expires_ms",
    "payload",
    "presence_answer",
    "status",
    "reason",
    "answer_signature",
    "answered_ms",
];

const DOMAIN: &[u8] = b"countersign row seal v1\0";

impl RowTable {
    /// Every table with row seals.
    pub const ALL: [RowTable; 8] = [
        RowTable::Token,
        RowTable::User,
        RowTable::Certificate,
        RowTable::Credential,
        RowTable::PowerAuthActivation,
        RowTable::PowerAuthToken,
        RowTable::PowerAuthOperation,
        RowTable::PushChallenge,
    ];

    /// The table's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            RowTable::Token => "token",
            RowTable::User => "app_user",
            RowTable::Certificate => "token_certificate",
            RowTable::Credential => "webauthn_credential",
            RowTable::PowerAuthActivation => "powerauth_activation",
            RowTable::PowerAuthToken => "powerauth_token",
            RowTable::PowerAuthOperation => "powerauth_operation",
            RowTable::PushChallenge => "push_challenge",
        }
    }

    const fn columns(self) -> &'static [&'static str] {
        match self {
            RowTable::Token => TOKEN_COLUMNS,
            RowTable::User => USER_COLUMNS,
            RowTable::Certificate => CERTIFICATE_COLUMNS,
            RowTable::Credential => CREDENTIAL_COLUMNS,
            RowTable::PowerAuthActivation => POWERAUTH_ACTIVATION_COLUMNS,
            RowTable::PowerAuthToken => POWERAUTH_TOKEN_COLUMNS,
            RowTable::PowerAuthOperation => POWERAUTH_OPERATION_COLUMNS,
            RowTable::PushChallenge => PUSH_CHALLENGE_COLUMNS,
        }
    }

    /// The column a row is found by (the first sealed one).
    fn key(self) -> &'static str {
        self.columns()[0]
    }

    /// The sealed columns and then `row_mac`, each prefixed with `alias.`, for a SELECT list
    /// whose values [`RowSeal::read`] takes.
    pub fn select_list(self, alias: &str) -> String {
        self.columns().iter().chain(&["row_mac"]).map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
    }

    /// How many values [`RowTable::select_list`] selects.
    pub const fn width(self) -> usize {
        self.columns().len() + 1
    }

    /// `SELECT` of a row's sealed columns and seal by its key (`?1`), as [`RowSeal::read`] takes
    /// them; and the `UPDATE` of its seal (`?1`, the key `?2`). Built once per table: they run
    /// twice in every check's commit.
    fn statements(self) -> &'static (String, String) {
        fn build(t: RowTable) -> (String, String) {
            (
                format!("SELECT {} FROM {} r WHERE r.{} = ?1", t.select_list("r"), t.name(), t.key()),
                format!("UPDATE {} SET row_mac = ?1 WHERE {} = ?2", t.name(), t.key()),
            )
        }
        static TOKEN: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::Token));
        static USER: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::User));
        static CERTIFICATE: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::Certificate));
        static CREDENTIAL: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::Credential));
        static POWERAUTH_ACTIVATION: LazyLock<(String, String)> =
            LazyLock::new(|| build(RowTable::PowerAuthActivation));
        static POWERAUTH_TOKEN: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::PowerAuthToken));
        static POWERAUTH_OPERATION: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::PowerAuthOperation));
        static PUSH_CHALLENGE: LazyLock<(String, String)> = LazyLock::new(|| build(RowTable::PushChallenge));
        match self {
            RowTable::Token => &TOKEN,
            RowTable::User => &USER,
            RowTable::Certificate => &CERTIFICATE,
            RowTable::Credential => &CREDENTIAL,
            RowTable::PowerAuthActivation => &POWERAUTH_ACTIVATION,
            RowTable::PowerAuthToken => &POWERAUTH_TOKEN,
            RowTable::PowerAuthOperation => &POWERAUTH_OPERATION,
            RowTable::PushChallenge => &PUSH_CHALLENGE,
        }
    }

    /// The name of the `table_seal` row that records that this table's rows are sealed, so
    /// the next start does not take unsealed rows for rows of an older version.
    fn marker(self) -> String {
        format!("rows/{}", self.name())
    }
}

/// A row's digest as read, and the seal stored with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSeal {
    digest: [u8; 32],
    mac: Option<Vec<u8>>,
    /// A token row's sealed values as hashed, so that the digest of a change known ahead (an
    /// accept's counter update) can be worked out before the commit makes it: see
    /// [`RowSeal::digest_after`]. Not kept for other tables.
    image: Option<Box<RowImage>>,
}

/// The bytes each sealed column contributed to a row's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowImage {
    bytes: Vec<u8>,
    /// Where each column's bytes end in `bytes`.
    ends: Vec<usize>,
}

impl RowSeal {
    /// The seal of the row whose [`RowTable::select_list`] values start at column `at` of `r`;
    /// `None` when the row is absent there (a LEFT JOIN that found nothing).
    pub(crate) fn read(r: &Row<'_>, table: RowTable, at: usize) -> Result<Option<RowSeal>, StoreError> {
        if r.value(at)? == Value::Null {
            return Ok(None);
        }
        let n = table.columns().len();
        let mut h = digest_start(table);
        // Only a token row's values are kept: no other row's change is foreseen.
        let mut image =
            (table == RowTable::Token).then(|| Box::new(RowImage { bytes: Vec::with_capacity(256), ends: Vec::new() }));
        for i in at..at + n {
            encode_value(r.value(i)?, |b| {
                h.update(b);
                if let Some(image) = image.as_mut() {
                    image.bytes.extend_from_slice(b);
                }
            });
            if let Some(image) = image.as_mut() {
                image.ends.push(image.bytes.len());
            }
        }
        Ok(Some(RowSeal { digest: h.finalize().into(), mac: r.get(at + n)?, image }))
    }

    /// The seal stored with the row, as read.
    pub(crate) fn mac(&self) -> Option<&[u8]> {
        self.mac.as_deref()
    }

    /// The row's digest as read.
    #[cfg(test)]
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The digest this row will have once `changes` (column, new value) are made to it, and
    /// nothing else: what its seal will be computed over. `None` when the row's values were
    /// not kept or a column is not sealed. Only a forecast: the commit seals the row as it
    /// finds it after the change, whatever this said.
    pub(crate) fn digest_after(&self, table: RowTable, changes: &[(&str, Value<'_>)]) -> Option<[u8; 32]> {
        let image = self.image.as_deref()?;
        let mut at = Vec::with_capacity(changes.len());
        for (column, value) in changes {
            at.push((table.columns().iter().position(|c| c == column)?, *value));
        }
        Some(image.digest(table, &at))
    }
}

impl RowImage {
    /// The digest of the row with the values of the columns in `replaced` (by position) put
    /// in place of those kept.
    fn digest(&self, table: RowTable, replaced: &[(usize, Value<'_>)]) -> [u8; 32] {
        let mut h = digest_start(table);
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            match replaced.iter().find(|(at, _)| *at == i) {
                Some((_, value)) => hash_value(&mut h, *value),
                None => h.update(&self.bytes[start..end]),
            }
            start = end;
        }
        h.finalize().into()
    }
}

/// A row digest's hasher, its domain and table name in: the values follow.
fn digest_start(table: RowTable) -> Sha256 {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(table.name().as_bytes());
    h.update(b"\0");
    h
}

/// The row seals' handle: the seal key, or none in the store's own unit tests (no HSM), where
/// nothing is sealed or checked but the token counts are still kept.
#[derive(Debug, Clone, Default)]
pub struct RowSeals(Option<Arc<dyn SealKey>>);

impl RowSeals {
    pub(super) fn new(key: Option<Arc<dyn SealKey>>) -> RowSeals {
        RowSeals(key)
    }

    fn mac(key: &dyn SealKey, digest: &[u8]) -> Result<Vec<u8>, StoreError> {
        key.mac(digest).map_err(|e| StoreError::SealUnavailable(format!("the HSM could not seal or check a row: {e}")))
    }

    /// Checks a row as read: its seal must be there and match. `what` names the row in the
    /// error ("token T1").
    pub fn check(&self, seal: &RowSeal, what: impl FnOnce() -> String) -> Result<(), StoreError> {
        let Some(key) = &self.0 else { return Ok(()) };
        let Some(stored) = &seal.mac else {
            return Err(StoreError::Tampered(format!("{} has no seal (a row added outside Countersign)", what())));
        };
        let fresh = Self::mac(key.as_ref(), &seal.digest)?;
        if !same_mac(stored, &fresh) {
            return Err(StoreError::Tampered(format!(
                "{} was changed outside Countersign (its seal does not match its content)",
                what()
            )));
        }
        Ok(())
    }

    fn read(conn: &dyn Sql, table: RowTable, id: i64) -> Result<Option<RowSeal>, StoreError> {
        Ok(conn.query_opt(&table.statements().0, args![id], |r| RowSeal::read(r, table, 0))?.flatten())
    }

    /// Checks row `id` of `table` as it is now on `conn`, before a change to it; a row that
    /// is not there passes (the change then finds nothing to change).
    pub(crate) fn verify_row(&self, conn: &dyn Sql, table: RowTable, id: i64) -> Result<(), StoreError> {
        if self.0.is_none() {
            return Ok(());
        }
        match Self::read(conn, table, id)? {
            Some(seal) => self.check(&seal, || format!("{} row #{id}", table.name())),
            None => Ok(()),
        }
    }

    /// Renews the seal of row `id` of `table` from what `conn` (the change's transaction)
    /// sees now.
    pub(crate) fn seal_row(&self, conn: &dyn Sql, table: RowTable, id: i64) -> Result<(), StoreError> {
        match &self.0 {
            Some(key) => seal_row(conn, key.as_ref(), table, id),
            None => Ok(()),
        }
    }

    /// Runs `change` on row `id` of `table`: verifies the row first and renews its seal after
    /// when `change` changed it. Returns what `change` returned (the rows it changed).
    pub(crate) fn update(
        &self,
        conn: &dyn Sql,
        table: RowTable,
        id: i64,
        change: impl FnOnce() -> Result<usize, StoreError>,
    ) -> Result<usize, StoreError> {
        self.verify_row(conn, table, id)?;
        let changed = change()?;
        if changed > 0 {
            self.seal_row(conn, table, id)?;
        }
        Ok(changed)
    }

    /// Recounts the tokens of user `user_id` after tokens were given to or taken from them,
    /// and renews the user row's seal.
    pub(crate) fn recount(&self, conn: &dyn Sql, user_id: i64) -> Result<(), StoreError> {
        self.verify_row(conn, RowTable::User, user_id)?;
        self.recount_verified(conn, user_id)
    }

    /// [`RowSeals::recount`] of a row the caller checked earlier in this transaction (and
    /// changed since, so it would not verify now).
    pub(crate) fn recount_verified(&self, conn: &dyn Sql, user_id: i64) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE app_user SET token_count = (SELECT count(*) FROM token WHERE user_id = ?1) WHERE id = ?1",
            args![user_id],
        )?;
        self.seal_row(conn, RowTable::User, user_id)
    }

    /// Checks the buckets of the user rows that `identities` would be in
    /// ([`super::owner_set`]): called when a check found no row for the user it resolved, so a
    /// row deleted outside the appliance is not taken for a user who never had one.
    pub(crate) fn check_absent(&self, conn: &dyn Sql, identities: &[Identity<'_>]) -> Result<(), StoreError> {
        self.check_buckets(conn, &identities.iter().map(Identity::bucket).collect::<Vec<_>>())
    }

    /// The buckets user row `id` is in (as stored, and as its identity says), for checking
    /// them before the row is changed or removed.
    pub(crate) fn buckets_of(&self, conn: &dyn Sql, id: i64) -> Result<Vec<i64>, StoreError> {
        Ok(super::owner_set::buckets_of(conn, id)?.map(|(s, c)| s.into_iter().chain([c]).collect()).unwrap_or_default())
    }

    /// Checks the seals of `buckets` before user rows in them are added, changed or removed.
    pub(crate) fn check_buckets(&self, conn: &dyn Sql, buckets: &[i64]) -> Result<(), StoreError> {
        let Some(key) = &self.0 else { return Ok(()) };
        let mut seen = Vec::new();
        for &b in buckets {
            if !seen.contains(&b) {
                super::owner_set::verify(conn, key.as_ref(), b)?;
                seen.push(b);
            }
        }
        Ok(())
    }

    /// After user rows were added or their identity changed (`placed`, each put into its
    /// bucket now) or rows removed (their buckets in `emptied`): seals every bucket touched
    /// again. The caller checked those buckets before the change.
    pub(crate) fn users_changed(&self, conn: &dyn Sql, placed: &[i64], emptied: &[i64]) -> Result<(), StoreError> {
        let mut touched = emptied.to_vec();
        for &id in placed {
            if let Some((before, after)) = super::owner_set::place(conn, id)? {
                touched.extend(before);
                touched.push(after);
            }
        }
        let Some(key) = &self.0 else { return Ok(()) };
        touched.sort_unstable();
        touched.dedup();
        let now = crate::now_ms();
        for b in touched {
            super::owner_set::reseal(conn, key.as_ref(), b, now)?;
        }
        Ok(())
    }

    /// The seal of a row whose digest will be `digest`, computed now on the caller's thread (a
    /// worker's), so the HSM work is not done by the one thread that commits; remembered like
    /// every MAC. `None` without a key, or when the HSM failed (the commit then meets it).
    pub(crate) fn foresee(&self, digest: &[u8; 32]) -> Option<Vec<u8>> {
        self.0.as_deref()?.mac(digest).ok()
    }

    /// One seal MAC that decides nothing: the work a counted failure's new row seal costs, for
    /// a rejected guess that has no token row to seal (an unknown user, a user without a token),
    /// so its answer does not come sooner.
    pub fn equal_work(&self) {
        if let Some(key) = &self.0 {
            key.work();
        }
    }

    /// Checks that the tokens read for user `user_id` are all the user's sealed count says they
    /// have: fewer means token rows were deleted outside Countersign.
    pub fn check_count(&self, user_id: i64, sealed: i64, found: usize, login: &str) -> Result<(), StoreError> {
        if self.0.is_none() || i64::try_from(found).is_ok_and(|f| f == sealed) {
            return Ok(());
        }
        Err(StoreError::Tampered(format!(
            "user {login} (#{user_id}) should have {sealed} token(s) but {found} were found (token rows were deleted \
             or moved outside Countersign)"
        )))
    }
}

fn seal_row(conn: &dyn Sql, key: &dyn SealKey, table: RowTable, id: i64) -> Result<(), StoreError> {
    let Some(seal) = RowSeals::read(conn, table, id)? else { return Ok(()) };
    let mac = RowSeals::mac(key, &seal.digest)?;
    conn.execute(&table.statements().1, args![mac, id])?;
    Ok(())
}

/// Starts the row seals on `conn` (a write transaction). A table whose rows were never sealed
/// (`adopt`: the key was just generated; or the first start of a version that seals it) has
/// every row sealed as it is, and a marker written; the marker's name is covered by the set
/// seal, so removing it to make the next start adopt edited rows does not go unnoticed.
/// Returns the tables adopted.
pub(super) fn start(
    conn: &dyn Sql,
    key: &dyn SealKey,
    adopt: bool,
    now_ms: i64,
) -> Result<Vec<&'static str>, StoreError> {
    let mut adopted = Vec::new();
    for table in RowTable::ALL {
        if !adopt && stored_seal(conn, &table.marker())?.is_some() {
            continue;
        }
        let sql = format!("SELECT {key} FROM {} ORDER BY {key}", table.name(), key = table.key());
        let ids: Vec<i64> = conn.query_map(&sql, args![], |r| r.get(0))?;
        for id in ids {
            seal_row(conn, key, table, id)?;
        }
        mark(conn, key, &table.marker(), now_ms)?;
        adopted.push(table.name());
    }
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::seals::TestKey;
    use crate::{AuthAuditRow, NewToken, Owner, Store, TokenChange, User};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), crate::Synchronous::Normal).unwrap();
        store.start_sealing(Arc::new(TestKey), true).unwrap();
        (dir, store)
    }

    fn audit() -> AuthAuditRow {
        AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok")
    }

    fn token(store: &Store, serial: &str, user: Option<&str>) {
        store.insert_token(&NewToken::for_test(serial, user.map(|l| (l, "default"))), &audit()).unwrap();
    }

    fn alice(store: &Store) -> Owner {
        let u = User {
            login: "alice".into(),
            realm: String::new(),
            email: None,
            phone: Some("+41000".into()),
            given_name: None,
            surname: None,
        };
        store.create_user(&u, &audit()).unwrap();
        let id = store.conn().query_row("SELECT id FROM app_user WHERE login = 'alice'", [], |r| r.get(0)).unwrap();
        Owner::Internal { user_id: id }
    }

    fn tampered<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::Tampered(_)))
    }

    #[test]
    fn an_edited_copied_or_added_token_row_does_not_verify() {
        let (_dir, store) = store();
        let owner = alice(&store);
        token(&store, "T1", Some("alice"));
        token(&store, "T2", None);
        assert_eq!(store.tokens_of_owner(&owner).unwrap().len(), 1);
        store.token("T2").unwrap();

        for (edit, undo) in [
            // The fail counter reset (more guesses), the counter moved back (a used OTP again).
            (
                "UPDATE token SET counter = 0, fail_count = 3 WHERE serial = 'T1'",
                "UPDATE token SET fail_count = 0 WHERE serial = 'T1'",
            ),
            (
                "UPDATE token SET active = 1, revoked = 1 WHERE serial = 'T1'",
                "UPDATE token SET revoked = 0 WHERE serial = 'T1'",
            ),
            (
                "UPDATE token SET pin_verifier = x'00' WHERE serial = 'T1'",
                "UPDATE token SET pin_verifier = NULL WHERE serial = 'T1'",
            ),
        ] {
            store.conn().execute(edit, []).unwrap();
            assert!(tampered(store.token("T1")), "{edit}");
            assert!(tampered(store.tokens_of_owner(&owner)), "{edit}");
            store.conn().execute(undo, []).unwrap();
            store.token("T1").unwrap();
        }
        // Another token given to alice: its row no longer matches, and her count does not either.
        let t2_id: i64 = store.conn().query_row("SELECT id FROM token WHERE serial = 'T2'", [], |r| r.get(0)).unwrap();
        store
            .conn()
            .execute(
                "UPDATE token SET user_id = (SELECT id FROM app_user WHERE login = 'alice') WHERE id = ?1",
                rusqlite::params![t2_id],
            )
            .unwrap();
        assert!(tampered(store.token("T2")));
        assert!(tampered(store.tokens_of_owner(&owner)));
        store.conn().execute("UPDATE token SET user_id = NULL WHERE id = ?1", rusqlite::params![t2_id]).unwrap();
        // A row added outside (with the seal of another row) does not verify.
        store
            .conn()
            .execute(
                "INSERT INTO token (serial, type, plugin, params, otp_window, sealed_seed, created_at, row_mac)
                 SELECT 'EVIL', type, plugin, params, otp_window, sealed_seed, created_at, row_mac FROM token
                 WHERE serial = 'T2'",
                [],
            )
            .unwrap();
        assert!(tampered(store.token("EVIL")));
        store.token("T2").unwrap();
    }

    #[test]
    fn deleting_a_users_tokens_or_editing_the_user_is_caught() {
        let (_dir, store) = store();
        let owner = alice(&store);
        token(&store, "T1", Some("alice"));
        token(&store, "T2", Some("alice"));
        assert_eq!(store.tokens_of_owner(&owner).unwrap().len(), 2);
        // One deleted, then all: she would have looked like a user without tokens
        // (passOnNoToken lets such users in).
        store.conn().execute("DELETE FROM token WHERE serial = 'T2'", []).unwrap();
        assert!(tampered(store.tokens_of_owner(&owner)));
        store.conn().execute("DELETE FROM token WHERE serial = 'T1'", []).unwrap();
        assert!(tampered(store.tokens_of_owner(&owner)));

        // Her phone number redirected: codes would go to someone else.
        let (_dir, store) = self::store();
        let owner = alice(&store);
        token(&store, "T1", Some("alice"));
        store.conn().execute("UPDATE app_user SET phone = '+66666' WHERE login = 'alice'", []).unwrap();
        assert!(tampered(store.tokens_of_owner(&owner)));
        assert!(tampered(store.token("T1")));
        assert!(tampered(store.internal_user("default", "alice")));
    }

    #[test]
    fn changes_the_appliance_makes_are_sealed_and_an_edit_is_not_laundered_by_one() {
        let (_dir, store) = store();
        let owner = alice(&store);
        token(&store, "T1", Some("alice"));
        token(&store, "T2", None);
        store
            .change_token("T2", &audit(), |_| {
                Ok(vec![TokenChange::Assign { user: Some(("alice".into(), None)), limit: None }])
            })
            .unwrap();
        assert_eq!(store.tokens_of_owner(&owner).unwrap().len(), 2);
        store.change_token("T1", &audit(), |_| Ok(vec![TokenChange::Delete])).unwrap();
        assert_eq!(store.tokens_of_owner(&owner).unwrap().len(), 1);
        store.change_token("T2", &audit(), |_| Ok(vec![TokenChange::SetActive(false)])).unwrap();
        assert!(!store.token("T2").unwrap().active);

        // An edit followed by a legitimate change: the change is refused, not sealed over it.
        store.conn().execute("UPDATE token SET counter = 0, max_fail = 1000 WHERE serial = 'T2'", []).unwrap();
        assert!(tampered(store.change_token("T2", &audit(), |_| Ok(vec![TokenChange::SetDescription("x".into())]))));
        let seals = store.row_seals();
        let id: i64 = store.conn().query_row("SELECT id FROM token WHERE serial = 'T2'", [], |r| r.get(0)).unwrap();
        let conn = store.conn();
        assert!(tampered(
            seals.update(&conn, RowTable::Token, id, || Ok(conn.execute("UPDATE token SET counter = 5", [])?))
        ));
    }

    #[test]
    fn a_user_deleted_with_all_their_tokens_is_not_taken_for_one_who_never_had_any() {
        let (_dir, store) = store();
        let user = crate::DirectoryUser {
            resolver: "corp",
            uid: "uuid-1",
            login: "alice",
            nocase: true,
            email: None,
            phone: None,
            given_name: None,
            surname: None,
        };
        store.bind_directory_user(None, &user).unwrap();
        token(&store, "T1", Some("alice"));
        let owner =
            Owner::Directory { resolver: "corp".into(), uid: "uuid-1".into(), login: "alice".into(), nocase: true };
        let nobody =
            Owner::Directory { resolver: "corp".into(), uid: "uuid-2".into(), login: "bob".into(), nocase: true };
        assert_eq!(store.tokens_of_owner(&owner).unwrap().len(), 1);
        assert!(store.tokens_of_owner(&nobody).unwrap().is_empty(), "a user never recorded has no tokens");
        // The appliance's own changes keep the buckets sealed: a user added, then removed.
        let carol = User {
            login: "carol".into(),
            realm: String::new(),
            email: None,
            phone: None,
            given_name: None,
            surname: None,
        };
        store.create_user(&carol, &audit()).unwrap();
        store.delete_user("carol", None, &audit()).unwrap();
        assert!(store.internal_user("default", "carol").unwrap().is_none());

        store.conn().execute_batch("DELETE FROM token; DELETE FROM app_user WHERE resolver = 'corp';").unwrap();
        // Before: no row, so no token, so passOnNoToken would let her in.
        assert!(tampered(store.tokens_of_owner(&owner)));
        // An internal user deleted offline would become unknown (passOnNoUser).
        let (_dir, store) = self::store();
        alice(&store);
        assert!(store.internal_user("default", "alice").unwrap().is_some());
        store.conn().execute("DELETE FROM app_user WHERE login = 'alice'", []).unwrap();
        assert!(tampered(store.internal_user("default", "alice")));
        assert!(store.internal_user("default", "ghost").unwrap().is_none(), "other unknown users stay unknown");
    }

    #[test]
    fn removing_the_marker_cannot_make_the_next_start_adopt_edited_rows() {
        let (_dir, store) = store();
        token(&store, "T1", None);
        let conn = store.conn();
        assert!(crate::sealing::start(&conn, &TestKey, false, 2).unwrap().is_empty());
        conn.execute("UPDATE token SET counter = 0, row_mac = NULL", []).unwrap();
        conn.execute("DELETE FROM table_seal WHERE name = 'rows/token'", []).unwrap();
        assert!(tampered(crate::sealing::start(&conn, &TestKey, false, 3)));
    }

    #[test]
    fn a_sealed_table_edited_while_the_daemon_runs_is_not_sealed_in_by_the_next_change() {
        let (_dir, store) = store();
        store.create_integration("payments", 1000, &audit()).unwrap();
        // Someone with write access to the database gives the integration another uid.
        store.conn().execute("UPDATE integration SET uid = 0 WHERE name = 'payments'", []).unwrap();
        // The next admin change to that table refuses, and changes nothing.
        assert!(tampered(store.create_integration("billing", 1001, &audit())));
        let n: i64 = store.conn().query_row("SELECT count(*) FROM integration", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "nothing was added");
        // So the edit is still caught at the next start.
        let conn = store.conn();
        assert!(tampered(crate::seals::verify(&conn, &TestKey, &["integration"])));
    }

    #[test]
    fn where_a_gateway_may_send_is_read_only_as_the_appliance_wrote_it() {
        let (_dir, store) = store();
        let g = crate::GatewayRecord {
            id: 0,
            name: "sms".into(),
            plugin: "gateway-http-sms".into(),
            options: serde_json::json!({}),
            transport: crate::Transport {
                allowed_hosts: vec!["sms.example".into()],
                allow_private: false,
                timeout_ms: 1000,
                smtp: None,
            },
            credential_names: vec![],
            sealed_credentials: None,
            created_at: 0,
        };
        store.insert_gateway(&g, &audit()).unwrap();
        store.set_route("sms", &["sms".into()], &audit()).unwrap();
        assert_eq!(store.gateway("sms").unwrap().transport.allowed_hosts, ["sms.example"]);
        assert_eq!(store.routes().unwrap().len(), 1);
        // Someone with write access points the gateway (and its credentials) elsewhere.
        let evil = r#"{"allowed_hosts":["evil.example"],"allow_private":true,"timeout_ms":1000,"smtp":null}"#;
        store.conn().execute("UPDATE gateway SET transport = ?1", rusqlite::params![evil]).unwrap();
        assert!(tampered(store.gateway("sms")), "a delivery does not send there");
        assert!(tampered(store.gateways()));
        assert!(tampered(store.routes()));
        assert!(tampered(store.insert_gateway(&crate::GatewayRecord { name: "b".into(), ..g }, &audit())));
    }
}
