//! The system page of signing keys and integrations: applications with their key versions
//! (the keys stay in the HSM; the page shows ids and states), integrations (local services by
//! uid) with their grants, and three changes: rotate an application's key, grant an
//! application to an integration, revoke a grant.
//!
//! privacyIDEA has no admin-policy action for signing keys or grants, so these are judged by
//! the role alone (`ChangeSystem`: admins). Each grants or removes signing power, so each needs
//! both factors proved within the last minutes (as a token's revoke or delete does). The
//! admin service does the change and writes its audit row, caller `console:NAME`, in the
//! change's own transaction. Must never: name a key by anything but the application as the
//! admin service loads it, or carry a form's fields in a URL.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use countersign::console_access::{ConsoleSession, Power};
use countersign_api::application::{Application, Integration, KeyState};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout;
use super::session::{FormFields, Signed};
use super::system;
use crate::SharedState;

const HERE: &str = "/console/system/keys";

/// A change this page makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyAction {
    /// A new key version for an application: it signs from now on, the old one only verifies.
    Rotate,
    /// An integration may sign with an application's key.
    Grant,
    /// It no longer may.
    Revoke,
}

impl KeyAction {
    pub(super) const ALL: [KeyAction; 3] = [KeyAction::Rotate, KeyAction::Grant, KeyAction::Revoke];

    /// The word of `?done=` after it.
    pub(super) fn name(self) -> &'static str {
        match self {
            KeyAction::Rotate => "rotate",
            KeyAction::Grant => "grant",
            KeyAction::Revoke => "revoke",
        }
    }

    /// What the page says after it. (Names are not repeated from the URL: a crafted link
    /// could otherwise make the page claim a change that was not made.)
    fn done(self) -> &'static str {
        match self {
            KeyAction::Rotate => "The key was rotated: the new version signs from now on; the old one still verifies.",
            KeyAction::Grant => "The grant was added: the integration may sign with the application's key.",
            KeyAction::Revoke => "The grant was revoked: the integration may no longer sign with that key.",
        }
    }

    /// Whether both factors must have been proved recently. Every change here grants or
    /// removes signing power, so each does (the brief asked it for rotate and revoke; a grant
    /// gives a local service a key, which is no less).
    pub(super) fn needs_fresh_proof(self) -> bool {
        match self {
            KeyAction::Rotate | KeyAction::Grant | KeyAction::Revoke => true,
        }
    }

    fn parse(s: &str) -> Option<KeyAction> {
        KeyAction::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// Whether the session's user may change keys and grants: the role alone (no privacyIDEA
/// admin-policy action covers signing keys or grants).
pub(super) fn may_change(s: &ConsoleSession) -> bool {
    s.user.may(Power::ChangeSystem, None)
}

/// One integration's row: its grants, and the applications it could still be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IntegrationRow {
    pub name: String,
    pub uid: u32,
    pub grants: Vec<String>,
    pub grantable: Vec<String>,
}

impl IntegrationRow {
    /// `i`'s row; `powerauth` names the PowerAuth applications, whose master keys are never
    /// granted (the store refuses it: a local service must not sign activation codes).
    pub(super) fn of(i: &Integration, apps: &[Application], powerauth: &[String]) -> IntegrationRow {
        IntegrationRow {
            name: i.name.clone(),
            uid: i.uid,
            grants: i.grants.clone(),
            grantable: apps
                .iter()
                .map(|a| a.name.clone())
                .filter(|a| !i.grants.contains(a) && !powerauth.contains(a))
                .collect(),
        }
    }
}

/// The query of the page: what was just done.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    done: String,
}

/// `GET /console/system/keys`.
pub(super) async fn page(State(st): State<SharedState>, Signed(s): Signed, Query(d): Query<Done>) -> Response {
    let (apps, integrations) = (st.admin.applications().await, st.admin.integrations().await);
    // Which applications are PowerAuth's (rotation and grants are refused for them); when that
    // cannot be read, no change is offered at all rather than one the store would refuse.
    let powerauth = st.powerauth.list().await.map(|l| l.into_iter().map(|a| a.name).collect::<Vec<_>>());
    let change = may_change(&s) && powerauth.is_ok();
    let powerauth_names = powerauth.as_deref().unwrap_or(&[]);
    let done = KeyAction::parse(&d.done).map(KeyAction::done);
    let body = html! {
        (layout::notice(done, None))
        @if change {
            p.muted { "Rotating a key, granting and revoking ask you to prove both factors again if you signed in more than "
                (countersign::console_access::REAUTH_SECONDS / 60) " minutes ago." }
        }
        @if let Err(e) = &powerauth { p.error role="alert" { "The PowerAuth applications could not be read, so no change is offered: " (e) } }
        h2 { "Applications and their keys (in the HSM)" }
        @match &apps {
            Err(e) => (system::unavailable(e)),
            Ok(list) => div.table-wrap { table {
                thead { tr { th { "Application" } th { "Algorithm" } th { "Key versions" } th { "Active key" } @if change { th { "Change" } } } }
                tbody { @for a in list { tr {
                    td { (a.name) } td { (a.algorithm) } td { (a.versions.len()) }
                    td { @for v in a.versions.iter().filter(|v| v.state == KeyState::Active) {
                        "version " (v.version) " " code { (v.key_id) }
                    } }
                    @if change { td {
                        @if powerauth_names.contains(&a.name) { span.muted { "PowerAuth master key: not rotated or granted here" } }
                        @else { (rotate_form(&s, &a.name)) }
                    } }
                } } }
            } },
        }
        h2 { "Integrations (local services by uid) and their grants" }
        @match &integrations {
            Err(e) => (system::unavailable(e)),
            Ok(list) => {
                @let rows: Vec<IntegrationRow> = list.iter().map(|i| IntegrationRow::of(i, apps.as_deref().unwrap_or(&[]), powerauth_names)).collect();
                div.table-wrap { table {
                    thead { tr { th { "Integration" } th { "uid" } th { "May sign with" } @if change { th { "Grant" } } } }
                    tbody { @for i in &rows { tr {
                        td { (i.name) } td { (i.uid) }
                        td { @if i.grants.is_empty() { span.muted { "nothing" } } @for g in &i.grants {
                            span.grant { (g) @if change { (revoke_form(&s, &i.name, g)) } } " "
                        } }
                        @if change { td { @if !i.grantable.is_empty() { (grant_form(&s, i)) } } }
                    } } }
                } }
            },
        }
    };
    system::system_page(&s, "Keys and integrations", HERE, body)
}

fn rotate_form(s: &ConsoleSession, app: &str) -> Markup {
    html! {
        form.inline method="post" action={ (HERE) "/applications/" (system::segment(app)) "/rotate" } {
            (layout::csrf(s))
            button.danger type="submit" { "Rotate key" }
        }
    }
}

fn grant_form(s: &ConsoleSession, i: &IntegrationRow) -> Markup {
    html! {
        form.inline method="post" action={ (HERE) "/integrations/" (system::segment(&i.name)) "/grant" } {
            (layout::csrf(s))
            select name="application" aria-label={ "Application to grant to " (i.name) } {
                @for a in &i.grantable { option value=(a) { (a) } }
            }
            button.secondary type="submit" { "Grant" }
        }
    }
}

fn revoke_form(s: &ConsoleSession, integration: &str, app: &str) -> Markup {
    html! {
        form.inline method="post" action={ (HERE) "/integrations/" (system::segment(integration)) "/revoke" } {
            (layout::csrf(s))
            input type="hidden" name="application" value=(app);
            button.danger type="submit" aria-label={ "Revoke " (app) " from " (integration) } { "Revoke" }
        }
    }
}

/// The checks every change of this page starts with: the role, then fresh proof of both
/// factors. `Some`: the answer instead of the change.
fn refuse(s: &ConsoleSession, a: KeyAction) -> Option<Response> {
    if !may_change(s) {
        return Some(system::forbidden("Your role does not allow changing signing keys or grants.", HERE));
    }
    a.needs_fresh_proof().then(|| system::fresh_or_reauth(s, HERE)).flatten()
}

fn after<T, E: countersign_core::error::Kinded + std::fmt::Display>(a: KeyAction, r: Result<T, E>) -> Response {
    match r {
        Ok(_) => Redirect::to(&format!("{HERE}?done={}", a.name())).into_response(),
        Err(e) => system::failed(&e, HERE),
    }
}

/// `POST /console/system/keys/applications/{name}/rotate`.
pub(super) async fn rotate(State(st): State<SharedState>, Signed(s): Signed, Path(name): Path<String>) -> Response {
    if let Some(r) = refuse(&s, KeyAction::Rotate) {
        return r;
    }
    after(KeyAction::Rotate, st.admin.rotate(s.caller.clone(), name).await)
}

/// `POST /console/system/keys/integrations/{name}/grant` (field `application`).
pub(super) async fn grant(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path(name): Path<String>,
    f: FormFields,
) -> Response {
    if let Some(r) = refuse(&s, KeyAction::Grant) {
        return r;
    }
    after(KeyAction::Grant, st.admin.grant(s.caller.clone(), name, f.get("application").to_owned()).await)
}

/// `POST /console/system/keys/integrations/{name}/revoke` (field `application`).
pub(super) async fn revoke(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path(name): Path<String>,
    f: FormFields,
) -> Response {
    if let Some(r) = refuse(&s, KeyAction::Revoke) {
        return r;
    }
    after(KeyAction::Revoke, st.admin.revoke(s.caller.clone(), name, f.get("application").to_owned()).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign::console_access::{ConsoleUser, Role};

    #[test]
    fn only_admins_change_keys_and_every_change_needs_fresh_proof() {
        for a in KeyAction::ALL {
            assert_eq!(KeyAction::parse(a.name()), Some(a));
            assert!(a.needs_fresh_proof(), "{a:?}");
        }
        assert_eq!(KeyAction::parse("rotate&x"), None);
        let u = |role| ConsoleUser { name: "u".into(), role, realms: vec!["default".into()] };
        assert!(u(Role::Admin).may(Power::ChangeSystem, None));
        assert!(!u(Role::Auditor).may(Power::ChangeSystem, None) && u(Role::Auditor).may(Power::SeeSystem, None));
        assert!(!u(Role::Helpdesk).may(Power::ChangeSystem, None));
    }

    #[test]
    fn an_integration_can_be_granted_only_what_it_lacks() {
        let app = |name: &str| -> Application {
            serde_json::from_value(serde_json::json!({
                "id": 1, "name": name, "algorithm": "ec-p256", "created_at": 0, "versions": []
            }))
            .unwrap_or_else(|e| panic!("application json: {e}"))
        };
        let i = Integration { id: 1, name: "svc".into(), uid: 1000, created_at: 0, grants: vec!["a".into()] };
        let row = IntegrationRow::of(&i, &[app("a"), app("b"), app("pa")], &["pa".into()]);
        assert_eq!(row.grants, ["a"]);
        assert_eq!(row.grantable, ["b"], "a PowerAuth master key is never offered");
    }
}
