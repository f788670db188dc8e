//! The configuration version (`config_version`, migration 0023): one number that every change
//! to a sealed table moves on in its own transaction ([`Store::reseal`]). Appliances sharing one
//! database poll it on a connection of their own ([`VersionWatch`]) and reload what they hold in
//! memory (policies, realms and resolvers, the signing directory) when it moved.
//!
//! Owns: reading the version. Must never: be written outside a sealed change.

use super::db::{args, Conn};
use super::{Store, StoreError};

/// A connection of its own that reads the configuration version, for one watcher thread.
#[derive(Debug)]
pub struct VersionWatch {
    conn: Conn,
}

impl VersionWatch {
    /// The current configuration version.
    pub fn version(&self) -> Result<i64, StoreError> {
        self.conn.sql().query_value("SELECT version FROM config_version WHERE id = 1", args![])
    }
}

impl Store {
    /// A handle that reads the configuration version on a read connection of its own.
    pub fn version_watch(&self) -> Result<VersionWatch, StoreError> {
        Ok(VersionWatch { conn: self.reader_connection()? })
    }
}
