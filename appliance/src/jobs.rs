//! The daemon's periodic jobs in one place: signing audit checkpoints, audit retention, and
//! removing expired challenges and old deliveries. Each runs on its own interval; every run is
//! recorded in `job_run` (start, end, outcome, detail, counts) for `countersign jobs`. Several
//! appliances on one database run each job once per interval: a run starts only after its
//! claim on the job's row won ([`Store::claim_job`]).
//!
//! Fail counters need no job: a locked token opens at its first check after its clear time,
//! decided in the check's own transaction. A failed run is logged and recorded, and the job
//! runs again at its next interval; a job never runs twice at once.

use countersign_core::error::Refusal;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{JobRun, Store, StoreError};

/// One run of a job: what it did, or why it failed.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Logs a run record that could not be written: the job itself carries on.
fn logged(name: &str, written: Result<Result<(), StoreError>, tokio::task::JoinError>) {
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(job = name, error = %e, "cannot record a job run"),
        Err(e) => tracing::warn!(job = name, error = %e, "cannot record a job run"),
    }
}

/// Runs and records the periodic jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: Arc<Store>,
    clock: Clock,
}

impl Jobs {
    /// Jobs recorded in `store`, timed by `clock`.
    pub fn new(store: Arc<Store>, clock: Clock) -> Jobs {
        Jobs { store, clock }
    }

    /// Runs `job` every `every` (the first run one interval after start), recording each run.
    pub fn spawn(&self, name: &'static str, every: Duration, job: impl Fn() -> JobFuture + Send + Sync + 'static) {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                jobs.run_once(name, every, &job).await;
            }
        });
    }

    /// Runs `job` once unless another appliance on the same database (or this one, before a
    /// restart) already started this interval's run ([`Store::claim_job`]).
    async fn run_once(&self, name: &'static str, every: Duration, job: &(impl Fn() -> JobFuture + Send + Sync)) {
        let started = self.clock.now_ms();
        let store = self.store.clone();
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        match tokio::task::spawn_blocking(move || store.claim_job(name, started, every_ms)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::debug!(job = name, "another appliance ran this interval's run");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(job = name, error = %e, "cannot claim a job run; it is tried at its next interval");
                return;
            }
            Err(e) => {
                tracing::warn!(job = name, error = %e, "cannot claim a job run; it is tried at its next interval");
                return;
            }
        }
        let run = job();
        let (ok, detail) = match run.await {
            Ok(d) => (true, d),
            Err(e) => {
                tracing::warn!(job = name, error = %e, "periodic job failed; it runs again at its next interval");
                (false, e)
            }
        };
        let ended = self.clock.now_ms();
        let store = self.store.clone();
        logged(name, tokio::task::spawn_blocking(move || store.job_ended(name, ended, ok, &detail)).await);
    }

    /// Every job's last run and its counts, by name (`countersign jobs`).
    pub async fn list(&self) -> Result<Vec<JobRun>, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.job_runs())
            .await
            .map_err(|e| StoreError::Refused(Refusal::Invalid(format!("the job list could not be read: {e}"))))?
    }
}
