//! privacyIDEA's `/system/` for API admins: the settings privacyIDEA clients read (`GET
//! /system/`, `GET /system/<key>`), whether the HSM answers (`GET /system/hsm`), random bytes
//! from the HSM (`GET /system/random`), and the one kind of system config privacyIDEA admins
//! write that Countersign keeps: the Yubico validation clients' keys, `yubikey.apiid.<id>`
//! (`POST /system/setConfig`, `DELETE /system/<key>`; sealed by the HSM, listed as
//! `__CENSORED__`, never shown).
//!
//! Countersign is configured in its own files and by policies, so the other settings describe
//! how it behaves, and setConfig refuses any other key (saying why) before changing anything.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use countersign_core::error::Refusal;
use serde_json::{json, Map, Value};

use super::admin::{allowed, PiAdmin, Subject};
use super::envelope::{respond, ErrorKind, PiResponse};
use super::params::Params;
use crate::{AppState, SharedState};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/system/", get(settings))
        .route("/system/hsm", get(hsm))
        .route("/system/random", get(random))
        .route("/system/setConfig", post(set_config))
        .route("/system/{key}", get(setting).delete(delete_setting))
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

/// The prefix of privacyIDEA's config keys that hold Yubico validation clients' keys.
const YUBICO_CLIENT: &str = "yubikey.apiid.";

/// What a client's key shows as: it never leaves the HSM's seal again.
const CENSORED: &str = "__CENSORED__";

/// The settings, with the Yubico validation clients as `yubikey.apiid.<id>`: `__CENSORED__`.
async fn all_settings(st: &AppState) -> Result<Map<String, Value>, PiResponse> {
    let listed = st.yubico.list().await.map_err(|e| PiResponse::error(ErrorKind::Internal, &e.to_string()))?;
    let mut m = behaviour();
    for c in listed {
        m.insert(format!("{YUBICO_CLIENT}{}", c.client_id), json!(CENSORED));
    }
    Ok(m)
}

async fn settings(State(st): State<SharedState>, _admin: PiAdmin, p: Params) -> Response {
    let answer = all_settings(&st).await.map(|m| PiResponse::value(Value::Object(m)));
    respond(&st.responses, p.nonce().as_deref(), answer)
}

/// One setting by name; `null` for a name Countersign has no such setting for (as privacyIDEA
/// answers for a key that was never set).
async fn setting(State(st): State<SharedState>, _admin: PiAdmin, p: Params) -> Response {
    let key = p.view_arg("key");
    let answer = all_settings(&st).await.map(|mut m| PiResponse::value(m.remove(&key).unwrap_or(Value::Null)));
    respond(&st.responses, p.nonce().as_deref(), answer)
}

/// privacyIDEA's `POST /system/setConfig` for the one kind of key Countersign keeps,
/// `yubikey.apiid.<client id>` = the client's Base64 API key (sealed at once); `<key>.type` and
/// `<key>.desc` are accepted and ignored, as privacyIDEA keeps them beside the value. Any other
/// key refuses the whole request before anything changes. Needs `configwrite`. Answers
/// `{"<key>": "insert" | "update"}`, as privacyIDEA does.
async fn set_config(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let answer = async {
        allowed(&st, &admin, "configwrite", &Subject::system())?;
        let mut clients = Vec::new();
        for (key, value) in p.with_prefix("") {
            // The envelope's nonce is no setting.
            if key.ends_with(".type") || key.ends_with(".desc") || key == "nonce" {
                continue;
            }
            let Some(id) = key.strip_prefix(YUBICO_CLIENT) else {
                return Err(PiResponse::error(
                    ErrorKind::Parameter,
                    &format!(
                        "Countersign is configured in its files and by policies; /system/setConfig takes only \
                         {YUBICO_CLIENT}<client id> (the Yubico validation clients' keys), not {key:?}"
                    ),
                ));
            };
            clients.push((key.to_owned(), id.to_owned(), secrecy::SecretString::from(value.to_owned())));
        }
        if clients.is_empty() {
            return Err(PiResponse::error(
                ErrorKind::Parameter,
                &format!("send {YUBICO_CLIENT}<client id>=<Base64 key>"),
            ));
        }
        // Every key checked before any is stored, so a bad one changes nothing.
        for (_, id, key) in &clients {
            countersign::yubico_clients::valid_client_id(id)
                .and_then(|()| {
                    countersign::yubico_clients::decode_key(secrecy::ExposeSecret::expose_secret(key)).map(drop)
                })
                .map_err(|e| PiResponse::error(ErrorKind::Parameter, &e.to_string()))?;
        }
        let mut result = Map::new();
        for (key, id, value) in clients {
            let added =
                st.yubico.add(admin.caller.clone(), id, Some(value), true).await.map_err(|e| token_error(&e))?;
            result.insert(key, json!(if added.replaced { "update" } else { "insert" }));
        }
        Ok(PiResponse::value(Value::Object(result)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), answer)
}

/// privacyIDEA's `DELETE /system/<key>` for `yubikey.apiid.<client id>`: the client is removed
/// (`true`). Countersign's behaviour settings cannot be deleted. Needs `configdelete`.
async fn delete_setting(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let answer = async {
        allowed(&st, &admin, "configdelete", &Subject::system())?;
        let key = p.view_arg("key");
        let Some(id) = key.strip_prefix(YUBICO_CLIENT).map(str::to_owned) else {
            return Err(PiResponse::error(
                ErrorKind::Parameter,
                &format!("only {YUBICO_CLIENT}<client id> can be deleted; Countersign is configured in its files"),
            ));
        };
        st.yubico.remove(admin.caller.clone(), id).await.map_err(|e| token_error(&e))?;
        Ok(PiResponse::value(json!(true)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), answer)
}

/// A client change's failure in privacyIDEA's error shapes.
fn token_error(e: &countersign::tokens::TokenError) -> PiResponse {
    use countersign::tokens::TokenError;
    match e {
        TokenError::Refused(Refusal::NotFound(_)) => PiResponse::error(ErrorKind::NotFound, &e.to_string()),
        _ => PiResponse::failure(e),
    }
}

async fn hsm(State(st): State<SharedState>, _admin: PiAdmin, p: Params) -> Response {
    let ready = crate::ops::probe_hsm(&st).await.is_ok();
    respond(&st.responses, p.nonce().as_deref(), Ok(PiResponse::value(json!({ "is_ready": ready }))))
}

/// `len` bytes (20 unless given, at most [`MAX_RANDOM`]) from the HSM's generator, hex, or Base64
/// with `encode=b64`. Needs `getrandom`.
async fn random(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let answer = async {
        allowed(&st, &admin, "getrandom", &Subject::system())?;
        let len = match p.get("len") {
            None => 20,
            Some(v) => v.parse::<usize>().ok().filter(|n| (1..=MAX_RANDOM).contains(n)).ok_or_else(|| {
                PiResponse::error(ErrorKind::Parameter, &format!("len must be a number from 1 to {MAX_RANDOM}"))
            })?,
        };
        let bytes =
            st.hsm.random(len).await.map_err(|e| {
                PiResponse::error(ErrorKind::Unavailable, &format!("the HSM gave no random bytes: {e}"))
            })?;
        let text = match p.get("encode") {
            Some("b64") => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
            _ => hex::encode(&bytes),
        };
        Ok(PiResponse::value(json!(text)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), answer)
}
