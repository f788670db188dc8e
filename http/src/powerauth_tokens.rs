//! PowerAuth MAC tokens and operations on the wire (issue 19, part 3). Shapes only: the
//! engine's `PowerAuthTokens` and `PowerAuthOperations` decide and audit.
//!
//! - Mobile (HTTP listener, authenticated by the protocol, [`crate::protocol_paths`]):
//!   `/pa/v3/token/create` and `/pa/v3/token/remove` (restful-integration 1.9's
//!   `TokenController`), and the Mobile Token API of enrollment-server 1.9
//!   (`MobileTokenController`): `/api/auth/token/app/operation/list` and `/detail` with
//!   `X-PowerAuth-Token`, `/authorize` and `/cancel` signed.
//! - Back-end (HTTP listener with a service credential, and `api.sock`): the reference server's
//!   `/rest/v3/token/validate` and `/token/remove`, `/rest/v3/operation/...`, and the operation
//!   templates (`/rest/v3/operation/template/...`, admins only).
//!
//! Answers: `{"status":"OK","responseObject":...}` (the Mobile Token list adds
//! `currentTimestamp`, as the enrollment server's `MobileTokenResponse`), or the bare ECIES
//! response for token creation; failures `{"status":"ERROR","responseObject":{"code","message"}}`
//! with 400 or 401 (the Mobile Token API's `POWERAUTH_AUTH_FAIL`, `OPERATION_ALREADY_FINISHED`,
//! ...).
//!
//! Must never: verify a signature over anything but the bytes received, or read a
//! `X-PowerAuth-*` header by position.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use countersign::powerauth_operations::{
    ApproveOperation, CreateOperation, CreateTemplate, OperationDetail, RejectOperation,
};
use countersign::powerauth_server::{wire, PowerAuthError};
use countersign::powerauth_tokens::ValidateToken;
use countersign_core::caller::Principal;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::extract::Origin;
use super::powerauth_wire::{
    answer, bad_request, failure, header, ok, request_object, require_backend, signature_header, Api, Failure,
};
use super::privacyidea::ApiCaller;
use super::SharedState;

/// The mobile routes (HTTP listener only).
pub(super) fn mobile_routes() -> Router<SharedState> {
    Router::new()
        .route("/pa/v3/token/create", post(token_create))
        .route("/pa/v3/token/remove", post(token_remove))
        .route("/api/auth/token/app/operation/list", post(operation_list))
        .route("/api/auth/token/app/operation/detail", post(operation_detail))
        .route("/api/auth/token/app/operation/authorize", post(operation_authorize))
        .route("/api/auth/token/app/operation/cancel", post(operation_cancel))
}

/// The back-end routes (HTTP listener and `api.sock`).
pub(super) fn backend_routes() -> Router<SharedState> {
    Router::new()
        .route("/rest/v3/token/validate", post(token_validate))
        .route("/rest/v3/token/remove", post(backend_token_remove))
        .route("/rest/v3/operation/create", post(operation_create))
        .route("/rest/v3/operation/detail", post(backend_operation_detail))
        .route("/rest/v3/operation/list", post(backend_operation_list))
        .route("/rest/v3/operation/list/pending", post(backend_operation_list_pending))
        .route("/rest/v3/operation/cancel", post(backend_operation_cancel))
        .route("/rest/v3/operation/approve", post(backend_operation_approve))
        .route("/rest/v3/operation/approve/fail", post(backend_operation_fail))
        .route("/rest/v3/operation/reject", post(backend_operation_reject))
        .route("/rest/v3/operation/template/create", post(template_create))
        .route("/rest/v3/operation/template/list", post(template_list))
        .route("/rest/v3/operation/template/detail", post(template_detail))
        .route("/rest/v3/operation/template/remove", post(template_remove))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

// ---- mobile ----

async fn token_create(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let api = Api::PowerAuth;
    answer(
        async {
            let h = signature_header(api, &headers)?;
            let out = st.powerauth_tokens.create(caller, h, bytes.to_vec()).await.map_err(|e| failure(api, &e))?;
            Ok(Json(out).into_response())
        }
        .await,
    )
}

async fn token_remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let api = Api::PowerAuth;
    answer(
        async {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Req {
                token_id: String,
            }
            let h = signature_header(api, &headers)?;
            let req: Req = request_object(api, &bytes)?;
            let id = st
                .powerauth_tokens
                .remove(caller, h, bytes.to_vec(), req.token_id)
                .await
                .map_err(|e| failure(api, &e))?;
            Ok(ok(json!({ "tokenId": id })))
        }
        .await,
    )
}

/// `2018-07-02T14:43:13+0000`, as the Mobile Token API writes times.
fn mobile_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An operation as the Mobile Token API shows it (the enrollment server's `Operation`, from
/// `MobileTokenConverter`): `1FA` when possession alone may approve it, else `2FA` with the
/// two-factor variants it allows. The form shows the operation's parameters as key-value rows
/// (the appliance has no localized form templates).
fn mobile_operation(o: &OperationDetail) -> Value {
    let types: Vec<String> = o.signature_type.iter().map(|t| t.to_ascii_lowercase()).collect();
    let allowed = if types.iter().any(|t| t == "possession") {
        json!({"type": "1FA", "variants": []})
    } else {
        let variants: Vec<&str> = ["possession_knowledge", "possession_biometry"]
            .into_iter()
            .filter(|v| types.iter().any(|t| t == v))
            .collect();
        json!({"type": "2FA", "variants": variants})
    };
    let attributes: Vec<Value> = o
        .parameters
        .iter()
        .map(|(k, v)| json!({"type": "KEY_VALUE", "id": format!("operation.{k}"), "label": k, "value": v}))
        .collect();
    json!({
        "id": o.id,
        "name": o.operation_type,
        "data": o.data,
        "status": o.status,
        "operationCreated": mobile_time(o.timestamp_created),
        "operationExpires": mobile_time(o.timestamp_expires),
        "allowedSignatureType": allowed,
        "formData": {"title": o.operation_type, "message": "", "attributes": attributes},
    })
}

async fn operation_list(State(st): State<SharedState>, Origin(caller): Origin, headers: HeaderMap) -> Response {
    let api = Api::MobileToken;
    answer(
        async {
            let token = header(api, &headers, wire::TOKEN_HEADER)?.to_owned();
            let list = st.powerauth_operations.mobile_list(caller, token).await.map_err(|e| failure(api, &e))?;
            let ops: Vec<Value> = list.iter().map(mobile_operation).collect();
            Ok(Json(json!({
                "status": "OK",
                "currentTimestamp": mobile_time(countersign::now_ms()),
                "responseObject": ops,
            }))
            .into_response())
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
struct OperationRef {
    id: String,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn operation_detail(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let api = Api::MobileToken;
    answer(
        async {
            let token = header(api, &headers, wire::TOKEN_HEADER)?.to_owned();
            let req: OperationRef = request_object(api, &bytes)?;
            let o = st.powerauth_operations.mobile_detail(caller, token, req.id).await.map_err(|e| failure(api, &e))?;
            Ok(ok(mobile_operation(&o)))
        }
        .await,
    )
}

async fn operation_authorize(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let api = Api::MobileToken;
    answer(
        async {
            let h = signature_header(api, &headers)?;
            let req: OperationRef = request_object(api, &bytes)?;
            let data = req.data.ok_or_else(|| bad_request(api, "requestObject.data is missing"))?;
            st.powerauth_operations
                .mobile_authorize(caller, h, bytes.to_vec(), req.id, data)
                .await
                .map_err(|e| failure(api, &e))?;
            Ok(Json(json!({"status": "OK"})).into_response())
        }
        .await,
    )
}

async fn operation_cancel(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let api = Api::MobileToken;
    answer(
        async {
            let h = signature_header(api, &headers)?;
            let req: OperationRef = request_object(api, &bytes)?;
            st.powerauth_operations
                .mobile_cancel(caller, h, bytes.to_vec(), req.id, req.reason)
                .await
                .map_err(|e| failure(api, &e))?;
            Ok(Json(json!({"status": "OK"})).into_response())
        }
        .await,
    )
}

// ---- back-end ----

/// Templates decide how strongly operations are approved: admins only (an API admin over
/// HTTP, an admin uid on the socket), as the reference's template API is its admin console's.
fn require_admin(st: &SharedState, caller: &ApiCaller) -> Result<(), Failure> {
    let admin = matches!(caller.caller.principal, Principal::ApiAdmin(_))
        || caller.caller.socket_uid().is_some_and(|uid| st.is_admin_uid(uid));
    if admin {
        Ok(())
    } else {
        Err(Failure(StatusCode::UNAUTHORIZED, "ERR_AUTHENTICATION", "operation templates are for admins".into()))
    }
}

/// Runs a back-end method: the caller checked, the request object read, `f`'s answer wrapped.
async fn backend<T, F, Fut>(st: SharedState, caller: ApiCaller, bytes: Bytes, admin: bool, f: F) -> Response
where
    T: DeserializeOwned,
    F: FnOnce(SharedState, ApiCaller, T) -> Fut,
    Fut: std::future::Future<Output = Result<Value, PowerAuthError>>,
{
    let api = Api::PowerAuth;
    answer(
        async {
            require_backend(&st, &caller)?;
            if admin {
                require_admin(&st, &caller)?;
            }
            let req: T = request_object(api, &bytes)?;
            Ok(ok(f(st, caller, req).await.map_err(|e| failure(api, &e))?))
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationId {
    operation_id: String,
    #[serde(default)]
    status_reason: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserOperations {
    user_id: String,
    #[serde(default)]
    applications: Vec<String>,
    #[serde(default)]
    application_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateName {
    template_name: String,
}

async fn token_validate(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, c, req: ValidateToken| async move {
        Ok(to_value(&st.powerauth_tokens.validate(c.caller, req).await?))
    })
    .await
}

async fn backend_token_remove(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Req {
        token_id: String,
        activation_id: String,
    }
    backend(st, caller, bytes, false, |st, c, req: Req| async move {
        let removed = st.powerauth_tokens.remove_by_backend(c.caller, req.token_id, req.activation_id).await?;
        Ok(json!({ "removed": removed }))
    })
    .await
}

async fn operation_create(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, c, req: CreateOperation| async move {
        Ok(to_value(&st.powerauth_operations.create(c.caller, req).await?))
    })
    .await
}

async fn backend_operation_detail(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, _, req: OperationId| async move {
        Ok(to_value(&st.powerauth_operations.detail(req.operation_id).await?))
    })
    .await
}

async fn list(st: SharedState, caller: ApiCaller, bytes: Bytes, pending_only: bool) -> Response {
    backend(st, caller, bytes, false, move |st, _, req: UserOperations| async move {
        let mut apps = req.applications;
        apps.extend(req.application_id);
        Ok(to_value(&st.powerauth_operations.list(req.user_id, apps, pending_only).await?))
    })
    .await
}

async fn backend_operation_list(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    list(st, caller, bytes, false).await
}

async fn backend_operation_list_pending(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    list(st, caller, bytes, true).await
}

async fn backend_operation_cancel(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, c, req: OperationId| async move {
        Ok(to_value(&st.powerauth_operations.cancel(c.caller, req.operation_id, req.status_reason).await?))
    })
    .await
}

async fn backend_operation_approve(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, c, req: ApproveOperation| async move {
        Ok(to_value(&st.powerauth_operations.approve(c.caller, req).await?))
    })
    .await
}

async fn backend_operation_fail(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, c, req: OperationId| async move {
        Ok(to_value(&st.powerauth_operations.fail_approval(c.caller, req.operation_id).await?))
    })
    .await
}

async fn backend_operation_reject(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, false, |st, c, req: RejectOperation| async move {
        Ok(to_value(&st.powerauth_operations.reject(c.caller, req).await?))
    })
    .await
}

async fn template_create(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, true, |st, c, req: CreateTemplate| async move {
        Ok(to_value(&st.powerauth_operations.create_template(c.caller, req).await?))
    })
    .await
}

async fn template_list(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    // The reference's list takes no request object: an empty body or `{}` is a list request.
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) || &bytes[..] == b"{}" {
        Bytes::from_static(b"{\"requestObject\":{}}")
    } else {
        bytes
    };
    backend(st, caller, bytes, true, |st, _, _: Value| async move {
        Ok(to_value(&st.powerauth_operations.templates().await?))
    })
    .await
}

async fn template_detail(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, true, |st, _, req: TemplateName| async move {
        Ok(to_value(&st.powerauth_operations.template(req.template_name).await?))
    })
    .await
}

async fn template_remove(State(st): State<SharedState>, caller: ApiCaller, bytes: Bytes) -> Response {
    backend(st, caller, bytes, true, |st, c, req: TemplateName| async move {
        st.powerauth_operations.remove_template(c.caller, req.template_name).await?;
        Ok(json!({}))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_times_are_the_enrollment_servers() {
        assert_eq!(mobile_time(1_530_542_593_999), "2018-07-02T14:43:13+0000");
        assert_eq!(mobile_time(0), "1970-01-01T00:00:00+0000");
    }

    #[test]
    fn failures_use_each_apis_codes() {
        let e = PowerAuthError::Unauthorized("no".into());
        let f = failure(Api::MobileToken, &e);
        assert_eq!((f.0, f.1), (StatusCode::UNAUTHORIZED, "POWERAUTH_AUTH_FAIL"));
        let f = failure(Api::PowerAuth, &e);
        assert_eq!((f.0, f.1), (StatusCode::UNAUTHORIZED, "ERR_AUTHENTICATION"));
        let e = PowerAuthError::Refused { code: "OPERATION_ALREADY_FINISHED", message: "x".into() };
        let f = failure(Api::MobileToken, &e);
        assert_eq!((f.0, f.1), (StatusCode::BAD_REQUEST, "OPERATION_ALREADY_FINISHED"));
    }
}
