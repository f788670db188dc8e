//! Policies on `admin.sock` (`/v1/admin/policies`): define, replace, list, show, enable,
//! disable, delete, the action catalogue, and `check`. The answers are `countersign_api`'s
//! types; the request bodies live in [`countersign::policy::service`]; [`countersign::policy`]
//! does the work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use countersign_api::policy::{Policy, PolicyAction, PolicyActions, PolicyCheck, PolicyList};

use super::answer::Answer;
use super::error::ApiError;
use super::extract::{Body, Origin, Path, Query};
use super::SharedState;
use countersign::policy::{CheckRequest, PolicyDefinition, Scope, CATALOGUE};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/policies", get(list).post(create))
        .route("/v1/admin/policies/actions", get(catalogue))
        .route("/v1/admin/policies/check", post(check))
        .route("/v1/admin/policies/{name}", get(show).put(replace).delete(remove))
        .route("/v1/admin/policies/{name}/enable", post(enable))
        .route("/v1/admin/policies/{name}/disable", post(disable))
}

async fn list(State(st): State<SharedState>) -> Result<Answer<PolicyList>, ApiError> {
    Ok(Answer(PolicyList { policies: st.policies.list().await? }))
}

async fn create(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<PolicyDefinition>,
) -> Result<(StatusCode, Answer<Policy>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.policies.put(caller, None, b, false).await?)))
}

async fn replace(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<PolicyDefinition>,
) -> Result<Answer<Policy>, ApiError> {
    Ok(Answer(st.policies.put(caller, Some(name), b, true).await?))
}

async fn show(State(st): State<SharedState>, Path(name): Path<String>) -> Result<Answer<Policy>, ApiError> {
    Ok(Answer(st.policies.show(name).await?))
}

async fn remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.policies.delete(caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<Answer<Policy>, ApiError> {
    Ok(Answer(st.policies.set_active(caller, name, true).await?))
}

async fn disable(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<Answer<Policy>, ApiError> {
    Ok(Answer(st.policies.set_active(caller, name, false).await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueQuery {
    scope: Option<String>,
}

async fn catalogue(Query(q): Query<CatalogueQuery>) -> Result<Answer<PolicyActions>, ApiError> {
    let scope = q.scope.as_deref().map(Scope::parse).transpose().map_err(ApiError::invalid)?;
    let actions = CATALOGUE
        .iter()
        .filter(|a| scope.is_none_or(|s| a.scope == s))
        .map(|a| PolicyAction {
            name: a.name.to_owned(),
            scope: a.scope,
            value: a.kind.describe(),
            meaning: a.meaning.to_owned(),
        })
        .collect();
    Ok(Answer(PolicyActions { actions }))
}

async fn check(State(st): State<SharedState>, Body(q): Body<CheckRequest>) -> Result<Answer<PolicyCheck>, ApiError> {
    Ok(Answer(st.policies.check(&q)?))
}
