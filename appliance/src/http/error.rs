//! The one JSON error shape of both sockets: `{"error": {"code": "...", "message": "..."}}`,
//! and the mapping from service errors to HTTP status codes.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign_hsm::HsmError;

use crate::admin::AdminError;
use crate::policy::PolicyError;
use crate::resolvers::ResolverError;
use crate::signing::SigningError;
use crate::tokens::TokenError;
use crate::validate::ValidateError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A failure on our side that the caller cannot fix by changing the request.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

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

fn hsm_status(e: &HsmError) -> ApiError {
    match e {
        HsmError::Unavailable { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hsm_unavailable", e.to_string())
        }
        HsmError::KeyNotFound(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "key_missing_on_token", e.to_string())
        }
        HsmError::Unsupported(m) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported", m.clone()),
        HsmError::InvalidInput(m) => ApiError::invalid(m.clone()),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hsm_error", e.to_string()),
    }
}

impl From<SigningError> for ApiError {
    fn from(e: SigningError) -> Self {
        match &e {
            SigningError::NotRegistered(_) | SigningError::NotGranted { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            SigningError::UnknownKey(_) | SigningError::UnknownVersion { .. } => ApiError::not_found(e.to_string()),
            SigningError::Unsupported(m) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported", m.clone()),
            SigningError::Invalid(m) => ApiError::invalid(m.clone()),
            SigningError::Hsm(h) => hsm_status(h),
            SigningError::Audit(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", e.to_string())
            }
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match &e {
            AdminError::Invalid(m) => ApiError::invalid(m.clone()),
            AdminError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            AdminError::NotFound(_) => ApiError::not_found(e.to_string()),
            AdminError::Hsm(h) => hsm_status(h),
            AdminError::Store(_) | AdminError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match &e {
            TokenError::Invalid(m) | TokenError::OutOfSync(m) => ApiError::invalid(m.clone()),
            TokenError::Duplicate(_) | TokenError::Revoked(_) | TokenError::Unassigned(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            TokenError::NotFound(_) => ApiError::not_found(e.to_string()),
            TokenError::Hsm(h) => hsm_status(h),
            TokenError::Plugin(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable", m.clone()),
            TokenError::Store(_) | TokenError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match &e {
            PolicyError::Invalid(m) => ApiError::invalid(m.clone()),
            PolicyError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            PolicyError::NotFound(_) => ApiError::not_found(e.to_string()),
            PolicyError::Store(_) | PolicyError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<ValidateError> for ApiError {
    fn from(e: ValidateError) -> Self {
        match e {
            ValidateError::Audit(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", e.to_string())
            }
            ValidateError::Challenge(t) => t.into(),
            ValidateError::HsmUnavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hsm_unavailable", e.to_string())
            }
        }
    }
}

impl From<ResolverError> for ApiError {
    fn from(e: ResolverError) -> Self {
        match &e {
            ResolverError::Invalid(m) => ApiError::invalid(m.clone()),
            ResolverError::NotFound(_) => ApiError::not_found(e.to_string()),
            ResolverError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ResolverError::Unreachable { .. }
            | ResolverError::Timeout { .. }
            | ResolverError::Directory { .. }
            | ResolverError::Source { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "resolver_unavailable", e.to_string())
            }
            ResolverError::Hsm(h) => hsm_status(h),
            ResolverError::Store(_) | ResolverError::Internal(_) => ApiError::internal(e.to_string()),
        }
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

impl From<crate::audit_trail::AuditTrailError> for ApiError {
    fn from(e: crate::audit_trail::AuditTrailError) -> Self {
        use crate::audit_trail::AuditTrailError;
        match &e {
            AuditTrailError::Key(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_key_unavailable", e.to_string())
            }
            AuditTrailError::Store(_) | AuditTrailError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

/// An answer serialised as JSON; a value that cannot be is an internal error.
pub(super) fn to_json<T: serde::Serialize>(v: T) -> Result<axum::Json<serde_json::Value>, ApiError> {
    serde_json::to_value(v).map(axum::Json).map_err(|e| ApiError::internal(e.to_string()))
}
