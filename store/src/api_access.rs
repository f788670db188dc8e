//! Who may use the HTTP API beyond `/validate/check`: administrators of the
//! privacyIDEA-compatible API (names and password verifiers) and service accounts (names, the
//! public prefix of their API key and its verifier). Verifiers are HMACs made in the HSM;
//! nothing here can recover a password or key. Each change writes its audit row in the same
//! transaction. An admin's `session_epoch` (random, replaced at logout) is what its session
//! tokens are bound to.

use countersign_core::error::Refusal;
use serde::Serialize;

use super::chain::insert_audit;
use super::{unique_as, Store, StoreError};
use crate::db::args;
use crate::AuthAuditRow;

/// What admins see of an API admin.
#[derive(Debug, Clone, Serialize)]
pub struct ApiAdminView {
    /// The admin's login name, unique.
    pub name: String,
    /// When the admin was added, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the admin last logged in, in milliseconds since the Unix epoch; `None`: never.
    pub last_login_ms: Option<i64>,
}

impl Store {
    /// Adds an admin whose sessions are bound to `epoch` (random, never reused).
    pub fn add_api_admin(
        &self,
        name: &str,
        verifier: &[u8],
        epoch: &[u8],
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["api_admin"], audit, |tx| {
            tx.execute(
                "INSERT INTO api_admin (name, password_verifier, created_at, session_epoch) VALUES (?1, ?2, ?3, ?4)",
                args![name, verifier, crate::now_ms() / 1000, epoch],
            )
            .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("API admin {name}")))))?;
            Ok(())
        })
    }

    /// Removes the admin `name` with its audit row and renews the table's seal; its sessions end
    /// with it.
    pub fn remove_api_admin(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.delete_sealed_row("api_admin", "name", name, "API admin", audit)
    }

    /// Every API admin, by name (never a verifier).
    pub fn api_admins(&self) -> Result<Vec<ApiAdminView>, StoreError> {
        self.read(|conn| {
            conn.query_map("SELECT name, created_at, last_login_ms FROM api_admin ORDER BY name", args![], |r| {
                Ok(ApiAdminView { name: r.get(0)?, created_at: r.get(1)?, last_login_ms: r.get(2)? })
            })
        })
    }

    /// The verifier of `name`'s password; `None` for an unknown admin.
    pub fn api_admin_verifier(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["api_admin"])?;
            conn.query_opt("SELECT password_verifier FROM api_admin WHERE name = ?1", args![name], |r| r.get(0))
        })
    }

    /// The epoch `name`'s sessions are bound to; `None` for an unknown admin.
    pub fn api_admin_epoch(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["api_admin"])?;
            conn.query_opt("SELECT session_epoch FROM api_admin WHERE name = ?1", args![name], |r| r.get(0))
        })
    }

    /// Replaces `name`'s session epoch, which ends every session issued to it (with its audit row).
    pub fn new_api_admin_epoch(&self, name: &str, epoch: &[u8], audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.sealed_change(&["api_admin"], audit, |tx| {
            if tx.execute("UPDATE api_admin SET session_epoch = ?2 WHERE name = ?1", args![name, epoch])? == 0 {
                return Err(StoreError::Refused(Refusal::NotFound(format!("API admin {name}"))));
            }
            Ok(())
        })
    }

    /// Records a login (with its audit row).
    pub fn api_admin_logged_in(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("UPDATE api_admin SET last_login_ms = ?2 WHERE name = ?1", args![name, crate::now_ms()])?;
            insert_audit(tx, audit)?;
            Ok(())
        })
    }
}

/// What admins see of a service account (never its key).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceAccountView {
    /// The account's name, unique.
    pub name: String,
    /// The public start of its API key, by which a request's key is looked up; the rest of the key
    /// is kept only as an HSM-keyed verifier.
    pub key_prefix: String,
    /// What the account is for; empty when none was given.
    pub description: String,
    /// When the account was added, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the account last used its key, in milliseconds since the Unix epoch; `None`: not
    /// recorded.
    pub last_used_ms: Option<i64>,
}

impl Store {
    /// Adds a service account whose key starts with `prefix` and whose key's HMAC verifier (made in
    /// the HSM) is `verifier`, with its audit row, and renews the table's seal; refuses a name (or
    /// prefix) already taken.
    pub fn add_service_account(
        &self,
        name: &str,
        prefix: &str,
        verifier: &[u8],
        description: &str,
        audit: &AuthAuditRow,
    ) -> Result<(), StoreError> {
        self.sealed_change(&["service_account"], audit, |tx| {
            tx.execute(
                "INSERT INTO service_account (name, key_prefix, key_verifier, description, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![name, prefix, verifier, description, crate::now_ms() / 1000],
            )
            .map_err(|e| unique_as(e, || StoreError::Refused(Refusal::Duplicate(format!("service account {name}")))))?;
            Ok(())
        })
    }

    /// Removes the service account `name` with its audit row and renews the table's seal; its key
    /// stops working.
    pub fn remove_service_account(&self, name: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.delete_sealed_row("service_account", "name", name, "service account", audit)
    }

    /// Every service account, by name (never its key or verifier).
    pub fn service_accounts(&self) -> Result<Vec<ServiceAccountView>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT name, key_prefix, description, created_at, last_used_ms FROM service_account ORDER BY name",
                args![],
                |r| {
                    Ok(ServiceAccountView {
                        name: r.get(0)?,
                        key_prefix: r.get(1)?,
                        description: r.get(2)?,
                        created_at: r.get(3)?,
                        last_used_ms: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Records that `name` used its key at `now_ms`, at most once a minute (a write per request
    /// would cost every request a transaction for a time admins read in minutes); outside the
    /// table's seal, like an admin's last login.
    pub fn service_account_used(&self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.execute(
                "UPDATE service_account SET last_used_ms = ?2
                 WHERE name = ?1 AND (last_used_ms IS NULL OR last_used_ms <= ?2 - 60000)",
                args![name, now_ms],
            )
        })?;
        Ok(())
    }

    /// The account whose key starts with `prefix`: (name, verifier).
    pub fn service_account_by_prefix(&self, prefix: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["service_account"])?;
            conn.query_opt("SELECT name, key_verifier FROM service_account WHERE key_prefix = ?1", args![prefix], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
    }
}
