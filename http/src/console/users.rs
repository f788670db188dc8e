//! Users and their tokens: search across realms, a user's page with their tokens and recent
//! audit, the inline token actions, and enrolment with the secret shown once (in the answer to
//! the POST, never in a URL, never cached).
//!
//! Every action is judged on the token as loaded (its realm and owner), by the role
//! ([`ConsoleUser::may`]) and then by the admin policies under the console user's name, and
//! applied only while the token still has that owner (`TokenService::expecting`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use countersign::console_access::{ConsoleSession, ConsoleUser, Power};
use countersign::policy::AdminTarget;
use countersign::simple_tokens::Shown;
use countersign::store::AuthAuditRow;
use countersign::tokens::{ExpectedOwner, InitRequest};
use countersign_api::Token;
use countersign_core::error::{ErrorKind, Kinded};
use maud::{html, Markup};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::layout::segment as enc;
use super::layout::{self, Nav};
use super::registration;
use super::session::{fresh_or_reauth, FormFields, Signed};
use crate::target_user::{TargetError, TargetUser};
use crate::SharedState;

/// Users shown per page of a search.
const PER_PAGE: usize = 25;
/// Users a search reads per realm at most.
const SEARCH_LIMIT: usize = 500;

/// The token types the console enrols with a form alone (passkeys and WebAuthn need the
/// authenticator at the browser; cards are enrolled on the card page, `cards.rs`).
pub(super) const ENROLLABLE: &[(&str, &str)] = &[
    ("totp", "TOTP (authenticator app)"),
    ("hotp", "HOTP (counter-based)"),
    ("sms", "SMS"),
    ("email", "E-mail"),
    ("spass", "Simple pass (PIN only)"),
    ("pw", "Password"),
    ("registration", "Registration code"),
    ("paper", "Paper list of codes"),
    ("tan", "TAN list"),
    ("indexedsecret", "Indexed secret"),
    ("yubikey", "Yubico OTP (a YubiKey programmed elsewhere: its AES key)"),
    ("push", "Push (privacyIDEA Authenticator app: the user scans the code)"),
    ("edupush", "eduPUSH (eduMFA Authenticator app: the user scans the code)"),
];

/// The actions a token row offers, by admin-policy action name, with their labels and whether
/// they need fresh proof of both factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenAction {
    Enable,
    Disable,
    Reset,
    Resync,
    SetPin,
    Unassign,
    Revoke,
    Lost,
    Delete,
}

impl TokenAction {
    pub(super) const ALL: [TokenAction; 9] = [
        TokenAction::Enable,
        TokenAction::Disable,
        TokenAction::Reset,
        TokenAction::Resync,
        TokenAction::SetPin,
        TokenAction::Unassign,
        TokenAction::Revoke,
        TokenAction::Lost,
        TokenAction::Delete,
    ];

    /// The path segment and the admin policy's action.
    pub(super) fn name(self) -> &'static str {
        match self {
            TokenAction::Enable => "enable",
            TokenAction::Disable => "disable",
            TokenAction::Reset => "reset",
            TokenAction::Resync => "resync",
            TokenAction::SetPin => "setpin",
            TokenAction::Unassign => "unassign",
            TokenAction::Revoke => "revoke",
            TokenAction::Lost => "losttoken",
            TokenAction::Delete => "delete",
        }
    }

    fn label(self) -> &'static str {
        match self {
            TokenAction::Enable => "Enable",
            TokenAction::Disable => "Disable",
            TokenAction::Reset => "Reset fail counter",
            TokenAction::Resync => "Resync",
            TokenAction::SetPin => "Set PIN",
            TokenAction::Unassign => "Unassign",
            TokenAction::Revoke => "Revoke",
            TokenAction::Lost => "Lost: issue a temporary password",
            TokenAction::Delete => "Delete",
        }
    }

    /// What the user page says after it.
    fn done(self) -> &'static str {
        match self {
            TokenAction::Enable => "The token is enabled.",
            TokenAction::Disable => "The token is disabled.",
            TokenAction::Reset => "The fail counter is reset.",
            TokenAction::Resync => "The token is in sync again.",
            TokenAction::SetPin => "The PIN is set.",
            TokenAction::Unassign => "The token is unassigned.",
            TokenAction::Revoke => "The token is revoked.",
            TokenAction::Lost => "The token is disabled and a temporary password token was issued.",
            TokenAction::Delete => "The token is deleted.",
        }
    }

    /// Whether it removes or ends something for good (re-authentication first).
    pub(super) fn destructive(self) -> bool {
        matches!(self, TokenAction::Unassign | TokenAction::Revoke | TokenAction::Lost | TokenAction::Delete)
    }

    fn parse(s: &str) -> Option<TokenAction> {
        TokenAction::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether it applies to `t` as it is now.
    fn applies_to(self, t: &Token) -> bool {
        match self {
            _ if t.revoked => matches!(self, TokenAction::Delete),
            TokenAction::Enable => !t.active,
            TokenAction::Disable => t.active,
            TokenAction::Lost => t.user.is_some(),
            _ => true,
        }
    }
}

/// Whether the admin policies let the session's console user do `action` to `on` (privacyIDEA's
/// rule, judged by `countersign::policy::admin_allows` as for the privacyIDEA API's admins;
/// helpdesk and auditor roles are bounded before this by [`ConsoleUser::may`]). A policy
/// conflict refuses.
pub(super) fn policy_allows(st: &SharedState, s: &ConsoleSession, action: &str, on: AdminTarget<'_>) -> bool {
    let now_s = s.now_s;
    matches!(
        countersign::policy::admin_allows(&st.policies.snapshot(), &s.user.name, &s.caller, action, on, now_s),
        Ok(true)
    )
}

/// What a registration for a console user answers without fresh proof.
const CONSOLE_FACTOR_NEEDS_PROOF: &str =
    "Confirm it is you again (password and code) before adding a console user's authenticator.";

/// Whether a change to `realm`'s users' tokens needs fresh proof beyond what the change itself
/// asks: the console realm holds the console users' own sign-in factors, which the account
/// page changes only with fresh proof, so a session left open on a desk must not add, set or
/// switch off a factor of its own or another console user's through a user page either.
pub(super) fn guards_console_sign_in(st: &SharedState, s: &ConsoleSession, realm: Option<&str>) -> bool {
    realm == Some(st.console.realm()) && !s.fresh()
}

/// The user a change from a user page is for: fresh proof first where the change touches a
/// console user's sign-in ([`guards_console_sign_in`]; else the re-authentication page, then
/// `back`), then the user as admin policies judge them ([`target_user`]).
pub(super) async fn changing_user(
    st: &SharedState,
    s: &ConsoleSession,
    realm: &str,
    login: &str,
    back: &str,
) -> Result<TargetUser, Response> {
    if guards_console_sign_in(st, s, Some(realm)) {
        if let Some(to_reauth) = fresh_or_reauth(s, back) {
            return Err(to_reauth);
        }
    }
    target_user(st, realm, login).await
}

/// The user the page's path names, as admin policies judge them: as the realm's resolvers find
/// them ([`TargetUser`]), never the spelling in the path. A realm that does not exist, or a
/// directory that cannot answer, is an error page.
pub(super) async fn target_user(st: &SharedState, realm: &str, login: &str) -> Result<TargetUser, Response> {
    TargetUser::find(st, login, Some(realm)).await.map_err(|e| match e {
        TargetError::NoRealm(_) => layout::error_page(StatusCode::NOT_FOUND, "No such realm.", None).into_response(),
        TargetError::Unreachable(m) => layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &m, None).into_response(),
    })
}

/// The admin-policy target of token `t`: its owner as loaded, with the resolver the owner was
/// found through (admin policies may name resolvers).
fn owner_of(t: &Token) -> AdminTarget<'_> {
    AdminTarget { user: t.user.as_deref(), realm: t.realm.as_deref(), resolver: t.resolver.as_deref() }
}

/// The newest 20 rows of a user's audit, each once: `by_owner`, the rows about the person the
/// page's login resolves to (however a check spelt them, through whichever realm), and of
/// `by_login` the rows that record no owner (admin changes) naming the login in `realm`: by
/// login alone, the same login in another realm (or in a row naming no realm) is another
/// user, whom a helpdesk of this realm must not see.
pub(super) fn recent_audit(by_owner: Vec<AuthAuditRow>, by_login: Vec<AuthAuditRow>, realm: &str) -> Vec<AuthAuditRow> {
    let ownerless = by_login.into_iter().filter(|r| r.owner.is_none() && r.realm.as_deref() == Some(realm));
    let mut rows: Vec<AuthAuditRow> = by_owner.into_iter().chain(ownerless).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    rows.dedup_by_key(|r| r.id);
    rows.truncate(20);
    rows
}

/// One token row of a user's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TokenRow {
    pub serial: String,
    pub token_type: String,
    pub description: String,
    pub state: &'static str,
    pub fails: String,
    pub actions: Vec<TokenAction>,
}

/// A user's page.
#[derive(Debug, Clone)]
pub(super) struct UserPage {
    pub login: String,
    pub realm: String,
    pub tokens: Vec<TokenRow>,
    pub may_enrol: bool,
    /// The authenticators the page may register for the user at this computer (kind, label).
    pub registrable: Vec<(&'static str, &'static str)>,
    /// The user's recent audit rows, or why they could not be read.
    pub audit: Result<Vec<countersign::store::AuthAuditRow>, String>,
}

/// What a token's state reads as on a page: revoked, disabled, a push token's phone not there
/// yet (waiting for the phone, or its enrolment expired), locked (its fail counter at its limit)
/// or active.
pub(super) fn token_state(t: &Token) -> &'static str {
    if t.revoked {
        "revoked"
    } else if let Some(p) = t.push.as_ref().filter(|p| p.state != "enrolled") {
        if p.state == "enrolment expired" {
            "enrolment expired"
        } else {
            "waiting for the phone"
        }
    } else if !t.active {
        "disabled"
    } else if t.fails.count >= t.fails.max {
        "locked"
    } else {
        "active"
    }
}

/// The rows of `tokens` with the actions `u` may take on each (none outside their realms).
pub(super) fn token_rows(u: &ConsoleUser, tokens: &[Token], policy: impl Fn(&str, &Token) -> bool) -> Vec<TokenRow> {
    tokens
        .iter()
        .map(|t| {
            let may = u.may(Power::ChangeTokens, t.realm.as_deref());
            TokenRow {
                serial: t.serial.clone(),
                token_type: t.token_type.clone(),
                description: t.description.clone(),
                state: token_state(t),
                fails: format!("{} of {}", t.fails.count, t.fails.max),
                actions: TokenAction::ALL
                    .into_iter()
                    .filter(|a| may && a.applies_to(t) && policy(a.name(), t))
                    .collect(),
            }
        })
        .collect()
}

/// The query of the user search.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    realm: String,
    #[serde(default)]
    page: usize,
}

fn forbidden(msg: &str) -> Response {
    layout::error_page(StatusCode::FORBIDDEN, msg, None).into_response()
}

fn failed(e: &dyn std::fmt::Display) -> Response {
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &format!("The appliance could not do this: {e}"), None)
        .into_response()
}

/// `GET /console/users`.
pub(super) async fn search(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<SearchQuery>) -> Response {
    let realms: Vec<String> = st
        .realms
        .names()
        .into_iter()
        .filter(|r| s.user.may(Power::SeeUsers, Some(r)))
        // The admin policies' `userlist` too, per realm, as the privacyIDEA API judges it.
        .filter(|r| policy_allows(&st, &s, "userlist", AdminTarget { realm: Some(r), ..AdminTarget::default() }))
        .filter(|r| q.realm.is_empty() || *r == q.realm)
        .collect();
    if realms.is_empty() && s.user.realm_limit().is_some_and(<[String]>::is_empty) {
        return forbidden("Your role has no realm to search.");
    }
    // Every realm's users, and the realms whose directory could not be asked (a help desk must
    // not read "no user found" when the directory is down).
    let (found, failed, capped) = if q.q.is_empty() && q.realm.is_empty() {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let (st2, filter) = (st.clone(), q.q.clone());
        let rs = realms.clone();
        let searched = tokio::task::spawn_blocking(move || {
            let (mut out, mut failed, mut capped) = (Vec::new(), Vec::new(), Vec::new());
            for r in rs {
                let part = Some(&filter).filter(|f| !f.is_empty()).map(String::as_str);
                match st2.realms.list_users(Some(&r), part, SEARCH_LIMIT) {
                    Ok(users) => {
                        if users.len() >= SEARCH_LIMIT {
                            capped.push(r.clone());
                        }
                        out.extend(users.into_iter().map(|u| (r.clone(), u)))
                    }
                    Err(e) => failed.push(format!("realm {r}: {e}")),
                }
            }
            (out, failed, capped)
        })
        .await;
        searched.unwrap_or_else(|e| (Vec::new(), vec![format!("the search did not finish: {e}")], Vec::new()))
    };
    let (rows, more) = layout::paginate(&found, q.page, PER_PAGE);
    let base = {
        let mut b = url::form_urlencoded::Serializer::new(String::from("/console/users?"));
        b.append_pair("q", &q.q).append_pair("realm", &q.realm);
        b.finish()
    };
    let body = html! {
        form.search method="get" action="/console/users" role="search" {
            label { "Login, name or part of it" input name="q" value=(q.q) autofocus; }
            label { "Realm" select name="realm" {
                option value="" { "All realms" }
                @for r in &realms { option value=(r) selected[*r == q.realm] { (r) } }
            } }
            button type="submit" { "Search" }
        }
        @for f in &failed { p.error role="alert" { "Could not search " (f) } }
        @if !capped.is_empty() {
            p.notice role="status" { "More than " (SEARCH_LIMIT) " users match in " (capped.join(", ")) "; only the first " (SEARCH_LIMIT) " of each are listed. Type more of the login or name." }
        }
        @if q.q.is_empty() && q.realm.is_empty() {
            p.muted { "Type a login or a name, or pick a realm." }
        } @else if found.is_empty() {
            p { "No user found." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Login" } th { "Realm" } th { "Name" } th { "E-mail" } th { "Source" } } }
                tbody { @for (realm, u) in &rows {
                    tr {
                        td { a href={ "/console/users/" (enc(realm)) "/" (enc(&u.login)) } { (u.login) } }
                        td { (realm) }
                        td { (u.given_name.clone().unwrap_or_default()) " " (u.surname.clone().unwrap_or_default()) }
                        td { (u.email.clone().unwrap_or_default()) }
                        td { (u.resolver) }
                    }
                } }
            } }
            (layout::pager(&base, q.page, more))
        }
    };
    layout::page("Users", &s, Nav::Users, body).into_response()
}

/// The query of a user's page: what was just done.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

/// `GET /console/users/{realm}/{login}`.
pub(super) async fn page(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((realm, login)): Path<(String, String)>,
    Query(d): Query<Done>,
) -> Response {
    if !s.user.may(Power::SeeUsers, Some(&realm)) {
        return forbidden("Your role does not cover this realm.");
    }
    let who = match target_user(&st, &realm, &login).await {
        Ok(who) => who,
        Err(page) => return page,
    };
    if !policy_allows(&st, &s, "tokenlist", who.target()) {
        return forbidden("Your role does not cover this realm.");
    }
    let tokens = match st.tokens.list(Some(login.clone()), Some(realm.clone()), None).await {
        Ok(t) => t,
        Err(e) => return failed(&e),
    };
    let audit = super::audit::of_user(&st, &realm, &login).await;
    let view = UserPage {
        tokens: token_rows(&s.user, &tokens, |a, t| policy_allows(&st, &s, a, owner_of(t))),
        may_enrol: s.user.may(Power::ChangeTokens, Some(&realm)),
        registrable: registrable(&st, &s, &realm, who.target()),
        login,
        realm,
        audit,
    };
    let done = match d.done.as_str() {
        "registered" => Some("The authenticator is registered."),
        other => TokenAction::ALL.into_iter().find(|a| a.name() == other).map(TokenAction::done),
    };
    let title = format!("{} in {}", view.login, view.realm);
    layout::page(&title, &s, Nav::Users, render_user(&s, &view, done)).into_response()
}

fn render_user(s: &ConsoleSession, v: &UserPage, done: Option<&str>) -> Markup {
    html! {
        (layout::notice(done, None))
        section.card {
            h2 { "Tokens" }
            @if v.tokens.is_empty() { p { "This user has no token." } } @else {
                div.table-wrap { table {
                    thead { tr { th { "Serial" } th { "Type" } th { "State" } th { "Failures" } th { "Description" } th { "Actions" } } }
                    tbody { @for t in &v.tokens {
                        tr {
                            td { code { (t.serial) } }
                            td { (t.token_type) }
                            td { span.badge.ok[t.state == "active"].bad[t.state != "active"] { (t.state) } }
                            td { (t.fails) }
                            td { (t.description) }
                            td { @for a in &t.actions { (action_form(s, &t.serial, *a)) } }
                        }
                    } }
                } }
            }
        }
        @if v.may_enrol {
            section.card {
                h2 { "Enrol a token" }
                form.inline method="post" action={ "/console/users/" (enc(&v.realm)) "/" (enc(&v.login)) "/enrol" } {
                    (layout::csrf(s))
                    label for="type" { "Type" }
                    select #type name="type" { @for (t, label) in ENROLLABLE { option value=(t) { (label) } } }
                    label for="description" { "Description" }
                    input #description name="description" maxlength="80";
                    button type="submit" { "Enrol" }
                    details.action {
                        summary { "Yubico OTP: the key's AES key and ids" }
                        input name="aes_key" type="password" autocomplete="off" aria-label="AES key, 32 hex characters" placeholder="AES key (hex)";
                        input.short name="public_id" aria-label="Public id (modhex)" placeholder="Public id";
                        input.short name="private_id" aria-label="Private id (hex)" placeholder="Private id";
                    }
                }
                p.muted { "The secret or QR code is shown once, on the next page." }
                p { a href={ "/console/users/" (enc(&v.realm)) "/" (enc(&v.login)) "/card" } { "Enrol a card in one of the appliance's readers (PIV, YubiKey)" } }
            }
        }
        @if !v.registrable.is_empty() {
            @let base = format!("/console/users/{}/{}/webauthn", enc(&v.realm), enc(&v.login));
            section.card {
                h2 { "Register the user's passkey or security key at this computer" }
                p { "With the user here: they plug in their key, or use their phone or laptop, when the browser asks." }
                @for (kind, label) in &v.registrable {
                    button.secondary type="button" data-register-passkey data-options={ (base) "/options" } data-type=(kind) data-form="webauthn-finish" hidden { (label) }
                    " "
                }
                p.muted data-passkey-status aria-live="polite" { "Registering needs JavaScript and a browser that supports WebAuthn." }
                form #webauthn-finish method="post" action=(base) {
                    (layout::csrf(s))
                    input type="hidden" name="serial";
                    input type="hidden" name="transaction_id";
                    input type="hidden" name="attestation_object";
                    input type="hidden" name="client_data";
                }
            }
        }
        section.card {
            h2 { "Recent audit" }
            @match &v.audit {
                Err(e) => p.error role="alert" { "The audit could not be read: " (e) },
                Ok(rows) if rows.is_empty() => p.muted { "Nothing recorded for this user." },
                Ok(rows) => div.table-wrap { table {
                    thead { tr { th { "When" } th { "Action" } th { "Result" } th { "Token" } th { "Who" } th { "Detail" } } }
                    tbody { @for r in rows {
                        tr { td { (layout::when_ms(r.at_ms)) } td { (r.action) } td { (r.result) } td { (r.serial.clone().unwrap_or_default()) } td { (r.caller) } td { (r.detail.clone().unwrap_or_default()) } }
                    } }
                } },
            }
        }
    }
}

fn action_form(s: &ConsoleSession, serial: &str, a: TokenAction) -> Markup {
    let action = format!("/console/tokens/{}/{}", enc(serial), a.name());
    let danger = a.destructive();
    html! {
        @match a {
            TokenAction::Resync => details.action {
                summary { (a.label()) }
                form.inline method="post" action=(action) {
                    (layout::csrf(s))
                    input.short name="otp1" inputmode="numeric" aria-label="First code" placeholder="First code" required;
                    input.short name="otp2" inputmode="numeric" aria-label="Next code" placeholder="Next code" required;
                    button type="submit" { "Resync" }
                }
            },
            TokenAction::SetPin => details.action {
                summary { (a.label()) }
                form.inline method="post" action=(action) {
                    (layout::csrf(s))
                    input.short name="pin" type="password" autocomplete="new-password" aria-label="New PIN" placeholder="New PIN";
                    button type="submit" { "Set PIN" }
                }
            },
            _ => form.inline method="post" action=(action) {
                (layout::csrf(s))
                button.danger[danger].secondary[!danger] type="submit" data-serial=(serial) data-action=(a.name()) { (a.label()) }
            },
        }
    }
}

/// `POST /console/tokens/{serial}/{action}`.
pub(super) async fn token_action(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((serial, action)): Path<(String, String)>,
    f: FormFields,
) -> Response {
    let Some(a) = TokenAction::parse(&action) else {
        return layout::error_page(StatusCode::NOT_FOUND, "No such token action.", None).into_response();
    };
    // Judged on the token as loaded, never on what the form says. A token that does not exist
    // and one the user may not touch get the same answer: a helpdesk must not learn which
    // serials exist in other realms by trying them.
    let not_yours = "No such token among those your role and the admin policies let you change.";
    let t = match st.tokens.show(serial.clone()).await {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return forbidden(not_yours),
        Err(e) => return failed(&e),
    };
    if !s.user.may(Power::ChangeTokens, t.realm.as_deref()) || !policy_allows(&st, &s, a.name(), owner_of(&t)) {
        return forbidden(not_yours);
    }
    let back = match (&t.realm, &t.user) {
        (Some(r), Some(u)) => format!("/console/users/{}/{}", enc(r), enc(u)),
        _ => "/console/users".to_owned(),
    };
    if a.destructive() || guards_console_sign_in(&st, &s, t.realm.as_deref()) {
        if let Some(to_reauth) = fresh_or_reauth(&s, &back) {
            return to_reauth;
        }
    }
    let tokens = st.tokens.expecting(ExpectedOwner::of(&t));
    let c = s.caller.clone();
    let outcome = match a {
        TokenAction::Enable => tokens.set_active(c, serial, true).await.map(|_| ()),
        TokenAction::Disable => tokens.set_active(c, serial, false).await.map(|_| ()),
        TokenAction::Reset => tokens.reset(c, serial).await.map(|_| ()),
        TokenAction::Resync => tokens
            .resync(
                c,
                serial,
                SecretString::from(f.get("otp1").to_owned()),
                SecretString::from(f.get("otp2").to_owned()),
            )
            .await
            .map(|_| ()),
        TokenAction::SetPin => {
            let pin = f.raw("pin");
            tokens.set_pin(c, serial, (!pin.is_empty()).then(|| SecretString::from(pin.to_owned()))).await.map(|_| ())
        }
        TokenAction::Unassign => tokens.unassign(c, serial).await.map(|_| ()),
        TokenAction::Revoke => tokens.revoke(c, serial).await.map(|_| ()),
        TokenAction::Delete => tokens.delete(c, serial).await,
        TokenAction::Lost => match tokens.lost(c, serial).await {
            Ok(r) => {
                let lines = vec![("Temporary password", Zeroizing::new(r.password.expose_secret().to_owned()))];
                return shown_once(&s, &back, "Temporary password", &r.token.serial, &lines, None);
            }
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => Redirect::to(&format!("{back}?done={}", a.name())).into_response(),
        Err(e) => layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), Some(&back)).into_response(),
    }
}

/// `POST /console/users/{realm}/{login}/enrol`.
pub(super) async fn enrol(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((realm, login)): Path<(String, String)>,
    f: FormFields,
) -> Response {
    let kind = f.get("type").to_owned();
    if !ENROLLABLE.iter().any(|(t, _)| *t == kind) {
        return layout::error_page(StatusCode::BAD_REQUEST, "The console cannot enrol this token type.", None)
            .into_response();
    }
    let action = format!("enroll{}", kind.to_ascii_uppercase());
    let refused = || forbidden("Your role or the admin policies do not allow enrolling this token for this user.");
    if !s.user.may(Power::ChangeTokens, Some(&realm)) {
        return refused();
    }
    let back = format!("/console/users/{}/{}", enc(&realm), enc(&login));
    match changing_user(&st, &s, &realm, &login, &back).await {
        Ok(who) if policy_allows(&st, &s, &action, who.target()) => {}
        Ok(_) => return refused(),
        Err(page) => return page,
    }
    match st.tokens.init(s.caller.clone(), init_request(&kind, realm, login, &f)).await {
        Ok(e) => {
            // A push token's enrolment URI is what its phone scans, as a seed's URI is.
            let uri = e.otpauth_uri.as_ref().or(e.push.as_ref().map(|p| &p.uri));
            let lines = shown_lines(uri, e.shown.as_ref());
            shown_once(&s, &back, "Token enrolled", &e.token.serial, &lines, e.qr_png.as_deref())
        }
        Err(e) => layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), Some(&back)).into_response(),
    }
}

/// The enrolment the form asks for: the type, the owner the page names, the description; for a
/// Yubico OTP key its AES key (the secret, only ever in the POST's body) and its ids.
pub(super) fn init_request(kind: &str, realm: String, login: String, f: &FormFields) -> InitRequest {
    let mut req = InitRequest::of_type(kind);
    req.user = Some(login);
    req.realm = Some(realm);
    req.description = f.get("description").to_owned();
    req.qr_png = true;
    if kind == "yubikey" {
        req.seed = Some(f.get("aes_key")).filter(|k| !k.is_empty()).map(|k| SecretString::from(k.to_owned()));
        let mut ids = serde_json::Map::new();
        for (field, param) in [("public_id", "prefix"), ("private_id", "uid")] {
            if !f.get(field).is_empty() {
                ids.insert(param.to_owned(), f.get(field).into());
            }
        }
        req.params = (!ids.is_empty()).then_some(serde_json::Value::Object(ids));
    }
    req
}

/// The authenticators the session's user may register for the user `on` in `realm`: the role
/// in the realm, then the admin policy of each kind (`enrollPASSKEY`, `enrollWEBAUTHN`).
fn registrable(
    st: &SharedState,
    s: &ConsoleSession,
    realm: &str,
    on: AdminTarget<'_>,
) -> Vec<(&'static str, &'static str)> {
    if !s.user.may(Power::ChangeTokens, Some(realm)) {
        return Vec::new();
    }
    registration::KINDS
        .into_iter()
        .filter(|(k, _)| policy_allows(st, s, &format!("enroll{}", k.to_ascii_uppercase()), on))
        .collect()
}

/// [`registrable`] for the user the page's path names, resolved first.
async fn registrable_for(
    st: &SharedState,
    s: &ConsoleSession,
    realm: &str,
    login: &str,
) -> Result<Vec<(&'static str, &'static str)>, Response> {
    let who = target_user(st, realm, login).await?;
    Ok(registrable(st, s, realm, who.target()))
}

/// `POST /console/users/{realm}/{login}/webauthn/options`: the first step of registering the
/// user's authenticator (the kind in the form's `type`), for the page's script.
pub(super) async fn webauthn_options(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((realm, login)): Path<(String, String)>,
    f: FormFields,
) -> Response {
    let kind = f.get("type");
    if guards_console_sign_in(&st, &s, Some(&realm)) {
        return registration::json_error(StatusCode::FORBIDDEN, CONSOLE_FACTOR_NEEDS_PROOF);
    }
    let kinds = match registrable_for(&st, &s, &realm, &login).await {
        Ok(kinds) => kinds,
        Err(page) => return page,
    };
    if !kinds.iter().any(|(k, _)| *k == kind) {
        let msg = "Your role or the admin policies do not allow registering this for this user.";
        return registration::json_error(StatusCode::FORBIDDEN, msg);
    }
    let description =
        if kind == "passkey" { "Passkey registered in the console" } else { "Security key registered in the console" };
    registration::start(&st, &s, kind, registration::Owner { login: &login, realm: &realm }, description).await
}

/// `POST /console/users/{realm}/{login}/webauthn`: the second step, for a registration of this
/// user's (as loaded) that the role and policies still allow.
pub(super) async fn webauthn_finish(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((realm, login)): Path<(String, String)>,
    f: FormFields,
) -> Response {
    let back = format!("/console/users/{}/{}", enc(&realm), enc(&login));
    if guards_console_sign_in(&st, &s, Some(&realm)) {
        return layout::error_page(StatusCode::FORBIDDEN, CONSOLE_FACTOR_NEEDS_PROOF, Some(&back)).into_response();
    }
    let kinds: Vec<&str> = match registrable_for(&st, &s, &realm, &login).await {
        Ok(kinds) => kinds.into_iter().map(|(k, _)| k).collect(),
        Err(page) => return page,
    };
    if kinds.is_empty() {
        return forbidden("Your role or the admin policies do not allow registering this for this user.");
    }
    match registration::finish(&st, &s, registration::Owner { login: &login, realm: &realm }, &kinds, &f).await {
        Ok(()) => Redirect::to(&format!("{back}?done=registered")).into_response(),
        Err((status, msg)) => layout::error_page(status, &msg, Some(&back)).into_response(),
    }
}

/// What an enrolment shows once, labelled, the first line the one to hand over: an app token's
/// secret (and its whole `otpauth://` URI), or what a simple token shows (a password, a
/// registration code, the list of codes or TANs, an indexed secret).
pub(super) fn shown_lines(uri: Option<&SecretString>, shown: Option<&Shown>) -> Vec<(&'static str, Zeroizing<String>)> {
    let mut lines = Vec::new();
    if let Some(uri) = uri {
        let secret = url::Url::parse(uri.expose_secret())
            .ok()
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned()));
        if let Some(secret) = secret {
            lines.push(("Secret", Zeroizing::new(secret)));
        }
        lines.push(("Enrolment URI", Zeroizing::new(uri.expose_secret().to_owned())));
    }
    match shown {
        Some(Shown::Password(p)) => lines.push(("Password", Zeroizing::new(p.expose_secret().to_owned()))),
        Some(Shown::RegistrationCode(c)) => {
            lines.push(("Registration code", Zeroizing::new(c.expose_secret().to_owned())))
        }
        Some(Shown::Secret(v)) => lines.push(("Secret", Zeroizing::new(v.expose_secret().to_owned()))),
        Some(Shown::Otps(codes)) => {
            let list = codes.iter().enumerate().map(|(i, c)| format!("{i}: {}", c.expose_secret())).collect::<Vec<_>>();
            lines.push(("Codes, in order", Zeroizing::new(list.join("\n"))));
        }
        None => {}
    }
    lines
}

/// The page that shows a secret once: never cached (the layer's `no-store`), never in a URL.
fn shown_once(
    s: &ConsoleSession,
    back: &str,
    title: &str,
    serial: &str,
    lines: &[(&'static str, Zeroizing<String>)],
    qr: Option<&str>,
) -> Response {
    let body = html! {
        p.notice role="status" { "Token " code { (serial) } " was enrolled. What follows is shown this once: hand it over now." }
        @if let Some(q) = qr { p.qr { img alt="QR code of the token's secret" src={ "data:image/png;base64," (q) }; } }
        @for (i, (label, value)) in lines.iter().enumerate() {
            p { (label) ":" }
            @if i == 0 { pre.secret data-secret { (value.as_str()) } } @else { pre.secret { (value.as_str()) } }
        }
        p { a.button href=(back) { "Done" } }
    };
    layout::page(title, s, Nav::Users, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign::console_access::Role;

    fn token(serial: &str, realm: Option<&str>, active: bool) -> Token {
        let mut t: Token = serde_json::from_value(serde_json::json!({
            "serial": serial, "type": "totp", "plugin": "token-totp", "params": {}, "otp_window": 1,
            "counter": 0, "drift": 0, "pin_set": false, "fail_count": 0, "max_fail": 10, "fail_clear_s": 0, "last_fail_ms": null, "active": active,
            "revoked": false, "user": realm.map(|_| "alice"), "realm": realm, "description": "", "created_at": 0
        }))
        .unwrap_or_else(|e| panic!("token json: {e}"));
        t.active = active;
        t
    }

    fn user(role: Role, realms: &[&str]) -> ConsoleUser {
        ConsoleUser { name: "hd".into(), role, realms: realms.iter().map(|r| (*r).to_owned()).collect() }
    }

    #[test]
    fn a_helpdesk_user_gets_actions_only_on_tokens_in_their_realms() {
        let hd = user(Role::Helpdesk, &["staff"]);
        let rows = token_rows(
            &hd,
            &[token("A", Some("staff"), true), token("B", Some("other"), true), token("C", None, true)],
            |_, _| true,
        );
        assert!(rows[0].actions.contains(&TokenAction::Disable));
        assert!(!rows[0].actions.contains(&TokenAction::Enable), "an active token offers disable, not enable");
        assert!(rows[1].actions.is_empty(), "another realm's token offers nothing");
        assert!(rows[2].actions.is_empty(), "an unassigned token offers nothing to the helpdesk");
    }

    #[test]
    fn an_auditor_gets_no_action_and_policies_remove_what_they_forbid() {
        let au = user(Role::Auditor, &[]);
        assert!(token_rows(&au, &[token("A", Some("staff"), false)], |_, _| true)[0].actions.is_empty());
        let ad = user(Role::Admin, &[]);
        let rows = token_rows(&ad, &[token("A", Some("staff"), false)], |a, _| a != "delete");
        assert!(rows[0].actions.contains(&TokenAction::Enable));
        assert!(!rows[0].actions.contains(&TokenAction::Delete));
        assert_eq!(rows[0].state, "disabled");
    }

    #[test]
    fn every_enrolment_shows_its_secret_in_the_clear_once_first_the_one_to_hand_over() {
        let uri = SecretString::from("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&issuer=y".to_owned());
        let lines = shown_lines(Some(&uri), None);
        assert_eq!(lines[0].0, "Secret");
        assert_eq!(lines[0].1.as_str(), "JBSWY3DPEHPK3PXP");
        assert!(lines[1].1.starts_with("otpauth://"));
        let pw = Shown::Password(SecretString::from("s3cret-pass".to_owned()));
        assert_eq!(shown_lines(None, Some(&pw))[0].1.as_str(), "s3cret-pass");
        let code = Shown::RegistrationCode(SecretString::from("REG-123".to_owned()));
        assert_eq!(shown_lines(None, Some(&code))[0].1.as_str(), "REG-123");
        let otps = Shown::Otps(vec![SecretString::from("111111".to_owned()), SecretString::from("222222".to_owned())]);
        assert_eq!(shown_lines(None, Some(&otps))[0].1.as_str(), "0: 111111\n1: 222222");
        assert!(shown_lines(None, None).is_empty());
    }

    #[test]
    fn a_users_page_shows_the_owners_rows_and_ownerless_rows_of_its_realm_and_judges_tokens_with_their_resolver() {
        let row = |id: i64, login: &str, realm: Option<&str>, owner: Option<&str>| {
            let mut r = AuthAuditRow::new(&countersign_core::caller::Caller::unknown(), "validate/check", "reject");
            r.id = id;
            r.login = Some(login.into());
            r.realm = realm.map(str::to_owned);
            r.owner = owner.map(str::to_owned);
            r
        };
        // The person's checks, through another spelling and another realm over the directory.
        let by_owner =
            vec![row(9, "BOB", Some("partners"), Some("corp:u-1")), row(4, "bob", Some("staff"), Some("corp:u-1"))];
        let by_login = vec![
            row(8, "bob", Some("partners"), Some("corp:u-2")), // another bob, in another realm
            row(7, "bob", Some("staff"), None),                // an admin change here
            row(6, "bob", Some("partners"), None),             // an admin change of the other bob
            row(5, "bob", None, None),                         // no realm named: not this user
            row(4, "bob", Some("staff"), Some("corp:u-1")),    // read both ways, shown once
        ];
        let shown = recent_audit(by_owner, by_login, "staff");
        assert_eq!(shown.iter().map(|r| r.id).collect::<Vec<_>>(), [9, 7, 4]);
        let many = (0..30).map(|i| row(i, "bob", Some("staff"), None)).collect();
        let shown =
            recent_audit((30..40).map(|i| row(i, "bob", Some("staff"), Some("corp:u-1"))).collect(), many, "staff");
        assert_eq!(shown.len(), 20);
        assert_eq!((shown[0].id, shown[19].id), (39, 20), "newest first, at most 20");
        let mut t = token("A", Some("staff"), true);
        t.resolver = Some("ldap".into());
        assert_eq!(owner_of(&t).resolver, Some("ldap"));
    }

    #[test]
    fn a_yubico_otp_enrolment_carries_its_key_and_ids_and_other_types_do_not() {
        let f = FormFields::parse(
            b"type=yubikey&aes_key=00112233445566778899aabbccddeeff&public_id=vvnnllkkjjii&private_id=&description=d",
        );
        let r = init_request("yubikey", "staff".into(), "bob".into(), &f);
        assert_eq!(
            r.seed.as_ref().map(|k| k.expose_secret().to_owned()).as_deref(),
            Some("00112233445566778899aabbccddeeff")
        );
        assert_eq!(r.params, Some(serde_json::json!({ "prefix": "vvnnllkkjjii" })));
        assert_eq!((r.user.as_deref(), r.realm.as_deref(), r.description.as_str()), (Some("bob"), Some("staff"), "d"));
        let totp = init_request("totp", "staff".into(), "bob".into(), &f);
        assert!(totp.seed.is_none() && totp.params.is_none(), "a typed key goes only to a yubikey enrolment");
    }

    #[test]
    fn removing_actions_need_fresh_proof_and_names_round_trip() {
        for a in TokenAction::ALL {
            assert_eq!(TokenAction::parse(a.name()), Some(a));
        }
        assert!(TokenAction::Delete.destructive() && TokenAction::Revoke.destructive());
        assert!(!TokenAction::Reset.destructive() && !TokenAction::Disable.destructive());
        assert_eq!(TokenAction::parse("../delete"), None);
    }
}
