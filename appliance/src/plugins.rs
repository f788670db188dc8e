//! The daemon's plugin host: at start it verifies every plugin directory against the trusted
//! publishers (signature, library hash, ABI, appliance version) and starts one worker per
//! accepted plugin on the verified bytes. Refused plugins are logged and audited with their
//! reason and the daemon runs on without them.
//!
//! Calls go to the plugin's worker with a deadline. A worker that crashes, hangs past the
//! deadline or breaks the protocol fails that call only; it is started again at once the
//! first time, then with a backoff that doubles while it keeps failing, and every restart is
//! audited. While a call runs, the plugin's host requests are served by the caller's closure,
//! but only those capabilities its signed manifest lists, at most [`MAX_HOST_REQUESTS`] of
//! them (and [`MAX_TRANSPORT_REQUESTS`] transport requests) per call, and no more HMACs than
//! the plugin's budget over time (`plugins.host_macs_per_s`, shared by its workers). A request
//! past any bound (or one the caller's closure finds out of bounds: an [`Overreach`]) is
//! refused, logged and audited (`plugin/overreach`), and the call fails whatever the plugin
//! answers. Workers run with `plugins.memory_limit_mb` and `plugins.cpu_limit_s`; a worker
//! that has used half of its processor time is replaced between calls. Text a plugin
//! supplies (error messages, answers' details, its stderr) reaches logs, the audit and
//! answers only through [`plugin_text`]: bounded and without control characters.
//!
//! It never loads a library itself (the worker does), never trusts a plugin it could not
//! verify, and never gives a plugin anything but the answers to the capabilities it may use.

use countersign_core::caller::Caller;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use countersign_plugin_abi::abi::Status;
use countersign_plugin_abi::protocol::PROTOCOL_VERSION;
use countersign_plugin_abi::protocol::{Envelope, HostRequest, HostResponse, PluginRequest, PluginResponse};
/// Resource limits of one worker process ([`PluginSettings::limits`]).
pub use countersign_plugin_ipc::WorkerLimits;
use countersign_plugin_ipc::{is_plugin_text, plugin_text, PluginProcess, SealedLibrary};
use countersign_plugin_manifest::{check_library, verify_dir, Manifest, TrustedPublishers};

use crate::store::{AuthAuditRow, Store};
pub use countersign_api::plugin::{LoadedReport, PluginReport, RefusedReport};

/// A plugin that passed verification, and its workers: identical processes, so that
/// requests on several executor threads do not queue behind one another.
#[derive(Debug)]
struct Loaded {
    manifest: Manifest,
    /// The verified library, sealed, kept to start workers again on exactly these bytes.
    library: SealedLibrary,
    workers: Vec<Mutex<Worker>>,
    /// Where the next call starts looking for an idle worker.
    next: std::sync::atomic::AtomicUsize,
    /// Worker restarts since start (for `/metrics`, read without taking a worker's lock).
    restarts: std::sync::atomic::AtomicU64,
    /// HMACs the plugin may still ask for (a token bucket over all its workers).
    macs: Mutex<Bucket>,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Bucket {
        Bucket { tokens: burst, at: Instant::now() }
    }

    /// Takes `n` tokens if there are that many (after refilling), else takes none.
    fn take(&mut self, n: u64, rate: f64, burst: f64, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(burst);
        self.at = now;
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// Most host requests a plugin may make during one call (a token plugin needs one or two,
/// a gateway one).
pub const MAX_HOST_REQUESTS: u32 = 16;
/// Most transport requests (`http_request`, `smtp_send`) a gateway may make per delivery.
pub const MAX_TRANSPORT_REQUESTS: u32 = 2;
/// Seconds of `host_macs_per_s` a plugin may save up (a resync of the largest window fits).
const MAC_BURST_SECONDS: f64 = 5.0;

/// A host request the plugin had no business making (beyond what the call needs or may
/// have): it is refused, the call fails whatever the plugin answers, and it is audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overreach(pub String);

/// A plugin's worker process and its restart state.
#[derive(Debug)]
struct Worker {
    process: Option<PluginProcess>,
    /// Failures since the last successful call.
    failures: u32,
    /// No restart before this instant.
    not_before: Option<Instant>,
    restarts: u64,
    /// When the process's processor time was last read, and what it was: see
    /// [`PluginHost::retire_if_spent`].
    cpu_seen: Option<(Instant, Duration)>,
}

/// Why a plugin call failed. The request fails; the daemon and other plugins go on.
#[derive(Debug, thiserror::Error)]
pub enum PluginCallError {
    /// No plugin of that name passed verification at start.
    #[error("no plugin {0} is loaded; check `countersign plugin list`")]
    NotLoaded(String),
    /// The plugin's worker is down and waiting out its restart backoff.
    #[error("plugin {plugin} is restarting after failures; try again in {wait_ms} ms")]
    Restarting {
        /// The plugin's name.
        plugin: String,
        /// Milliseconds until the next restart may be tried.
        wait_ms: u64,
    },
    /// The worker crashed, hung past `plugins.call_timeout_ms` or broke the protocol; it is
    /// restarted.
    #[error("plugin {plugin}'s worker failed: {reason}")]
    Worker {
        /// The plugin's name.
        plugin: String,
        /// What happened, as plugin text (bounded, no control characters).
        reason: String,
    },
    /// The plugin answered with an error status; its worker goes on.
    #[error("plugin {plugin} failed the request ({status:?}): {message}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// The ABI status it returned.
        status: Status,
        /// Its message, as plugin text.
        message: String,
    },
    /// The plugin's answer is not a message of this protocol version.
    #[error("plugin {plugin} answered something this appliance does not understand: {reason}")]
    Protocol {
        /// The plugin's name.
        plugin: String,
        /// Why the answer was not understood.
        reason: String,
    },
    /// The plugin asked the host for more than the call allows; the call failed.
    #[error("plugin {plugin} asked for more than the call allows: {reason}")]
    Overreach {
        /// The plugin's name.
        plugin: String,
        /// The first request refused, and why.
        reason: String,
    },
    /// The host could not serve the plugin's request because the HSM did not answer.
    #[error("{0}")]
    HsmUnavailable(String),
}

/// A message of this protocol version, or why not.
pub(crate) fn decode<T: for<'de> serde::Deserialize<'de>>(text: &str) -> Result<T, String> {
    let env: Envelope<T> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if env.protocol == PROTOCOL_VERSION {
        Ok(env.body)
    } else {
        Err(format!("protocol {} is not {PROTOCOL_VERSION}", env.protocol))
    }
}

/// The capability a host request uses, as manifests name it.
pub(crate) fn capability(req: &HostRequest) -> &'static str {
    match req {
        HostRequest::Hmac { .. } => "hmac",
        HostRequest::Verify { .. } => "verify",
        HostRequest::AesEcbDecrypt { .. } => "aes_ecb_decrypt",
        HostRequest::Random { .. } => "random",
        HostRequest::Now => "now",
        HostRequest::HttpRequest { .. } => "http_request",
        HostRequest::SmtpSend { .. } => "smtp_send",
    }
}

/// The plugins that passed verification and their worker processes, started once at start
/// ([`PluginHost::start`]). Shared by the services behind an `Arc`.
#[derive(Debug, Default)]
pub struct PluginHost {
    loaded: Vec<Loaded>,
    refused: Vec<RefusedReport>,
    worker_bin: PathBuf,
    start_timeout: Duration,
    call_timeout: Duration,
    max_backoff: Duration,
    limits: WorkerLimits,
    macs_per_s: f64,
    /// Where restarts are audited.
    store: Option<Arc<Store>>,
}

/// Where plugins come from, who may sign them, and their workers' limits: resolved values,
/// read from the configuration by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSettings {
    /// One subdirectory per plugin (library + signed plugin.toml). A missing directory means
    /// no plugins.
    pub dir: PathBuf,
    /// Trusted publishers shipped with the appliance (a missing file: none).
    pub trusted_publishers: PathBuf,
    /// More trusted publishers (a development key); `None`: none.
    pub extra_trusted_publishers: Option<PathBuf>,
    /// The worker binary that loads one plugin.
    pub worker: PathBuf,
    /// How long a worker may take to load its plugin.
    pub start_timeout: Duration,
    /// Worker processes per plugin (one at least is started).
    pub instances: usize,
    /// How long one plugin call may take before its worker is killed and restarted.
    pub call_timeout: Duration,
    /// Longest wait between restarts of a worker that keeps failing.
    pub max_restart_backoff: Duration,
    /// Address space and processor time of one worker process.
    pub limits: WorkerLimits,
    /// HMACs one plugin may have the host compute per second, over all its workers (a burst
    /// of five seconds' worth); past it, calls fail and the refusal is audited.
    pub host_macs_per_s: u64,
}

fn trusted(cfg: &PluginSettings) -> Result<TrustedPublishers, String> {
    let mut t = if cfg.trusted_publishers.exists() {
        TrustedPublishers::load(&cfg.trusted_publishers).map_err(|e| e.to_string())?
    } else {
        TrustedPublishers::default()
    };
    if let Some(extra) = &cfg.extra_trusted_publishers {
        if extra.exists() {
            t.publisher.extend(TrustedPublishers::load(extra).map_err(|e| e.to_string())?.publisher);
        }
    }
    Ok(t)
}

/// A plugin whose signed manifest and library passed every check, its library sealed.
struct Verified {
    manifest: Manifest,
    library: SealedLibrary,
}

/// Checks the plugin in `dir` (signature by a trusted publisher, ABI, appliance version),
/// copies its library into a sealed memfd and hashes what the memfd holds: the bytes checked
/// are the bytes every worker of it will load, and the daemon keeps no copy on its heap.
fn verified(dir: &Path, trusted: &TrustedPublishers, abi: u16) -> Result<Verified, String> {
    let (manifest, path) = verify_dir(dir, trusted, abi, env!("CARGO_PKG_VERSION")).map_err(|e| e.to_string())?;
    let unreadable = |e: countersign_plugin_ipc::IpcError| format!("cannot read {}: {e}", path.display());
    let library = SealedLibrary::from_file(&path).map_err(unreadable)?;
    let bytes = library.reader().map_err(unreadable)?;
    check_library(&manifest, &path, bytes).map_err(|e| e.to_string())?;
    Ok(Verified { manifest, library })
}

impl PluginHost {
    /// Verifies and starts every plugin under `cfg.dir`. Blocking.
    pub fn start(cfg: &PluginSettings, store: Option<Arc<Store>>) -> PluginHost {
        let mut host = PluginHost {
            worker_bin: cfg.worker.clone(),
            start_timeout: cfg.start_timeout,
            call_timeout: cfg.call_timeout,
            max_backoff: cfg.max_restart_backoff,
            limits: cfg.limits,
            macs_per_s: cfg.host_macs_per_s as f64,
            store,
            ..PluginHost::default()
        };
        let entries = match std::fs::read_dir(&cfg.dir) {
            Ok(e) => e,
            Err(_) => {
                tracing::info!(dir = %cfg.dir.display(), "no plugin directory; running without plugins");
                return host;
            }
        };
        let trusted = match trusted(cfg) {
            Ok(t) => t,
            Err(reason) => {
                tracing::error!(%reason, "cannot read the trusted plugin publishers; no plugin is loaded");
                host.audit("plugin/refuse", "refused", format!("{}: {reason}", cfg.dir.display()));
                host.refused.push(RefusedReport { dir: cfg.dir.clone(), reason });
                return host;
            }
        };
        let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        let abi = countersign_plugin_abi::abi::ABI_MAJOR;
        for dir in dirs {
            let outcome = verified(&dir, &trusted, abi).and_then(|v| {
                let timeout = cfg.start_timeout;
                let limits = host.limits;
                let p = PluginProcess::spawn(&cfg.worker, &v.library, timeout, limits)
                    .map_err(|e| plugin_text(&e.to_string()))?;
                if p.name != v.manifest.name || p.kind != v.manifest.kind {
                    return Err(format!(
                        "the library says it is {} ({}), the manifest says {} ({})",
                        plugin_text(&p.name),
                        plugin_text(&p.kind),
                        v.manifest.name,
                        v.manifest.kind
                    ));
                }
                let mut workers = vec![Mutex::new(Worker::running(p))];
                for _ in 1..cfg.instances.max(1) {
                    let more = PluginProcess::spawn(&cfg.worker, &v.library, timeout, limits)
                        .map_err(|e| plugin_text(&e.to_string()))?;
                    workers.push(Mutex::new(Worker::running(more)));
                }
                Ok(Loaded {
                    manifest: v.manifest,
                    library: v.library,
                    workers,
                    next: 0.into(),
                    restarts: 0.into(),
                    macs: Mutex::new(Bucket::full(host.macs_per_s * MAC_BURST_SECONDS)),
                })
            });
            match outcome {
                Ok(l) => {
                    tracing::info!(plugin = %l.manifest.name, version = %l.manifest.version, "plugin loaded");
                    host.loaded.push(l);
                }
                Err(reason) => {
                    tracing::warn!(dir = %dir.display(), %reason, "plugin refused");
                    host.audit("plugin/refuse", "refused", format!("{}: {reason}", dir.display()));
                    host.refused.push(RefusedReport { dir, reason });
                }
            }
        }
        host
    }

    /// What `countersign plugin list` shows: loaded plugins with their workers' state, and
    /// refused ones.
    pub fn report(&self) -> PluginReport {
        PluginReport {
            loaded: self
                .loaded
                .iter()
                .map(|l| {
                    let (mut running, mut restarts) = (true, 0);
                    for w in &l.workers {
                        let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
                        running &= w.process.as_mut().is_some_and(PluginProcess::alive);
                        restarts += w.restarts;
                    }
                    LoadedReport {
                        name: l.manifest.name.clone(),
                        version: l.manifest.version.clone(),
                        kind: l.manifest.kind.clone(),
                        capabilities: l.manifest.capabilities.iter().cloned().collect(),
                        publisher: l.manifest.signature.as_ref().map(|s| s.publisher.clone()).unwrap_or_default(),
                        running,
                        restarts,
                        instances: l.workers.len(),
                    }
                })
                .collect(),
            refused: self.refused.clone(),
        }
    }
}

impl PluginHost {
    /// Worker restarts per loaded plugin since the daemon started. Takes no worker's lock.
    pub fn restarts(&self) -> Vec<(String, u64)> {
        self.loaded
            .iter()
            .map(|l| (l.manifest.name.clone(), l.restarts.load(std::sync::atomic::Ordering::Relaxed)))
            .collect()
    }

    /// Why the plugins are not ready to serve: a worker that is dead or waiting out a restart
    /// backoff. Never waits for a worker: one busy with a call is alive.
    pub fn not_ready(&self) -> Vec<String> {
        let mut why = Vec::new();
        for l in &self.loaded {
            for (i, w) in l.workers.iter().enumerate() {
                let mut w = match w.try_lock() {
                    Ok(g) => g,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                };
                if !w.process.as_mut().is_some_and(PluginProcess::alive) {
                    let backoff = w.not_before.is_some_and(|t| t > Instant::now());
                    why.push(format!(
                        "plugin {} worker {i} is {}",
                        l.manifest.name,
                        if backoff { "waiting out its restart backoff" } else { "not running" }
                    ));
                }
            }
        }
        why
    }
}

impl Worker {
    fn running(p: PluginProcess) -> Worker {
        Worker { process: Some(p), failures: 0, not_before: None, restarts: 0, cpu_seen: None }
    }
}

impl Loaded {
    /// An idle worker if there is one, else the next in turn (waiting for it). A panic while
    /// holding a worker leaves at worst a dead process, which the next call replaces.
    fn lock(&self) -> std::sync::MutexGuard<'_, Worker> {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            match self.workers[(start + i) % n].try_lock() {
                Ok(g) => return g,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        self.workers[start % n].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PluginHost {
    /// Whether a plugin of this name and kind is loaded.
    pub fn has(&self, name: &str, kind: &str) -> bool {
        self.loaded.iter().any(|l| l.manifest.name == name && l.manifest.kind == kind)
    }

    /// Sends `req` to plugin `name` and serves its host requests with `serve` (after checking
    /// each against the manifest and the call's and the plugin's budgets). Blocking: call it
    /// from a worker thread.
    pub fn call(
        &self,
        name: &str,
        req: &PluginRequest,
        serve: &mut dyn FnMut(HostRequest) -> Result<HostResponse, Overreach>,
    ) -> Result<PluginResponse, PluginCallError> {
        let plugin = self
            .loaded
            .iter()
            .find(|l| l.manifest.name == name)
            .ok_or_else(|| PluginCallError::NotLoaded(name.into()))?;
        let request = serde_json::to_string(&Envelope::new(req))
            .map_err(|e| PluginCallError::Protocol { plugin: name.into(), reason: e.to_string() })?;
        let mut worker = plugin.lock();
        self.ensure_running(plugin, &mut worker)?;
        let Some(process) = worker.process.as_mut() else {
            return Err(PluginCallError::Worker { plugin: name.into(), reason: "not running".into() });
        };
        // The first request out of bounds; the call fails once it is set.
        let mut overreach: Option<String> = None;
        let (mut requests, mut transports) = (0u32, 0u32);
        // The deadline moves on only by the time spent serving an admitted request (see
        // `PluginProcess::call`): decoding the plugin's frame and refusing it are the plugin's.
        let mut host = |text: &str| -> (Status, String, Duration) {
            let mut hosts_own = Duration::ZERO;
            let answer = match decode::<HostRequest>(text) {
                Ok(body) => {
                    let checked = self.admit(plugin, &body, &mut requests, &mut transports).and_then(|()| {
                        let serving = Instant::now();
                        let served = serve(body);
                        hosts_own = serving.elapsed();
                        served
                    });
                    match checked {
                        Ok(answer) => answer,
                        Err(Overreach(reason)) => {
                            let refused = HostResponse::Refused { reason: reason.clone() };
                            overreach.get_or_insert(reason);
                            refused
                        }
                    }
                }
                Err(e) => {
                    let reason = format!("bad host request: {}", plugin_text(&e));
                    overreach.get_or_insert(reason.clone());
                    HostResponse::Refused { reason }
                }
            };
            (Status::Ok, serde_json::to_string(&Envelope::new(answer)).unwrap_or_default(), hosts_own)
        };
        let answer = process.call(&request, self.call_timeout, &mut host);
        for line in process.drain_stderr() {
            tracing::warn!(plugin = name, stderr = %line, "plugin worker wrote to stderr");
        }
        let failed = match &answer {
            Ok(_) => {
                // The worker answered, so it is healthy, even if the plugin reported an error.
                worker.failures = 0;
                self.retire_if_spent(plugin, &mut worker);
                None
            }
            Err(e) => {
                // Dead, killed at the deadline or for breaking the protocol: replaced whatever
                // else went wrong in the call (an overreach included).
                let reason = plugin_text(&e.to_string());
                tracing::error!(plugin = name, %reason, "plugin worker failed; restarting it");
                worker.process = None;
                worker.failures += 1;
                worker.not_before = Some(Instant::now() + self.backoff(worker.failures));
                // The first failure restarts at once, so the next request finds a worker.
                let _ = self.ensure_running(plugin, &mut worker);
                Some(reason)
            }
        };
        if let Some(reason) = overreach {
            tracing::warn!(plugin = name, %reason, "plugin asked the host for more than the call allows");
            self.audit("plugin/overreach", "refused", format!("plugin {name}: {reason}"));
            return Err(PluginCallError::Overreach { plugin: name.into(), reason });
        }
        match (answer, failed) {
            (Ok((Status::Ok, text)), _) => decode::<PluginResponse>(&text)
                .map(sanitise_response)
                .map_err(|reason| PluginCallError::Protocol { plugin: name.into(), reason: plugin_text(&reason) }),
            // The worker lives on (a panic is caught in the plugin); only this call failed.
            (Ok((status, message)), _) => {
                Err(PluginCallError::Failed { plugin: name.into(), status, message: plugin_text(&message) })
            }
            (Err(e), reason) => Err(PluginCallError::Worker {
                plugin: name.into(),
                reason: reason.unwrap_or_else(|| plugin_text(&e.to_string())),
            }),
        }
    }

    /// The bounds every host request passes before the caller's closure sees it: the
    /// manifest lists the capability, the call has requests left, and (for `hmac`) the
    /// plugin's budget over time has MACs left.
    fn admit(
        &self,
        plugin: &Loaded,
        req: &HostRequest,
        requests: &mut u32,
        transports: &mut u32,
    ) -> Result<(), Overreach> {
        let cap = capability(req);
        if !plugin.manifest.capabilities.contains(cap) {
            return Err(Overreach(format!("capability {cap} is not in the plugin's manifest")));
        }
        *requests += 1;
        if *requests > MAX_HOST_REQUESTS {
            return Err(Overreach(format!("more than {MAX_HOST_REQUESTS} host requests in one call")));
        }
        if matches!(req, HostRequest::HttpRequest { .. } | HostRequest::SmtpSend { .. }) {
            *transports += 1;
            if *transports > MAX_TRANSPORT_REQUESTS {
                return Err(Overreach(format!("more than {MAX_TRANSPORT_REQUESTS} transport requests in one call")));
            }
        }
        if let HostRequest::Hmac { messages, .. } = req {
            let burst = self.macs_per_s * MAC_BURST_SECONDS;
            let mut bucket = plugin.macs.lock().unwrap_or_else(PoisonError::into_inner);
            if !bucket.take(messages.len() as u64, self.macs_per_s, burst, Instant::now()) {
                return Err(Overreach(format!(
                    "{} HMACs are over the plugin's budget of {} a second",
                    messages.len(),
                    self.macs_per_s
                )));
            }
        }
        Ok(())
    }

    /// Replaces a worker that has used half of its processor time limit, between calls, so
    /// that no healthy worker is killed by the limit in the middle of one.
    ///
    /// The time is read from `/proc` (4 system calls and a parse, on every check), so only
    /// when it could have reached half the limit since it was last read: a process uses at
    /// most every CPU for the time that passed.
    fn retire_if_spent(&self, plugin: &Loaded, worker: &mut Worker) {
        static CPUS: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
            std::thread::available_parallelism().map_or(64, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        });
        let half = Duration::from_millis(self.limits.cpu_s.saturating_mul(500));
        if let Some((at, spent)) = worker.cpu_seen {
            if spent.saturating_add(at.elapsed().saturating_mul(*CPUS)) < half {
                return;
            }
        }
        let spent = worker.process.as_ref().and_then(PluginProcess::cpu_time);
        worker.cpu_seen = spent.map(|t| (Instant::now(), t));
        if spent.is_some_and(|t| t.as_secs().saturating_mul(2) >= self.limits.cpu_s) {
            worker.cpu_seen = None;
            tracing::info!(plugin = %plugin.manifest.name, "plugin worker used half its processor time; replacing it");
            worker.process = None;
            let _ = self.ensure_running(plugin, worker);
        }
    }

    /// Records a plugin event in the authentication audit (the daemon is the caller).
    fn audit(&self, action: &str, result: &str, detail: String) {
        let Some(store) = &self.store else { return };
        let row =
            AuthAuditRow { detail: Some(detail), ..AuthAuditRow::new(&Caller::appliance("daemon"), action, result) };
        if let Err(e) = store.audit_auth(&row) {
            tracing::error!(action, error = %e, "could not audit a plugin event");
        }
    }

    /// Zero after the first failure, then 100 ms doubling up to the configured maximum.
    fn backoff(&self, failures: u32) -> Duration {
        if failures <= 1 {
            return Duration::ZERO;
        }
        let ms = 100u64.saturating_mul(1u64 << (failures - 2).min(20));
        Duration::from_millis(ms).min(self.max_backoff)
    }

    /// Starts the worker again if it is not running and its backoff has passed.
    fn ensure_running(&self, plugin: &Loaded, worker: &mut Worker) -> Result<(), PluginCallError> {
        let name = &plugin.manifest.name;
        if worker.process.as_mut().is_some_and(PluginProcess::alive) {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(t) = worker.not_before.filter(|t| *t > now) {
            let wait_ms = u64::try_from((t - now).as_millis()).unwrap_or(u64::MAX);
            return Err(PluginCallError::Restarting { plugin: name.clone(), wait_ms });
        }
        let started = PluginProcess::spawn(&self.worker_bin, &plugin.library, self.start_timeout, self.limits)
            .map_err(|e| plugin_text(&e.to_string()))
            .and_then(|p| {
                if p.name == *name {
                    Ok(p)
                } else {
                    Err(format!("the library now says it is {}", plugin_text(&p.name)))
                }
            });
        worker.restarts += 1;
        plugin.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (result, detail) = match started {
            Ok(p) => {
                worker.process = Some(p);
                worker.cpu_seen = None;
                tracing::info!(plugin = %name, restarts = worker.restarts, "plugin worker restarted");
                ("ok", format!("worker restarted (restart {}, after {} failures)", worker.restarts, worker.failures))
            }
            Err(reason) => {
                worker.failures += 1;
                worker.not_before = Some(now + self.backoff(worker.failures));
                tracing::error!(plugin = %name, %reason, "plugin worker did not start again");
                ("error", format!("worker restart failed: {reason}"))
            }
        };
        self.audit("plugin/restart", result, format!("plugin {name}: {detail}"));
        match worker.process {
            Some(_) => Ok(()),
            None => Err(PluginCallError::Worker { plugin: name.clone(), reason: detail }),
        }
    }
}

/// Longest challenge message a plugin may return (it is delivered as written, so it is only
/// cut, not rewritten).
const MAX_CHALLENGE_TEXT: usize = 16 * 1024;

/// A plugin's answer with its free texts (details and reasons, which reach the audit and
/// admins) bounded and stripped of control characters. A challenge's text goes to the user's
/// gateway as written (it is the message, newlines included), only cut at
/// [`MAX_CHALLENGE_TEXT`] characters; its code is plugin text like any other.
fn sanitise_response(r: PluginResponse) -> PluginResponse {
    match r {
        PluginResponse::Challenge { otp, mut text } => {
            // Changed in place or replaced only when out of bounds: these are secrets, and a
            // copy would be dropped without being zeroized.
            if let Some((cut, _)) = text.char_indices().nth(MAX_CHALLENGE_TEXT) {
                text.truncate(cut);
            }
            let otp = if is_plugin_text(&otp) { otp } else { plugin_text(&zeroize::Zeroizing::new(otp)) };
            PluginResponse::Challenge { otp, text }
        }
        PluginResponse::OptionsInvalid { reason } => PluginResponse::OptionsInvalid { reason: plugin_text(&reason) },
        PluginResponse::Delivered { detail } => PluginResponse::Delivered { detail: plugin_text(&detail) },
        PluginResponse::NotDelivered { detail, retry } => {
            PluginResponse::NotDelivered { detail: plugin_text(&detail), retry }
        }
        PluginResponse::Refused { reason } => PluginResponse::Refused { reason: plugin_text(&reason) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(capabilities: &[&str]) -> Loaded {
        Loaded {
            manifest: Manifest {
                name: "p".into(),
                version: "1".into(),
                kind: "gateway".into(),
                abi: "1.0".into(),
                library: "libp.so".into(),
                sha256: String::new(),
                capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
                min_appliance: "0.1.0".into(),
                signature: None,
            },
            library: SealedLibrary::from_bytes(b"").unwrap(),
            workers: Vec::new(),
            next: 0.into(),
            restarts: 0.into(),
            macs: Mutex::new(Bucket::full(50.0)),
        }
    }

    #[test]
    fn host_requests_are_bounded_by_manifest_count_transport_and_mac_budget() {
        let host = PluginHost { macs_per_s: 10.0, ..PluginHost::default() };
        let p = loaded(&["http_request", "now", "hmac"]);
        let http = HostRequest::HttpRequest {
            method: "POST".into(),
            url: "https://sms.example/".into(),
            headers: vec![],
            secret_headers: vec![],
            body: None,
            auth: None,
        };
        let (mut n, mut t) = (0, 0);
        assert!(host.admit(&p, &http, &mut n, &mut t).is_ok());
        assert!(host.admit(&p, &http, &mut n, &mut t).is_ok());
        let third = host.admit(&p, &http, &mut n, &mut t).unwrap_err();
        assert!(third.0.contains("transport requests"), "{third:?}");
        let random = HostRequest::Random { len: 1 };
        assert!(host.admit(&p, &random, &mut n, &mut t).unwrap_err().0.contains("not in the plugin's manifest"));
        while n < MAX_HOST_REQUESTS {
            assert!(host.admit(&p, &HostRequest::Now, &mut n, &mut t).is_ok());
        }
        assert!(host.admit(&p, &HostRequest::Now, &mut n, &mut t).unwrap_err().0.contains("host requests in one call"));
        // The MAC budget is the plugin's, across calls: 50 saved up, then refused.
        let macs = |k: usize| HostRequest::Hmac {
            secret: countersign_plugin_abi::protocol::SecretRef("token:T".into()),
            hash: countersign_plugin_abi::protocol::Hash::Sha1,
            messages: vec![vec![0; 8]; k],
        };
        let (mut n, mut t) = (0, 0);
        assert!(host.admit(&p, &macs(50), &mut n, &mut t).is_ok());
        assert!(host.admit(&p, &macs(5), &mut n, &mut t).unwrap_err().0.contains("budget"));
    }

    #[test]
    fn the_mac_budget_refills_at_its_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: 100.0, at: t0 };
        assert!(b.take(100, 10.0, 100.0, t0));
        assert!(!b.take(1, 10.0, 100.0, t0));
        assert!(!b.take(11, 10.0, 100.0, t0 + Duration::from_secs(1)));
        assert!(b.take(10, 10.0, 100.0, t0 + Duration::from_secs(1)));
        assert!(b.take(100, 10.0, 100.0, t0 + Duration::from_secs(1000)));
        assert!(!b.take(1, 10.0, 100.0, t0 + Duration::from_secs(1000)));
    }

    #[test]
    fn backoff_is_immediate_once_then_doubles_to_the_cap() {
        let host = PluginHost { max_backoff: Duration::from_secs(30), ..PluginHost::default() };
        let ms: Vec<u128> = (1..=12).map(|f| host.backoff(f).as_millis()).collect();
        assert_eq!(ms, [0, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    }
}
