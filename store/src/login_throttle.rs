//! The `/auth` login backoff's memory (migration 0024): recent failed logins per peer, and the
//! names each peer logged in as. Kept here, not in a process, so every appliance on one
//! database sees a client's failures on all of them. The backoff itself (how long a peer
//! waits) is decided in the appliance's `api_access::throttle`.
//!
//! Owns: the two tables and their bounds. Must never: hold a password or anything derived
//! from one.

use super::db::args;
use super::{Store, StoreError};

/// Failures kept per peer: enough to reach the longest delay.
const KEPT_PER_PEER: i64 = 64;

/// What the database remembers of one peer's logins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginLog {
    /// (time, admin name) of the peer's failures since the window's start, oldest first.
    pub failures: Vec<(i64, String)>,
    /// (admin name, time of the last success) of the names the peer logged in as.
    pub known: Vec<(String, i64)>,
}

impl Store {
    /// `peer`'s failures at or after `failures_since_ms` and the names it logged in as at or
    /// after `known_since_ms`.
    pub fn login_log(&self, peer: &str, failures_since_ms: i64, known_since_ms: i64) -> Result<LoginLog, StoreError> {
        self.read(|c| {
            let failures = c.query_map(
                "SELECT at_ms, name FROM login_failure WHERE peer = ?1 AND at_ms >= ?2 ORDER BY at_ms, id",
                args![peer, failures_since_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let known = c.query_map(
                "SELECT name, at_ms FROM login_known WHERE peer = ?1 AND at_ms >= ?2 ORDER BY name",
                args![peer, known_since_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(LoginLog { failures, known })
        })
    }

    /// Records `peer`'s failed login as `name` at `at_ms`, forgetting failures (of every peer)
    /// from before `forget_before_ms` and keeping the peer's newest few only.
    pub fn login_failed(&self, peer: &str, name: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("INSERT INTO login_failure (peer, name, at_ms) VALUES (?1, ?2, ?3)", args![peer, name, at_ms])?;
            tx.execute("DELETE FROM login_failure WHERE at_ms < ?1", args![forget_before_ms])?;
            tx.execute(
                "DELETE FROM login_failure WHERE peer = ?1 AND id NOT IN
                     (SELECT id FROM login_failure WHERE peer = ?1 ORDER BY id DESC LIMIT ?2)",
                args![peer, KEPT_PER_PEER],
            )?;
            Ok(())
        })
    }

    /// Records `peer`'s successful login as `name` at `at_ms`: that name's failures from the
    /// peer are forgotten (other names' stay) and the peer becomes a known client of the name;
    /// known clients from before `forget_known_before_ms` are forgotten.
    pub fn login_succeeded(
        &self,
        peer: &str,
        name: &str,
        at_ms: i64,
        forget_known_before_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM login_failure WHERE peer = ?1 AND name = ?2", args![peer, name])?;
            tx.execute(
                "INSERT INTO login_known (peer, name, at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer, name) DO UPDATE SET at_ms = excluded.at_ms",
                args![peer, name, at_ms],
            )?;
            tx.execute("DELETE FROM login_known WHERE at_ms < ?1", args![forget_known_before_ms])?;
            Ok(())
        })
    }
}
