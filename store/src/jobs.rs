//! The last run of each periodic job (`job_run`, migration 0015).

use super::{Store, StoreError};
use crate::db::args;

pub use countersign_core::jobs::JobRun;

impl Store {
    /// Claims this interval's run of job `name` at `at_ms` (milliseconds since the Unix epoch),
    /// clearing its last outcome; `false`: another node (or an earlier run here) started it
    /// less than 90 % of `every_ms` ago, or it is still running and started less than
    /// `2 × every_ms + 60 s` ago (past that, its node is taken for dead). One statement, a
    /// compare-and-set on the job's row, so every appliance on one database runs each job
    /// once per interval.
    pub fn claim_job(&self, name: &str, at_ms: i64, every_ms: i64) -> Result<bool, StoreError> {
        let recent = at_ms - every_ms / 10 * 9;
        let stale = at_ms - every_ms.saturating_mul(2) - 60_000;
        let claimed = self.read(|conn| {
            conn.query_opt(
                "INSERT INTO job_run (name, last_started_ms) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_started_ms = ?2, last_ended_ms = NULL, last_ok = NULL,
                     last_detail = NULL
                 WHERE job_run.last_started_ms <= ?3 AND (job_run.last_ended_ms IS NOT NULL OR job_run.last_started_ms <= ?4)
                 RETURNING name",
                args![name, at_ms, recent, stale],
                |_| Ok(()),
            )
        })?;
        Ok(claimed.is_some())
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
