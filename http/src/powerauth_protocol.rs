//! PowerAuth on the wire (issue 19): the mobile API `/pa/v3/...` on the HTTP listener, and the
//! back-end's `/rest/v3/...` methods on the HTTP listener and on `api.sock`. Shapes only: the
//! engine's `PowerAuthServer` decides and audits.
//!
//! Authentication: the mobile routes are the protocol's own (ECIES to keys only the server
//! holds, signatures by the activation's factor keys), so the network layer lets them through
//! without an API credential (`protocol_paths`); the back-end routes need a service account's key
//! (or an API admin's session) over HTTP, and a registered integration's or an admin's uid on
//! the socket ([`require_backend`]).
//!
//! Answers: `{"status":"OK","responseObject":...}` or, for ECIES endpoints, the bare encrypted
//! response; failures `{"status":"ERROR","responseObject":{"code","message"}}` with 400 (a bad
//! request), 401 (authentication) or 503/500.
//!
//! Must never: build the signed data from anything but the bytes received, or read a
//! `X-PowerAuth-*` header by position.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use countersign::powerauth_server::{
    wire, EciesRequest, EncryptionHeader, InitActivation, OfflineTarget, StateAction, VerifyOffline, VerifySignature,
};
use serde_json::{json, Value};

use super::extract::Origin;
use super::powerauth_wire::{
    answer, bad_request, body, header, ok, request_object, require_backend, signature_header, Api, Failure,
};
use super::privacyidea::ApiCaller;
use super::SharedState;

/// These routes speak of activations and signatures.
const A: Api = Api::Activation;

/// The mobile routes (HTTP listener only).
pub(super) fn mobile_routes() -> Router<SharedState> {
    Router::new()
        .route("/pa/v3/status", post(server_status))
        .route("/pa/v3/keystore/create", post(keystore_create))
        .route("/pa/v3/activation/create", post(activation_create))
        .route("/pa/v3/activation/status", post(activation_status))
        .route("/pa/v3/activation/remove", post(activation_remove))
        .route("/pa/v3/signature/validate", post(signature_validate))
        .route("/pa/v3/vault/unlock", post(vault_unlock))
}

/// The back-end routes (HTTP listener and `api.sock`).
pub(super) fn backend_routes() -> Router<SharedState> {
    Router::new()
        .route("/rest/v3/activation/init", post(init))
        .route("/rest/v3/activation/commit", post(commit))
        .route("/rest/v3/activation/status", post(status))
        .route("/rest/v3/activation/block", post(block))
        .route("/rest/v3/activation/unblock", post(unblock))
        .route("/rest/v3/activation/remove", post(remove))
        .route("/rest/v3/activation/history", post(history))
        .route("/rest/v3/activation/list", post(list))
        .route("/rest/v3/signature/verify", post(verify))
        .route("/rest/v3/signature/offline/verify", post(verify_offline))
        .route("/rest/v3/signature/offline/personalized/create", post(offline_personalized))
        .route("/rest/v3/signature/offline/non-personalized/create", post(offline_non_personalized))
        .route("/rest/v3/signature/ecdsa/verify", post(verify_ecdsa))
}

// ---- mobile ----

/// The server's time, which the SDK synchronises its clock with. Unauthenticated, so it names
/// no software version (the reference answers its build's; the SDK reads only the time).
async fn server_status(State(st): State<SharedState>) -> Response {
    ok(json!({ "serverTime": st.powerauth_server.server_time_ms(), "version": "UNKNOWN" }))
}

async fn keystore_create(State(st): State<SharedState>, bytes: Bytes) -> Response {
    answer(
        async {
            #[derive(serde::Deserialize)]
            struct Req {
                jwt: String,
            }
            let req: Req = request_object(A, &bytes)?;
            let jwt = st.powerauth_server.create_temporary_key(req.jwt).await?;
            Ok(ok(json!({ "jwt": jwt })))
        }
        .await,
    )
}

async fn activation_create(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let h = EncryptionHeader::parse(header(A, &headers, wire::ENCRYPTION_HEADER)?)?;
            let req: EciesRequest = body(A, &bytes)?;
            let out = st.powerauth_server.create_activation(caller, h, req).await?;
            Ok(Json(out).into_response())
        }
        .await,
    )
}

async fn activation_status(State(st): State<SharedState>, bytes: Bytes) -> Response {
    answer(
        async {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Req {
                activation_id: String,
                challenge: Option<String>,
            }
            let req: Req = request_object(A, &bytes)?;
            Ok(ok(st.powerauth_server.activation_status(req.activation_id, req.challenge).await?))
        }
        .await,
    )
}

/// Verifies the request's signature for `uri_id` over the bytes received.
async fn signed(
    st: &SharedState,
    caller: countersign_core::caller::Caller,
    headers: &HeaderMap,
    method: &Method,
    uri_id: &str,
    bytes: &Bytes,
    min_factors: usize,
) -> Result<countersign::powerauth_server::SignatureVerdict, Failure> {
    let h = signature_header(A, headers)?;
    Ok(st
        .powerauth_server
        .verify_signed_request(caller, h, method.as_str().to_owned(), uri_id.to_owned(), bytes.to_vec(), min_factors)
        .await?)
}

async fn signature_validate(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            signed(&st, caller, &headers, &method, "/pa/signature/validate", &bytes, 1).await?;
            Ok(Json(json!({"status": "OK"})).into_response())
        }
        .await,
    )
}

async fn activation_remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let verdict = signed(&st, caller.clone(), &headers, &method, "/pa/activation/remove", &bytes, 2).await?;
            st.powerauth_server.remove_by_device(caller, verdict.activation_id.clone()).await?;
            Ok(ok(json!({ "activationId": verdict.activation_id })))
        }
        .await,
    )
}

async fn vault_unlock(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let h = signature_header(A, &headers)?;
            Ok(Json(st.powerauth_server.unlock_vault(caller, h, bytes.to_vec()).await?).into_response())
        }
        .await,
    )
}

// ---- back-end ----

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivationRef {
    activation_id: String,
    #[serde(default)]
    activation_otp: Option<secrecy::SecretString>,
    #[serde(default)]
    reason: Option<String>,
}

async fn init(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            require_backend(&st, &caller)?;
            let req: InitActivation = request_object(A, &bytes)?;
            Ok(ok(serde_json::to_value(st.powerauth_server.init_activation(caller.caller, req).await?)
                .unwrap_or_default()))
        }
        .await,
    )
}

async fn transition(
    st: &SharedState,
    caller: ApiCaller,
    bytes: &Bytes,
    action: impl FnOnce(&ActivationRef) -> StateAction,
) -> Result<Value, Failure> {
    require_backend(st, &caller)?;
    let req: ActivationRef = request_object(A, bytes)?;
    let action = action(&req);
    let d = st.powerauth_server.change_state(caller.caller, req.activation_id, action).await?;
    Ok(serde_json::to_value(d).unwrap_or_default())
}

async fn commit(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            let mut d =
                transition(&st, caller, &bytes, |r| StateAction::Commit { otp: r.activation_otp.clone() }).await?;
            d["activated"] = json!(true);
            Ok(ok(d))
        }
        .await,
    )
}

async fn block(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(transition(&st, caller, &bytes, |r| StateAction::Block { reason: r.reason.clone() }).await.map(ok))
}

async fn unblock(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(transition(&st, caller, &bytes, |_| StateAction::Unblock).await.map(ok))
}

async fn remove(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            let mut d = transition(&st, caller, &bytes, |_| StateAction::Remove { by_device: false }).await?;
            d["removed"] = json!(true);
            Ok(ok(d))
        }
        .await,
    )
}

async fn status(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            require_backend(&st, &caller)?;
            let req: ActivationRef = request_object(A, &bytes)?;
            Ok(ok(serde_json::to_value(st.powerauth_server.activation_detail(req.activation_id).await?)
                .unwrap_or_default()))
        }
        .await,
    )
}

async fn history(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            require_backend(&st, &caller)?;
            let req: ActivationRef = request_object(A, &bytes)?;
            let items = st.powerauth_server.history(req.activation_id.clone()).await?;
            let items: Vec<Value> = items
                .into_iter()
                .map(|h| {
                    json!({"activationId": req.activation_id, "activationStatus": h.state, "eventReason": h.reason,
                       "externalUserId": h.actor, "timestampCreated": h.at_ms})
                })
                .collect();
            Ok(ok(json!({ "items": items })))
        }
        .await,
    )
}

async fn list(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Req {
                user_id: String,
                #[serde(default)]
                application_id: Option<String>,
            }
            require_backend(&st, &caller)?;
            let req: Req = request_object(A, &bytes)?;
            let list = st.powerauth_server.activations_of(req.application_id, req.user_id).await?;
            Ok(ok(json!({ "activations": list })))
        }
        .await,
    )
}

async fn verify(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            require_backend(&st, &caller)?;
            let req: VerifySignature = request_object(A, &bytes)?;
            Ok(ok(serde_json::to_value(st.powerauth_server.verify_signature(caller.caller, req).await?)
                .unwrap_or_default()))
        }
        .await,
    )
}

async fn verify_offline(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            require_backend(&st, &caller)?;
            let req: VerifyOffline = request_object(A, &bytes)?;
            Ok(ok(
                serde_json::to_value(st.powerauth_server.verify_offline(caller.caller, req).await?).unwrap_or_default()
            ))
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OfflinePayload {
    #[serde(default)]
    activation_id: Option<String>,
    #[serde(default)]
    application_id: Option<String>,
    data: String,
}

async fn offline_payload(
    st: &SharedState,
    caller: ApiCaller,
    bytes: &Bytes,
    personalized: bool,
) -> Result<Response, Failure> {
    require_backend(st, &caller)?;
    let req: OfflinePayload = request_object(A, bytes)?;
    let target = match (personalized, req.activation_id, req.application_id) {
        (true, Some(id), _) => OfflineTarget::Activation(id),
        (false, _, Some(app)) => OfflineTarget::Application(app),
        (true, None, _) => return Err(bad_request(A, "activationId is required")),
        (false, _, None) => return Err(bad_request(A, "applicationId is required")),
    };
    Ok(ok(st.powerauth_server.offline_payload(caller.caller, target, req.data).await?))
}

async fn offline_personalized(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(offline_payload(&st, caller, &bytes, true).await)
}

async fn offline_non_personalized(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(offline_payload(&st, caller, &bytes, false).await)
}

async fn verify_ecdsa(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    answer(
        async {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Req {
                activation_id: String,
                data: String,
                signature: String,
            }
            require_backend(&st, &caller)?;
            let req: Req = request_object(A, &bytes)?;
            let valid = st
                .powerauth_server
                .verify_device_ecdsa(caller.caller, req.activation_id, req.data, req.signature)
                .await?;
            Ok(ok(json!({ "signatureValid": valid })))
        }
        .await,
    )
}
