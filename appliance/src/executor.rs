//! The executor runs HSM work for requests on a few dedicated threads, and commits each
//! request's record (a signature audit row; a token check with its counter update and audit
//! row) before its caller gets the answer.
//!
//! Two kinds of threads: `hsm.workers` HSM workers, which only ever run jobs (HSM and plugin
//! work, and the reads a check needs on a connection of their own), and one writer, which owns
//! the write connection and commits the records the workers leave (group commit). A worker
//! that finishes a job puts its record on the pending list and takes the next job at once: it
//! never waits for the database. The writer commits every pending record in one transaction,
//! in the order they finished, then answers those callers; records that finish while it
//! commits wait for its next transaction, so the busier the appliance, the more records share
//! a commit. While jobs are still queued it lets records gather (up to [`COMMIT_AT`], or
//! [`MAX_WAIT`]), since every commit writes whole pages to the WAL whatever it holds.
//!
//! A token check's acceptance is a compare-and-set inside that transaction: of two checks that
//! read the same counter, the first in the batch wins and the second's record becomes a reject
//! before its audit row is written.
//!
//! It never answers before the record is committed, and never holds a request's data longer
//! than the request.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use countersign_hsm::Hsm;
use tokio::sync::oneshot;

use crate::store::{
    AuthAuditRow, CheckRecord, Committed, Reader, Record, SignatureAuditRow, Store, StoreError, TokenEffect, Writer,
};

/// Rows one commit covers at most.
const MAX_BATCH: usize = 256;
/// While more requests are queued, finished rows wait for a commit until this many have
/// gathered: every commit writes whole pages to the WAL, so one row per commit would write
/// tens of kilobytes per request. Bounds the extra wait at about this many HSM operations.
pub const COMMIT_AT: usize = 32;
/// The longest a finished row waits for its commit while requests stay queued (jobs that make
/// no record, such as reads, could otherwise keep the queue from ever emptying).
pub const MAX_WAIT: Duration = Duration::from_millis(2);

/// Where a job's answer goes once its record is committed.
trait Reply: Send {
    /// Whether the caller stopped waiting (its request timed out or its connection closed).
    fn gone(&self) -> bool;
    fn send(self: Box<Self>, committed: Result<Committed, String>);
}

/// A caller waiting for `value` and the commit's outcome.
struct Waiting<T> {
    tx: oneshot::Sender<Result<(T, Committed), String>>,
    value: T,
}

impl<T: Send> Reply for Waiting<T> {
    fn gone(&self) -> bool {
        self.tx.is_closed()
    }

    fn send(self: Box<Self>, committed: Result<Committed, String>) {
        let value = self.value;
        let _ = self.tx.send(committed.map(|c| (value, c)));
    }
}

/// Nobody waits (the job was abandoned before it ran).
struct Nobody;

impl Reply for Nobody {
    fn gone(&self) -> bool {
        true
    }

    fn send(self: Box<Self>, _: Result<Committed, String>) {}
}

/// What a job leaves behind once its HSM work is done: the record to commit, and how to
/// deliver the answer once the commit is known.
struct Completed {
    record: Record,
    reply: Box<dyn Reply>,
}

/// What a worker lends a job: the HSM, and a read connection of its own.
#[derive(Debug)]
pub struct WorkerCtx<'a> {
    /// The HSM handle.
    pub hsm: &'a Hsm,
    /// The worker's own read connection to the store.
    pub reader: &'a Reader,
}

/// A job leaves a record to commit, or nothing (a read).
type Job = Box<dyn FnOnce(&WorkerCtx<'_>) -> Option<Completed> + Send>;

/// What the workers and the writer share, under one lock: jobs waiting for a worker, and
/// records waiting for a commit.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    idle_workers: usize,
    /// Finished requests whose records are not committed yet, in the order they finished.
    pending: Vec<Completed>,
    /// When the oldest pending record finished.
    pending_since: Option<Instant>,
    /// Whether the writer sleeps until told that records are ready.
    writer_waiting: bool,
    /// Workers still running; the writer stops once none is left and nothing is pending.
    live_workers: usize,
    /// Set at shutdown: workers finish the queue and exit, the writer commits what they left.
    closing: bool,
}

impl Queue {
    /// A finished record joins the pending list, in the order records finish.
    fn finished(&mut self, done: Completed) {
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending.push(done);
    }

    /// Whether the pending records should be committed now: nothing else is queued (the
    /// workers have no more to add soon), enough gathered, the oldest waited long enough, or
    /// the executor is closing.
    fn commit_due(&self, now: Instant) -> bool {
        !self.pending.is_empty()
            && (self.jobs.is_empty()
                || self.pending.len() >= COMMIT_AT
                || self.closing
                || self.pending_since.is_some_and(|t| now.duration_since(t) >= MAX_WAIT))
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued (an idle worker takes it).
    job_ready: Condvar,
    /// Signalled when pending records are due a commit, and at shutdown.
    commit_ready: Condvar,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs and commits run outside the lock, so a poisoned queue is still a consistent queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to the worker threads. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

/// Why the executor gave no answer, or could not start. A request that fails this way was
/// not answered with a result: a signature or an accept is only ever returned committed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The commit of the batch holding this request's record failed.
    #[error("the audit row could not be written: {0}")]
    Audit(String),
    /// The job panicked on its worker, or the executor dropped it.
    #[error("the request was lost by a worker that failed; it was not answered")]
    Lost,
    /// A worker thread could not be spawned ([`Executor::start`]).
    #[error("the executor's worker thread could not be started: {0}")]
    Start(std::io::Error),
    /// The writer or a reader connection could not be opened ([`Executor::start`]).
    #[error("the executor's database connections could not be opened: {0}")]
    Store(#[from] StoreError),
}

impl Executor {
    /// Starts `workers` HSM worker threads, each with a read connection of its own, and the
    /// writer thread with the write connection.
    pub fn start(hsm: Hsm, store: &Store, workers: usize) -> Result<Executor, ExecutorError> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            job_ready: Condvar::new(),
            commit_ready: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        let executor = Executor { shared: shared.clone() };
        let spawn = |name: String, body: Box<dyn FnOnce() + Send>| -> Result<(), ExecutorError> {
            let t = std::thread::Builder::new().name(name).spawn(body).map_err(ExecutorError::Start)?;
            shared.threads.lock().unwrap_or_else(PoisonError::into_inner).push(t);
            Ok(())
        };
        let mut writer = store.writer()?;
        let readers = (0..workers).map(|_| store.reader()).collect::<Result<Vec<Reader>, StoreError>>()?;
        let for_writer = shared.clone();
        spawn("audit-writer".into(), Box::new(move || write_loop(&mut writer, &for_writer)))?;
        for (i, reader) in readers.into_iter().enumerate() {
            let (hsm, for_worker) = (hsm.clone(), shared.clone());
            shared.lock().live_workers += 1;
            let started = spawn(
                format!("hsm-worker-{i}"),
                Box::new(move || worker(&WorkerCtx { hsm: &hsm, reader: &reader }, &for_worker)),
            );
            if let Err(e) = started {
                shared.lock().live_workers -= 1;
                // The threads started so far stop: nothing was queued yet.
                executor.shutdown();
                return Err(e);
            }
        }
        Ok(executor)
    }

    /// Runs `work` on a worker; it returns the caller's value and completes `row` with what
    /// happened. Resolves once that row is committed, with the value and the row's id.
    ///
    /// If the caller stopped waiting (its request timed out) before a worker reached the job,
    /// the HSM work is skipped and the row says so.
    pub async fn run<T: Send + 'static>(
        &self,
        mut row: SignatureAuditRow,
        work: impl FnOnce(&Hsm, &mut SignatureAuditRow) -> T + Send + 'static,
    ) -> Result<(T, i64), ExecutorError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            if tx.is_closed() {
                row.result = "error".into();
                row.detail = Some("abandoned: the caller stopped waiting before the HSM was reached".into());
                return Some(Completed { record: Record::Signature(row), reply: Box::new(Nobody) });
            }
            let value = work(ctx.hsm, &mut row);
            Some(Completed { record: Record::Signature(row), reply: Box::new(Waiting { tx, value }) })
        });
        self.push(job);
        match rx.await {
            Ok(Ok((v, c))) => Ok((v, c.audit_id)),
            Ok(Err(e)) => Err(ExecutorError::Audit(e)),
            Err(_) => Err(ExecutorError::Lost),
        }
    }

    /// Runs a token check on a worker: `work` reads what it needs on the worker's connection,
    /// does its HSM and plugin work, and returns the record to commit with the caller's value.
    /// Resolves once the record is committed. A check whose caller stopped waiting before a
    /// worker reached it is not run at all (nothing is accepted that nobody will hear of).
    pub async fn check<T: Send + 'static>(
        &self,
        mut audit: AuthAuditRow,
        work: impl FnOnce(&WorkerCtx<'_>, AuthAuditRow) -> (CheckRecord, T) + Send + 'static,
    ) -> Result<(T, Committed), ExecutorError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            if tx.is_closed() {
                audit.result = "error".into();
                audit.detail = Some("abandoned: the caller stopped waiting before the check ran".into());
                let rec =
                    CheckRecord { effect: TokenEffect::None, audit, throttle: Default::default(), foreseen: None };
                return Some(Completed { record: Record::Check(rec), reply: Box::new(Nobody) });
            }
            let (mut rec, value) = work(ctx, audit);
            // An accept's new row seal, computed here while the other workers run: the writer
            // (one thread for all) then makes the change in one statement, without the HSM.
            ctx.reader.foresee(&mut rec);
            Some(Completed { record: Record::Check(rec), reply: Box::new(Waiting { tx, value }) })
        });
        self.push(job);
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ExecutorError::Audit(e)),
            Err(_) => Err(ExecutorError::Lost),
        }
    }

    /// Runs a read on a worker's connection (no record to commit).
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WorkerCtx<'_>) -> T + Send + 'static,
    ) -> Result<T, ExecutorError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let _ = tx.send(work(ctx));
            None
        });
        self.push(job);
        rx.await.map_err(|_| ExecutorError::Lost)
    }

    fn push(&self, job: Job) {
        let wake = {
            let mut q = self.shared.lock();
            q.jobs.push_back(job);
            q.idle_workers > 0
        };
        if wake {
            self.shared.job_ready.notify_one();
        }
    }

    /// Records an audit row without HSM work (key lists, public keys, refusals before the HSM).
    /// The row goes straight to the writer's pending list: a worker has nothing to do for it,
    /// and a hop through one would cost a thread hand-off per request.
    pub async fn audit_only(&self, row: SignatureAuditRow) -> Result<i64, ExecutorError> {
        let (tx, rx) = oneshot::channel();
        self.leave(Completed { record: Record::Signature(row), reply: Box::new(Waiting { tx, value: () }) });
        match rx.await {
            Ok(Ok(((), c))) => Ok(c.audit_id),
            Ok(Err(e)) => Err(ExecutorError::Audit(e)),
            Err(_) => Err(ExecutorError::Lost),
        }
    }

    /// Puts a finished record on the pending list, and wakes the writer if it is due a commit.
    fn leave(&self, done: Completed) {
        let wake = {
            let mut q = self.shared.lock();
            q.finished(done);
            let due = q.writer_waiting && q.commit_due(Instant::now());
            if due {
                q.writer_waiting = false;
            }
            due
        };
        if wake {
            self.shared.commit_ready.notify_one();
        }
    }

    /// Lets the workers finish every queued request and the writer commit its row, then stops
    /// them. Called at shutdown, after the sockets stopped taking requests.
    pub fn shutdown(&self) {
        self.shared.lock().closing = true;
        self.shared.job_ready.notify_all();
        self.shared.commit_ready.notify_all();
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// An HSM worker: runs jobs one at a time, leaves their records for the writer, and wakes it
/// when they are due a commit.
fn worker(ctx: &WorkerCtx<'_>, shared: &Shared) {
    let mut done: Option<Completed> = None;
    loop {
        let job = {
            let mut q = shared.lock();
            if let Some(d) = done.take() {
                q.finished(d);
            }
            let job = loop {
                // Tell the writer before taking the next job: once this queue is empty, nobody
                // else may come along to.
                if q.writer_waiting && q.commit_due(Instant::now()) {
                    q.writer_waiting = false;
                    shared.commit_ready.notify_one();
                }
                if let Some(job) = q.jobs.pop_front() {
                    break Some(job);
                }
                if q.closing {
                    break None;
                }
                q.idle_workers += 1;
                q = shared.job_ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                q.idle_workers -= 1;
            };
            let Some(job) = job else {
                q.live_workers -= 1;
                drop(q);
                shared.commit_ready.notify_one();
                return;
            };
            job
        };
        // A job that panics loses only its own answer (its caller sees `Lost`).
        done = std::panic::catch_unwind(AssertUnwindSafe(|| job(ctx))).ok().flatten();
    }
}

/// The writer: commits every pending record in one transaction once they are due, answers
/// those callers, and repeats; at shutdown, once the workers are gone and nothing is pending.
fn write_loop(writer: &mut Writer, shared: &Shared) {
    loop {
        let mut batch: Vec<Completed> = {
            let mut q = shared.lock();
            loop {
                let now = Instant::now();
                if q.commit_due(now) {
                    break;
                }
                if q.closing && q.live_workers == 0 && q.pending.is_empty() {
                    return;
                }
                // Records wait while jobs are queued: wake up when the oldest has waited long
                // enough, or when a worker says they are due.
                q.writer_waiting = true;
                q = match q.pending_since {
                    Some(t) => {
                        let left = MAX_WAIT.saturating_sub(now.duration_since(t));
                        shared.commit_ready.wait_timeout(q, left).unwrap_or_else(PoisonError::into_inner).0
                    }
                    None => shared.commit_ready.wait(q).unwrap_or_else(PoisonError::into_inner),
                };
                q.writer_waiting = false;
            }
            let n = q.pending.len().min(MAX_BATCH);
            let batch = q.pending.drain(..n).collect();
            q.pending_since = if q.pending.is_empty() { None } else { Some(Instant::now()) };
            batch
        };
        match commit_records(writer, &mut batch) {
            Ok(done) => {
                for (c, d) in batch.into_iter().zip(done) {
                    c.reply.send(Ok(d));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "audit write failed; the requests fail");
                for c in batch {
                    c.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Writes a batch in one transaction, in order (so the first of two checks racing for a
/// counter wins).
fn commit_records(writer: &mut Writer, batch: &mut [Completed]) -> Result<Vec<Committed>, StoreError> {
    for c in batch.iter_mut() {
        if let Record::Check(rec) = &mut c.record {
            if c.reply.gone() {
                abandon(rec);
            }
        }
    }
    writer.commit(batch.iter_mut().map(|c| &mut c.record))
}

/// A check whose caller stopped waiting before its record was committed accepts nothing: an
/// accept nobody hears of would use up the OTP (the user, told "timeout", would try the same
/// code again and be refused). Failures still count: a wrong guess stays a guess.
fn abandon(rec: &mut CheckRecord) {
    let accepting = matches!(
        rec.effect,
        TokenEffect::Pass
            | TokenEffect::Accept { .. }
            | TokenEffect::AnswerChallenge { .. }
            | TokenEffect::AcceptChallenge { .. }
            | TokenEffect::AcceptSignIn { .. }
    );
    if accepting {
        rec.effect = TokenEffect::None;
        rec.audit.result = "error".into();
        rec.audit.detail = Some(format!(
            "abandoned: the caller stopped waiting before the accept was committed, so nothing was accepted ({})",
            rec.audit.detail.as_deref().unwrap_or("")
        ));
    }
}
