//! `/v1/admin/powerauth` on admin.sock (behind [`super::admin::require_admin`]): PowerAuth
//! applications, their versions, the audited showing of an APP_SECRET, and activations (made
//! with a signed code, looked up, committed, blocked, unblocked, removed, their history), for
//! `countersign powerauth`. Shapes only: the engine's `PowerAuthAdmin` and `PowerAuthServer`
//! decide and audit.
//!
//! Must never: answer an APP_SECRET anywhere but `version-add` and the `secret` route (a POST,
//! so the engine audits it as the change of who has seen it, not as a read).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use countersign::powerauth_server::{ActivationDetail, InitActivation, StateAction};
use countersign_api::powerauth::{
    ActivationCodeIssued, NewActivation, NewPowerAuthApplication, NewPowerAuthVersion, PowerAuthApplication,
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
        .route("/v1/admin/powerauth/applications/{name}/roles", post(roles))
        .route(
            "/v1/admin/powerauth/applications/{name}/config/{key}",
            axum::routing::put(config_set).delete(config_remove),
        )
        .route("/v1/admin/powerauth/applications/{name}/versions/{version}/support", post(support))
        .route("/v1/admin/powerauth/applications/{name}/versions/{version}/secret", post(secret))
        .route("/v1/admin/powerauth/activations", get(activations).post(init_activation))
        .route("/v1/admin/powerauth/activations/{id}", get(activation))
        .route("/v1/admin/powerauth/activations/{id}/history", get(history))
        .route("/v1/admin/powerauth/activations/{id}/{action}", post(change))
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

async fn roles(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<countersign_api::powerauth::RoleChange>,
) -> Result<Answer<PowerAuthApplication>, ApiError> {
    Ok(Answer(st.powerauth.change_roles(caller, name, b.add, b.remove).await?))
}

async fn config_set(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path((name, key)): Path<(String, String)>,
    Body(b): Body<countersign_api::powerauth::ConfigValues>,
) -> Result<Answer<PowerAuthApplication>, ApiError> {
    Ok(Answer(st.powerauth.set_config(caller, name, key, Some(b.values)).await?))
}

async fn config_remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path((name, key)): Path<(String, String)>,
) -> Result<Answer<PowerAuthApplication>, ApiError> {
    Ok(Answer(st.powerauth.set_config(caller, name, key, None).await?))
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

fn powerauth_error(e: countersign::powerauth_server::PowerAuthError) -> ApiError {
    e.into()
}

async fn init_activation(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewActivation>,
) -> Result<(StatusCode, Answer<ActivationCodeIssued>), ApiError> {
    let otp_validation = match b.otp_validation.as_deref() {
        None => None,
        Some(v) => Some(
            serde_json::from_value(serde_json::Value::String(v.to_ascii_uppercase()))
                .map_err(|_| ApiError::invalid("otp_validation is ON_KEY_EXCHANGE or ON_COMMIT"))?,
        ),
    };
    let now = countersign::now_ms();
    let req = InitActivation {
        application_id: b.application,
        user_id: b.user,
        max_failure_count: b.max_failures,
        timestamp_activation_expire: b.expires_in_s.map(|s| now.saturating_add(s.saturating_mul(1000))),
        activation_otp_validation: otp_validation,
        activation_otp: b.otp,
    };
    let a = st.powerauth_server.init_activation(caller, req).await.map_err(powerauth_error)?;
    Ok((
        StatusCode::CREATED,
        Answer(ActivationCodeIssued {
            qr_data: format!("{}#{}", a.activation_code, a.activation_signature).into(),
            activation_code: a.activation_code.into(),
            activation_signature: a.activation_signature,
            activation_id: a.activation_id,
            user: a.user_id,
            expires_ms: a.expires_ms,
            application: a.application_id,
        }),
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationQuery {
    user: String,
    #[serde(default)]
    application: Option<String>,
}

async fn activations(
    State(st): State<SharedState>,
    axum::extract::Query(q): axum::extract::Query<ActivationQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let list = st.powerauth_server.activations_of(q.application, q.user).await.map_err(powerauth_error)?;
    Ok(axum::Json(serde_json::json!({ "activations": list })))
}

async fn activation(
    State(st): State<SharedState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ActivationDetail>, ApiError> {
    Ok(axum::Json(st.powerauth_server.activation_detail(id).await.map_err(powerauth_error)?))
}

async fn history(
    State(st): State<SharedState>,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let items = st.powerauth_server.history(id).await.map_err(powerauth_error)?;
    Ok(axum::Json(serde_json::json!({ "history": items })))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    otp: Option<secrecy::SecretString>,
    #[serde(default)]
    reason: Option<String>,
}

async fn change(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<axum::Json<ActivationDetail>, ApiError> {
    // The body is optional (an unblock needs none).
    let b: ChangeBody = if body.iter().all(u8::is_ascii_whitespace) {
        ChangeBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("the body is not the expected JSON: {e}")))?
    };
    let action = match action.as_str() {
        "commit" => StateAction::Commit { otp: b.otp },
        "block" => StateAction::Block { reason: b.reason },
        "unblock" => StateAction::Unblock,
        "remove" => StateAction::Remove { by_device: false },
        other => {
            return Err(ApiError::not_found(format!("no activation action '{other}' (commit, block, unblock, remove)")))
        }
    };
    Ok(axum::Json(st.powerauth_server.change_state(caller, id, action).await.map_err(powerauth_error)?))
}
