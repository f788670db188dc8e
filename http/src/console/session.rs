//! The console's one gate: sessions from the cookie, CSRF tokens on every POST, and the
//! security headers on every answer. Handlers get the checked session ([`Signed`]) and the
//! checked form ([`FormFields`]) as extractors that only this layer can satisfy.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use countersign::console_access::{ConsoleAuthError, ConsoleSession};
use countersign_core::caller::Caller;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::layout;
use crate::extract::Origin;
use crate::SharedState;

/// The session cookie's name.
pub(super) const COOKIE: &str = "cs_console";

/// The largest form the console accepts (a policy's text is the largest thing typed).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The one POST that is not a form: the sign-in page's script asks it for a passkey challenge.
const PASSKEY_CHALLENGE: &str = "/console/passkey/challenge";

/// Paths reachable without a session: the sign-in page, its passkey challenge, static files.
fn public(path: &str) -> bool {
    path == "/console/sign-in" || path == PASSKEY_CHALLENGE || path.starts_with("/console/static/")
}

/// The Content-Security-Policy of every console answer: our own script and stylesheet only, no
/// inline code, QR codes as data URIs, forms only to ourselves, never in a frame.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                               connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session cookie carrying `value`: only over HTTPS (browsers treat loopback as secure),
/// never readable by script, never sent on another site's request, only under `/console/`.
pub(super) fn set_cookie(value: &str) -> HeaderValue {
    let v = format!("{COOKIE}={value}; Path=/console/; Secure; HttpOnly; SameSite=Strict");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("cs_console=; Path=/console/; Max-Age=0"))
}

/// A header value that removes the session cookie.
pub(super) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("cs_console=; Path=/console/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn cookie_of(parts: &Parts) -> Option<String> {
    parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_owned())
        },
    )
}

/// The checked session of a request (only [`authenticate`] puts it there).
#[derive(Debug, Clone)]
pub(super) struct Signed(pub ConsoleSession);

impl FromRequestParts<SharedState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &SharedState) -> Result<Self, Response> {
        parts
            .extensions
            .get::<ConsoleSession>()
            .cloned()
            .map(Signed)
            .ok_or_else(|| Redirect::to("/console/sign-in").into_response())
    }
}

/// The fields of a POSTed form whose CSRF token [`authenticate`] checked (or of the sign-in
/// form, which has no session yet). A field given twice keeps its first value. Fields carry
/// passwords, codes and PINs: their memory is wiped when the form is dropped, and Debug shows
/// only their names.
/// (Clone only because request extensions must be; the one extractor takes it out.)
#[derive(Clone, Default)]
pub(super) struct FormFields(HashMap<String, Zeroizing<String>>);

impl std::fmt::Debug for FormFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl FormFields {
    /// The fields of an `application/x-www-form-urlencoded` body.
    pub(super) fn parse(body: &[u8]) -> FormFields {
        let mut fields = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            fields.entry(k.into_owned()).or_insert_with(|| Zeroizing::new(v.into_owned()));
        }
        FormFields(fields)
    }

    /// Field `name`, trimmed; empty when absent.
    pub(super) fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|v| v.trim()).unwrap_or("")
    }

    /// Field `name` as typed (passwords are not trimmed).
    pub(super) fn raw(&self, name: &str) -> &str {
        self.0.get(name).map(|v| v.as_str()).unwrap_or("")
    }
}

impl FromRequestParts<SharedState> for FormFields {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &SharedState) -> Result<Self, Response> {
        parts.extensions.remove::<FormFields>().ok_or_else(|| {
            layout::error_page(StatusCode::BAD_REQUEST, "This request carried no form.", None).into_response()
        })
    }
}

/// The console's layer (see the module comment of `console`).
pub(crate) async fn authenticate(State(st): State<SharedState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let resp = gate(&st, req, &path, next).await;
    secure(resp, &path)
}

async fn gate(st: &SharedState, req: Request, path: &str, next: Next) -> Response {
    let (mut parts, mut body) = req.into_parts();
    let caller = Origin::from_request_parts(&mut parts, st).await.map(|o| o.0).unwrap_or_else(|_| Caller::unknown());
    let post = parts.method == Method::POST;
    if post && !same_origin(&parts) {
        return layout::error_page(StatusCode::FORBIDDEN, "This form was not sent from the console's own pages.", None)
            .into_response();
    }
    let mut session = match (public(path), cookie_of(&parts)) {
        (true, _) => None,
        (false, None) => return to_sign_in(&parts, None),
        (false, Some(cookie)) => match st.console.session(cookie, caller).await {
            Ok(s) => Some(s),
            Err(e @ ConsoleAuthError::Unavailable(_)) => {
                return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), None).into_response()
            }
            Err(e) => return to_sign_in(&parts, Some(&e)),
        },
    };
    if post && path != PASSKEY_CHALLENGE {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return layout::error_page(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large.", None).into_response();
        };
        let fields = FormFields::parse(&bytes);
        if let Some(s) = &session {
            if !bool::from(fields.raw("_csrf").as_bytes().ct_eq(s.csrf.as_bytes())) {
                return layout::error_page(
                    StatusCode::FORBIDDEN,
                    "This form has expired or did not come from your session; reload the page and try again.",
                    None,
                )
                .into_response();
            }
        }
        parts.extensions.insert(fields);
        body = Body::empty();
    }
    // A renewed cookie goes back with the answer; handlers get the session without it.
    let renewed = session.as_mut().and_then(|s| s.renewed.take());
    if let Some(s) = session {
        parts.extensions.insert(s);
    }
    let mut resp = next.run(Request::from_parts(parts, body)).await;
    // Unless the handler set the session cookie itself (a re-authentication's fresh proof, a
    // sign-out's clearing): the browser keeps the last one, and the renewal, made from the
    // session as it came in, must not undo that.
    let handler_set_it = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.trim_start().starts_with(&format!("{COOKIE}="))));
    if let (Some(cookie), false) = (renewed, handler_set_it) {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(&cookie));
    }
    resp
}

/// A POST must come from our own pages: when the browser names the origin, it must be this
/// host's. (SameSite=Strict and the CSRF token are the other two locks.)
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, h)| h == host)
}

/// No session: pages go to the sign-in form (and come back after it); forms get 403.
fn to_sign_in(parts: &Parts, why: Option<&ConsoleAuthError>) -> Response {
    if parts.method != Method::GET {
        let msg = why.map(ToString::to_string).unwrap_or_else(|| "Please sign in.".into());
        return layout::error_page(StatusCode::FORBIDDEN, &msg, None).into_response();
    }
    let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console/");
    let mut target = url::form_urlencoded::Serializer::new(String::from("/console/sign-in?"));
    target.append_pair("next", back);
    if matches!(why, Some(ConsoleAuthError::Expired)) {
        target.append_pair("expired", "1");
    }
    let mut resp = Redirect::to(&target.finish()).into_response();
    resp.headers_mut().append(header::SET_COOKIE, clear_cookie());
    resp
}

/// The security headers of every console answer; pages are never cached.
fn secure(mut resp: Response, path: &str) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it browsers send `Origin: null` with form posts, which the
    // same-origin check must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !path.starts_with("/console/static/") {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// `None` when both factors were proved recently enough for a change that removes something
/// or grants or removes power; else the way to the re-authentication page, which brings the
/// user back to `back` (the form is sent again from there: a POST's fields are never carried
/// in a URL). The one freshness gate of every such handler.
pub(super) fn fresh_or_reauth(s: &ConsoleSession, back: &str) -> Option<Response> {
    if s.fresh() {
        return None;
    }
    let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", back).finish();
    Some(Redirect::to(&format!("/console/reauth?{query}")).into_response())
}

/// Where to go after signing in: only a console path of ours, never another site.
pub(super) fn safe_next(next: &str) -> &str {
    let ok = next.starts_with("/console/") && !next.starts_with("//") && !next.contains('\\') && !next.contains("://");
    if ok {
        next
    } else {
        "/console/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_sign_in_the_browser_goes_only_to_a_console_page() {
        assert_eq!(safe_next("/console/users?q=a"), "/console/users?q=a");
        for evil in ["https://evil.example/", "//evil.example/console/", "/console/\\evil", "/v1/keys", ""] {
            assert_eq!(safe_next(evil), "/console/", "{evil}");
        }
    }

    #[test]
    fn the_csp_allows_no_inline_code_and_no_frames() {
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(CSP.contains("script-src 'self'") && CSP.contains("style-src 'self'"));
    }

    #[test]
    fn the_session_cookie_is_secure_httponly_and_strict() {
        let c = set_cookie("abc.def");
        let c = c.to_str().unwrap_or_default();
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/console/"] {
            assert!(c.contains(attr), "{attr} missing from {c}");
        }
    }
}
