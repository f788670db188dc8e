//! The privacyIDEA-compatible HTTP API: the paths, parameter names (query, form or JSON
//! bodies), JSON envelope (`jsonrpc`, `id`, `result.status`, `result.value`,
//! `result.authentication`, `detail`, `time`, `version`, `signature`) and status conventions of
//! privacyIDEA 3.x, so existing PAM, RADIUS, Keycloak and SAML integrations work unchanged.
//! Every response is signed (`rsa_sha256_pss:<hex>`) by an HSM key over the JSON that
//! privacyIDEA clients recompute: the response without `signature`, keys sorted, Python's
//! default separators and ASCII escaping.
//!
//! This module only translates: decisions are the services'. It never echoes a `pass`.

mod admin;
mod audit;
mod caller;
mod csv;
mod envelope;
#[doc(hidden)]
pub(crate) mod fuzzing;
mod init_detail;
mod params;
mod policies;
mod push;
mod realms;
mod resolver_params;
mod system;
mod times;
mod ttype;
mod users;
mod validate;
mod webauthn;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub(super) use caller::network_auth;
pub(crate) use caller::{require_known, ApiCaller};

use super::error::ApiError;
use super::{AppState, SharedState};

/// The user and realm a request names, split as privacyIDEA splits `user@realm`
/// ([`Params::user_realm`]) against the realms that exist now.
pub(super) fn user_realm(st: &AppState, p: &params::Params) -> (Option<String>, Option<String>) {
    p.user_realm(|r| st.realms.is_realm(r))
}

/// The privacyIDEA version this API follows (clients read `versionnumber`).
pub(crate) const COMPATIBLE_VERSION: &str = "3.10";

/// Routes served wherever validation is: `api.sock` and the HTTP listener.
pub(super) fn routes() -> Router<SharedState> {
    validate::routes()
        .merge(admin::routes())
        .merge(realms::routes())
        .merge(policies::routes())
        .merge(audit::routes())
        .merge(users::routes())
        .merge(system::routes())
        .merge(ttype::routes())
        .merge(push::routes())
}

/// Admin routes: the public key clients verify response signatures with.
pub(super) fn admin_routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/privacyidea/public-key", get(public_key))
        .route("/v1/admin/privacyidea/admins", get(list_admins).post(add_admin))
        .route("/v1/admin/privacyidea/admins/{name}", axum::routing::delete(remove_admin))
        .route("/v1/admin/privacyidea/admins/{name}/logout", axum::routing::post(revoke_admin_sessions))
        .route("/v1/admin/privacyidea/service-accounts", get(list_services).post(add_service))
        .route("/v1/admin/privacyidea/service-accounts/{name}", axum::routing::delete(remove_service))
        .merge(ttype::admin_routes())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewService {
    name: String,
    #[serde(default)]
    description: String,
}

/// Answers the new API key once; it is never shown again.
async fn add_service(
    State(st): State<SharedState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Body(b): super::extract::Body<NewService>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    use secrecy::ExposeSecret;
    let (v, key) = st.api_access.add_service(caller, b.name, b.description).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "service_account": v, "api_key": key.expose_secret() }))))
}

async fn list_services(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let v = st.api_access.services().await?;
    Ok(Json(json!({ "service_accounts": v })))
}

async fn remove_service(
    State(st): State<SharedState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Path(name): super::extract::Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    st.api_access.remove_service(caller, name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdmin {
    name: String,
    password: secrecy::SecretString,
}

async fn add_admin(
    State(st): State<SharedState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Body(b): super::extract::Body<NewAdmin>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let v = st.api_access.add_admin(caller, b.name, b.password).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "admin": v }))))
}

async fn list_admins(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let v = st.api_access.admins().await?;
    Ok(Json(json!({ "admins": v })))
}

async fn remove_admin(
    State(st): State<SharedState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Path(name): super::extract::Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    st.api_access.remove_admin(caller, name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Ends every session of an API admin (for example after its password may have leaked).
async fn revoke_admin_sessions(
    State(st): State<SharedState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Path(name): super::extract::Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    st.api_access.revoke_sessions(caller, name, "api-admin/revoke-sessions").await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn public_key(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let pem = st.responses.public_key_pem().await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({ "algorithm": "rsa_sha256_pss", "public_key_pem": pem })))
}
