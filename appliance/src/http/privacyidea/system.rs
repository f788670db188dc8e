//! privacyIDEA's `/system/` reads that clients and `privacyideaadm config get` make, for API
//! admins: the settings privacyIDEA clients read (`GET /system/`, `GET /system/<key>`), whether
//! the HSM answers (`GET /system/hsm`), and random bytes from the HSM (`GET /system/random`).
//!
//! Countersign is configured in its own files and by policies, so these settings describe how
//! it behaves; nothing here writes configuration, and `POST /system/setConfig` does not exist.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::admin::{allowed, PiAdmin, Subject};
use super::envelope::{respond, ErrorKind, PiResponse};
use super::params::Params;
use crate::http::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/system/", get(settings))
        .route("/system/hsm", get(hsm))
        .route("/system/random", get(random))
        .route("/system/{key}", get(setting))
}

/// The most random bytes one request may ask for.
const MAX_RANDOM: usize = 1024;

/// privacyIDEA's system settings as Countersign behaves, in privacyIDEA's names and its
/// `"True"`/`"False"` strings: the PIN goes before the OTP; `user@realm` is split when the part
/// after the last `@` is a realm; a wrong PIN counts as a failure of the user's tokens; and there
/// is no `/validate/samlcheck` to return SAML attributes.
fn behaviour() -> Map<String, Value> {
    let mut m = Map::new();
    for (key, on) in
        [("IncFailCountOnFalsePin", true), ("PrependPin", true), ("ReturnSamlAttributes", false), ("splitAtSign", true)]
    {
        m.insert(key.into(), json!(if on { "True" } else { "False" }));
    }
    m
}

async fn settings(State(st): State<AppState>, _admin: PiAdmin, p: Params) -> Response {
    respond(&st.responses, p.nonce().as_deref(), Ok(PiResponse::value(Value::Object(behaviour()))))
}

/// One setting by name; `null` for a name Countersign has no such setting for (as privacyIDEA
/// answers for a key that was never set).
async fn setting(State(st): State<AppState>, _admin: PiAdmin, p: Params) -> Response {
    let key = p.view_arg("key");
    let value = behaviour().remove(&key).unwrap_or(Value::Null);
    respond(&st.responses, p.nonce().as_deref(), Ok(PiResponse::value(value)))
}

async fn hsm(State(st): State<AppState>, _admin: PiAdmin, p: Params) -> Response {
    let ready = crate::http::ops::probe_hsm(&st).await.is_ok();
    respond(&st.responses, p.nonce().as_deref(), Ok(PiResponse::value(json!({ "is_ready": ready }))))
}

/// `len` bytes (20 unless given, at most [`MAX_RANDOM`]) from the HSM's generator, hex, or Base64
/// with `encode=b64`. Needs `getrandom`.
async fn random(State(st): State<AppState>, admin: PiAdmin, p: Params) -> Response {
    let answer = async {
        allowed(&st, &admin, "getrandom", &Subject::system())?;
        let len = match p.get("len") {
            None => 20,
            Some(v) => v.parse::<usize>().ok().filter(|n| (1..=MAX_RANDOM).contains(n)).ok_or_else(|| {
                PiResponse::error(ErrorKind::Parameter, &format!("len must be a number from 1 to {MAX_RANDOM}"))
            })?,
        };
        let hsm = st.hsm.clone();
        let bytes = tokio::task::spawn_blocking(move || hsm.random(len))
            .await
            .map_err(|e| PiResponse::error(ErrorKind::Internal, &e.to_string()))?
            .map_err(|e| PiResponse::error(ErrorKind::Unavailable, &format!("the HSM gave no random bytes: {e}")))?;
        let text = match p.get("encode") {
            Some("b64") => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
            _ => hex::encode(&bytes),
        };
        Ok(PiResponse::value(json!(text)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), answer)
}
