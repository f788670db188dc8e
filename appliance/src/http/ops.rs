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
use countersign_hsm::Health;

use super::AppState;
use crate::metrics::{Listener, Metrics, Scraped};

/// Readiness and scrape settings, and the one-probe-at-a-time flag.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub probe_timeout: Duration,
    /// Free space below which the store is not ready (`store.min_free_mb`).
    pub min_free_bytes: u64,
    probing: Arc<AtomicBool>,
}

impl OpsConfig {
    pub fn new(probe_timeout: Duration, min_free_bytes: u64) -> OpsConfig {
        OpsConfig { probe_timeout, min_free_bytes, probing: Arc::new(AtomicBool::new(false)) }
    }
}

/// Whether the store takes writes (free space, and a committed probe write), within the probe
/// time limit.
async fn probe_store(st: &AppState) -> Result<(), String> {
    let store = st.store.clone();
    let min_free = st.ops.min_free_bytes;
    let probe = tokio::task::spawn_blocking(move || store.check_writable(min_free, crate::now_ms()));
    match tokio::time::timeout(st.ops.probe_timeout, probe).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the database check failed".into()),
        Err(_) => Err(format!("the database did not answer within {} ms", st.ops.probe_timeout.as_millis())),
    }
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
async fn probe_hsm(st: &AppState) -> Result<Health, String> {
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
pub(super) async fn health(State(st): State<AppState>) -> Response {
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
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "hsm": hsm,
        "store": { "ok": store.is_ok(), "error": store.err() },
        "process": crate::process::state(),
    });
    (status, Json(body)).into_response()
}

/// Readiness: 200 when the HSM answers a probe, the store answers a query and every plugin
/// worker runs; else 503 with every reason.
pub(super) async fn ready(State(st): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    let hsm = probe_hsm(&st).await;
    if let Err(why) = &hsm {
        reasons.push(why.clone());
    }
    let store_ok = match probe_store(&st).await {
        Ok(()) => true,
        Err(why) => {
            reasons.push(why);
            false
        }
    };
    let plugins = st.plugins.not_ready();
    let plugins_ok = plugins.is_empty();
    reasons.extend(plugins);
    let ready = reasons.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "hsm": hsm.is_ok(),
        "store": store_ok,
        "plugins": plugins_ok,
        "reasons": reasons,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `/metrics`: never probes the token; the store's counts come from a fresh read connection
/// within the probe timeout (left out, with `countersign_store_up 0`, if it does not answer).
pub(super) async fn metrics(State(st): State<AppState>) -> Response {
    let health = st.hsm.health();
    let store = st.store.clone();
    let gauges = tokio::time::timeout(
        st.ops.probe_timeout,
        tokio::task::spawn_blocking(move || {
            let conn = store.reader_connection()?;
            crate::store::store_gauges(&conn)
        }),
    )
    .await;
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
