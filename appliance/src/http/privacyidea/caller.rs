//! Who calls the privacyIDEA-compatible API: a local service on `api.sock` (by uid), an API
//! admin (session token from `/auth`), a service account (API key), or nobody in particular.
//! The token comes in `PI-Authorization` or `Authorization`, as privacyIDEA clients send it.
//! A header that is present but wrong is refused outright (401), never treated as anonymous.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

use super::envelope::{ErrorKind, PiResponse};
use crate::api_access::SessionError;
use crate::http::extract::Origin;
use crate::http::AppState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A process on `api.sock`, by uid.
    Socket(u32),
    /// An API admin, by name.
    Admin(String),
    /// A service account, by name.
    Service(String),
    /// No credentials over HTTP.
    Anonymous,
}

/// The caller and how the audit names it.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub who: Who,
    /// `uid:N`, `ip:ADDR`, `pi-admin:NAME ip:ADDR` or `service:NAME ip:ADDR`.
    pub audit_name: String,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let origin = Origin::from_request_parts(parts, st).await.map(|o| o.0).unwrap_or_else(|_| "unknown".into());
        if let Some(uid) = origin.strip_prefix("uid:").and_then(|u| u.parse::<u32>().ok()) {
            return Ok(ApiCaller { who: Who::Socket(uid), audit_name: origin });
        }
        let header = ["PI-Authorization", "Authorization"]
            .iter()
            .find_map(|h| parts.headers.get(*h))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_start_matches("Bearer ").to_owned());
        let Some(credential) = header else {
            return Ok(ApiCaller { who: Who::Anonymous, audit_name: origin });
        };
        let access = st.api_access.clone();
        let checked = tokio::task::spawn_blocking(move || {
            if credential.starts_with("cs_") {
                match access.verify_key(&credential)? {
                    Some(name) => Ok(Who::Service(name)),
                    None => Err(SessionError::WrongCredentials),
                }
            } else {
                access.verify(&credential).map(|c| Who::Admin(c.username))
            }
        })
        .await
        .unwrap_or_else(|e| Err(SessionError::Internal(e.to_string())));
        match checked {
            Ok(who) => {
                let audit_name = match &who {
                    Who::Admin(n) => format!("pi-admin:{n} {origin}"),
                    Who::Service(n) => format!("service:{n} {origin}"),
                    _ => origin,
                };
                Ok(ApiCaller { who, audit_name })
            }
            Err(e) => Err(session_error(&e).finish(&st.responses, None)),
        }
    }
}

pub fn session_error(e: &SessionError) -> PiResponse {
    match e {
        SessionError::Internal(m) => PiResponse::error(ErrorKind::Internal, m),
        other => PiResponse::error(ErrorKind::Authentication, &other.to_string()),
    }
}
