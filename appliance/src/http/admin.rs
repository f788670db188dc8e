//! The admin API on `admin.sock` (`/v1/admin`), used by the `countersign` CLI. Only root, the
//! daemon's own uid and the uids in `admin.allowed_uids` get past [`require_admin`].

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{Body, Caller, Path, Query};
use super::AppState;
use crate::store::AuditQuery;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/applications", get(list_applications).post(create_application))
        .route("/v1/admin/applications/{name}", get(show_application))
        .route("/v1/admin/applications/{name}/rotate", post(rotate))
        .route("/v1/admin/integrations", get(list_integrations).post(create_integration))
        .route("/v1/admin/integrations/{name}", delete(delete_integration))
        .route("/v1/admin/integrations/{name}/grants", post(grant))
        .route("/v1/admin/integrations/{name}/grants/{application}", delete(revoke))
        .route("/v1/admin/audit/signatures", get(audit))
        .route("/v1/admin/plugins", get(plugins))
}

pub(super) async fn require_admin(
    State(st): State<AppState>,
    caller: Caller,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let uid = caller.0.uid;
    if uid == 0 || uid == st.own_uid || st.admin_uids.contains(&uid) {
        Ok(next.run(req).await)
    } else {
        tracing::warn!(uid, "admin request refused");
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("uid {uid} is not an admin of this appliance")))
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(v).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApplication {
    name: String,
    algorithm: String,
}

async fn create_application(
    State(st): State<AppState>,
    Body(b): Body<NewApplication>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let alg = b
        .algorithm
        .parse()
        .map_err(|e: countersign_hsm::HsmError| ApiError::new(StatusCode::BAD_REQUEST, "unsupported", e.to_string()))?;
    Ok((StatusCode::CREATED, to_json(st.admin.create_application(b.name, alg).await?)?))
}

async fn list_applications(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    to_json(serde_json::json!({ "applications": st.admin.applications().await? }))
}

async fn show_application(State(st): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    to_json(st.admin.application(name).await?)
}

async fn rotate(State(st): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    to_json(st.admin.rotate(name).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIntegration {
    name: String,
    uid: u32,
}

async fn create_integration(
    State(st): State<AppState>,
    Body(b): Body<NewIntegration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok((StatusCode::CREATED, to_json(st.admin.create_integration(b.name, b.uid).await?)?))
}

async fn list_integrations(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    to_json(serde_json::json!({ "integrations": st.admin.integrations().await? }))
}

async fn delete_integration(State(st): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    st.admin.delete_integration(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    application: String,
}

async fn grant(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Body(b): Body<NewGrant>,
) -> Result<Json<Value>, ApiError> {
    to_json(st.admin.grant(name, b.application).await?)
}

async fn revoke(
    State(st): State<AppState>,
    Path((name, application)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    to_json(st.admin.revoke(name, application).await?)
}

async fn audit(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> Result<Json<Value>, ApiError> {
    to_json(serde_json::json!({ "rows": st.admin.signature_audit(q).await? }))
}

async fn plugins(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    to_json(st.plugins.report())
}
