//! Keeps what this appliance holds in memory (policies, realms and resolvers, the signing
//! directory) in step with changes that other appliances on the same database make: a thread
//! reads the configuration version ([`crate::store::VersionWatch`]) every [`POLL`] and reloads
//! when it moved, so a change made on one node takes effect on every node within a second.
//! Changes made on this node reload at once, as before; this only catches the others'.
//!
//! When the version cannot be read for longer than [`STALE_AFTER`] (the database is down or
//! unreachable), the view is stale and readiness says so; checks meanwhile fail closed on the
//! store itself. Only started on PostgreSQL: a SQLite store has one appliance.
//!
//! Owns: the poll and the staleness. Must never: apply a change itself (the reload functions
//! read the database), or report fresh a view it could not confirm.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{Store, VersionWatch};

/// How often the configuration version is read.
pub const POLL: Duration = Duration::from_millis(200);

/// How long the version may go unread before the view counts as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// What reloads this appliance's view of the configuration; the error says what did not.
pub type Reload = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The watcher's state, shared with readiness. Cheap to clone.
#[derive(Clone)]
pub struct ConfigWatch {
    /// When the version was last read and the view brought up to it, in ms after `base` (a
    /// monotonic clock: staleness is time that passed, whatever the wall clock does); -1: no
    /// watcher runs (one appliance on SQLite), the view is always current.
    current_at_ms: Arc<AtomicI64>,
    base: Instant,
}

fn since(base: Instant) -> i64 {
    i64::try_from(base.elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch").field("stale", &self.stale()).finish_non_exhaustive()
    }
}

impl ConfigWatch {
    /// A watch that never goes stale: the store has one appliance, whose own changes reload.
    pub fn single() -> ConfigWatch {
        ConfigWatch { current_at_ms: Arc::new(AtomicI64::new(-1)), base: Instant::now() }
    }

    /// Starts the watcher thread on `store`; `reload` brings the in-memory view up to the
    /// database. `loaded_at` is the version read before the services loaded what they hold
    /// (`None`: it could not be read): any other version, a change another appliance made
    /// while this one was starting among them, is reloaded at the first poll.
    pub fn start(store: Arc<Store>, reload: Reload, loaded_at: Option<i64>) -> std::io::Result<ConfigWatch> {
        let watch = ConfigWatch { current_at_ms: Arc::new(AtomicI64::new(0)), base: Instant::now() };
        let state = watch.clone();
        let mut conn: Option<VersionWatch> = None;
        let mut seen: Option<i64> = loaded_at;
        let mut failing = false;
        std::thread::Builder::new().name("config-watch".into()).spawn(move || loop {
            let read = match conn.as_ref() {
                Some(c) => c.version(),
                None => store.version_watch().and_then(|c| {
                    let v = c.version();
                    conn = Some(c);
                    v
                }),
            };
            let outcome = match read {
                Ok(v) if seen == Some(v) => Ok(()),
                Ok(v) => match reload() {
                    Ok(()) => {
                        tracing::info!(version = v, "configuration changed on another appliance: reloaded");
                        seen = Some(v);
                        Ok(())
                    }
                    Err(e) => Err(format!("the configuration changed but did not reload: {e}")),
                },
                Err(e) => Err(format!("the configuration version cannot be read: {e}")),
            };
            match outcome {
                Ok(()) => {
                    if failing {
                        tracing::info!("the configuration view is current again");
                        failing = false;
                    }
                    state.current_at_ms.store(since(state.base), Ordering::Release);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "the configuration view may be stale");
                        failing = true;
                    }
                }
            }
            std::thread::sleep(POLL);
        })?;
        Ok(watch)
    }

    /// Why this appliance's view of the configuration is stale, if it is: the version was not
    /// read (or not applied) for longer than [`STALE_AFTER`].
    pub fn stale(&self) -> Option<String> {
        let at = self.current_at_ms.load(Ordering::Acquire);
        if at < 0 {
            return None;
        }
        let age = since(self.base).saturating_sub(at);
        let limit = i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
        (age > limit).then(|| {
            format!(
                "the configuration view is stale: changes other appliances made were last confirmed {age} ms ago \
                 (the database does not answer)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use crate::store::AuthAuditRow;

    /// A change another appliance makes after this one read the version and before its
    /// watcher starts (a node restarting while an admin works on another) is reloaded at the
    /// watcher's first poll, not taken as already seen.
    #[test]
    fn a_change_made_while_the_appliance_started_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.db"), crate::store::Synchronous::Normal).unwrap());
        let loaded_at = store.version_watch().unwrap().version().unwrap();
        let audit = AuthAuditRow::new(&countersign_core::caller::Caller::uid(0), "realm/create", "ok");
        store.create_realm("late", &audit).unwrap();
        assert_ne!(store.version_watch().unwrap().version().unwrap(), loaded_at, "a realm moves the version");
        let (tx, rx) = std::sync::mpsc::channel();
        let reload: Reload = Box::new(move || tx.send(()).map_err(|e| e.to_string()));
        let _watch = ConfigWatch::start(store, reload, Some(loaded_at)).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).expect("the change made during the start was never reloaded");
    }
}
