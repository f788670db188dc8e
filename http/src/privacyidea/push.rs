//! privacyIDEA's push protocol on the wire: `/ttype/push` (and eduMFA's `/ttype/edupush`, the
//! same protocol for its `edupush` tokens: the phone's second enrolment step,
//! its polls, its answers and its Firebase token updates, told apart by their parameters as
//! privacyIDEA tells them apart), the first enrolment step's `detail`, and the push parts of a
//! challenge's answer. The decisions are [`countersign::push`]'s.
//!
//! `/ttype/push` needs no API credential (`crate::protocol_paths`): a phone has none. Each
//! request authenticates by the protocol: the enrolment credential, or the phone's signature.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::caller::ApiCaller;
use super::envelope::{ErrorKind, PiResponse};
use super::params::Params;
use crate::SharedState;
use countersign::push::{FbTokenUpdate, PhoneAnswer, PhoneEnrolment, PhonePoll, PushError};
use countersign_core::policy::push::PushFlavour;

pub(super) fn routes() -> Router<SharedState> {
    PushFlavour::ALL.into_iter().fold(Router::new(), |router, f| {
        router.route(f.endpoint(), get(move |st, c, p| poll(st, c, p, f)).post(move |st, c, p| post(st, c, p, f)))
    })
}

/// What the app sends as its Firebase token when it has none (poll only).
const NO_FIREBASE_TOKEN: &str = "no_firebase_token";

fn refused(e: &PushError) -> PiResponse {
    match e {
        PushError::Parameter(m) => PiResponse::error(ErrorKind::Parameter, m),
        PushError::NotFound(m) => PiResponse::error(ErrorKind::NotFound, m),
        PushError::Timestamp(_) | PushError::Signature => PiResponse::error(ErrorKind::Generic, &e.to_string()),
        PushError::PollingDenied => PiResponse::error(ErrorKind::PolicyPlain, &e.to_string()),
        PushError::Service(e) => PiResponse::failure(e),
    }
}

fn unavailable() -> PiResponse {
    PiResponse::error(ErrorKind::Internal, "push tokens are not served by this appliance")
}

/// A phone's poll.
async fn poll(State(st): State<SharedState>, caller: ApiCaller, p: Params, flavour: PushFlavour) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let push = st.challenges.push().ok_or_else(unavailable)?;
        let r = PhonePoll {
            flavour,
            serial: p.required("serial")?.to_owned(),
            timestamp: p.required("timestamp")?.to_owned(),
            signature: p.required("signature")?.to_owned(),
            caller: caller.caller,
        };
        let challenges = push.poll(r).await.map_err(|e| refused(&e))?;
        // privacyIDEA answers a poll with the list alone, no `detail`.
        Ok::<_, PiResponse>(PiResponse::value(Value::Array(challenges)))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// The phone's POSTs: the second enrolment step (`fbtoken` and `pubkey`), an answer
/// (`signature`), or a Firebase token update (`new_fb_token`, `timestamp`, `signature`), in
/// privacyIDEA's order of telling them apart.
async fn post(State(st): State<SharedState>, caller: ApiCaller, p: Params, flavour: PushFlavour) -> Response {
    let nonce = p.nonce();
    let answer = async {
        let push = st.challenges.push().ok_or_else(unavailable)?;
        let serial = p.required("serial")?.to_owned();
        if let (Some(fbtoken), Some(pubkey)) = (p.get("fbtoken"), p.get("pubkey")) {
            let credential = p.required("enrollment_credential")?;
            let fbtoken = if fbtoken == NO_FIREBASE_TOKEN { "" } else { fbtoken };
            let r = PhoneEnrolment {
                flavour,
                serial,
                enrollment_credential: SecretString::from(credential),
                pubkey: pubkey.to_owned(),
                fbtoken: fbtoken.to_owned(),
                caller: caller.caller,
            };
            let done = push.enrol(r).await.map_err(|e| refused(&e))?;
            return Ok(PiResponse::ok(
                json!(true),
                None,
                json!({ "public_key": done.public_key, "rollout_state": "enrolled", "serial": done.serial }),
            ));
        }
        if p.get("signature").is_some() && p.get("new_fb_token").is_none() {
            let decline = p.get("decline").and_then(countersign_core::truth::truth_word) == Some(true);
            let r = PhoneAnswer {
                flavour,
                serial,
                nonce: p.owned("nonce"),
                signature: p.required("signature")?.to_owned(),
                decline,
                presence_answer: p.owned("presence_answer"),
                caller: caller.caller,
            };
            let taken = push.answer(r).await.map_err(|e| refused(&e))?;
            return Ok(PiResponse::value(json!(taken)));
        }
        if let (Some(new_fb_token), Some(timestamp), Some(signature)) =
            (p.get("new_fb_token"), p.get("timestamp"), p.get("signature"))
        {
            let r = FbTokenUpdate {
                flavour,
                serial,
                new_fb_token: new_fb_token.to_owned(),
                timestamp: timestamp.to_owned(),
                signature: signature.to_owned(),
                caller: caller.caller,
            };
            push.update_fbtoken(r).await.map_err(|e| refused(&e))?;
            return Ok(PiResponse::value(json!(true)));
        }
        Err(PiResponse::error(ErrorKind::Parameter, "Missing parameters!"))
    }
    .await;
    answer.unwrap_or_else(|e| e).finish(&st.responses, nonce.as_deref())
}

/// Adds the first step's `pushurl` (with its QR code), `enrollment_credential` and
/// `rollout_state` to an init answer's `detail`, as privacyIDEA shows them, once.
pub(super) fn init_detail(push: Option<&countersign::push::PushEnrolment>, detail: &mut Value) -> Result<(), String> {
    let Some(e) = push else { return Ok(()) };
    let uri = e.uri.expose_secret();
    let img = countersign::enrolment_qr::qr_png(uri)?;
    detail["pushurl"] = json!({
        "description": e.description,
        "value": uri,
        "img": format!("data:image/png;base64,{img}"),
    });
    detail["enrollment_credential"] = json!(e.credential.expose_secret());
    detail["rollout_state"] = json!("clientwait");
    Ok(())
}

/// privacyIDEA's `/validate/polltransaction` answer for a transaction's push challenges.
pub(super) fn transaction_state(state: countersign::store::TransactionState) -> PiResponse {
    use countersign::store::TransactionState as S;
    match state {
        S::Accepted => PiResponse::ok(json!(true), Some("ACCEPT"), json!({ "challenge_status": "accept" })),
        S::Declined => PiResponse::ok(json!(false), Some("DECLINED"), json!({ "challenge_status": "declined" })),
        S::Pending => PiResponse::ok(json!(false), Some("REJECT"), json!({ "challenge_status": "pending" })),
    }
}
