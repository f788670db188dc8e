//! The clients of the Yubico validation protocol (`/ttype/yubikey`): a client id and its API
//! key, sealed by the HSM (the store never sees the key in the clear). The table is sealed as a
//! whole (`yubikey_client` in [`super::seals::SEALED_TABLES`]): it decides whose requests are
//! answered and under which key answers are signed. Each change writes its audit row in the
//! same transaction.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::tokens::insert_audit;
use super::{Store, StoreError};
use crate::store::AuthAuditRow;

/// What admins see of a client (never its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YubikeyClientView {
    pub client_id: String,
    pub created_at: i64,
}

/// Whether a stored client was new or replaced an earlier key (privacyIDEA's `insert` and
/// `update` answers of `/system/setConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Inserted,
    Replaced,
}

impl Store {
    /// Stores client `client_id` with its sealed key. With `replace`, an existing client's key
    /// is replaced; without, an existing client is [`StoreError::Duplicate`].
    pub fn put_yubikey_client(
        &self,
        client_id: &str,
        sealed_key: &[u8],
        created_at: i64,
        replace: bool,
        audit: &AuthAuditRow,
    ) -> Result<Stored, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row("SELECT 1 FROM yubikey_client WHERE client_id = ?1", [client_id], |_| Ok(()))
            .optional()?
            .is_some();
        let stored = match (exists, replace) {
            (true, false) => return Err(StoreError::Duplicate(format!("Yubico client {client_id}"))),
            (true, true) => {
                tx.execute(
                    "UPDATE yubikey_client SET sealed_key = ?2, created_at = ?3 WHERE client_id = ?1",
                    params![client_id, sealed_key, created_at],
                )?;
                Stored::Replaced
            }
            (false, _) => {
                tx.execute(
                    "INSERT INTO yubikey_client (client_id, sealed_key, created_at) VALUES (?1, ?2, ?3)",
                    params![client_id, sealed_key, created_at],
                )?;
                Stored::Inserted
            }
        };
        insert_audit(&tx, audit)?;
        self.reseal(&tx, &["yubikey_client"])?;
        tx.commit()?;
        Ok(stored)
    }

    pub fn remove_yubikey_client(&self, client_id: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM yubikey_client WHERE client_id = ?1", [client_id])? == 0 {
            return Err(StoreError::NotFound(format!("Yubico client {client_id}")));
        }
        insert_audit(&tx, audit)?;
        self.reseal(&tx, &["yubikey_client"])?;
        tx.commit()?;
        Ok(())
    }

    /// Every client, by id; checked against the table's seal, since listings feed decisions
    /// (privacyIDEA's admins read them from `/system/`).
    pub fn yubikey_clients(&self) -> Result<Vec<YubikeyClientView>, StoreError> {
        let conn = self.conn();
        self.verify_seals(&conn, &["yubikey_client"])?;
        let mut st = conn.prepare("SELECT client_id, created_at FROM yubikey_client ORDER BY client_id")?;
        let rows = st.query_map([], |r| Ok(YubikeyClientView { client_id: r.get(0)?, created_at: r.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sealed key of `client_id`; `None` for an unknown client. The table's seal is
    /// checked first, so a client added or a key swapped offline is refused, not used.
    pub fn yubikey_client_key(&self, client_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn();
        self.verify_seals(&conn, &["yubikey_client"])?;
        Ok(conn
            .query_row("SELECT sealed_key FROM yubikey_client WHERE client_id = ?1", [client_id], |r| r.get(0))
            .optional()?)
    }
}
