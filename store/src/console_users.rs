//! Users of the web console (`console_user`, migration 0026): names, password verifiers made
//! in the HSM, roles, a helpdesk user's realms, and the session epoch their console sessions
//! are bound to. Sealed as a table, like the API admins: every read for a decision checks the
//! seal and fails closed. Each change writes its audit row in the same transaction.
//!
//! Owns: the table's rows. Must never: hold a password, or decide what a role may do (that is
//! `countersign::console_access`).

use countersign_core::error::Refusal;
use serde::Serialize;

use super::chain::insert_audit;
use super::{unique_as, Store, StoreError};
use crate::db::args;
use crate::AuthAuditRow;

/// A console user as the store keeps it, without the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleUserRow {
    /// The sign-in name, unique.
    pub name: String,
    /// `admin`, `helpdesk` or `auditor`.
    pub role: String,
    /// A helpdesk user's realms, comma-separated; empty for the other roles.
    pub realms: String,
    /// When the user was added, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the user last signed in, in milliseconds since the Unix epoch; `None`: never.
    pub last_login_ms: Option<i64>,
}

/// What a sign-in or a session check reads of a console user.
#[derive(Debug, Clone)]
pub struct ConsoleCredential {
    /// The user's row.
    pub user: ConsoleUserRow,
    /// The HSM-made verifier of the password.
    pub verifier: Vec<u8>,
    /// The epoch the user's sessions are bound to.
    pub epoch: Vec<u8>,
}

const COLUMNS: &str = "name, role, realms, created_at, last_login_ms, password_verifier, session_epoch";

fn credential(r: &crate::db::Row<'_>) -> Result<ConsoleCredential, StoreError> {
    Ok(ConsoleCredential {
        user: ConsoleUserRow {
            name: r.get(0)?,
            role: r.get(1)?,
            realms: r.get(2)?,
            created_at: r.get(3)?,
            last_login_ms: r.get(4)?,
        },
        verifier: r.get(5)?,
        epoch: r.get(6)?,
    })
}

impl Store {
    /// Adds console user `name` (refused when the name is taken), with its audit row.
    pub fn add_console_user(
        &self,
        row: &ConsoleUserRow,
        verifier: &[u8],
        epoch: &[u8],
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["console_user"], audit, |tx| {
            tx.execute(
                "INSERT INTO console_user (name, password_verifier, role, realms, session_epoch, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![row.name.as_str(), verifier, row.role.as_str(), row.realms.as_str(), epoch, row.created_at],
            )
            .map_err(|e| {
                unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("console user {}", row.name))))
            })?;
            Ok(())
        })
    }

    /// Removes console user `name`; its sessions end with it.
    pub fn remove_console_user(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.delete_sealed_row("console_user", "name", name, "console user", audit)
    }

    /// Changes `name`'s role and realms, and its session epoch with them: sessions opened
    /// under the old role end.
    pub fn set_console_role(
        &self,
        name: &str,
        role: &str,
        realms: &str,
        epoch: &[u8],
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["console_user"], audit, |tx| {
            let n = tx.execute(
                "UPDATE console_user SET role = ?2, realms = ?3, session_epoch = ?4 WHERE name = ?1",
                args![name, role, realms, epoch],
            )?;
            if n == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("console user {name}"))));
            }
            Ok(())
        })
    }

    /// Replaces `name`'s session epoch, which ends every console session of the user.
    pub fn new_console_epoch(&self, name: &str, epoch: &[u8], audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["console_user"], audit, |tx| {
            if tx.execute("UPDATE console_user SET session_epoch = ?2 WHERE name = ?1", args![name, epoch])? == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("console user {name}"))));
            }
            Ok(())
        })
    }

    /// Every console user, by name (never a verifier).
    pub fn console_users(&self) -> Result<Vec<ConsoleUserRow>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["console_user"])?;
            let sql = format!("SELECT {COLUMNS} FROM console_user ORDER BY name");
            conn.query_map(&sql, args![], |r| Ok(credential(r)?.user))
        })
    }

    /// Console user `name` with its verifier and epoch, its table's seal checked; `None` for
    /// an unknown name.
    pub fn console_credential(&self, name: &str) -> Result<Option<ConsoleCredential>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["console_user"])?;
            let sql = format!("SELECT {COLUMNS} FROM console_user WHERE name = ?1");
            conn.query_opt(&sql, args![name], credential)
        })
    }

    /// Records a sign-in (with its audit row).
    pub fn console_user_signed_in(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("UPDATE console_user SET last_login_ms = ?2 WHERE name = ?1", args![name, crate::now_ms()])?;
            insert_audit(tx, audit)?;
            Ok(())
        })
    }
}
