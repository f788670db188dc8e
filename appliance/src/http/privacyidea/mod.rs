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
mod envelope;
mod params;
mod validate;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

/// The privacyIDEA version this API follows (clients read `versionnumber`).
pub const COMPATIBLE_VERSION: &str = "3.10";

/// Routes served wherever validation is: `api.sock` and the HTTP listener.
pub(super) fn routes() -> Router<AppState> {
    validate::routes().merge(admin::routes())
}

/// Admin routes: the public key clients verify response signatures with.
pub(super) fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/privacyidea/public-key", get(public_key))
        .route("/v1/admin/privacyidea/admins", get(list_admins).post(add_admin))
        .route("/v1/admin/privacyidea/admins/{name}", axum::routing::delete(remove_admin))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdmin {
    name: String,
    password: secrecy::SecretString,
}

async fn add_admin(
    State(st): State<AppState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Body(b): super::extract::Body<NewAdmin>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let admins = st.api_admins.clone();
    let v = crate::tokens::blocking(move || admins.add(&caller, &b.name, &b.password)).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "admin": v }))))
}

async fn list_admins(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let admins = st.api_admins.clone();
    let v = crate::tokens::blocking(move || admins.list()).await?;
    Ok(Json(json!({ "admins": v })))
}

async fn remove_admin(
    State(st): State<AppState>,
    super::extract::Origin(caller): super::extract::Origin,
    super::extract::Path(name): super::extract::Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let admins = st.api_admins.clone();
    crate::tokens::blocking(move || admins.remove(&caller, &name)).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn public_key(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let signer = st.responses.clone();
    let pem = tokio::task::spawn_blocking(move || signer.public_key_pem())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({ "algorithm": "rsa_sha256_pss", "public_key_pem": pem })))
}
