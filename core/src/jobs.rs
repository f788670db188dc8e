//! A periodic job's last run (audit checkpoints and retention, challenge clean-up, TLS
//! renewal): the store keeps it, the native API shows it.

use serde::{Deserialize, Serialize};

/// A job's last run, as `countersign jobs` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRun {
    /// The job's name.
    pub name: String,
    /// When the last run started, in milliseconds since the Unix epoch.
    pub last_started_ms: i64,
    /// When the last run ended, in milliseconds since the Unix epoch; `None` while it is still
    /// going.
    pub last_ended_ms: Option<i64>,
    /// `None` while the run is still going.
    pub last_ok: Option<bool>,
    /// What the last run reported; `None` while it is still going.
    pub last_detail: Option<String>,
    /// How many runs have ended, in all.
    pub runs: i64,
    /// How many of those failed.
    pub failures: i64,
}
