//! The signed-in console user's own page: who they are, their second factors (tokens of their
//! internal user in `[console] realm`), and registering a passkey to sign in with instead of a
//! code. Registration is the appliance's ordinary passkey enrolment (the enrolment policies,
//! the plugin's attestation check, the audit), for the console user's own internal user only.
//!
//! Adding a way to sign in needs both factors proved within the last minutes (a session left
//! open on a desk must not be able to add its own passkey). Must never: enrol or touch a token
//! of anyone else, whatever the request names.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use countersign::console_access::ConsoleSession;
use countersign_api::Token;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::registration::{self, Owner};
use super::session::{FormFields, Signed};
use crate::SharedState;

const HERE: &str = "/console/account";

/// The query of the page: what was just done.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

/// One of the user's second factors as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FactorRow {
    pub serial: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub description: String,
}

/// The rows of the user's tokens: a passkey only once registered (one whose registration was
/// never finished signs nobody in).
pub(super) fn factor_rows(tokens: &[Token]) -> Vec<FactorRow> {
    tokens
        .iter()
        .filter(|t| {
            t.token_type != "passkey" || t.params.get("rollout_state").and_then(|v| v.as_str()) != Some("clientwait")
        })
        .map(|t| FactorRow {
            serial: t.serial.clone(),
            kind: match t.token_type.as_str() {
                "totp" => "Authenticator app (TOTP)",
                "passkey" => "Passkey",
                "webauthn" => "Security key (WebAuthn)",
                _ => "Other token",
            },
            state: super::users::token_state(t),
            description: t.description.clone(),
        })
        .collect()
}

async fn own_tokens(st: &SharedState, s: &ConsoleSession) -> Result<Vec<Token>, String> {
    st.tokens
        .list(Some(s.user.name.clone()), Some(st.console.realm().to_owned()), None)
        .await
        .map_err(|e| e.to_string())
}

/// `GET /console/account`.
pub(super) async fn page(State(st): State<SharedState>, Signed(s): Signed, Query(d): Query<Done>) -> Response {
    let tokens = own_tokens(&st, &s).await;
    let fresh = s.fresh();
    let done =
        (d.done == "passkey").then_some("Your passkey is registered: you can sign in with it instead of a code.");
    let body = html! {
        (layout::notice(done, None))
        section.card {
            h2 { "You" }
            p { "Signed in as " strong { (s.user.name) } ", role " (s.user.role.as_str())
                @if !s.user.realms.is_empty() { ", for the realms " (s.user.realms.join(", ")) } "." }
        }
        section.card {
            h2 { "Your second factors" }
            @match &tokens {
                Err(e) => p.error role="alert" { "Your tokens could not be read: " (e) },
                Ok(list) => {
                    @let rows = factor_rows(list);
                    @if rows.is_empty() { p { "You have no second factor; an admin adds one with the CLI." } }
                    @else { div.table-wrap { table {
                        thead { tr { th { "Kind" } th { "Serial" } th { "State" } th { "Description" } } }
                        tbody { @for r in &rows { tr { td { (r.kind) } td { code { (r.serial) } } td { (r.state) } td { (r.description) } } } }
                    } } }
                }
            }
        }
        section.card {
            h2 { "Add a passkey" }
            p { "A passkey signs you in without typing a code: your password and a touch of your security key or device." }
            @if fresh {
                button type="button" data-register-passkey data-options="/console/account/passkey/options" data-form="passkey-finish" hidden { "Register a passkey" }
                p.muted data-passkey-status aria-live="polite" { "Registering a passkey needs JavaScript and a browser that supports passkeys." }
                form #passkey-finish method="post" action="/console/account/passkey" {
                    (layout::csrf(&s))
                    input type="hidden" name="serial";
                    input type="hidden" name="transaction_id";
                    input type="hidden" name="attestation_object";
                    input type="hidden" name="client_data";
                }
            } @else {
                p { "First prove it is you again: " a href={ "/console/reauth?next=" (HERE) } { "confirm with your password and code" } "." }
            }
        }
    };
    layout::page("Your account", &s, Nav::None, body).into_response()
}

/// `POST /console/account/passkey/options`: the first step, for the page's script: a passkey
/// of the user's own internal user in the console realm.
pub(super) async fn passkey_options(State(st): State<SharedState>, Signed(s): Signed) -> Response {
    if !s.fresh() {
        let msg = "Confirm it is you again (password and code) before adding a passkey.";
        return registration::json_error(StatusCode::FORBIDDEN, msg);
    }
    let owner = Owner { login: &s.user.name, realm: st.console.realm() };
    registration::start(&st, &s, "passkey", owner, "Console passkey").await
}

/// `POST /console/account/passkey`: the second step, for a token that must be the user's own
/// passkey (as loaded, and still when the registration is stored).
pub(super) async fn passkey_finish(State(st): State<SharedState>, Signed(s): Signed, f: FormFields) -> Response {
    if !s.fresh() {
        let msg = "Confirm it is you again (password and code) before adding a passkey.";
        return layout::error_page(StatusCode::FORBIDDEN, msg, Some(HERE)).into_response();
    }
    let owner = Owner { login: &s.user.name, realm: st.console.realm() };
    match registration::finish(&st, &s, owner, &["passkey"], &f).await {
        Ok(()) => Redirect::to(&format!("{HERE}?done=passkey")).into_response(),
        Err((status, msg)) => layout::error_page(status, &msg, Some(HERE)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(kind: &str, rollout: Option<&str>) -> Token {
        let params = match rollout {
            Some(r) => serde_json::json!({ "rollout_state": r }),
            None => serde_json::json!({}),
        };
        serde_json::from_value(serde_json::json!({
            "serial": "S1", "type": kind, "plugin": "p", "params": params, "otp_window": 1,
            "counter": 0, "drift": 0, "pin_set": false, "fail_count": 0, "max_fail": 10, "fail_clear_s": 0,
            "last_fail_ms": null, "active": true, "revoked": false, "user": "ann", "realm": "console",
            "description": "", "created_at": 0
        }))
        .unwrap_or_else(|e| panic!("token json: {e}"))
    }

    #[test]
    fn an_unfinished_passkey_registration_is_not_listed_as_a_factor() {
        let rows = factor_rows(&[
            token("totp", None),
            token("passkey", Some("clientwait")),
            token("passkey", Some("enrolled")),
        ]);
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["Authenticator app (TOTP)", "Passkey"]);
        assert!(rows.iter().all(|r| r.state == "active"));
    }
}
