//! Who calls the privacyIDEA-compatible API: a local service on `api.sock` (by uid), an API
//! admin (session token from `/auth`), a service account (API key), or nobody in particular.
//! The token comes in `PI-Authorization` or `Authorization`, as privacyIDEA clients send it.
//! A header that is present but wrong is refused outright (401), never treated as anonymous.
//!
//! On the network listener every request passes [`network_auth`] (one layer over the whole
//! router, so a route added later cannot skip it): it identifies the caller once, refuses a
//! wrong credential, and with `http.require_api_key` refuses anonymous callers everywhere but
//! at [`ANONYMOUS_PATHS`]; at [`CREDENTIAL_PATHS`] it refuses them whatever that setting.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use countersign_core::caller::{Caller, Principal};

use super::envelope::{ErrorKind, PiResponse};
use crate::extract::Origin;
use crate::{AppState, SharedState};
use countersign::api_access::SessionError;

/// Who a caller of the privacyIDEA-compatible API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
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
pub(crate) struct ApiCaller {
    pub who: Who,
    /// Who the request is from, as the audit names it (`uid:N`, `ip:ADDR`,
    /// `pi-admin:NAME ip:ADDR`, `service:NAME ip:ADDR`).
    pub caller: Caller,
}

impl FromRequestParts<SharedState> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &SharedState) -> Result<Self, Self::Rejection> {
        // Identified once by the network layer: reuse its answer.
        if let Some(c) = parts.extensions.get::<ApiCaller>() {
            return Ok(c.clone());
        }
        identify(parts, st).await.map_err(|e| session_error(&e).finish(&st.responses, None))
    }
}

/// Paths an anonymous caller may reach under `http.require_api_key`: only the login itself.
pub(crate) const ANONYMOUS_PATHS: &[&str] = &["/auth"];

/// Paths that need a credential even when `http.require_api_key` is off: `/metrics` tells
/// which routes are used and how often, which users' clients need not know. Prometheus sends
/// a service account's key as `Authorization: Bearer <key>`.
pub(crate) const CREDENTIAL_PATHS: &[&str] = &["/metrics"];

/// The authentication layer of the network listener (see the module comment). Native routes
/// (`/v1/...`) get the native error shape, the others privacyIDEA's envelope.
pub(crate) async fn network_auth(State(st): State<SharedState>, req: Request, next: Next) -> Response {
    // The console's pages authenticate by its session cookie, in its own gate, which this
    // layer hands them to: API credentials mean nothing there, and a cookie nothing here.
    if crate::console::owns(req.uri().path()) {
        return crate::console::authenticate(State(st), req, next).await;
    }
    let (mut parts, body) = req.into_parts();
    let native = parts.uri.path().starts_with("/v1/");
    let refuse = |e: SessionError| -> Response {
        if native {
            crate::ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()).into_response()
        } else {
            session_error(&e).finish(&st.responses, None)
        }
    };
    // The login authenticates by its password: a stale or empty session header sent along (as
    // clients do before they have one) is not looked at there.
    // The PowerAuth mobile API and the Mobile Token API are authenticated by the protocol itself
    // (ECIES to the server's keys, signatures by the activation's keys, MAC tokens): a phone
    // has no API credential.
    if ANONYMOUS_PATHS.contains(&parts.uri.path()) || crate::protocol_paths::protocol_authenticated(parts.uri.path()) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let caller = match identify(&mut parts, &st).await {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let needs_credential = st.require_api_key || CREDENTIAL_PATHS.contains(&parts.uri.path());
    if needs_credential && caller.who == Who::Anonymous {
        return refuse(SessionError::Missing);
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

/// Whether `caller` is one the appliance knows for service work (triggering messages, the
/// PowerAuth back-end): on `api.sock` a registered integration or an admin (by uid); over HTTP
/// an API admin or a service account. The words say what is missing.
pub(crate) fn require_known(st: &AppState, caller: &ApiCaller) -> Result<(), String> {
    match &caller.who {
        Who::Socket(uid) => crate::validate::may_trigger(st, *uid),
        Who::Admin(_) | Who::Service(_) => Ok(()),
        Who::Anonymous => Err("Authentication failure. Missing Authorization header.".into()),
    }
}

/// Who sent the request, from the socket's uid or the credential header.
async fn identify(parts: &mut Parts, st: &AppState) -> Result<ApiCaller, SessionError> {
    let origin = Origin::from_request_parts(parts, st).await.map(|o| o.0).unwrap_or_else(|_| Caller::unknown());
    if let Some(uid) = origin.socket_uid() {
        return Ok(ApiCaller { who: Who::Socket(uid), caller: origin });
    }
    let header = ["PI-Authorization", "Authorization"]
        .iter()
        .find_map(|h| parts.headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("Bearer ").trim().to_owned())
        .filter(|v| !v.is_empty());
    let Some(credential) = header else {
        return Ok(ApiCaller { who: Who::Anonymous, caller: origin });
    };
    let checked = if credential.starts_with("cs_") {
        match st.api_access.verify_key(credential).await {
            Ok(Some(name)) => Ok(Who::Service(name)),
            Ok(None) => Err(SessionError::WrongCredentials),
            Err(e) => Err(e),
        }
    } else {
        st.api_access.verify(credential).await.map(|c| Who::Admin(c.username))
    };
    match checked {
        Ok(who) => {
            let caller = match &who {
                Who::Admin(n) => origin.as_principal(Principal::ApiAdmin(n.clone())),
                Who::Service(n) => origin.as_principal(Principal::Service(n.clone())),
                _ => origin,
            };
            Ok(ApiCaller { who, caller })
        }
        Err(e) => Err(e),
    }
}

/// A refused credential in privacyIDEA's words: 401 with its authentication codes (4031, 4033,
/// 4304, 4305), or ERR500 when the check itself failed.
pub(crate) fn session_error(e: &SessionError) -> PiResponse {
    match e {
        SessionError::Internal(m) => PiResponse::error(ErrorKind::Internal, m),
        // privacyIDEA's words for a wrong password, without the full stop.
        SessionError::WrongCredentials => {
            PiResponse::error(ErrorKind::WrongCredentials, "Authentication failure. Wrong credentials")
        }
        SessionError::TooManyFailures(_) => PiResponse::error(ErrorKind::WrongCredentials, &e.to_string()),
        SessionError::Invalid => PiResponse::error(ErrorKind::TokenInvalid, &e.to_string()),
        SessionError::Expired => PiResponse::error(ErrorKind::TokenExpired, &e.to_string()),
        SessionError::Missing => PiResponse::error(ErrorKind::Authentication, &e.to_string()),
    }
}
