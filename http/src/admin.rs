//! The admin API on `admin.sock` (`/v1/admin`), used by the `countersign` CLI. Only root, the
//! daemon's own uid and the uids in `admin.allowed_uids` get past [`require_admin`].

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use countersign_core::caller::Caller;
use serde::Deserialize;
use serde_json::Value;

use super::answer::Answer;
use super::error::{to_json, ApiError};
use super::extract::{Body, Origin, Path, Query, SocketPeer};
use super::{AppState, SharedState};
use countersign::store::AuditQuery;
use countersign_api::application::{Application, ApplicationList, Integration, IntegrationList};
use countersign_api::audit::{ChainReport, SignatureAudit};
use countersign_api::jobs::JobList;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/applications", get(list_applications).post(create_application))
        .route("/v1/admin/applications/{name}", get(show_application))
        .route("/v1/admin/applications/{name}/rotate", post(rotate))
        .route("/v1/admin/integrations", get(list_integrations).post(create_integration))
        .route("/v1/admin/integrations/{name}", delete(delete_integration))
        .route("/v1/admin/integrations/{name}/grants", post(grant))
        .route("/v1/admin/integrations/{name}/grants/{application}", delete(revoke))
        .route("/v1/admin/audit/signatures", get(audit))
        .route("/v1/admin/audit/checkpoint", post(audit_checkpoint))
        .route("/v1/admin/plugins", get(plugins))
        .route("/v1/admin/jobs", get(jobs))
}

/// Routes whose work grows with the database (verification, retention, backup).
pub(super) fn maintenance_routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/audit/verify", post(audit_verify))
        .route("/v1/admin/audit/retain", post(audit_retain))
        .route("/v1/admin/backup", post(backup))
        .route("/v1/admin/audit/export", get(audit_export))
}

/// Audits every read on `admin.sock` (writes are audited by the services that make them):
/// who read what, the answer's status and how long it took. A read whose row cannot be
/// written is still answered, and the failure logged: reads change nothing, and an operator
/// must be able to look when the audit is in trouble.
pub(super) async fn audit_reads(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    path: axum::extract::MatchedPath,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    let route = path.as_str().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let took = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    record_read(&st, caller, &route, resp.status(), Some(took)).await;
    resp
}

/// Writes the audit row of a read (`read <route>`, its status, how long it took). A row that
/// cannot be written is logged; the read is still answered.
pub(super) async fn record_read(
    st: &AppState,
    caller: Caller,
    route: &str,
    status: StatusCode,
    duration_ms: Option<i64>,
) {
    let result = if status.is_success() {
        "ok"
    } else if status.is_client_error() {
        "refused"
    } else {
        "error"
    };
    let row = countersign::store::AuthAuditRow {
        detail: Some(format!("HTTP {}", status.as_u16())),
        duration_ms,
        ..countersign::store::AuthAuditRow::new(&caller, format!("read {route}"), result)
    };
    if let Err(e) = st.audit.record(row).await {
        tracing::error!(route, error = %e, "cannot audit a read");
    }
}

pub(super) async fn require_admin(
    State(st): State<SharedState>,
    caller: SocketPeer,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let uid = caller.0.uid;
    if st.is_admin_uid(uid) {
        Ok(next.run(req).await)
    } else {
        tracing::warn!(uid, "admin request refused");
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("uid {uid} is not an admin of this appliance")))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApplication {
    name: String,
    algorithm: String,
}

async fn create_application(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewApplication>,
) -> Result<(StatusCode, Answer<Application>), ApiError> {
    let alg = b.algorithm.parse().map_err(|e: countersign_core::keys::UnknownName| {
        ApiError::new(StatusCode::BAD_REQUEST, "unsupported", e.to_string())
    })?;
    Ok((StatusCode::CREATED, Answer(st.admin.create_application(caller, b.name, alg).await?)))
}

async fn list_applications(State(st): State<SharedState>) -> Result<Answer<ApplicationList>, ApiError> {
    Ok(Answer(ApplicationList { applications: st.admin.applications().await? }))
}

async fn show_application(
    State(st): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Answer<Application>, ApiError> {
    Ok(Answer(st.admin.application(name).await?))
}

async fn rotate(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<Answer<Application>, ApiError> {
    Ok(Answer(st.admin.rotate(caller, name).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIntegration {
    name: String,
    uid: u32,
}

async fn create_integration(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewIntegration>,
) -> Result<(StatusCode, Answer<Integration>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.admin.create_integration(caller, b.name, b.uid).await?)))
}

async fn list_integrations(State(st): State<SharedState>) -> Result<Answer<IntegrationList>, ApiError> {
    Ok(Answer(IntegrationList { integrations: st.admin.integrations().await? }))
}

async fn delete_integration(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.admin.delete_integration(caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    application: String,
}

async fn grant(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<NewGrant>,
) -> Result<Answer<Integration>, ApiError> {
    Ok(Answer(st.admin.grant(caller, name, b.application).await?))
}

async fn revoke(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path((name, application)): Path<(String, String)>,
) -> Result<Answer<Integration>, ApiError> {
    Ok(Answer(st.admin.revoke(caller, name, application).await?))
}

async fn audit(State(st): State<SharedState>, Query(q): Query<AuditQuery>) -> Result<Answer<SignatureAudit>, ApiError> {
    Ok(Answer(SignatureAudit { rows: st.admin.signature_audit(q).await? }))
}

/// The whole chain checked: `ok`, counts, and the first bad row when there is one.
async fn audit_verify(State(st): State<SharedState>) -> Result<Answer<ChainReport>, ApiError> {
    Ok(Answer(st.audit.verify().await?))
}

async fn audit_checkpoint(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    to_json(serde_json::json!({ "checkpoint_seq": st.audit.checkpoint().await? }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Rows after this chain link (default: from the start).
    #[serde(default)]
    after_seq: i64,
}

/// The audit as JSON lines in chain order (each row with its link), from one read
/// transaction; a failure mid-way ends the stream with an `error` line.
async fn audit_export(State(st): State<SharedState>, Query(q): Query<ExportQuery>) -> axum::response::Response {
    let audit = st.audit.clone();
    super::ndjson::stream(move |lines| {
        let result = audit.export(q.after_seq, |v| lines.send(v));
        if let Err(e) = result {
            lines.send(serde_json::json!({ "error": { "message": format!("the export stopped: {e}") } }));
        }
    })
}

/// Limits for one retention run; none given: the configured ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetainRequest {
    #[serde(default)]
    max_rows: Option<u64>,
    #[serde(default)]
    older_than_days: Option<u32>,
}

async fn audit_retain(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<RetainRequest>,
) -> Result<Json<Value>, ApiError> {
    let limits =
        (b.max_rows.is_some() || b.older_than_days.is_some()).then_some(countersign::audit_trail::RetentionLimits {
            older_than_days: b.older_than_days,
            max_rows: b.max_rows,
        });
    to_json(st.audit.retain(limits, Some(caller)).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// A new directory the daemon can write (absolute).
    dir: std::path::PathBuf,
}

/// An online backup: a signed checkpoint first, so the copy's audit tail is vouched for; the
/// manifest signed by the audit key.
async fn backup(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<BackupRequest>,
) -> Result<Json<Value>, ApiError> {
    let manifest = st.audit.backup(caller, st.hsm.health().token, b.dir).await.map_err(ApiError::from)?;
    to_json(manifest)
}

async fn jobs(State(st): State<SharedState>) -> Result<Answer<JobList>, ApiError> {
    let jobs = st.jobs.list().await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Answer(JobList { jobs }))
}

async fn plugins(State(st): State<SharedState>) -> Result<Answer<countersign_api::plugin::PluginReport>, ApiError> {
    Ok(Answer(st.plugins.report()))
}
