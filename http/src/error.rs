//! The one JSON error shape of both sockets: `{"error": {"code": "...", "message": "..."}}`,
//! and the one mapping from a kind of failure ([`countersign_core::error::ErrorKind`], which
//! each service error says in the `error_kinds` module) to an HTTP status and code.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign_core::error::{Dependency, ErrorKind, Kinded, Reason};

use countersign::admin::AdminError;
use countersign::policy::PolicyError;
use countersign::resolvers::ResolverError;
use countersign::signing::SigningError;
use countersign::tokens::TokenError;
use countersign::validate::ValidateError;

/// A failed request in the native API's words, answered as
/// `{"error": {"code": "...", "message": "..."}}`; a 5xx is also logged.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code clients branch on (`invalid_request`, `not_found`, `hsm_unavailable`...).
    pub code: &'static str,
    /// Words for a person; must never carry a secret or a `pass`.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// 400 `invalid_request`: the request itself is wrong (a malformed body, query or path, a
    /// missing or ill-formed field); the message says what to send instead.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A failure on our side that the caller cannot fix by changing the request.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 404 `not_found`: no such object, or no such endpoint.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl ApiError {
    /// The native API's words for a kind of failure: its HTTP status and code. The one place
    /// they are decided.
    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        let (status, code) = match kind {
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::Unsupported => (StatusCode::BAD_REQUEST, "unsupported"),
            ErrorKind::Unavailable(d) => (
                StatusCode::SERVICE_UNAVAILABLE,
                match d {
                    Dependency::Hsm => "hsm_unavailable",
                    Dependency::Plugin => "plugin_unavailable",
                    Dependency::Resolver => "resolver_unavailable",
                    Dependency::Audit => "audit_unavailable",
                    Dependency::AuditKey => "audit_key_unavailable",
                    Dependency::Store => "store_unavailable",
                },
            ),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, message)
    }

    /// A service error in the native API's words: its kind's status, and its finer reason's
    /// code and words where it has one (an HSM failure it wraps keeps the HSM's).
    fn kinded(e: &(impl Kinded + std::fmt::Display)) -> Self {
        match e.reason() {
            Some(Reason { code: Some(code), message }) => ApiError { code, ..ApiError::of(e.kind(), message) },
            Some(Reason { code: None, message }) => ApiError::of(e.kind(), message),
            None => ApiError::of(e.kind(), e.to_string()),
        }
    }
}

impl From<SigningError> for ApiError {
    fn from(e: SigningError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<countersign::powerauth_server::PowerAuthError> for ApiError {
    fn from(e: countersign::powerauth_server::PowerAuthError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<ValidateError> for ApiError {
    fn from(e: ValidateError) -> Self {
        match e {
            ValidateError::Challenge(t) => t.into(),
            e => ApiError::kinded(&e),
        }
    }
}

impl From<ResolverError> for ApiError {
    fn from(e: ResolverError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is over the size limit")
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ),
            other => ApiError::invalid(format!("malformed JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid(format!("bad query string: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::invalid(format!("bad path: {}", r.body_text()))
    }
}

impl From<countersign::backup::BackupError> for ApiError {
    fn from(e: countersign::backup::BackupError) -> Self {
        ApiError::kinded(&e)
    }
}

impl From<countersign::audit_trail::AuditTrailError> for ApiError {
    fn from(e: countersign::audit_trail::AuditTrailError) -> Self {
        ApiError::kinded(&e)
    }
}

/// An answer serialised as JSON; a value that cannot be is an internal error.
pub(super) fn to_json<T: serde::Serialize>(v: T) -> Result<axum::Json<serde_json::Value>, ApiError> {
    serde_json::to_value(v).map(axum::Json).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_hsm::HsmError;

    /// The native API's words for each kind, and a service error's kind reaching them: the
    /// codes clients branch on stay what docs/api.md says.
    #[test]
    fn each_kind_has_one_status_and_code() {
        let cases = [
            (ErrorKind::Invalid, 400, "invalid_request"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::Conflict, 409, "conflict"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::Unsupported, 400, "unsupported"),
            (ErrorKind::Unavailable(Dependency::Hsm), 503, "hsm_unavailable"),
            (ErrorKind::Unavailable(Dependency::Plugin), 503, "plugin_unavailable"),
            (ErrorKind::Unavailable(Dependency::Resolver), 503, "resolver_unavailable"),
            (ErrorKind::Unavailable(Dependency::Audit), 503, "audit_unavailable"),
            (ErrorKind::Unavailable(Dependency::AuditKey), 503, "audit_key_unavailable"),
            (ErrorKind::Unavailable(Dependency::Store), 503, "store_unavailable"),
            (ErrorKind::Internal, 500, "internal"),
        ];
        for (kind, status, code) in cases {
            let e = ApiError::of(kind, "m");
            assert_eq!((e.status.as_u16(), e.code), (status, code), "{kind:?}");
        }
        let revoked = ApiError::from(TokenError::Revoked("token T is revoked".into()));
        assert_eq!(
            (revoked.status.as_u16(), revoked.code, revoked.message.as_str()),
            (409, "conflict", "token T is revoked")
        );
        let missing = ApiError::from(TokenError::Hsm(HsmError::KeyNotFound("k".into())));
        assert_eq!((missing.status.as_u16(), missing.code), (500, "key_missing_on_token"));
        let bad = ApiError::from(SigningError::Hsm(HsmError::InvalidInput("too long".into())));
        assert_eq!((bad.status.as_u16(), bad.code, bad.message.as_str()), (400, "invalid_request", "too long"));
    }
}
