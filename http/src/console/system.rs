//! The system pages' shell: their sub-navigation, the role check every system page starts
//! with, what a system page's user may read and change ([`Access`]), and the settings page.
//! The pages themselves: policies (`policies.rs`: edit, check), realms and resolvers (`realms.rs`: a test of one user),
//! gateways (`gateways.rs`: a test message, the delivery history), keys and integrations
//! (`keys.rs`: rotate, grant, revoke). Auditors read them; only admins change, each change
//! judged by the role, then by the admin policies where privacyIDEA has an action for it, and
//! written by the engine with its audit row in the change's own transaction.
//!
//! Must never: change configuration kept in files (settings stay files + CLI), or decide a
//! role's powers itself (`ConsoleUser::may` does).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign::console_access::{ConsoleSession, ConsoleUser, Power};
use countersign::policy::AdminTarget;
use countersign_core::error::{ErrorKind, Kinded};
use maud::{html, Markup};

use super::layout::{self, Nav};
use super::session::Signed;
use crate::SharedState;

const PAGES: [(&str, &str); 5] = [
    ("Policies", "/console/system/policies"),
    ("Realms and resolvers", "/console/system/realms"),
    ("Gateways", "/console/system/gateways"),
    ("Keys and integrations", "/console/system/keys"),
    ("Settings", "/console/system/settings"),
];

pub(super) fn system_page(s: &ConsoleSession, title: &str, here: &str, body: Markup) -> Response {
    system_page_with(StatusCode::OK, s, title, here, body)
}

/// [`system_page`] answered with `status` (a refused or failed part of the page).
pub(super) fn system_page_with(
    status: StatusCode,
    s: &ConsoleSession,
    title: &str,
    here: &str,
    body: Markup,
) -> Response {
    if !s.user.may(Power::SeeSystem, None) {
        return layout::error_page(StatusCode::FORBIDDEN, "Your role does not include the system pages.", None)
            .into_response();
    }
    let body = html! {
        nav.subnav aria-label="System" { ul { @for (label, href) in PAGES {
            li { a href=(href) aria-current=[(href == here).then_some("page")] { (label) } }
        } } }
        (body)
    };
    (status, layout::page(title, s, Nav::System, body)).into_response()
}

pub(super) fn unavailable(e: &dyn std::fmt::Display) -> Markup {
    html! { p.error role="alert" { "Could not be read: " (e) } }
}

/// What the session's user may do on one system page: read what it shows, and change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Access {
    /// Read the page's part (the role's `SeeSystem` and the admin policy's read action).
    pub read: bool,
    /// Change it (the role's `ChangeSystem`, admins only, and the admin policy's write action).
    pub change: bool,
}

impl Access {
    /// The role first, then the admin policies: `read_ok` and `change_ok` are asked only when
    /// the role allows (a helpdesk or an auditor is never the policies' to widen).
    pub(super) fn judge(u: &ConsoleUser, read_ok: impl FnOnce() -> bool, change_ok: impl FnOnce() -> bool) -> Access {
        Access {
            read: u.may(Power::SeeSystem, None) && read_ok(),
            change: u.may(Power::ChangeSystem, None) && change_ok(),
        }
    }
}

/// Whether the admin policies let the session's console user do the system-wide `action`
/// (no user, realm or resolver: privacyIDEA judges `resolverread`, `smsgateway_read` and
/// `smsgateway_write` so).
pub(super) fn policy(st: &SharedState, s: &ConsoleSession, action: &str) -> bool {
    super::users::policy_allows(st, s, action, AdminTarget::default())
}

pub(super) use super::session::fresh_or_reauth;

/// The status a refused or failed engine call answers with.
pub(super) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid | ErrorKind::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An engine error as a page: what went wrong (the engine's message says what to do), and the
/// way back to the page the form was on.
pub(super) fn failed<E: Kinded + std::fmt::Display>(e: &E, back: &str) -> Response {
    layout::error_page(status_of(e.kind()), &format!("This was not done: {e}"), Some(back)).into_response()
}

pub(super) use super::layout::segment;

/// A refusal by role or admin policy.
pub(super) fn forbidden(msg: &str, back: &str) -> Response {
    layout::error_page(StatusCode::FORBIDDEN, msg, Some(back)).into_response()
}

/// `GET /console/system/settings`.
pub(super) async fn settings(State(st): State<SharedState>, Signed(s): Signed) -> Response {
    let body = html! {
        p { "Configuration is kept in files and changed with the CLI; this page only shows it." }
        div.table-wrap { table { tbody {
            tr { th { "Version" } td { (env!("CARGO_PKG_VERSION")) } }
            tr { th { "Console realm (second factors)" } td { (st.console.realm()) } }
            tr { th { "API key required on the network" } td { (st.require_api_key) } }
            tr { th { "Admin uids besides root and the daemon" } td { (format!("{:?}", st.admin_uids)) } }
            tr { th { "Session idle limit" } td { (countersign::console_access::IDLE_SECONDS / 60) " minutes" } }
            tr { th { "Session limit" } td { (countersign::console_access::MAX_SECONDS / 3600) " hours" } }
            tr { th { "Re-authentication before destructive actions" } td { "within " (countersign::console_access::REAUTH_SECONDS / 60) " minutes" } }
        } } }
    };
    system_page(&s, "Settings", "/console/system/settings", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign::console_access::Role;

    fn user(role: Role) -> ConsoleUser {
        ConsoleUser { name: "u".into(), role, realms: vec!["default".into()] }
    }

    #[test]
    fn the_role_comes_first_and_only_admins_change_what_policies_allow() {
        let never = || -> bool { panic!("the policies were asked for a role that may not") };
        assert_eq!(Access::judge(&user(Role::Helpdesk), never, never), Access { read: false, change: false });
        assert_eq!(Access::judge(&user(Role::Auditor), || true, never), Access { read: true, change: false });
        assert_eq!(Access::judge(&user(Role::Admin), || true, || true), Access { read: true, change: true });
        assert_eq!(Access::judge(&user(Role::Admin), || true, || false), Access { read: true, change: false });
        assert_eq!(Access::judge(&user(Role::Admin), || false, || true), Access { read: false, change: true });
    }

    #[test]
    fn engine_refusals_keep_their_meaning_and_names_stay_one_segment() {
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Invalid), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status_of(ErrorKind::Internal), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}
