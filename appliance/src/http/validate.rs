//! `/v1/validate/check` on `api.sock` and on the HTTP listener. Wire types live here; the
//! decision is [`crate::validate`]'s.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{Body, Origin};
use super::AppState;
use crate::store::CheckTarget;
use crate::validate::CheckRequest;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/validate/check", post(check))
}

/// A check by serial, or by user (in `realm`, or the default realm).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    serial: Option<String>,
    user: Option<String>,
    realm: Option<String>,
    /// The token PIN followed by the OTP.
    pass: SecretString,
}

async fn check(
    State(st): State<AppState>,
    Origin(caller): Origin,
    Body(b): Body<CheckBody>,
) -> Result<Json<Value>, ApiError> {
    let target = match (b.serial, b.user) {
        (Some(s), None) if b.realm.is_none() => CheckTarget::Serial(s),
        (None, Some(login)) => CheckTarget::User { login, realm: b.realm },
        _ => return Err(ApiError::invalid("send 'serial', or 'user' with an optional 'realm', and 'pass'")),
    };
    let outcome = st.validate.check(CheckRequest { target, pass: b.pass, caller }).await?;
    Ok(Json(serde_json::json!({
        "result": if outcome.accepted { "accept" } else { "reject" },
        "accepted": outcome.accepted,
        "serial": outcome.serial,
        "message": outcome.message,
        "audit_id": outcome.audit_id,
    })))
}
