//! privacyIDEA's `/validate/check`, `/validate/radiuscheck`, `/validate/triggerchallenge` and
//! `/validate/polltransaction`, answered by [`countersign::validate`] and shaped as privacyIDEA
//! answers: `result.authentication` ACCEPT / REJECT / CHALLENGE, challenges in
//! `detail.multi_challenge`, a successful RADIUS check as an empty 204.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use serde_json::{json, Value};

use super::admin::{allowed, PiAdmin, Subject};
use super::caller::{ApiCaller, Who};
use super::envelope::{ErrorKind, PiResponse};
use super::params::Params;
use crate::{AppState, SharedState};
use countersign::challenges::ChallengeView;
use countersign::store::CheckTarget;
use countersign::tokens::TokenError;
use countersign::validate::{CheckOutcome, CheckRequest};

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/validate/check", get(check).post(check))
        .route("/validate/radiuscheck", get(radiuscheck).post(radiuscheck))
        .route("/validate/triggerchallenge", get(trigger).post(trigger))
        .route("/validate/polltransaction", get(poll).post(poll))
        .route("/validate/initialize", get(initialize).post(initialize))
}

/// privacyIDEA's target rule: a serial, or a user (in `realm`, or the default realm).
pub(super) fn target(p: &Params, is_realm: impl Fn(&str) -> bool) -> Result<CheckTarget, PiResponse> {
    let (user, realm) = p.user_realm(is_realm);
    match (p.owned("serial"), user) {
        (serial, Some(login)) => Ok(CheckTarget::User { login, realm, serial }),
        (Some(serial), None) => Ok(CheckTarget::Serial(serial)),
        (None, None) => {
            Err(PiResponse::error(ErrorKind::Parameter, "You need to specify a serial, user or credential_id."))
        }
    }
}

/// A challenge's `attributes` as privacyIDEA gives them: a card's nonce; for a sent code, until
/// when it may be entered (`2026-12-06 12:14:21.564234`, as Python prints a time; UTC) and the
/// RADIUS `state` privacyIDEA leaves empty.
fn attributes(c: &ChallengeView) -> Value {
    if countersign::push::is_push_type(&c.token_type) {
        // The client waits for the tap: no input field (privacyIDEA's poll client mode).
        return json!({ "hideResponseInput": true });
    }
    if let Some(w) = &c.webauthn {
        return super::webauthn::attributes(w);
    }
    if let Some(n) = &c.nonce {
        return json!({ "nonce": n });
    }
    match c.valid_until_ms {
        Some(ms) => json!({ "state": Value::Null, "valid_until": super::times::python_datetime(ms, ' ') }),
        None => Value::Null,
    }
}

/// `detail` of a response that created challenges.
fn challenge_detail(challenges: &[ChallengeView]) -> Value {
    let multi: Vec<Value> = challenges
        .iter()
        .map(|c| {
            let mut entry = json!({
                "transaction_id": c.transaction_id,
                "serial": c.serial,
                "type": c.token_type,
                "message": c.message,
                "client_mode": c.client_mode,
                "attributes": attributes(c),
            });
            // privacyIDEA puts a passkey's challenge on the entry itself, not in `attributes`.
            if let Some(p) = &c.passkey {
                entry["challenge"] = json!(p.challenge);
                entry["rpId"] = json!(p.rp_id);
                entry["userVerification"] = json!(p.user_verification);
            }
            if let Some(a) = &c.presence_answer {
                entry["presence_answer"] = json!(a);
            }
            entry
        })
        .collect();
    let messages: Vec<&str> = challenges.iter().map(|c| c.message.as_str()).collect();
    let mut ids: Vec<&str> = challenges.iter().map(|c| c.transaction_id.as_str()).collect();
    ids.dedup();
    let first = challenges.first();
    let mut detail = json!({
        "message": messages.join(", "),
        "messages": messages,
        "multi_challenge": multi,
        "transaction_id": first.map(|c| c.transaction_id.as_str()),
        "transaction_ids": ids,
        "serial": first.map(|c| c.serial.as_str()),
        "type": first.map(|c| c.token_type.as_str()),
        "client_mode": first.map(|c| c.client_mode),
        "preferred_client_mode": first.map(|c| c.client_mode),
        "attributes": first.map_or(Value::Null, attributes),
    });
    // Number matching: the option to show, on the detail too (privacyIDEA's clients read it
    // there).
    if let Some(a) = challenges.iter().find_map(|c| c.presence_answer.as_deref()) {
        detail["presence_answer"] = json!(a);
    }
    detail
}

fn shape(o: &CheckOutcome) -> PiResponse {
    if o.hide_detail {
        // no_detail_on_success / no_detail_on_fail: privacyIDEA drops the detail.
        let (value, authentication) = if o.accepted { (true, "ACCEPT") } else { (false, "REJECT") };
        return PiResponse::ok(json!(value), Some(authentication), Value::Null);
    }
    if o.accepted && o.answered_challenge {
        // privacyIDEA's words for an answered challenge: no type or length; for a webauthn
        // answer the user the token belongs to (its clients may have sent none).
        let mut detail = json!({ "message": "Found matching challenge", "serial": o.serial });
        if matches!(o.token_type.as_deref(), Some("webauthn" | "passkey")) {
            detail["username"] = json!(o.user);
        }
        return PiResponse::ok(json!(true), Some("ACCEPT"), detail);
    }
    if o.accepted {
        return PiResponse::ok(
            json!(true),
            Some("ACCEPT"),
            match o.otp_len {
                Some(len) => {
                    json!({ "message": "matching 1 tokens", "serial": o.serial, "type": o.token_type, "otplen": len })
                }
                None => json!({ "message": "matching 1 tokens", "serial": o.serial, "type": o.token_type }),
            },
        );
    }
    if !o.challenges.is_empty() {
        return PiResponse::ok(json!(false), Some("CHALLENGE"), challenge_detail(&o.challenges));
    }
    PiResponse::ok(json!(false), Some("REJECT"), json!({ "message": o.message }))
}

async fn decide(st: &AppState, caller: Caller, p: &Params) -> Result<CheckOutcome, PiResponse> {
    // A webauthn answer: the assertion instead of a pass, its token found by the user's open
    // challenge, by serial, or (neither given) by its credential id.
    let webauthn = super::webauthn::assertion(p)?;
    let target = match (&webauthn, target(p, |r| st.realms.is_realm(r))) {
        (_, Ok(t)) => t,
        (Some(a), Err(_)) => CheckTarget::Credential(a.credential_id.clone()),
        (None, Err(e)) => return Err(e),
    };
    let pass = match &webauthn {
        Some(_) => secrecy::SecretString::from(p.get("pass").unwrap_or_default()),
        None => p.secret("pass")?,
    };
    // `state`: the RADIUS State attribute, which the FreeRADIUS module sends back as the
    // transaction id (privacyIDEA reads either).
    let transaction_id = p.owned("transaction_id").or_else(|| p.owned("state"));
    if webauthn.is_some() && transaction_id.is_none() {
        return Err(PiResponse::error(ErrorKind::Parameter, "Missing parameter: transaction_id"));
    }
    if let Some(tx) = &transaction_id {
        if tx.len() != 20 || !tx.bytes().all(|c| c.is_ascii_digit()) {
            return Err(PiResponse::error(ErrorKind::Parameter, "transaction_id is 20 digits"));
        }
    }
    st.validate
        .check(CheckRequest { target, pass, transaction_id, caller, webauthn, require_user_verification: false })
        .await
        .map_err(|e| check_error(&e))
}

/// A check (or trigger) that got no answer, in privacyIDEA's words: the HSM or the database not
/// available is 503 (try again, or another appliance); anything else 500.
pub(super) fn check_error(e: &countersign::validate::ValidateError) -> PiResponse {
    use countersign::validate::ValidateError;
    match e {
        ValidateError::HsmUnavailable | ValidateError::StoreUnavailable => {
            PiResponse::error(ErrorKind::Unavailable, &e.to_string())
        }
        // A challenge that could not be made: its own kind (the HSM down is 503 too).
        ValidateError::Challenge(t) => PiResponse::failure(t),
        e => PiResponse::error(ErrorKind::Internal, &e.to_string()),
    }
}

async fn check(State(st): State<SharedState>, caller: ApiCaller, p: Params) -> Response {
    // `http.require_api_key` is enforced for every route by the network layer
    // (`caller::network_auth`), not here.
    let decided = decide(&st, caller.caller, &p).await;
    let answer = match decided {
        Ok(o) => shape(&o),
        Err(e) => e,
    };
    answer.finish(&st.responses, p.nonce().as_deref())
}

/// Accept: an empty 204; anything else: an empty 400 (what RADIUS front ends expect).
async fn radiuscheck(State(st): State<SharedState>, caller: ApiCaller, p: Params) -> Response {
    // `http.require_api_key` is enforced for every route by the network layer
    // (`caller::network_auth`), not here.
    let decided = decide(&st, caller.caller, &p).await;
    match decided {
        Ok(o) if o.accepted => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => StatusCode::BAD_REQUEST.into_response(),
        Err(e) => e.finish(&st.responses, p.nonce().as_deref()),
    }
}

/// Only callers the appliance knows may make it send messages: on `api.sock`, registered
/// integrations and admins (by uid); over HTTP, API admins and service accounts.
async fn trigger(State(st): State<SharedState>, caller: ApiCaller, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        if let Err(m) = super::caller::require_known(&st, &caller) {
            let kind = if caller.who == Who::Anonymous { ErrorKind::Authentication } else { ErrorKind::Policy };
            return Err(PiResponse::error(kind, &m));
        }
        let target = target(&p, |r| st.realms.is_realm(r))?;
        // An API admin needs the right on whom the challenges go to, as privacyIDEA's
        // check_base_action judges it: the user as the resolvers find them, or the token's
        // owner as stored; an unknown serial is judged as system-wide (and then not found).
        if let Some(admin) = PiAdmin::of(&caller) {
            let on = match &target {
                CheckTarget::User { login, realm, .. } => Subject::user_in(&st, login, realm.as_deref()).await?,
                CheckTarget::Serial(serial) => match st.tokens.show(serial.clone()).await {
                    Ok(t) => Subject::of_token(&t),
                    Err(TokenError::Refused(Refusal::NotFound(_))) => Subject::system(),
                    Err(e) => return Err(PiResponse::failure(&e)),
                },
                // `target` names neither; judged as system-wide, the strictest.
                CheckTarget::PublicId(_) | CheckTarget::Credential(_) => Subject::system(),
            };
            allowed(&st, &admin, "triggerchallenge", &on)?;
        }
        let (_, challenges) = st.validate.trigger(caller.caller.clone(), target).await.map_err(|e| check_error(&e))?;
        // privacyIDEA marks an answer that created challenges as CHALLENGE.
        let authentication = (!challenges.is_empty()).then_some("CHALLENGE");
        Ok::<_, PiResponse>(PiResponse::ok(json!(challenges.len()), authentication, challenge_detail(&challenges)))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// A usernameless passkey sign-in's challenge (privacyIDEA 3.11's `/validate/initialize
/// type=passkey`): no credential is needed, as none is known yet; the answer is a
/// `/validate/check` with the assertion and this `transaction_id`, and names the user.
async fn initialize(State(st): State<SharedState>, caller: ApiCaller, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let kind = p.required("type")?;
        if kind != "passkey" {
            return Err(PiResponse::error(
                ErrorKind::Parameter,
                &format!("Unsupported token type '{kind}' for authentication initialization!"),
            ));
        }
        let s = st.challenges.sign_in(caller.caller).await.map_err(|e| PiResponse::failure(&e))?;
        Ok::<_, PiResponse>(PiResponse::ok(
            json!(false),
            Some("REJECT"),
            json!({ "transaction_id": s.transaction_id, "passkey": super::webauthn::sign_in(&s) }),
        ))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// Whether a challenge of the transaction was answered out of band and waits to be used by
/// `/validate/check` (privacyIDEA's push flow): accepted on the phone, declined, or pending. A
/// challenge used by `/validate/check` is spent (privacyIDEA deletes it), so its transaction
/// polls as pending, like an unknown one.
async fn poll(State(st): State<SharedState>, p: Params) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let tx = p.required("transaction_id")?.to_owned();
        let Some(push) = st.challenges.push() else {
            return Ok(super::push::transaction_state(countersign::store::TransactionState::Pending));
        };
        let state = push.transaction_state(tx).await.map_err(|e| PiResponse::failure(&e))?;
        Ok::<_, PiResponse>(super::push::transaction_state(state))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}
