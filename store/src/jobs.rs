//! The last run of each periodic job (`job_run`, migration 0015).

use super::{Store, StoreError};
use crate::db::args;

pub use countersign_core::jobs::JobRun;

impl Store {
    /// Records that job `name` started at `at_ms` (milliseconds since the Unix epoch), clearing its
    /// last outcome.
    pub fn job_started(&self, name: &str, at_ms: i64) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.execute(
                "INSERT INTO job_run (name, last_started_ms) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_started_ms = ?2, last_ended_ms = NULL, last_ok = NULL,
                 last_detail = NULL",
                args![name, at_ms],
            )
        })?;
        Ok(())
    }

    /// Records how job `name`'s run ended at `at_ms` (milliseconds since the Unix epoch), counting
    /// it (and a failure when not `ok`). Does nothing for a job never started.
    pub fn job_ended(&self, name: &str, at_ms: i64, ok: bool, detail: &str) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.execute(
                "UPDATE job_run SET last_ended_ms = ?2, last_ok = ?3, last_detail = ?4, runs = runs + 1,
                 failures = failures + (1 - ?3) WHERE name = ?1",
                args![name, at_ms, ok, detail],
            )
        })?;
        Ok(())
    }

    /// Every job's last run, by name.
    pub fn job_runs(&self) -> Result<Vec<JobRun>, StoreError> {
        self.read(|conn| {
            conn.query_map(
                "SELECT name, last_started_ms, last_ended_ms, last_ok, last_detail, runs, failures FROM job_run ORDER BY name",
                args![],
                |r| {
                    Ok(JobRun {
                        name: r.get(0)?,
                        last_started_ms: r.get(1)?,
                        last_ended_ms: r.get(2)?,
                        last_ok: r.get(3)?,
                        last_detail: r.get(4)?,
                        runs: r.get(5)?,
                        failures: r.get(6)?,
                    })
                },
            )
        })
    }
}
