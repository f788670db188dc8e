//! Signing in (password and a code or a passkey), signing out, and proving both factors again
//! before a destructive action. The engine decides; these are the forms.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use countersign::console_access::{ConsoleAuthError, SecondFactor};
use countersign::webauthn::{decode_b64, Assertion};
use maud::{html, Markup};
use secrecy::SecretString;
use serde::Deserialize;

use super::layout;
use super::session::{clear_cookie, safe_next, set_cookie, FormFields, Signed};
use crate::extract::Origin;
use crate::SharedState;

/// The query of the sign-in and re-authentication pages.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Next {
    #[serde(default)]
    next: String,
    #[serde(default)]
    expired: Option<String>,
}

/// The fields both forms share: a code, or a passkey's assertion that the script fills in.
fn second_factor_fields() -> Markup {
    html! {
        label for="code" { "Code from your authenticator app" }
        input #code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]*" maxlength="10";
        input type="hidden" name="transaction_id";
        input type="hidden" name="credential_id";
        input type="hidden" name="client_data";
        input type="hidden" name="authenticator_data";
        input type="hidden" name="signature";
        input type="hidden" name="user_handle";
    }
}

fn passkey_button() -> Markup {
    html! {
        button.secondary type="button" data-passkey hidden { "Use a passkey instead of a code" }
        p.muted data-passkey-status aria-live="polite" {}
    }
}

/// The sign-in form's markup (also the answer to a failed attempt).
pub(super) fn sign_in_form(next: &str, message: Option<&str>, name: &str) -> Markup {
    layout::bare(
        "Sign in to the console",
        html! {
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name="next" value=(safe_next(next));
                label for="name" { "Name" }
                input #name name="name" autocomplete="username" required autofocus value=(name);
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required;
                (second_factor_fields())
                button type="submit" { "Sign in" }
                (passkey_button())
            }
        },
    )
}

/// `GET /console/sign-in`.
pub(super) async fn page(Query(q): Query<Next>) -> Markup {
    let msg = q.expired.is_some().then_some("Your session has ended; please sign in again.");
    sign_in_form(&q.next, msg, "")
}

/// The second factor a form carries: a passkey's assertion when the script filled one in,
/// else the code.
fn second_factor(f: &FormFields) -> Result<SecondFactor, String> {
    if f.get("credential_id").is_empty() {
        return Ok(SecondFactor::Code(SecretString::from(f.get("code").to_owned())));
    }
    let bytes = |name: &str| decode_b64(name, f.get(name));
    let handle = f.get("user_handle");
    Ok(SecondFactor::Passkey {
        transaction_id: f.get("transaction_id").to_owned(),
        assertion: Assertion {
            credential_id: bytes("credential_id")?,
            client_data_json: bytes("client_data")?,
            authenticator_data: bytes("authenticator_data")?,
            signature: bytes("signature")?,
            user_handle: (!handle.is_empty())
                .then(|| (decode_b64("user_handle", handle).unwrap_or_default(), handle.to_owned())),
        },
    })
}

fn auth_failure(e: &ConsoleAuthError) -> StatusCode {
    match e {
        ConsoleAuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ConsoleAuthError::TooManyFailures(_) | ConsoleAuthError::TooManyChallenges(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// `POST /console/sign-in`.
pub(super) async fn submit(State(st): State<SharedState>, Origin(caller): Origin, f: FormFields) -> Response {
    let next = safe_next(f.get("next")).to_owned();
    let name = f.get("name").to_owned();
    let second = match second_factor(&f) {
        Ok(s) => s,
        Err(m) => return (StatusCode::BAD_REQUEST, sign_in_form(&next, Some(&m), &name)).into_response(),
    };
    let password = SecretString::from(f.raw("password").to_owned());
    match st.console.sign_in(caller, name.clone(), password, second).await {
        Ok(cookie) => ([(header::SET_COOKIE, set_cookie(&cookie))], Redirect::to(&next)).into_response(),
        Err(e) => (auth_failure(&e), sign_in_form(&next, Some(&e.to_string()), &name)).into_response(),
    }
}

/// `POST /console/passkey/challenge`: a usernameless sign-in challenge for the script (what it
/// needs of `/validate/initialize`'s shape; not shared with it, which would make the console and
/// the privacyIDEA front-end depend on each other).
pub(super) async fn passkey_challenge(State(st): State<SharedState>, Origin(caller): Origin) -> Response {
    // Anyone may ask (no session yet), and each challenge is a stored row: a few per address.
    if let Err(e) = st.console.admit_passkey_challenge(&caller) {
        return (auth_failure(&e), axum::Json(serde_json::json!({ "error": e.to_string() }))).into_response();
    }
    match st.challenges.sign_in(caller).await {
        Ok(s) => axum::Json(serde_json::json!({
            "transaction_id": s.transaction_id,
            "challenge": s.challenge,
            "rpId": s.rp_id,
            "timeout": s.timeout_ms,
        }))
        .into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}

/// `POST /console/sign-out`: ends every session of the user.
pub(super) async fn sign_out(State(st): State<SharedState>, Signed(s): Signed) -> Response {
    if let Err(e) = st.console.sign_out(&s).await {
        return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &format!("Could not sign out: {e}"), None)
            .into_response();
    }
    ([(header::SET_COOKIE, clear_cookie())], Redirect::to("/console/sign-in")).into_response()
}

fn reauth_form(s: &countersign::console_access::ConsoleSession, next: &str, message: Option<&str>) -> Markup {
    layout::page(
        "Confirm it is you",
        s,
        layout::Nav::None,
        html! {
            p { "This action changes or removes something for good. Enter your password and a second factor again." }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form.stack method="post" action="/console/reauth" {
                (layout::csrf(s))
                input type="hidden" name="next" value=(safe_next(next));
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required autofocus;
                (second_factor_fields())
                button type="submit" { "Confirm" }
                (passkey_button())
            }
        },
    )
}

/// `GET /console/reauth`.
pub(super) async fn reauth_page(Signed(s): Signed, Query(q): Query<Next>) -> Markup {
    reauth_form(&s, &q.next, None)
}

/// `POST /console/reauth`.
pub(super) async fn reauth_submit(State(st): State<SharedState>, Signed(s): Signed, f: FormFields) -> Response {
    let next = safe_next(f.get("next")).to_owned();
    let second = match second_factor(&f) {
        Ok(x) => x,
        Err(m) => return (StatusCode::BAD_REQUEST, reauth_form(&s, &next, Some(&m))).into_response(),
    };
    let password = SecretString::from(f.raw("password").to_owned());
    match st.console.reauthenticate(&s, password, second).await {
        Ok(cookie) => ([(header::SET_COOKIE, set_cookie(&cookie))], Redirect::to(&next)).into_response(),
        Err(e) => (auth_failure(&e), reauth_form(&s, &next, Some(&e.to_string()))).into_response(),
    }
}
