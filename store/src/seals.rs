//! Seals of the tables that grant power: an HMAC, under a key that never leaves the HSM, over
//! the whole content of each sealed table (every row and column, in a fixed order), kept in
//! `table_seal` and renewed in the transaction of every change the appliance makes to the
//! table. Reading a sealed table for a decision (the signing directory, the policy snapshot,
//! admin reads) verifies its seal first and fails closed.
//!
//! Why whole tables: an edit made to the database while the daemon is stopped (a uid granted a
//! signing key, a restrictive policy deleted, a key version swapped) must not take effect
//! unnoticed. A per-row MAC would catch edited and inserted rows but not deleted ones, and a
//! deleted policy or grant changes decisions too. The sealed tables are small and change only
//! by admin action, so recomputing a table's digest per change costs little; the HSM computes
//! one HMAC over a SHA-256 digest per seal or check.
//!
//! What a seal cannot tell: a whole database (or a table together with its seal) put back
//! from an older copy of this same appliance is consistent, and verifies. docs/security.md
//! says how operators detect that (the audit chain's signed checkpoints and exported tail).
//!
//! Owns: the sealed tables' list and canonical encoding, `table_seal`. Must never: hold the
//! key, or accept a table whose seal is missing once sealing has begun.

use crate::db::{args, Sql, Value};
use countersign_core::error::Refusal;
use sha2::{Digest, Sha256};

use super::StoreError;

/// Computes the MAC of a table digest with the HSM's seal key.
pub trait SealKey: Send + Sync + std::fmt::Debug {
    /// The HMAC of `digest` under the HSM's table-seal key; the error says why the HSM could not
    /// compute it.
    fn mac(&self, digest: &[u8]) -> Result<Vec<u8>, String>;

    /// The work of one MAC the key has not computed before, whose result is not used (the
    /// equal work of a rejected guess, `RowSeals::equal_work` in the row seals).
    fn work(&self) {}
}

/// The sealed tables and the query that reads each one completely in a fixed order.
pub const SEALED_TABLES: &[(&str, &str)] = &[
    ("application", "SELECT id, name, algorithm, created_at FROM application ORDER BY id"),
    (
        "master_keypair",
        "SELECT id, application_id, version, algorithm, hsm_key_id, hsm_label, public_key, state, created_at, \
         retired_at FROM master_keypair ORDER BY id",
    ),
    ("integration", "SELECT id, name, uid, created_at FROM integration ORDER BY id"),
    (
        "integration_grant",
        "SELECT integration_id, application_id, granted_at FROM integration_grant ORDER BY integration_id, \
         application_id",
    ),
    (
        "policy",
        "SELECT name, scope, active, priority, actions, realms, resolvers, users, clients, time, admin_realms, \
         admin_users, description, created_at, updated_at FROM policy ORDER BY name",
    ),
    // The time of the last login or use grants nothing and changes often: not sealed.
    ("api_admin", "SELECT name, password_verifier, created_at, session_epoch FROM api_admin ORDER BY name"),
    // Who may use the web console, in which role and realms.
    (
        "console_user",
        "SELECT name, password_verifier, role, realms, session_epoch, created_at FROM console_user ORDER BY name",
    ),
    (
        "service_account",
        "SELECT name, key_prefix, key_verifier, description, created_at FROM service_account ORDER BY name",
    ),
    // Which realms exist, which is the default, and which resolvers each asks in what order:
    // an edit could send a realm's users to another directory.
    ("realm", "SELECT id, name, is_default, created_at FROM realm ORDER BY id"),
    (
        "resolver",
        "SELECT id, name, kind, options, sealed_bind_password, created_at, updated_at FROM resolver ORDER BY id",
    ),
    ("realm_resolver", "SELECT realm_id, resolver_id, priority FROM realm_resolver ORDER BY realm_id, resolver_id"),
    // Which HSM key serves which role.
    ("system_key", "SELECT role, hsm_key_id, created_at FROM system_key ORDER BY role"),
    // Whose Yubico validation requests are answered, and under which (sealed) key.
    ("yubikey_client", "SELECT client_id, sealed_key, created_at FROM yubikey_client ORDER BY client_id"),
    // Where challenge messages and the gateways' credentials may go (allowed hosts, private
    // targets, SMTP server), and which gateways each token type fails over through.
    (
        "gateway",
        "SELECT id, name, plugin, options, transport, credential_names, sealed_credentials, created_at FROM gateway \
         ORDER BY id",
    ),
    ("gateway_route", "SELECT token_type, position, gateway_id FROM gateway_route ORDER BY token_type, position"),
    // Which applications are PowerAuth's (their master keys out of the signing API's reach),
    // and which of their versions (APP_KEY, sealed APP_SECRET) may activate and sign.
    ("powerauth_application", "SELECT application_id, created_at FROM powerauth_application ORDER BY application_id"),
    (
        "powerauth_app_version",
        "SELECT id, application_id, name, app_key, sealed_secret, supported, created_at FROM powerauth_app_version \
         ORDER BY id",
    ),
    // The roles the back-end authorises by, and the configuration activations are judged by.
    (
        "powerauth_application_role",
        "SELECT application_id, role FROM powerauth_application_role ORDER BY application_id, role",
    ),
    (
        "powerauth_application_config",
        "SELECT application_id, config_key, config_values FROM powerauth_application_config \
         ORDER BY application_id, config_key",
    ),
    // How strongly operations of each kind are approved (signature types, failures, lifetime).
    (
        "powerauth_operation_template",
        "SELECT id, template_name, operation_type, data_template, signature_types, max_failure_count, expiration_s, \
         risk_flags, created_ms FROM powerauth_operation_template ORDER BY id",
    ),
];

/// The row of `table_seal` that seals the set of sealed tables itself, so a table's seal
/// cannot be deleted to make the next start adopt the table as it is.
pub(crate) const SET_ROW: &str = "*";

const DOMAIN: &[u8] = b"countersign table seal v1\0";

fn query_of(table: &str) -> Result<&'static str, StoreError> {
    SEALED_TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, q)| *q)
        .ok_or_else(|| StoreError::Refused(Refusal::Invalid(format!("table {table} is not sealed"))))
}

/// SHA-256 over the table's name and every value of every row, each tagged with its type and
/// length, so no two different contents encode alike.
pub(crate) fn digest(conn: &dyn Sql, table: &str) -> Result<[u8; 32], StoreError> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update((table.len() as u64).to_be_bytes());
    h.update(table.as_bytes());
    conn.each_row(query_of(table)?, args![], &mut |r| {
        h.update(b"R");
        for i in 0..r.width() {
            hash_value(&mut h, r.value(i)?);
        }
        Ok(())
    })?;
    Ok(h.finalize().into())
}

/// Adds one value to a digest, tagged with its type and (for bytes) its length, so no two
/// different sequences of values encode alike. Shared with the row seals.
pub(super) fn hash_value(h: &mut Sha256, v: Value<'_>) {
    encode_value(v, |bytes| h.update(bytes));
}

/// The bytes [`hash_value`] hashes for `v`, handed to `put` piece by piece (a row seal keeps
/// them to work out the digest of a change ahead of it).
pub(super) fn encode_value(v: Value<'_>, mut put: impl FnMut(&[u8])) {
    match v {
        Value::Null => put(b"n"),
        Value::Int(v) => {
            put(b"i");
            put(&v.to_be_bytes());
        }
        Value::Real(v) => {
            put(b"f");
            put(&v.to_bits().to_be_bytes());
        }
        Value::Text(t) => {
            let b = t.as_bytes();
            put(b"b");
            put(&(b.len() as u64).to_be_bytes());
            put(b);
        }
        Value::Blob(b) => {
            put(b"b");
            put(&(b.len() as u64).to_be_bytes());
            put(b);
        }
    }
}

fn mac_of(conn: &dyn Sql, key: &dyn SealKey, table: &str) -> Result<Vec<u8>, StoreError> {
    let d = digest(conn, table)?;
    key.mac(&d).map_err(|e| StoreError::SealUnavailable(format!("the HSM could not seal or check table {table}: {e}")))
}

/// Writes (or renews) the `table_seal` row `name`: a table's seal, a bucket's, or a marker.
pub(super) fn store_seal(conn: &dyn Sql, name: &str, mac: &[u8], now_ms: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO table_seal (name, mac, sealed_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET mac = excluded.mac, sealed_at_ms = excluded.sealed_at_ms",
        args![name, mac, now_ms],
    )?;
    Ok(())
}

/// The stored `table_seal` row `name`'s MAC, if there is one.
pub(super) fn stored_seal(conn: &dyn Sql, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    conn.query_opt("SELECT mac FROM table_seal WHERE name = ?1", args![name], |r| r.get(0))
}

/// Whether a stored MAC is the fresh one, compared in constant time.
pub(super) fn same_mac(stored: &[u8], fresh: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(stored, fresh))
}

/// Writes the marker `name` that records that something is sealed (a MAC of the name itself;
/// markers are covered by the set seal, so removing one does not go unnoticed).
pub(super) fn mark(conn: &dyn Sql, key: &dyn SealKey, name: &str, now_ms: i64) -> Result<(), StoreError> {
    let mac = key
        .mac(&Sha256::digest(name.as_bytes()))
        .map_err(|e| StoreError::SealUnavailable(format!("the HSM could not seal {name}: {e}")))?;
    store_seal(conn, name, &mac, now_ms)
}

/// Renews the seals of `tables` from what `conn` (the change's transaction) sees now.
pub(crate) fn reseal(conn: &dyn Sql, key: &dyn SealKey, tables: &[&str], now_ms: i64) -> Result<(), StoreError> {
    for table in tables {
        store_seal(conn, table, &mac_of(conn, key, table)?, now_ms)?;
    }
    Ok(())
}

/// Checks the seals of `tables` against their content; a missing or different seal is
/// [`StoreError::Tampered`].
pub(crate) fn verify(conn: &dyn Sql, key: &dyn SealKey, tables: &[&str]) -> Result<(), StoreError> {
    for table in tables {
        let Some(stored) = stored_seal(conn, table)? else {
            return Err(StoreError::Tampered(format!("table {table} has no seal")));
        };
        let fresh = mac_of(conn, key, table)?;
        if !same_mac(&stored, &fresh) {
            return Err(StoreError::Tampered(format!(
                "table {table} was changed outside Countersign (its seal does not match its content)"
            )));
        }
    }
    Ok(())
}

pub(crate) fn set_mac(conn: &dyn Sql, key: &dyn SealKey) -> Result<Vec<u8>, StoreError> {
    let mut h = Sha256::new();
    h.update(b"countersign sealed tables v1\0");
    conn.each_row("SELECT name FROM table_seal WHERE name != ?1 ORDER BY name", args![SET_ROW], &mut |r| {
        let name: String = r.get(0)?;
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        Ok(())
    })?;
    let digest: [u8; 32] = h.finalize().into();
    key.mac(&digest)
        .map_err(|e| StoreError::SealUnavailable(format!("the HSM could not seal the set of sealed tables: {e}")))
}

pub(crate) fn write_set(conn: &dyn Sql, key: &dyn SealKey, now_ms: i64) -> Result<(), StoreError> {
    store_seal(conn, SET_ROW, &set_mac(conn, key)?, now_ms)
}

/// Every sealed table's name.
pub fn all_tables() -> Vec<&'static str> {
    SEALED_TABLES.iter().map(|(t, _)| *t).collect()
}

/// A stand-in for the HSM key in the store's unit tests: the digest itself, keyed by a
/// constant (the logic under test is the encoding and the bookkeeping, not the MAC).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestKey;

#[cfg(test)]
impl SealKey for TestKey {
    fn mac(&self, digest: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Sha256::digest([b"k".as_slice(), digest].concat()).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::start;

    fn db() -> rusqlite::Connection {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(&dir.path().join("s.db"), crate::Synchronous::Normal).unwrap();
        let conn = store.conn();
        std::mem::forget(dir);
        conn
    }

    #[test]
    fn a_sealed_table_verifies_until_a_row_is_edited_inserted_or_deleted() {
        let conn = db();
        conn.execute("INSERT INTO integration (name, uid, created_at) VALUES ('a', 1000, 1)", []).unwrap();
        conn.execute("INSERT INTO integration (name, uid, created_at) VALUES ('b', 1001, 1)", []).unwrap();
        let tables = all_tables();
        reseal(&conn, &TestKey, &tables, 1).unwrap();
        verify(&conn, &TestKey, &tables).unwrap();

        for (change, undo) in [
            ("UPDATE integration SET uid = 0 WHERE name = 'a'", "UPDATE integration SET uid = 1000 WHERE name = 'a'"),
            (
                "INSERT INTO integration (name, uid, created_at) VALUES ('evil', 0, 1)",
                "DELETE FROM integration WHERE name = 'evil'",
            ),
            (
                "DELETE FROM integration WHERE name = 'b'",
                "INSERT INTO integration (id, name, uid, created_at) VALUES (2, 'b', 1001, 1)",
            ),
            ("DELETE FROM table_seal WHERE name = 'integration'", ""),
        ] {
            conn.execute(change, []).unwrap();
            assert!(matches!(verify(&conn, &TestKey, &tables), Err(StoreError::Tampered(_))), "{change}");
            if undo.is_empty() {
                reseal(&conn, &TestKey, &["integration"], 2).unwrap();
            } else {
                conn.execute(undo, []).unwrap();
            }
            verify(&conn, &TestKey, &tables).unwrap();
        }
    }

    #[test]
    fn a_removed_seal_cannot_make_the_next_start_adopt_a_table() {
        let conn = db();
        start(&conn, &TestKey, true, 1).unwrap();
        assert!(start(&conn, &TestKey, false, 2).unwrap().is_empty(), "nothing new to adopt");
        conn.execute("INSERT INTO integration (name, uid, created_at) VALUES ('evil', 0, 1)", []).unwrap();
        conn.execute("DELETE FROM table_seal WHERE name = 'integration'", []).unwrap();
        assert!(matches!(start(&conn, &TestKey, false, 3), Err(StoreError::Tampered(_))));
        conn.execute("DELETE FROM table_seal WHERE name = '*'", []).unwrap();
        assert!(matches!(start(&conn, &TestKey, false, 3), Err(StoreError::Tampered(_))));
    }

    #[test]
    fn a_table_sealed_for_the_first_time_by_a_newer_version_is_adopted_once() {
        let conn = db();
        start(&conn, &TestKey, true, 1).unwrap();
        // As if an older version had sealed everything but service_account.
        conn.execute("DELETE FROM table_seal WHERE name = 'service_account'", []).unwrap();
        write_set(&conn, &TestKey, 1).unwrap();
        assert_eq!(start(&conn, &TestKey, false, 2).unwrap(), vec!["service_account"]);
        assert!(start(&conn, &TestKey, false, 3).unwrap().is_empty());
    }

    #[test]
    fn the_encoding_tells_null_from_empty_and_moved_bytes_apart() {
        let conn = db();
        conn.execute("INSERT INTO integration (name, uid, created_at) VALUES ('ab', 1, 1)", []).unwrap();
        let one = digest(&conn, "integration").unwrap();
        conn.execute("UPDATE integration SET name = 'a', uid = 1", []).unwrap();
        let two = digest(&conn, "integration").unwrap();
        assert_ne!(one, two);
        assert!(digest(&conn, "token").is_err(), "only listed tables are sealed");
    }
}
