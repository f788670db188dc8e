//! The periodic jobs as the native API shows them (`GET /v1/admin/jobs`).
//!
//! A job's last run is the core's [`JobRun`] as the store keeps it: re-exported, not copied.

use serde::{Deserialize, Serialize};

pub use countersign_core::jobs::JobRun;

/// `GET /v1/admin/jobs`: every job's last run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    /// The jobs, by name.
    pub jobs: Vec<JobRun>,
}
