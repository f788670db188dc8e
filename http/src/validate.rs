//! `/v1/validate/check` on `api.sock` and on the HTTP listener. Wire types live here; the
//! decision is [`countersign::validate`]'s.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use countersign_core::caller::Caller;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{Body, Origin};
use super::{AppState, SharedState};
use countersign::store::CheckTarget;
use countersign::validate::CheckRequest;

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/v1/validate/check", post(check))
}

/// Routes only `api.sock` serves: they need a caller known by uid.
pub(super) fn socket_routes() -> Router<SharedState> {
    Router::new().route("/v1/validate/triggerchallenge", post(trigger))
}

/// A token by serial, or a user's tokens (in `realm`, or the default realm).
fn target(
    serial: Option<String>,
    user: Option<String>,
    realm: Option<String>,
    also: &str,
) -> Result<CheckTarget, ApiError> {
    match (serial, user) {
        (Some(s), None) if realm.is_none() => Ok(CheckTarget::Serial(s)),
        (None, Some(login)) => Ok(CheckTarget::User { login, realm, serial: None }),
        _ => Err(ApiError::invalid(format!("send 'serial', or 'user' with an optional 'realm'{also}"))),
    }
}

/// A check by serial, or by user (in `realm`, or the default realm).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckBody {
    serial: Option<String>,
    user: Option<String>,
    realm: Option<String>,
    /// The token PIN followed by the OTP; with `transaction_id`, the code sent in the challenge
    /// (with `webauthn`, not read: send an empty one).
    #[serde(default = "empty_pass")]
    pass: SecretString,
    transaction_id: Option<String>,
    /// The answer to a webauthn challenge: the authenticator's assertion.
    webauthn: Option<AssertionBody>,
}

fn empty_pass() -> SecretString {
    SecretString::from("")
}

/// An assertion (`navigator.credentials.get`'s answer), its byte strings base64url.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssertionBody {
    credential_id: String,
    client_data_json: String,
    authenticator_data: String,
    signature: String,
    user_handle: Option<String>,
}

impl AssertionBody {
    fn decode(&self) -> Result<countersign::webauthn::Assertion, ApiError> {
        use countersign::webauthn::decode_b64;
        let d = |name: &str, v: &str| decode_b64(name, v).map_err(ApiError::invalid);
        Ok(countersign::webauthn::Assertion {
            credential_id: d("webauthn.credential_id", &self.credential_id)?,
            client_data_json: d("webauthn.client_data_json", &self.client_data_json)?,
            authenticator_data: d("webauthn.authenticator_data", &self.authenticator_data)?,
            signature: d("webauthn.signature", &self.signature)?,
            user_handle: self
                .user_handle
                .as_deref()
                .map(|h| Ok::<_, ApiError>((d("webauthn.user_handle", h)?, h.to_owned())))
                .transpose()?,
        })
    }
}

async fn check(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<CheckBody>,
) -> Result<Json<Value>, ApiError> {
    let outcome = st.validate.check(check_request(b, caller)?).await?;
    let result = match (outcome.accepted, outcome.challenges.is_empty()) {
        (true, _) => "accept",
        (false, false) => "challenge",
        (false, true) => "reject",
    };
    Ok(Json(serde_json::json!({
        "result": result,
        "accepted": outcome.accepted,
        "serial": outcome.serial,
        "message": outcome.message,
        "audit_id": outcome.audit_id,
        "transaction_id": outcome.transaction_id,
        "challenges": outcome.challenges,
    })))
}

/// The check a body asks for, its target and transaction id checked.
pub(super) fn check_request(b: CheckBody, caller: Caller) -> Result<CheckRequest, ApiError> {
    let webauthn = b.webauthn.as_ref().map(AssertionBody::decode).transpose()?;
    if webauthn.is_some() && b.transaction_id.is_none() {
        return Err(ApiError::invalid("a webauthn answer comes with the challenge's 'transaction_id'"));
    }
    let target = match (&b.serial, &b.user, &b.realm, &b.transaction_id) {
        // An assertion without a user or serial: its credential names the token.
        (None, None, None, Some(_)) if webauthn.is_some() => {
            CheckTarget::Credential(webauthn.as_ref().map(|a| a.credential_id.clone()).unwrap_or_default())
        }
        // Only a Yubico OTP: its public id names the token (privacyIDEA's check_yubikey_pass).
        (None, None, None, None) => countersign::yubikey::public_id_target(b.pass.expose_secret())
            .ok_or_else(|| ApiError::invalid("send 'serial', or 'user' with an optional 'realm', and 'pass'"))?,
        _ => target(b.serial, b.user, b.realm, ", and 'pass'")?,
    };
    if let Some(tx) = &b.transaction_id {
        if tx.len() != 20 || !tx.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ApiError::invalid("'transaction_id' is 20 digits"));
        }
    }
    Ok(CheckRequest {
        target,
        pass: b.pass,
        transaction_id: b.transaction_id,
        caller,
        webauthn,
        require_user_verification: false,
    })
}

/// Whether uid `uid` may trigger challenges: registered integrations and admins only.
pub(crate) fn may_trigger(st: &AppState, uid: u32) -> Result<(), String> {
    if st.is_admin_uid(uid) || st.signing.integration_of(uid).is_some() {
        return Ok(());
    }
    Err(format!(
        "uid {uid} is not a registered integration; only integrations and admins may trigger challenges or call the \
         PowerAuth back-end"
    ))
}

/// A trigger by serial, or by user (in `realm`, or the default realm).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerBody {
    serial: Option<String>,
    user: Option<String>,
    realm: Option<String>,
}

/// Sends codes to a user's (or a token's) challenge-response tokens without a PIN: only
/// registered integrations and admins may, since it makes the appliance send messages.
async fn trigger(
    State(st): State<SharedState>,
    super::extract::SocketPeer(caller): super::extract::SocketPeer,
    Body(b): Body<TriggerBody>,
) -> Result<Json<Value>, ApiError> {
    may_trigger(&st, caller.uid).map_err(|m| ApiError::new(axum::http::StatusCode::FORBIDDEN, "forbidden", m))?;
    let target = trigger_target(b)?;
    let (tx, challenges) = st.validate.trigger(Caller::uid(caller.uid), target).await?;
    Ok(Json(serde_json::json!({
        "result": if challenges.is_empty() { "reject" } else { "challenge" },
        "transaction_id": tx,
        "challenges": challenges,
    })))
}

/// The target a trigger body names.
pub(super) fn trigger_target(b: TriggerBody) -> Result<CheckTarget, ApiError> {
    target(b.serial, b.user, b.realm, "")
}
