//! Applies the numbered SQL files of `migrations/` (SQLite) or `migrations/postgres/`
//! (PostgreSQL) in order, and refuses to start when an applied file was edited or the database
//! is newer than this build. On SQLite each file has its own transaction; on PostgreSQL all
//! pending files go in one transaction that first takes an advisory lock, so nodes starting
//! together wait for each other and apply each file once (PostgreSQL's DDL is transactional).

use crate::db::{args, Conn, Dialect, Sql};
use sha2::{Digest, Sha256};

use super::StoreError;

/// Every migration, in order: (version, name, SQL). A test checks this list against the folder.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "signing_foundation", include_str!("../../migrations/0001_signing_foundation.sql")),
    (2, "tokens", include_str!("../../migrations/0002_tokens.sql")),
    (3, "gateways", include_str!("../../migrations/0003_gateways.sql")),
    (4, "challenges", include_str!("../../migrations/0004_challenges.sql")),
    (5, "hardware", include_str!("../../migrations/0005_hardware.sql")),
    (6, "policies", include_str!("../../migrations/0006_policies.sql")),
    (7, "resolvers", include_str!("../../migrations/0007_resolvers.sql")),
    (8, "api_admins", include_str!("../../migrations/0008_api_admins.sql")),
    (9, "service_accounts", include_str!("../../migrations/0009_service_accounts.sql")),
    (10, "system_certificates", include_str!("../../migrations/0010_system_certificates.sql")),
    (11, "directory_users", include_str!("../../migrations/0011_directory_users.sql")),
    (12, "auth_audit_by_user", include_str!("../../migrations/0012_auth_audit_by_user.sql")),
    (13, "audit_chain", include_str!("../../migrations/0013_audit_chain.sql")),
    (14, "auth_audit_rate_index", include_str!("../../migrations/0014_auth_audit_rate_index.sql")),
    (15, "jobs_and_audit_fields", include_str!("../../migrations/0015_jobs_and_audit_fields.sql")),
    (16, "user_identity", include_str!("../../migrations/0016_user_identity.sql")),
    (17, "api_admin_sessions", include_str!("../../migrations/0017_api_admin_sessions.sql")),
    (18, "store_probe", include_str!("../../migrations/0018_store_probe.sql")),
    (19, "table_seals", include_str!("../../migrations/0019_table_seals.sql")),
    (20, "row_seals", include_str!("../../migrations/0020_row_seals.sql")),
    (21, "owner_set", include_str!("../../migrations/0021_owner_set.sql")),
    (22, "yubikey_clients", include_str!("../../migrations/0022_yubikey_clients.sql")),
    (23, "config_version", include_str!("../../migrations/0023_config_version.sql")),
    (24, "login_throttle", include_str!("../../migrations/0024_login_throttle.sql")),
    (25, "webauthn", include_str!("../../migrations/0025_webauthn.sql")),
    (26, "console_users", include_str!("../../migrations/0026_console_users.sql")),
    (27, "auth_audit_by_time", include_str!("../../migrations/0027_auth_audit_by_time.sql")),
    (28, "powerauth_applications", include_str!("../../migrations/0028_powerauth_applications.sql")),
    (29, "powerauth_activations", include_str!("../../migrations/0029_powerauth_activations.sql")),
    (30, "powerauth_roles_and_config", include_str!("../../migrations/0030_powerauth_roles_and_config.sql")),
    (31, "powerauth_tokens_operations", include_str!("../../migrations/0031_powerauth_tokens_operations.sql")),
    (32, "push", include_str!("../../migrations/0032_push.sql")),
];

/// PostgreSQL's migrations, in order: (version, name, SQL). Numbered on their own: the first
/// is the schema SQLite's 22 files leave.
pub const PG_MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "schema", include_str!("../../migrations/postgres/0001_schema.sql")),
    (2, "config_version", include_str!("../../migrations/postgres/0002_config_version.sql")),
    (3, "login_throttle", include_str!("../../migrations/postgres/0003_login_throttle.sql")),
    (4, "webauthn", include_str!("../../migrations/postgres/0004_webauthn.sql")),
    (5, "console_users", include_str!("../../migrations/postgres/0005_console_users.sql")),
    (6, "auth_audit_by_time", include_str!("../../migrations/postgres/0006_auth_audit_by_time.sql")),
    (7, "powerauth_applications", include_str!("../../migrations/postgres/0007_powerauth_applications.sql")),
    (8, "powerauth_activations", include_str!("../../migrations/postgres/0008_powerauth_activations.sql")),
    (9, "powerauth_roles_and_config", include_str!("../../migrations/postgres/0009_powerauth_roles_and_config.sql")),
    (10, "powerauth_tokens_operations", include_str!("../../migrations/postgres/0010_powerauth_tokens_operations.sql")),
    (11, "push", include_str!("../../migrations/postgres/0011_push.sql")),
];

/// The advisory lock key the PostgreSQL migrations run under ("countersign" in ASCII, cut to
/// 64 bits): any fixed number no other application on the server uses.
const MIGRATION_LOCK: i64 = 0x636f_756e_7465_7273;

const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migration (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at BIGINT NOT NULL)";

pub(super) fn apply(conn: &mut Conn) -> Result<(), StoreError> {
    match conn {
        Conn::Sqlite(_) => {
            conn.sql().batch(SCHEMA_TABLE)?;
            for m in MIGRATIONS {
                conn.write(|tx| apply_one(tx, MIGRATIONS, m))?;
            }
            Ok(())
        }
        Conn::Pg(_) => conn.write(|tx| {
            tx.query_row("SELECT pg_advisory_xact_lock(?1)", args![MIGRATION_LOCK], |_| Ok(()))?;
            tx.batch(SCHEMA_TABLE)?;
            for m in PG_MIGRATIONS {
                apply_one(tx, PG_MIGRATIONS, m)?;
            }
            Ok(())
        }),
    }
}

/// Applies migration `m` of `all` on `tx` unless it was applied (then its text must be
/// unchanged); refuses a database that has migrations newer than `all`.
fn apply_one(tx: &dyn Sql, all: &[(u32, &str, &str)], m: &(u32, &str, &str)) -> Result<(), StoreError> {
    let (version, name, sql) = *m;
    let newest: Option<u32> = tx.query_value("SELECT max(version) FROM schema_migration", args![])?;
    let known = all.last().map_or(0, |m| m.0);
    if let Some(v) = newest.filter(|v| *v > known) {
        return Err(StoreError::TooNew(v));
    }
    let sum = hex::encode(Sha256::digest(sql.as_bytes()));
    let applied: Option<String> =
        tx.query_opt("SELECT sha256 FROM schema_migration WHERE version = ?1", args![version], |r| r.get(0))?;
    match applied {
        Some(s) if s == sum => return Ok(()),
        Some(_) => return Err(StoreError::MigrationEdited { version, name: name.to_owned() }),
        None => {}
    }
    tx.batch(sql)?;
    tx.execute(
        "INSERT INTO schema_migration (version, name, sha256, applied_at) VALUES (?1, ?2, ?3, ?4)",
        args![version, name, sum, crate::now_ms() / 1000],
    )?;
    let engine = if tx.dialect() == Dialect::Postgres { "postgres" } else { "sqlite" };
    tracing::info!(version, name, engine, "applied migration");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|(v, n, _)| format!("{v:04}_{n}.sql")).collect();
        assert_eq!(files, listed);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = PG_MIGRATIONS.iter().map(|(v, n, _)| format!("{v:04}_{n}.sql")).collect();
        assert_eq!(files, listed);
    }

    #[test]
    fn a_change_to_a_sealed_table_moves_the_configuration_version_on() {
        crate::testing::each_store(|store, engine| {
            let watch = store.version_watch().unwrap();
            let before = watch.version().unwrap();
            let audit = crate::AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok");
            store.sealed_change(&["policy"], &audit, |_| Ok(())).unwrap();
            assert_eq!(watch.version().unwrap(), before + 1, "{engine}");
            // A change that fails moves nothing.
            let failed: Result<(), StoreError> = store.sealed_change(&["policy"], &audit, |_| {
                Err(StoreError::Refused(countersign_core::error::Refusal::Invalid("no".into())))
            });
            assert!(failed.is_err());
            assert_eq!(watch.version().unwrap(), before + 1, "{engine}");
        });
    }

    #[test]
    fn edited_migration_is_refused() {
        let mut conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        apply(&mut conn).unwrap();
        conn.sql().execute("UPDATE schema_migration SET sha256 = 'x' WHERE version = 1", args![]).unwrap();
        assert!(matches!(apply(&mut conn), Err(StoreError::MigrationEdited { version: 1, .. })));
    }

    #[test]
    fn reapplying_is_a_no_op() {
        let mut conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
    }
}
