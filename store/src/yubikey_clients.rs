//! The clients of the Yubico validation protocol (`/ttype/yubikey`): a client id and its API
//! key, sealed by the HSM (the store never sees the key in the clear). The table is sealed as a
//! whole (`yubikey_client` in [`super::seals::SEALED_TABLES`]): it decides whose requests are
//! answered and under which key answers are signed. Each change writes its audit row in the
//! same transaction.

use countersign_core::error::Refusal;
use serde::Serialize;

use super::chain::insert_audit;
use super::{Store, StoreError};
use crate::db::args;
use crate::AuthAuditRow;

/// What admins see of a client (never its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YubikeyClientView {
    /// The client's id (privacyIDEA's `yubikey.apiid.<id>`), which its requests name.
    pub client_id: String,
    /// When the client's key was stored (or last replaced), in seconds since the Unix epoch.
    pub created_at: i64,
}

/// Whether a stored client was new or replaced an earlier key (privacyIDEA's `insert` and
/// `update` answers of `/system/setConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The client was new.
    Inserted,
    /// The client existed; its key was replaced.
    Replaced,
}

impl Store {
    /// Stores client `client_id` with its sealed key. With `replace`, an existing client's key
    /// is replaced; without, an existing client is a [`Refusal::Duplicate`](countersign_core::error::Refusal::Duplicate).
    pub fn put_yubikey_client(
        &self,
        client_id: &str,
        sealed_key: &[u8],
        created_at: i64,
        replace: bool,
        audit: &AuthAuditRow,
    ) -> Result<Stored, StoreError> {
        self.write(|tx| {
            self.check_seals(tx, &["yubikey_client"])?;
            let exists = tx
                .query_opt("SELECT 1 FROM yubikey_client WHERE client_id = ?1", args![client_id], |_| Ok(()))?
                .is_some();
            if exists && !replace {
                return Err(StoreError::Refused(Refusal::Duplicate(format!("Yubico client {client_id}"))));
            }
            tx.execute(
                "INSERT INTO yubikey_client (client_id, sealed_key, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (client_id) DO UPDATE SET sealed_key = excluded.sealed_key, created_at = excluded.created_at",
                args![client_id, sealed_key, created_at],
            )?;
            let stored = if exists { Stored::Replaced } else { Stored::Inserted };
            insert_audit(tx, audit)?;
            self.reseal(tx, &["yubikey_client"])?;
            Ok(stored)
        })
    }

    /// Removes the client `client_id` with its audit row and renews the table's seal; its requests
    /// are no longer answered.
    pub fn remove_yubikey_client(&self, client_id: &str, audit: &AuthAuditRow) -> Result<(), StoreError> {
        self.delete_sealed_row("yubikey_client", "client_id", client_id, "Yubico client", audit)
    }

    /// Every client, by id; checked against the table's seal, since listings feed decisions
    /// (privacyIDEA's admins read them from `/system/`).
    pub fn yubikey_clients(&self) -> Result<Vec<YubikeyClientView>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["yubikey_client"])?;
            conn.query_map("SELECT client_id, created_at FROM yubikey_client ORDER BY client_id", args![], |r| {
                Ok(YubikeyClientView { client_id: r.get(0)?, created_at: r.get(1)? })
            })
        })
    }

    /// The sealed key of `client_id`; `None` for an unknown client. The table's seal is
    /// checked first, so a client added or a key swapped offline is refused, not used.
    pub fn yubikey_client_key(&self, client_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|conn| {
            self.check_seals(conn, &["yubikey_client"])?;
            conn.query_opt("SELECT sealed_key FROM yubikey_client WHERE client_id = ?1", args![client_id], |r| r.get(0))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::Arc;

    use super::*;
    use crate::seals::TestKey;

    #[test]
    fn clients_are_kept_replaced_on_request_and_a_table_edited_offline_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), crate::Synchronous::Normal).unwrap();
        store.start_sealing(Arc::new(TestKey), true).unwrap();
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "test", "ok");
        assert_eq!(store.put_yubikey_client("7", b"sealed-1", 1, false, &audit).unwrap(), Stored::Inserted);
        assert!(matches!(
            store.put_yubikey_client("7", b"sealed-2", 2, false, &audit),
            Err(StoreError::Refused(Refusal::Duplicate(_)))
        ));
        assert_eq!(store.put_yubikey_client("7", b"sealed-2", 2, true, &audit).unwrap(), Stored::Replaced);
        assert_eq!(store.yubikey_client_key("7").unwrap().as_deref(), Some(b"sealed-2".as_slice()));
        assert_eq!(store.yubikey_client_key("8").unwrap(), None);
        assert_eq!(store.yubikey_clients().unwrap(), vec![YubikeyClientView { client_id: "7".into(), created_at: 2 }]);
        // A key swapped or a client added behind the appliance's back is refused, not used.
        let conn = store.conn();
        conn.execute("INSERT INTO yubikey_client (client_id, sealed_key, created_at) VALUES ('evil', x'00', 1)", [])
            .unwrap();
        assert!(matches!(store.yubikey_client_key("7"), Err(StoreError::Tampered(_))));
        assert!(matches!(store.yubikey_clients(), Err(StoreError::Tampered(_))));
        conn.execute("DELETE FROM yubikey_client WHERE client_id = 'evil'", []).unwrap();
        store.yubikey_client_key("7").unwrap();
        store.remove_yubikey_client("7", &audit).unwrap();
        assert!(matches!(store.remove_yubikey_client("7", &audit), Err(StoreError::Refused(Refusal::NotFound(_)))));
        assert_eq!(store.yubikey_client_key("7").unwrap(), None);
    }
}
