//! Counts the operator watches (`/metrics`) and the trivial query of readiness checks, read on
//! a connection of the caller's (a fresh read-only one), never on the admin connection, so a
//! scrape cannot wait behind an admin change. Reads only; never returns a row's content.

use crate::db::{args, Conn, Sql};

use super::StoreError;

/// What `/metrics` reports from the database.
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// Deliveries of challenge messages not finished yet, by status (`queued`, `sending`).
    pub deliveries_pending: Vec<(String, u64)>,
    /// Tokens by type and whether they are active (enabled and not revoked).
    pub tokens: Vec<(String, bool, u64)>,
}

impl super::Store {
    /// Reads the gauges on a fresh read connection (so a busy admin connection cannot hold
    /// up a metrics scrape).
    pub fn gauges(&self) -> Result<StoreGauges, StoreError> {
        store_gauges(self.reader_connection()?.sql())
    }
}

fn store_gauges(conn: &dyn Sql) -> Result<StoreGauges, StoreError> {
    let deliveries_pending = conn.query_map(
        "SELECT status, COUNT(*) FROM delivery WHERE status IN ('queued', 'sending') GROUP BY status ORDER BY status",
        args![],
        |r| Ok((r.get::<String>(0)?, r.get::<u64>(1)?)),
    )?;
    let tokens = conn.query_map(
        "SELECT type, CASE WHEN active = 1 AND revoked = 0 THEN 1 ELSE 0 END, COUNT(*) FROM token GROUP BY 1, 2 \
         ORDER BY 1, 2",
        args![],
        |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?, r.get::<u64>(2)?)),
    )?;
    Ok(StoreGauges { deliveries_pending, tokens })
}

/// The readiness check's write: one committed update of the probe row, on a connection of
/// its own, so a database that can no longer commit (disk full, read-only file system, I/O
/// errors) is reported before an authentication or an audit row fails on it.
pub(crate) fn store_commits(conn: &mut Conn, now_ms: i64) -> Result<(), StoreError> {
    conn.write(|tx| tx.execute("UPDATE store_probe SET at_ms = ?1 WHERE id = 1", args![now_ms]))?;
    Ok(())
}

/// Bytes free to an unprivileged writer on the file system holding `path` (statvfs `f_bavail`).
#[allow(unsafe_code, reason = "statvfs(3) has no wrapper in std")]
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live struct statvfs writes into.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
