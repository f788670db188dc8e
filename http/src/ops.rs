//! Operations endpoints: `/v1/health` (the process answers, with the HSM's state), `/v1/ready`
//! (HSM, store and plugins can serve requests now), `/metrics` (Prometheus text), and the
//! middleware that times and counts every request for it.
//!
//! Probes are bounded: the HSM gets `hsm.probe_timeout_ms` to answer, and a probe still
//! running from an earlier check is not started again (a hung token cannot pile up blocked
//! threads). Nothing here changes state or reveals request content.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign::hsm_status::Health;

use super::answer::Answer;
use super::{AppState, SharedState};
use countersign::metrics::{Listener, Metrics, Scraped};
use countersign_api::health::{Health as HealthAnswer, HsmHealth, StoreHealth};

/// Readiness and scrape settings, the one-probe-at-a-time flag, and the last store probe.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// How long an HSM or store probe, or the store's `/metrics` gauges, may take
    /// (`hsm.probe_timeout_ms`); past it the check counts as failed.
    pub probe_timeout: Duration,
    /// Free space below which the store is not ready (`store.min_free_mb`).
    pub min_free_bytes: u64,
    probing: Arc<AtomicBool>,
    store_probe: Arc<Shared<Result<(), String>>>,
}

impl OpsConfig {
    /// Settings with no probe running and no store probe made yet.
    pub fn new(probe_timeout: Duration, min_free_bytes: u64) -> OpsConfig {
        OpsConfig {
            probe_timeout,
            min_free_bytes,
            probing: Arc::new(AtomicBool::new(false)),
            store_probe: Arc::new(Shared::new(STORE_PROBE_REUSE)),
        }
    }
}

/// How long one store probe answers for: the probe commits a write, and health checks that
/// arrive together (load balancers, monitoring, or a flood of anonymous requests) must not
/// each cost a commit.
const STORE_PROBE_REUSE: Duration = Duration::from_secs(1);

/// A result shared by every caller for `reuse` after it was made; callers that arrive while it
/// is being made wait for it instead of making their own.
#[derive(Debug)]
struct Shared<T> {
    reuse: Duration,
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Shared<T> {
    fn new(reuse: Duration) -> Shared<T> {
        Shared { reuse, last: tokio::sync::Mutex::new(None) }
    }

    async fn get<F: std::future::Future<Output = T>>(&self, now: impl Fn() -> Instant, make: impl FnOnce() -> F) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, v)) = last.as_ref() {
            if now().saturating_duration_since(*at) < self.reuse {
                return v.clone();
            }
        }
        let v = make().await;
        *last = Some((now(), v.clone()));
        v
    }
}

/// Whether the store takes writes (free space, and a committed probe write), within the probe
/// time limit; one probe a second at most, shared by the callers of that second.
async fn probe_store(st: &AppState) -> Result<(), String> {
    let store = st.store.clone();
    let (min_free, timeout) = (st.ops.min_free_bytes, st.ops.probe_timeout);
    st.ops
        .store_probe
        .get(Instant::now, || async move {
            let probe = tokio::task::spawn_blocking(move || store.check_writable(min_free, countersign::now_ms()));
            match tokio::time::timeout(timeout, probe).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err("the database check failed".into()),
                Err(_) => Err(format!("the database did not answer within {} ms", timeout.as_millis())),
            }
        })
        .await
}

/// Clears the probing flag when the probe thread ends, however it ends.
struct ProbeDone(Arc<AtomicBool>);

impl Drop for ProbeDone {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Asks the token for one random byte (recovering if it can) within the probe timeout.
/// `Err`: why the HSM is not ready.
pub(super) async fn probe_hsm(st: &AppState) -> Result<Health, String> {
    let ops = &st.ops;
    if ops.probing.swap(true, Ordering::AcqRel) {
        return Err("an earlier HSM probe has not finished yet (the token is slow or hangs)".into());
    }
    let done = ProbeDone(ops.probing.clone());
    let hsm = st.hsm.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _done = done;
        hsm.probe()
    });
    match tokio::time::timeout(ops.probe_timeout, task).await {
        Ok(Ok(h)) if h.ok => Ok(h),
        Ok(Ok(h)) => {
            Err(format!("the HSM does not answer: {}", h.last_error.unwrap_or_else(|| "unknown error".into())))
        }
        Ok(Err(_)) => Err("the HSM probe failed".into()),
        Err(_) => Err(format!("the HSM did not answer within {} ms", ops.probe_timeout.as_millis())),
    }
}

/// Liveness: the process answers. It also describes the HSM (probed, within the timeout) and
/// answers 503 when the token does not, as monitoring scripts expect.
pub(super) async fn health(State(st): State<SharedState>) -> Response {
    let (ok, hsm) = match probe_hsm(&st).await {
        Ok(h) => (true, h),
        Err(why) => {
            let mut h = st.hsm.health();
            h.ok = false;
            if h.last_error.is_none() {
                h.last_error = Some(why);
            }
            (false, h)
        }
    };
    let store = probe_store(&st).await;
    let ok = ok && store.is_ok();
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = HealthAnswer {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        hsm: HsmHealth { ok: hsm.ok, token: hsm.token, recoveries: hsm.recoveries, last_error: hsm.last_error },
        store: StoreHealth { ok: store.is_ok(), error: store.err() },
        // Reason: a struct of flags and numbers always serialises; null would only say "unknown".
        process: serde_json::to_value(countersign::process::state()).unwrap_or_default(),
    };
    (status, Answer(body)).into_response()
}

/// What readiness found: each part, and every reason the appliance is not ready.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    pub hsm: bool,
    pub store: bool,
    pub config_current: bool,
    pub plugins: bool,
    pub reasons: Vec<String>,
}

impl Readiness {
    pub(crate) fn ready(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Probes the HSM and the store, and asks whether the configuration view is current and every
/// plugin worker runs: `/v1/ready` and the console's dashboard.
pub(crate) async fn readiness(st: &AppState) -> Readiness {
    let mut reasons = Vec::new();
    let hsm = probe_hsm(st).await;
    if let Err(why) = &hsm {
        reasons.push(why.clone());
    }
    let store = match probe_store(st).await {
        Ok(()) => true,
        Err(why) => {
            reasons.push(why);
            false
        }
    };
    let stale = st.store.config_stale();
    let config_current = stale.is_none();
    reasons.extend(stale);
    let not_ready = st.plugins.not_ready();
    let plugins = not_ready.is_empty();
    reasons.extend(not_ready);
    Readiness { hsm: hsm.is_ok(), store, config_current, plugins, reasons }
}

/// Readiness: 200 when the HSM answers a probe, the store answers a query, this appliance's
/// view of the configuration is current (changes other appliances on the database made have
/// reached it) and every plugin worker runs; else 503 with every reason.
pub(super) async fn ready(State(st): State<SharedState>) -> Response {
    let r = readiness(&st).await;
    let ready = r.ready();
    let body = serde_json::json!({
        "ready": ready,
        "hsm": r.hsm,
        "store": r.store,
        "config_current": r.config_current,
        "plugins": r.plugins,
        "reasons": r.reasons,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `/metrics`: never probes the token; the store's counts come from a fresh read connection
/// within the probe timeout (left out, with `countersign_store_up 0`, if it does not answer).
pub(super) async fn metrics(State(st): State<SharedState>) -> Response {
    let health = st.hsm.health();
    let store = st.store.clone();
    let gauges = tokio::time::timeout(st.ops.probe_timeout, tokio::task::spawn_blocking(move || store.gauges())).await;
    let scraped = Scraped {
        hsm: Some(st.hsm.metrics()),
        hsm_ok: health.ok,
        plugin_restarts: st.plugins.restarts(),
        store: match gauges {
            Ok(Ok(Ok(g))) => Some(g),
            _ => None,
        },
    };
    let text = st.metrics.render(&scraped);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Times and counts a request under its route template.
pub(super) async fn track(
    State((metrics, listener)): State<(Arc<Metrics>, Listener)>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    metrics.record(
        listener,
        route.as_ref().map(MatchedPath::as_str),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn a_shared_probe_runs_once_for_callers_of_the_same_second() {
        let shared = Shared::new(Duration::from_secs(1));
        let runs = AtomicU32::new(0);
        let start = Instant::now();
        let clock = std::sync::Mutex::new(start);
        let now = || *clock.lock().unwrap();
        let probe = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            runs.load(Ordering::SeqCst)
        };
        // Ten callers at once: one probe, one answer for all.
        let answers = futures_util::future::join_all((0..10).map(|_| shared.get(now, probe))).await;
        assert!(answers.iter().all(|a| *a == 1), "{answers:?}");
        *clock.lock().unwrap() = start + Duration::from_millis(999);
        assert_eq!(shared.get(now, probe).await, 1);
        // After a second, a new probe: a store that failed (or recovered) is seen again.
        *clock.lock().unwrap() = start + Duration::from_secs(1);
        assert_eq!(shared.get(now, probe).await, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
