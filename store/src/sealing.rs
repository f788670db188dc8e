//! Starting the seals when the daemon starts: the table seals, the row seals and the sealed set
//! of users, adopted together on a new key or verified together on a known one. Only the order
//! of that start lives here; each kind of seal keeps its own rules in its module.

use super::seals::{all_tables, reseal, same_mac, set_mac, stored_seal, verify, write_set, SealKey, SET_ROW};
use super::{owner_set, row_seals, StoreError};
use crate::db::Sql;

/// Starts sealing on `conn` (a write transaction). `adopt` (the key was just generated): every
/// table is sealed as it is. Otherwise the set of sealed tables and each of their seals must
/// verify; a table this version seals for the first time (newly listed in `SEALED_TABLES`) is
/// sealed as it is now, and returned.
pub(crate) fn start(
    conn: &dyn Sql,
    key: &dyn SealKey,
    adopt: bool,
    now_ms: i64,
) -> Result<Vec<&'static str>, StoreError> {
    if adopt {
        reseal(conn, key, &all_tables(), now_ms)?;
        let mut adopted = all_tables();
        adopted.extend(row_seals::start(conn, key, true, now_ms)?);
        if owner_set::start(conn, key, true, now_ms)? {
            adopted.push("owners");
        }
        write_set(conn, key, now_ms)?;
        return Ok(adopted);
    }
    let fresh = set_mac(conn, key)?;
    match stored_seal(conn, SET_ROW)? {
        Some(m) if same_mac(&m, &fresh) => {}
        Some(_) => {
            return Err(StoreError::Tampered("the set of sealed tables was changed (a seal removed or added)".into()))
        }
        None => return Err(StoreError::Tampered("the set of sealed tables has no seal".into())),
    }
    let mut sealed = Vec::new();
    let mut new = Vec::new();
    for table in all_tables() {
        if stored_seal(conn, table)?.is_some() {
            sealed.push(table);
        } else {
            new.push(table);
        }
    }
    verify(conn, key, &sealed)?;
    if !new.is_empty() {
        reseal(conn, key, &new, now_ms)?;
    }
    new.extend(row_seals::start(conn, key, false, now_ms)?);
    if owner_set::start(conn, key, false, now_ms)? {
        new.push("owners");
    }
    if !new.is_empty() {
        write_set(conn, key, now_ms)?;
    }
    Ok(new)
}
