//! `/v1/admin/powerauth` on admin.sock (behind [`super::admin::require_admin`]): PowerAuth
//! applications, their versions, the audited showing of an APP_SECRET and signed activation
//! codes, for `countersign powerauth`. Shapes only: the engine's `PowerAuthAdmin` decides and
//! audits.
//!
//! Must never: answer an APP_SECRET anywhere but `version-add` and the `secret` route (a POST,
//! so the engine audits it as the change of who has seen it, not as a read).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use countersign_api::powerauth::{
    ActivationCodeIssued, NewActivationCode, NewPowerAuthApplication, NewPowerAuthVersion, PowerAuthApplication,
    PowerAuthApplicationList, PowerAuthVersion, PowerAuthVersionSecret, VersionSupport,
};

use super::answer::Answer;
use super::error::ApiError;
use super::extract::{Body, Origin, Path};
use super::SharedState;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/powerauth/applications", get(list).post(create))
        .route("/v1/admin/powerauth/applications/{name}", get(show))
        .route("/v1/admin/powerauth/applications/{name}/versions", post(add_version))
        .route("/v1/admin/powerauth/applications/{name}/versions/{version}/support", post(support))
        .route("/v1/admin/powerauth/applications/{name}/versions/{version}/secret", post(secret))
        .route("/v1/admin/powerauth/activation-codes", post(activation_code))
}

async fn create(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewPowerAuthApplication>,
) -> Result<(StatusCode, Answer<PowerAuthApplication>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.powerauth.create(caller, b.name).await?)))
}

async fn list(State(st): State<SharedState>) -> Result<Answer<PowerAuthApplicationList>, ApiError> {
    Ok(Answer(PowerAuthApplicationList { applications: st.powerauth.list().await? }))
}

async fn show(
    State(st): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Answer<PowerAuthApplication>, ApiError> {
    Ok(Answer(st.powerauth.show(name).await?))
}

async fn add_version(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<NewPowerAuthVersion>,
) -> Result<(StatusCode, Answer<PowerAuthVersionSecret>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.powerauth.add_version(caller, name, b.name).await?)))
}

async fn support(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path((name, version)): Path<(String, String)>,
    Body(b): Body<VersionSupport>,
) -> Result<Answer<PowerAuthVersion>, ApiError> {
    Ok(Answer(st.powerauth.set_supported(caller, name, version, b.supported).await?))
}

async fn secret(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path((name, version)): Path<(String, String)>,
) -> Result<Answer<PowerAuthVersionSecret>, ApiError> {
    Ok(Answer(st.powerauth.show_secret(caller, name, version).await?))
}

async fn activation_code(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewActivationCode>,
) -> Result<(StatusCode, Answer<ActivationCodeIssued>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.powerauth.activation_code(caller, b.application).await?)))
}
