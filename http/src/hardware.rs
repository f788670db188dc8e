//! Cards and readers, enrolment and the appliance CA on `admin.sock`:
//! `/v1/admin/devices` (readers and enrolled cards), `/v1/admin/devices/watch` (insertions and
//! removals as they happen), `/v1/admin/enrol/{piv,oath}` and `/v1/admin/ca`.
//!
//! Enrolment and watch answer with newline-delimited JSON, one object per line, as the card
//! operations happen: `{"progress": {...}}` lines, then one `{"result": {...}}` or
//! `{"error": {"code", "message", "card_state"}}`. The status is 200 once the stream starts;
//! the last line says how it ended.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Body, Origin, Query};
use super::SharedState;
use countersign::enrolment::{EnrolError, EnrolOutcome, OathEnrolRequest, PivEnrolRequest, Progress};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/devices", get(devices))
        .route("/v1/admin/devices/watch", get(watch))
        .route("/v1/admin/enrol/piv", post(enrol_piv))
        .route("/v1/admin/enrol/oath", post(enrol_oath))
        .route("/v1/admin/ca", get(ca_show).post(ca_init))
        .route("/v1/admin/ca/certificate", post(ca_import))
}

fn device_error(e: countersign::devices::DeviceError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "devices_unavailable", e.to_string())
}

async fn devices(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let (readers, enrolled) = st.enrolment.devices_report().await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({ "readers": readers.map_err(device_error)?, "enrolled": enrolled })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchQuery {
    /// How long to watch (default 60 s, at most an hour).
    seconds: Option<u64>,
}

async fn watch(State(st): State<SharedState>, Query(q): Query<WatchQuery>) -> Response {
    let until = Instant::now() + Duration::from_secs(q.seconds.unwrap_or(60).min(3600));
    let svc = st.enrolment.clone();
    super::ndjson::stream(move |tx| {
        let r = svc.devices().watch(until, || !tx.is_closed(), |ev| tx.send(json!({ "event": ev })));
        let _ = tx.send(match r {
            Ok(()) => json!({ "end": "watch time over" }),
            Err(e) => json!({ "error": { "code": "unavailable", "message": e.to_string() } }),
        });
    })
}

fn finish(tx: &super::ndjson::Lines, r: Result<EnrolOutcome, EnrolError>) {
    let line = match r {
        Ok(outcome) => match serde_json::to_value(&outcome) {
            Ok(v) => json!({ "result": v }),
            Err(e) => json!({ "error": { "code": "internal", "message": e.to_string(), "card_state": "unknown" } }),
        },
        Err(e) => json!({ "error": { "code": e.code, "message": e.message, "card_state": e.card_state } }),
    };
    let _ = tx.send(line);
}

fn progress_line(tx: &super::ndjson::Lines) -> impl FnMut(Progress) + '_ {
    move |p| {
        let _ = tx.send(json!({ "progress": p }));
    }
}

async fn enrol_piv(State(st): State<SharedState>, Origin(caller): Origin, Body(b): Body<PivEnrolRequest>) -> Response {
    let svc = st.enrolment.clone();
    super::ndjson::stream(move |tx| finish(tx, svc.enrol_piv(&caller, &b, &mut progress_line(tx))))
}

async fn enrol_oath(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<OathEnrolRequest>,
) -> Response {
    let svc = st.enrolment.clone();
    super::ndjson::stream(move |tx| finish(tx, svc.enrol_oath(&caller, &b, &mut progress_line(tx))))
}

async fn ca_show(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let v = st.ca.show().await?;
    Ok(Json(json!({ "ca": v })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaInit {
    /// Make a CSR for an external CA instead of a self-signed certificate.
    #[serde(default)]
    csr: bool,
}

async fn ca_init(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<CaInit>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let v = st.ca.init(caller, b.csr).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ca": v }))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaImport {
    /// The certificate, PEM.
    pem: String,
}

async fn ca_import(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<CaImport>,
) -> Result<Json<Value>, ApiError> {
    let v = st.ca.import_pem(caller, b.pem).await?;
    Ok(Json(json!({ "ca": v })))
}
