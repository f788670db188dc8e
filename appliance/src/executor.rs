//! The executor runs HSM work for requests on a few dedicated threads, in batches, and commits
//! each batch's records (signature audit rows; token checks with their counter updates and
//! audit rows) in one transaction before any caller in the batch gets its answer.
//!
//! Each worker takes one request at a time, so every worker stays busy with HSM work. Records
//! are committed by group commit without a thread of their own: a finished request puts its
//! record on the pending list; while more requests are queued the worker goes on, and once the
//! queue is empty (or enough records gathered) whichever worker finds the database free
//! commits every pending record in one transaction and answers those callers. Under load the
//! workers never sleep and commits cover many records, so a request costs one queue push, a
//! share of one commit and one reply, and no extra thread hand-off.
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
const COMMIT_AT: usize = 32;

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

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    idle_workers: usize,
    /// Set at shutdown: workers finish the queue, commit, and exit.
    closing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Finished requests whose audit rows are not committed yet.
    pending: Mutex<Vec<Completed>>,
    /// The one writer; holding it makes a worker the committer.
    conn: Mutex<Writer>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock, so a poisoned queue is still a consistent queue.
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
    /// Starts `workers` threads; they share one writer connection for their group commits.
    pub fn start(hsm: Hsm, store: &Store, workers: usize) -> Result<Executor, ExecutorError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            pending: Mutex::new(Vec::new()),
            conn: Mutex::new(store.writer()?),
            threads: Mutex::new(Vec::new()),
        });
        for i in 0..workers.max(1) {
            let (hsm, for_worker) = (hsm.clone(), shared.clone());
            let reader = store.reader()?;
            let t = std::thread::Builder::new()
                .name(format!("hsm-worker-{i}"))
                .spawn(move || worker(&WorkerCtx { hsm: &hsm, reader: &reader }, &for_worker))
                .map_err(ExecutorError::Start)?;
            shared.threads.lock().unwrap_or_else(PoisonError::into_inner).push(t);
        }
        Ok(Executor { shared })
    }

    /// Runs `work` on a worker; it returns the caller's value and completes `row` with what
    /// happened. Resolves once that row is committed, with the value and the row's id.
    ///
    /// If the caller stopped waiting (its request timed out) before a worker reached the job,
    /// the HSM work is skipped and the row says so.
    pub async fn run<T: Send + 'static>(
        &self,
        row: SignatureAuditRow,
        work: impl FnOnce(&Hsm, &mut SignatureAuditRow) -> T + Send + 'static,
    ) -> Result<(T, i64), ExecutorError> {
        self.submit(row, true, work).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        mut row: SignatureAuditRow,
        has_hsm_work: bool,
        work: impl FnOnce(&Hsm, &mut SignatureAuditRow) -> T + Send + 'static,
    ) -> Result<(T, i64), ExecutorError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            if has_hsm_work && tx.is_closed() {
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
                let rec = CheckRecord { effect: TokenEffect::None, audit, throttle: Default::default() };
                return Some(Completed { record: Record::Check(rec), reply: Box::new(Nobody) });
            }
            let (rec, value) = work(ctx, audit);
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
            self.shared.ready.notify_one();
        }
    }

    /// Records an audit row without HSM work (refusals, errors before the HSM).
    pub async fn audit_only(&self, row: SignatureAuditRow) -> Result<i64, ExecutorError> {
        self.submit(row, false, |_, _| ()).await.map(|(_, id)| id)
    }

    /// Lets the workers finish every queued request and commit its row, then stops them.
    /// Called at shutdown, after the sockets stopped taking requests.
    pub fn shutdown(&self) {
        self.shared.lock().closing = true;
        self.shared.ready.notify_all();
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn worker(ctx: &WorkerCtx<'_>, shared: &Shared) {
    loop {
        let job = {
            let mut q = shared.lock();
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closing {
                    drop(q);
                    commit_pending(shared);
                    return;
                }
                q.idle_workers += 1;
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                q.idle_workers -= 1;
            }
        };
        // A job that panics loses only its own answer (its caller sees `Lost`).
        let pending = match std::panic::catch_unwind(AssertUnwindSafe(|| job(ctx))) {
            Ok(Some(done)) => {
                let mut p = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                p.push(done);
                p.len()
            }
            // A read, or a job that panicked: nothing new to commit.
            Ok(None) | Err(_) => shared.pending.lock().unwrap_or_else(PoisonError::into_inner).len(),
        };
        // More work queued: sign it first and commit the rows together, unless enough have
        // gathered. Nothing queued: commit now, nobody else will come along to do it.
        if pending < COMMIT_AT && !shared.lock().jobs.is_empty() {
            continue;
        }
        commit_pending(shared);
    }
}

/// Group commit: if no other worker is committing, commit every pending row and answer those
/// callers; repeat while rows keep arriving. If another worker is committing, it will pick up
/// the rows added meanwhile (it re-checks the list after releasing the database), so no row is
/// ever left waiting.
fn commit_pending(shared: &Shared) {
    loop {
        let mut conn = match shared.conn.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let batch: Vec<Completed> = {
            let mut p = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let n = p.len().min(MAX_BATCH);
            p.drain(..n).collect()
        };
        if batch.is_empty() {
            drop(conn);
            if shared.pending.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
                return;
            }
            continue;
        }
        let mut batch = batch;
        let result = commit_records(&mut conn, &mut batch);
        drop(conn);
        match result {
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
