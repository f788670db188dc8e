//! privacyIDEA's `/ttype/yubikey`: the Yubico validation protocol 2.0 (`id`, `otp`, `nonce`,
//! `h`), answered in plain text as privacyIDEA answers it; the decisions are
//! [`countersign::yubico_clients`]'s. Also the admin socket's routes for its clients.
//!
//! The HTTP listener's authentication layer applies as to every path: with
//! `http.require_api_key` a caller needs a credential here too; the protocol's own credential is
//! the client's HMAC, which [`countersign::yubico_clients`] requires.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::caller::ApiCaller;
use super::params::Params;
use crate::error::ApiError;
use crate::SharedState;
use countersign::yubico_clients::{ProtocolRequest, Status};

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/ttype/yubikey", get(yubikey).post(yubikey))
}

/// Admin socket: `/v1/admin/yubico-clients` (list, add) and `/v1/admin/yubico-clients/{id}`
/// (remove).
pub(super) fn admin_routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/yubico-clients", get(list_clients).post(add_client))
        .route("/v1/admin/yubico-clients/{id}", axum::routing::delete(remove_client))
}

/// One protocol request. Its parameters are read as privacyIDEA reads any request's (query,
/// form or JSON), and all of them are what the client signed.
async fn yubikey(State(st): State<SharedState>, caller: ApiCaller, p: Params) -> Response {
    let params = p.with_prefix("").map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let answer = st.yubico.validate(ProtocolRequest { params, caller: caller.caller }).await;
    // privacyIDEA answers every protocol status with 200; the appliance's own failure is not one.
    let status = match (answer.status, answer.unavailable) {
        (Status::BackendError, true) => StatusCode::SERVICE_UNAVAILABLE,
        (Status::BackendError, false) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], answer.text).into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    client_id: String,
    /// The key in standard Base64, when the admin has one (a client already configured
    /// elsewhere); absent: the HSM makes 20 random bytes, shown once in the answer.
    key: Option<secrecy::SecretString>,
    /// Replace the key of an existing client instead of refusing (409).
    #[serde(default)]
    replace: bool,
}

async fn add_client(
    State(st): State<SharedState>,
    crate::extract::Origin(caller): crate::extract::Origin,
    crate::extract::Body(b): crate::extract::Body<NewClient>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use secrecy::ExposeSecret;
    let added = st.yubico.add(caller, b.client_id, b.key, b.replace).await?;
    let mut answer = json!({ "client": added.client, "replaced": added.replaced });
    if let Some(key) = &added.generated_key {
        answer["key"] = key.expose_secret().into();
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn list_clients(State(st): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let clients = st.yubico.list().await?;
    Ok(Json(json!({ "clients": clients })))
}

async fn remove_client(
    State(st): State<SharedState>,
    crate::extract::Origin(caller): crate::extract::Origin,
    crate::extract::Path(id): crate::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    st.yubico.remove(caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
