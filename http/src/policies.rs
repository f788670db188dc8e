//! Policies on `admin.sock` (`/v1/admin/policies`): define, replace, list, show, enable,
//! disable, delete, the action catalogue, and `check`. Wire types live in
//! [`countersign::policy::service`]; [`countersign::policy`] does the work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{to_json, ApiError};
use super::extract::{Body, Origin, Path, Query};
use super::AppState;
use countersign::policy::{CheckRequest, PolicyDefinition, Scope, CATALOGUE};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/policies", get(list).post(create))
        .route("/v1/admin/policies/actions", get(catalogue))
        .route("/v1/admin/policies/check", post(check))
        .route("/v1/admin/policies/{name}", get(show).put(replace).delete(remove))
        .route("/v1/admin/policies/{name}/enable", post(enable))
        .route("/v1/admin/policies/{name}/disable", post(disable))
}

async fn list(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    to_json(json!({ "policies": st.policies.list().await? }))
}

async fn create(
    State(st): State<AppState>,
    Origin(caller): Origin,
    Body(b): Body<PolicyDefinition>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok((StatusCode::CREATED, to_json(st.policies.put(caller, None, b, false).await?)?))
}

async fn replace(
    State(st): State<AppState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<PolicyDefinition>,
) -> Result<Json<Value>, ApiError> {
    to_json(st.policies.put(caller, Some(name), b, true).await?)
}

async fn show(State(st): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    to_json(st.policies.show(name).await?)
}

async fn remove(
    State(st): State<AppState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.policies.delete(caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable(
    State(st): State<AppState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    to_json(st.policies.set_active(caller, name, true).await?)
}

async fn disable(
    State(st): State<AppState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    to_json(st.policies.set_active(caller, name, false).await?)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueQuery {
    scope: Option<String>,
}

async fn catalogue(Query(q): Query<CatalogueQuery>) -> Result<Json<Value>, ApiError> {
    let scope = q.scope.as_deref().map(Scope::parse).transpose().map_err(ApiError::invalid)?;
    let actions: Vec<Value> = CATALOGUE
        .iter()
        .filter(|a| scope.is_none_or(|s| a.scope == s))
        .map(|a| json!({ "name": a.name, "scope": a.scope, "value": a.kind.describe(), "meaning": a.meaning }))
        .collect();
    Ok(Json(json!({ "actions": actions })))
}

async fn check(State(st): State<AppState>, Body(q): Body<CheckRequest>) -> Result<Json<Value>, ApiError> {
    to_json(st.policies.check(&q)?)
}
