//! Moving an appliance's data between stores: every row of every table copied from one store
//! into an empty one, ids kept, in one transaction on the target: a SQLite appliance's file into
//! the PostgreSQL database a cluster will share (`countersignd copy-store`), and a PostgreSQL
//! store into a SQLite file and back (its backups). Seals, row seals and the audit chain are copied
//! as they are and verify there as they did here, because both engines encode values alike
//! and order text byte by byte ([`crate::seals::hash_value`], the PostgreSQL schema's
//! `COLLATE "C"`); the caller proves it afterwards with the HSM (seals and `audit verify`).
//!
//! From a running store the copy is one consistent snapshot (a backup); into a store, the
//! target's daemon must be stopped.
//!
//! Owns: the copy order and the per-table check. Must never: write into a store that holds
//! data already, or leave a partial copy (it is one transaction, rolled back on any error).

use countersign_core::error::Refusal;
use serde::Serialize;

use super::db::{args, Dialect, Kind, Param, Sql, Value};
use super::{Store, StoreError};

/// Every table, parents before children (foreign keys), with its row-id column when the
/// engine gives ids (an identity column on PostgreSQL, whose sequence is moved past the copied
/// ids). `schema_migration` is not copied: each engine numbers its own migrations.
const TABLES: &[(&str, Option<&str>)] = &[
    ("application", Some("id")),
    ("master_keypair", Some("id")),
    ("powerauth_application", None),
    ("powerauth_app_version", Some("id")),
    ("powerauth_application_role", None),
    ("powerauth_application_config", None),
    ("powerauth_activation", Some("id")),
    ("powerauth_activation_history", Some("id")),
    ("powerauth_temporary_key", None),
    ("powerauth_replay", None),
    ("powerauth_token", Some("id")),
    ("powerauth_operation_template", Some("id")),
    ("powerauth_operation", Some("id")),
    ("powerauth_operation_application", None),
    ("integration", Some("id")),
    ("integration_grant", None),
    ("signature_audit", Some("id")),
    ("realm", Some("id")),
    ("resolver", Some("id")),
    ("realm_resolver", None),
    ("app_user", Some("id")),
    ("system_key", None),
    ("system_certificate", None),
    ("device", Some("id")),
    ("token", Some("id")),
    ("token_certificate", None),
    ("webauthn_credential", None),
    ("sign_in_challenge", Some("id")),
    ("auth_audit", Some("id")),
    ("gateway", Some("id")),
    ("gateway_route", None),
    ("challenge", Some("id")),
    ("delivery", Some("id")),
    ("delivery_attempt", Some("id")),
    ("push_challenge", None),
    ("push_device", None),
    ("ca", None),
    ("policy", Some("id")),
    ("api_admin", None),
    ("console_user", None),
    ("service_account", None),
    ("audit_chain", None),
    ("audit_checkpoint", None),
    ("audit_anchor", None),
    ("audit_legacy", None),
    ("job_run", None),
    ("auth_throttle", None),
    ("store_probe", None),
    ("table_seal", None),
    ("yubikey_client", None),
    ("config_version", None),
    ("login_failure", Some("id")),
    ("login_known", None),
];

/// Tables a fresh store fills itself (its migrations seed them); a target holding only these
/// rows is empty.
const SEEDED: &[&str] = &["realm", "audit_legacy", "store_probe", "config_version"];

/// What a copy moved, per table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// (table, rows copied), in copy order.
    pub tables: Vec<(String, u64)>,
    /// All rows copied.
    pub rows: u64,
}

/// A value read from the source, owned, with the type of its target column (NULLs are typed).
struct Owned {
    kind: Kind,
    value: OwnedValue,
}

enum OwnedValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Param for Owned {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn value(&self) -> Value<'_> {
        match &self.value {
            OwnedValue::Null => Value::Null,
            OwnedValue::Int(i) => Value::Int(*i),
            OwnedValue::Real(f) => Value::Real(*f),
            OwnedValue::Text(t) => Value::Text(t),
            OwnedValue::Blob(b) => Value::Blob(b),
        }
    }
}

fn owned(v: Value<'_>, kind: Kind) -> Owned {
    let value = match v {
        Value::Null => OwnedValue::Null,
        Value::Int(i) => OwnedValue::Int(i),
        Value::Real(f) => OwnedValue::Real(f),
        Value::Text(t) => OwnedValue::Text(t.to_owned()),
        Value::Blob(b) => OwnedValue::Blob(b.to_vec()),
    };
    Owned { kind, value }
}

/// The columns of `table` in the target, in order, with their types (from the engine's
/// catalogue: PostgreSQL's `information_schema`, SQLite's `table_info`).
fn target_columns(to: &dyn Sql, table: &str) -> Result<Vec<(String, Kind)>, StoreError> {
    let sql = match to.dialect() {
        Dialect::Postgres => {
            "SELECT column_name, data_type FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
        }
        Dialect::Sqlite => "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
    };
    to.query_map(sql, args![table], |r| {
        let (name, ty): (String, String) = (r.get(0)?, r.get(1)?);
        let kind = match ty.to_ascii_lowercase().as_str() {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "double precision" | "real" => Kind::Real,
            "bytea" | "blob" => Kind::Blob,
            _ => Kind::Text,
        };
        Ok((name, kind))
    })
}

/// Every table of the target's schema (but `schema_migration`, which each engine keeps itself).
fn target_tables(to: &dyn Sql) -> Result<Vec<String>, StoreError> {
    let sql = match to.dialect() {
        Dialect::Postgres => {
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE' AND table_name <> 'schema_migration' ORDER BY table_name"
        }
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> 'schema_migration' ORDER BY name"
        }
    };
    to.query_map(sql, args![], |r| r.get(0))
}

/// Copies every row of `from` into `to`, which must hold no data yet (only what its
/// migrations seeded). One transaction on `to`, one snapshot of `from`.
pub fn copy(from: &Store, to: &Store) -> Result<CopyReport, StoreError> {
    from.snapshot_apart(|src| {
        to.write_apart(|dst| {
            let listed: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
            let present = target_tables(dst)?;
            if let Some(t) = present.iter().find(|t| !listed.contains(&t.as_str())) {
                return Err(StoreError::Refused(Refusal::Invalid(format!(
                    "table {t} is not in the copy's list: this build cannot copy this schema completely"
                ))));
            }
            for (table, _) in TABLES {
                if SEEDED.contains(table) {
                    continue;
                }
                let n: i64 = dst.query_value(&format!("SELECT count(*) FROM {table}"), args![])?;
                if n > 0 {
                    return Err(StoreError::Refused(Refusal::Invalid(format!(
                        "the target database holds data already ({n} rows in {table}); copy into a new, empty \
                         database"
                    ))));
                }
            }
            for (table, _) in TABLES.iter().rev() {
                dst.execute(&format!("DELETE FROM {table}"), args![])?;
            }
            let mut report = CopyReport::default();
            for (table, id) in TABLES {
                let columns = target_columns(dst, table)?;
                let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                let select = format!("SELECT {} FROM {table}", names.join(", "));
                let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
                let insert = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), marks.join(", "));
                let mut copied = 0u64;
                src.each_row(&select, args![], &mut |r| {
                    let row: Vec<Owned> =
                        columns.iter().enumerate().map(|(i, (_, k))| Ok(owned(r.value(i)?, *k))).collect::<Result<
                            _,
                            StoreError,
                        >>(
                        )?;
                    let params: Vec<&dyn Param> = row.iter().map(|o| o as &dyn Param).collect();
                    dst.execute(&insert, &params)?;
                    copied += 1;
                    Ok(())
                })?;
                if let (Some(id), Dialect::Postgres) = (id, dst.dialect()) {
                    // The next id the engine gives is past every copied one.
                    dst.query_row(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', '{id}'), coalesce(max({id}), 0) + 1, false) \
                             FROM {table}"
                        ),
                        args![],
                        |_| Ok(()),
                    )?;
                }
                let there: u64 = dst.query_value(&format!("SELECT count(*) FROM {table}"), args![])?;
                if there != copied {
                    return Err(StoreError::Refused(Refusal::Invalid(format!(
                        "table {table}: {copied} rows read but {there} in the target"
                    ))));
                }
                report.tables.push(((*table).to_owned(), copied));
                report.rows += copied;
            }
            Ok(report)
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::db::pg::PgTarget;
    use crate::{AuthAuditRow, Location, NewToken};

    #[test]
    fn a_sqlite_store_is_copied_whole_into_an_empty_postgres_database_and_only_there() {
        let Some(server) = crate::testing::pg_server() else {
            eprintln!("COUNTERSIGN_TEST_PG is not set: the copy needs a PostgreSQL server (make test sets one)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let from = Store::open(&dir.path().join("s.db"), crate::Synchronous::Normal).unwrap();
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok");
        from.insert_token(&NewToken::for_test("T1", None), &audit).unwrap();
        from.insert_token(&NewToken::for_test("T2", None), &audit).unwrap();
        let url = crate::testing::fresh_pg_database(&server);
        let to = Store::open_at(&Location::Postgres(Box::new(PgTarget::parse(&url, None).unwrap()))).unwrap();
        let report = copy(&from, &to).unwrap();
        assert!(report.tables.iter().any(|(t, n)| t == "token" && *n == 2), "{report:?}");
        assert_eq!(to.token("T2").unwrap().serial, "T2");
        // Ids go on past the copied ones.
        let t3 = to.insert_token(&NewToken::for_test("T3", None), &audit).unwrap();
        assert!(t3.id > from.token("T2").unwrap().id);
        // The chain's links copied as they are: the same hashes, in the same order.
        let links = |s: &Store| {
            s.read(|c| {
                c.query_map("SELECT seq, hash FROM audit_chain ORDER BY seq", args![], |r| {
                    Ok((r.get::<i64>(0)?, r.get::<Vec<u8>>(1)?))
                })
            })
            .unwrap()
        };
        assert_eq!(links(&from), links(&to)[..links(&from).len()]);
        // A second copy into a database that holds data is refused, and changes nothing.
        let again = copy(&from, &to);
        assert!(matches!(again, Err(StoreError::Refused(_))), "{again:?}");
        assert!(to.token("T3").is_ok());
    }

    #[test]
    fn a_postgres_store_goes_into_a_sqlite_file_and_back_unchanged() {
        let Some(server) = crate::testing::pg_server() else {
            eprintln!("COUNTERSIGN_TEST_PG is not set: the copy needs a PostgreSQL server (make test sets one)");
            return;
        };
        let open = || {
            let url = crate::testing::fresh_pg_database(&server);
            Store::open_at(&Location::Postgres(Box::new(PgTarget::parse(&url, None).unwrap()))).unwrap()
        };
        let pg = open();
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok");
        for serial in ["A", "B", "C"] {
            pg.insert_token(&NewToken::for_test(serial, None), &audit).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let file = Store::open(&dir.path().join("b.db"), crate::Synchronous::Normal).unwrap();
        let out = copy(&pg, &file).unwrap();
        let back = open();
        let home = copy(&file, &back).unwrap();
        assert_eq!(out.tables, home.tables);
        let dump = |s: &Store| {
            s.read(|c| {
                c.query_map("SELECT id, serial, counter, sealed_seed FROM token ORDER BY id", args![], |r| {
                    Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<Vec<u8>>(3)?))
                })
            })
            .unwrap()
        };
        assert_eq!(dump(&pg), dump(&back));
        assert_eq!(dump(&pg), dump(&file));
    }
}
