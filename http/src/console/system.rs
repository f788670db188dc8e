//! The system pages' frame (sub-navigation, the role check) and the pages of realms and
//! resolvers, gateways, signing keys and integrations, and the settings, for admins and
//! auditors to read. The policies page is `policies.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign::console_access::{ConsoleSession, Power};
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
    layout::page(title, s, Nav::System, body).into_response()
}

fn unavailable(e: &dyn std::fmt::Display) -> Markup {
    html! { p.error role="alert" { "Could not be read: " (e) } }
}

/// `GET /console/system/realms`.
pub(super) async fn realms(State(st): State<SharedState>, Signed(s): Signed) -> Response {
    let realms = st.realms.clone();
    let read = tokio::task::spawn_blocking(move || (realms.list_realms(), realms.list_resolvers())).await;
    let body = match read {
        Err(e) => unavailable(&e),
        Ok((realms, resolvers)) => html! {
            h2 { "Realms" }
            @match realms {
                Err(e) => (unavailable(&e)),
                Ok(list) => div.table-wrap { table {
                    thead { tr { th { "Realm" } th { "Default" } th { "Resolvers, in order" } } }
                    tbody { @for r in &list { tr { td { (r.name) } td { @if r.default { "yes" } } td { (r.resolvers.join(", ")) } } } }
                } },
            }
            h2 { "Resolvers" }
            @match resolvers {
                Err(e) => (unavailable(&e)),
                Ok(list) => div.table-wrap { table {
                    thead { tr { th { "Resolver" } th { "Details" } } }
                    tbody { @for r in &list { tr { td { (r.name) } td { code { (serde_json::to_string(r).unwrap_or_default()) } } } } }
                } },
            }
        },
    };
    system_page(&s, "Realms and resolvers", "/console/system/realms", body)
}

/// `GET /console/system/gateways`.
pub(super) async fn gateways(State(st): State<SharedState>, Signed(s): Signed) -> Response {
    let body = match st.gateways.list().await {
        Err(e) => unavailable(&e),
        Ok(list) => html! {
            div.table-wrap { table {
                thead { tr { th { "Gateway" } th { "Plugin" } th { "Credentials (names only)" } th { "Routes" } } }
                tbody { @for g in &list {
                    tr { td { (g.name) } td { (g.plugin) } td { (g.credentials.join(", ")) }
                         td { @for (t, n) in &g.routes { (t) " #" (n) " " } } }
                } }
            } }
        },
    };
    system_page(&s, "Gateways", "/console/system/gateways", body)
}

/// `GET /console/system/keys`.
pub(super) async fn keys(State(st): State<SharedState>, Signed(s): Signed) -> Response {
    let (apps, integrations) = (st.admin.applications().await, st.admin.integrations().await);
    let body = html! {
        h2 { "Applications and their keys (in the HSM)" }
        @match apps {
            Err(e) => (unavailable(&e)),
            Ok(list) => div.table-wrap { table {
                thead { tr { th { "Application" } th { "Algorithm" } th { "Key versions" } } }
                tbody { @for a in &list { tr { td { (a.name) } td { (format!("{:?}", a.algorithm)) } td { (a.versions.len()) } } } }
            } },
        }
        h2 { "Integrations (local services by uid) and their grants" }
        @match integrations {
            Err(e) => (unavailable(&e)),
            Ok(list) => div.table-wrap { table {
                thead { tr { th { "Integration" } th { "uid" } th { "May sign with" } } }
                tbody { @for i in &list { tr { td { (i.name) } td { (i.uid) } td { (i.grants.join(", ")) } } } }
            } },
        }
    };
    system_page(&s, "Keys and integrations", "/console/system/keys", body)
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
