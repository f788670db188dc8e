//! PowerAuth's envelopes and error shape, shared by the activation and signature routes
//! (`powerauth_protocol`) and the token and operation routes (`powerauth_tokens`):
//! `{"requestObject": …}` in, `{"status": "OK", "responseObject": …}` out, failures
//! `{"status": "ERROR", "responseObject": {"code", "message"}}` in the words of the API asked.
//!
//! Owns: the mapping of the engine's errors to status and code, header and envelope reading,
//! and the back-end's caller check. Must never: decide anything the engine decides.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign::powerauth_server::{wire, PowerAuthError, SignatureHeader};
use countersign_core::error::{ErrorKind, Kinded};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::privacyidea::ApiCaller;
use super::SharedState;

/// Which API's words a failure is told in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// Activations and signatures (`/pa/v3/...`, `/rest/v3/activation|signature/...`):
    /// something not found is `ERR_ACTIVATION`.
    Activation,
    /// Tokens and operations (`/pa/v3/token/...`, `/rest/v3/token|operation/...`).
    PowerAuth,
    /// The enrollment server's Mobile Token API (`/api/auth/token/app/...`).
    MobileToken,
}

impl Api {
    /// The codes of an authentication failure, a bad request and a missing object.
    fn codes(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Api::Activation => ("ERR_AUTHENTICATION", "ERR_REQUEST", "ERR_ACTIVATION"),
            Api::PowerAuth => ("ERR_AUTHENTICATION", "ERR_REQUEST", "ERR_REQUEST"),
            Api::MobileToken => ("POWERAUTH_AUTH_FAIL", "INVALID_REQUEST", "INVALID_REQUEST"),
        }
    }
}

/// A failure in PowerAuth's error shape: status, code, message.
pub(crate) struct Failure(pub(crate) StatusCode, pub(crate) &'static str, pub(crate) String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"status": "ERROR", "responseObject": {"code": self.1, "message": self.2}})))
            .into_response()
    }
}

/// The engine's error in `api`'s words.
pub(crate) fn failure(api: Api, e: &PowerAuthError) -> Failure {
    let (auth, request, not_found) = api.codes();
    match e {
        PowerAuthError::Refused { code, .. } => Failure(StatusCode::BAD_REQUEST, code, e.to_string()),
        PowerAuthError::Unauthorized(_) => Failure(StatusCode::UNAUTHORIZED, auth, e.to_string()),
        _ => match e.kind() {
            ErrorKind::NotFound => Failure(StatusCode::BAD_REQUEST, not_found, e.to_string()),
            ErrorKind::Invalid | ErrorKind::Conflict | ErrorKind::Unsupported => {
                Failure(StatusCode::BAD_REQUEST, request, e.to_string())
            }
            ErrorKind::Forbidden => Failure(StatusCode::UNAUTHORIZED, auth, e.to_string()),
            ErrorKind::Unavailable(_) => {
                Failure(StatusCode::SERVICE_UNAVAILABLE, "ERR_UNAVAILABLE", format!("{e}; try again shortly"))
            }
            ErrorKind::Internal => Failure(StatusCode::INTERNAL_SERVER_ERROR, "ERR_GENERIC", e.to_string()),
        },
    }
}

/// `?` on the engine's error in the activation routes speaks their words.
impl From<PowerAuthError> for Failure {
    fn from(e: PowerAuthError) -> Self {
        failure(Api::Activation, &e)
    }
}

/// A request the caller can fix.
pub(crate) fn bad_request(api: Api, message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, api.codes().1, message.into())
}

/// `{"status": "OK", "responseObject": object}`.
pub(crate) fn ok(object: Value) -> Response {
    Json(json!({"status": "OK", "responseObject": object})).into_response()
}

/// The answer, or the failure's.
pub(crate) fn answer(r: Result<Response, Failure>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// Header `name`, which must be there (a missing credential is an authentication failure to
/// the Mobile Token API, a bad request to PowerAuth's).
pub(crate) fn header<'h>(api: Api, headers: &'h HeaderMap, name: &str) -> Result<&'h str, Failure> {
    headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| match api {
        Api::MobileToken => {
            Failure(StatusCode::UNAUTHORIZED, "POWERAUTH_AUTH_FAIL", format!("the {name} header is missing"))
        }
        Api::Activation | Api::PowerAuth => bad_request(api, format!("the {name} header is missing")),
    })
}

/// `X-PowerAuth-Authorization`, read by key.
pub(crate) fn signature_header(api: Api, headers: &HeaderMap) -> Result<SignatureHeader, Failure> {
    SignatureHeader::parse(header(api, headers, wire::AUTHORIZATION_HEADER)?).map_err(|e| match api {
        Api::MobileToken => Failure(StatusCode::UNAUTHORIZED, "POWERAUTH_AUTH_FAIL", e.to_string()),
        Api::Activation | Api::PowerAuth => failure(api, &e),
    })
}

/// The JSON body as `T`.
pub(crate) fn body<T: DeserializeOwned>(api: Api, bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|e| bad_request(api, format!("the request body is not the expected JSON: {e}")))
}

/// `{"requestObject": T}`, the envelope of PowerAuth's non-encrypted requests.
pub(crate) fn request_object<T: DeserializeOwned>(api: Api, bytes: &[u8]) -> Result<T, Failure> {
    let mut v: Value = body(api, bytes)?;
    let inner =
        v.get_mut("requestObject").map(Value::take).ok_or_else(|| bad_request(api, "requestObject is missing"))?;
    serde_json::from_value(inner).map_err(|e| bad_request(api, format!("requestObject is not as expected: {e}")))
}

/// Back-end methods are for known services: a service account or API admin over HTTP, a
/// registered integration or an admin on `api.sock`.
pub(crate) fn require_backend(st: &SharedState, caller: &ApiCaller) -> Result<(), Failure> {
    crate::privacyidea::require_known(st, caller)
        .map_err(|m| Failure(StatusCode::UNAUTHORIZED, "ERR_AUTHENTICATION", m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_use_powerauths_shape_in_each_apis_words() {
        let r = Failure::from(PowerAuthError::Unauthorized("no".into())).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = Failure::from(PowerAuthError::Refused { code: "ERR_ACTIVATION", message: "x".into() }).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let f = failure(Api::MobileToken, &PowerAuthError::Unauthorized("no".into()));
        assert_eq!(f.1, "POWERAUTH_AUTH_FAIL");
        assert_eq!(bad_request(Api::PowerAuth, "x").1, "ERR_REQUEST");
    }
}
